#pragma once
// Part of xsn_distributed (private): the Lua script every node link loads. One script, the
// operation in ARGV[1]; every key it touches is declared in KEYS and shares one hash tag (one
// Cluster slot), except `members`/`leave` (the membership keys, one slot of their own).
#include <string_view>

namespace xsn::inline v0::distributed {

inline constexpr std::string_view node_script = R"LUA(
local op = ARGV[1]
local function fence_ok(lease, fence) return redis.call('GET', lease) == fence end
if op == 'acquire' then
  -- KEYS: lease, epoch. ARGV: op, owner, ttl_ms. -> {1, epoch} | {0, epoch, holder}
  -- The owner itself may take it again (after dropping it locally): with a new epoch, so
  -- writes of its earlier run are refused too.
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local o, e = string.match(cur, '^(.*) (%d+)$')
    if o ~= ARGV[2] then return {0, tonumber(e) or 0, o or ''} end
  end
  local e = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. e, 'PX', ARGV[3])
  return {1, e}
elseif op == 'renew' then
  -- KEYS: lease. ARGV: op, fence, ttl_ms. -> 1 | 0
  if fence_ok(KEYS[1], ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]); return 1 end
  return 0
elseif op == 'release' then
  -- KEYS: lease. ARGV: op, fence. -> 1 | 0
  if fence_ok(KEYS[1], ARGV[2]) then redis.call('DEL', KEYS[1]); return 1 end
  return 0
elseif op == 'write' then
  -- KEYS: lease, ver, ids, record_1..record_n. ARGV: op, fence, n, then per record: id, kind
  -- ('p' put, 'c' compare-and-set, 'e' erase, 'x' erase if version), expected, value.
  -- -> {{'ok'|'conflict', version}...} | error FENCED
  if not fence_ok(KEYS[1], ARGV[2]) then return redis.error_reply('FENCED the lease moved on') end
  local out = {}
  for i = 1, tonumber(ARGV[3]) do
    local key = KEYS[3 + i]
    local b = 4 * i
    local id, kind, expected, value = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    local cur = tonumber(redis.call('HGET', key, 'ver') or '0')
    if (kind == 'c' or kind == 'x') and cur ~= tonumber(expected) then
      out[i] = {'conflict', cur}
    elseif kind == 'e' or kind == 'x' then
      if cur ~= 0 then
        redis.call('DEL', key)
        redis.call('ZREM', KEYS[3], id)
      end
      out[i] = {'ok', cur}
    else
      local v = redis.call('INCR', KEYS[2])
      redis.call('HSET', key, 'v', value, 'ver', v)
      if cur == 0 then redis.call('ZADD', KEYS[3], 0, id) end
      out[i] = {'ok', v}
    end
  end
  return out
elseif op == 'list' then
  -- KEYS: ids. ARGV: op, start_after, limit, record key prefix. -> {id, value, version, ...}
  local min = '-'
  if ARGV[2] ~= '' then min = '(' .. ARGV[2] end
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, tonumber(ARGV[3]))
  local out = {}
  for _, id in ipairs(ids) do
    local r = redis.call('HMGET', ARGV[4] .. id, 'v', 'ver')
    if r[1] then
      out[#out + 1] = id
      out[#out + 1] = r[1]
      out[#out + 1] = r[2]
    end
  end
  return out
elseif op == 'xadd' then
  -- KEYS: stream. ARGV: op, capacity, field, value, ... -> entry id | error FULL
  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then
    return redis.error_reply('FULL the partition inbox is at capacity')
  end
  local args = {'XADD', KEYS[1], '*'}
  for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
  return redis.call(unpack(args))
elseif op == 'ack' then
  -- KEYS: stream. ARGV: op, group, id... -> entries removed
  local ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
  redis.call('XACK', KEYS[1], ARGV[2], unpack(ids))
  return redis.call('XDEL', KEYS[1], unpack(ids))
elseif op == 'members' then
  -- KEYS: nodes, nodeinfo. ARGV: op, owner, ttl_ms, info. -> {now_ms, owner, expiry_ms, ...} (live ones)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, d in ipairs(dead) do redis.call('HDEL', KEYS[2], d) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  table.insert(live, 1, tostring(now))
  return live
elseif op == 'leave' then
  -- KEYS: nodes, nodeinfo. ARGV: op, owner.
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return redis.error_reply('ERR unknown xsn node operation ' .. tostring(op))
)LUA";

}  // namespace xsn::inline v0::distributed
