#pragma once
// Part of xsn_advanced (private): the Lua scripts of `redis_state_store`, one per operation.
//
// Every script gets KEYS = {P i, P x, P m, P c} and ARGV = {P, now, now_ms, ...}: the key prefix,
// the store clock's now as 20 decimal digits (nanoseconds + 2^63, so that it is never negative
// and compares exactly without floating point), and now in milliseconds for the expiry index.
// Layout under P: `d:<key>` value; `m` hash key -> "version expiry size" (expiry: 20 digits or
// "-"); `i` sorted set of the keys (score 0, ordered by bytes); `x` sorted set key -> expiry ms;
// `c` hash {v: last version, b: bytes}; channel `w`: "p|e|x version key" per change.
// A malformed record raises an error starting with XSNBAD.
#include <array>
#include <string_view>

namespace xsn::advanced::detail {

inline constexpr std::string_view redis_prelude = R"lua(
local I, X, M, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local P, NOW, NOWMS = ARGV[1], ARGV[2], ARGV[3]
local function bad(what) error({err = 'XSNBAD ' .. what}) end
local function is_time(t) return #t == 20 and not string.find(t, '%D') end
local function tle(a, b)
  local ah, bh = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if ah ~= bh then return ah < bh end
  return tonumber(string.sub(a, 11)) <= tonumber(string.sub(b, 11))
end
local function meta(key)
  local m = redis.call('HGET', M, key)
  if not m then return nil end
  local v, e, s = string.match(m, '^(%d+) (%S+) (%d+)$')
  if not v or (e ~= '-' and not is_time(e)) then bad('malformed record') end
  return v, e, tonumber(s)
end
local function stats()
  local b = tonumber(redis.call('HGET', C, 'b') or '0')
  if not b then bad('malformed byte counter') end
  return redis.call('ZCARD', I), b
end
local function remove(key, v, s, kind)
  redis.call('DEL', P .. 'd:' .. key)
  redis.call('HDEL', M, key)
  redis.call('ZREM', I, key)
  redis.call('ZREM', X, key)
  redis.call('HINCRBY', C, 'b', -s)
  redis.call('PUBLISH', P .. 'w', kind .. ' ' .. v .. ' ' .. key)
end
local function live(key)
  local v, e, s = meta(key)
  if not v then return nil end
  if e ~= '-' and (tle(e, NOW) or redis.call('EXISTS', P .. 'd:' .. key) == 0) then
    remove(key, v, s, 'x')
    return nil
  end
  return v, e, s
end
local function sweep(max)
  local keys = redis.call('ZRANGEBYSCORE', X, '-inf', NOWMS, 'LIMIT', 0, max)
  for _, k in ipairs(keys) do
    local v, e, s = meta(k)
    if not v then
      redis.call('ZREM', X, k)
    elseif e ~= '-' and tle(e, NOW) then
      remove(k, v, s, 'x')
    end
  end
end
local function next_expiry()
  for _ = 1, 100 do
    local first = redis.call('ZRANGE', X, 0, 0)
    if #first == 0 then return '-' end
    local v, e = meta(first[1])
    if v and e ~= '-' then return e end
    redis.call('ZREM', X, first[1])
  end
  return '-'
end
)lua";

// ARGV[4..]: key, value, expiry ("-" or 20 digits), expiry ms, backstop ms (0: none),
// max entries, max bytes (0: none), expected version ("" for an unconditional put).
inline constexpr std::string_view redis_write_script = R"lua(
local key, val, exp = ARGV[4], ARGV[5], ARGV[6]
local v, e, s = live(key)
local cur = v or '0'
if ARGV[11] ~= '' and ARGV[11] ~= cur then
  local n, b = stats()
  return {'conflict', cur, n, b}
end
local size = #key + #val
local me, mb = tonumber(ARGV[9]), tonumber(ARGV[10])
if me ~= 0 or mb ~= 0 then
  local function fits()
    local n, b = stats()
    local add = 0
    if not v then add = 1 end
    return (me == 0 or n + add <= me) and (mb == 0 or b - (s or 0) + size <= mb)
  end
  if not fits() then
    sweep(1000)
    if not fits() then
      local n, b = stats()
      return {'full', '0', n, b}
    end
  end
end
local vs = string.format('%d', redis.call('HINCRBY', C, 'v', 1))
local b = redis.call('HINCRBY', C, 'b', size - (s or 0))
local d = P .. 'd:' .. key
if exp == '-' then
  redis.call('SET', d, val)
  if e and e ~= '-' then redis.call('ZREM', X, key) end
else
  if ARGV[8] ~= '0' then redis.call('SET', d, val, 'PX', ARGV[8]) else redis.call('SET', d, val) end
  redis.call('ZADD', X, ARGV[7], key)
end
redis.call('HSET', M, key, vs .. ' ' .. exp .. ' ' .. size)
if not v then redis.call('ZADD', I, 0, key) end
redis.call('PUBLISH', P .. 'w', 'p ' .. vs .. ' ' .. key)
return {'ok', vs, redis.call('ZCARD', I), b}
)lua";

// ARGV[4..]: key, expected version ("" for an unconditional erase).
inline constexpr std::string_view redis_erase_script = R"lua(
local key = ARGV[4]
local v, e, s = live(key)
local cur = v or '0'
if ARGV[5] ~= '' and ARGV[5] ~= cur then
  local n, b = stats()
  return {'conflict', cur, n, b}
end
if v then remove(key, v, s, 'e') end
local n, b = stats()
return {'ok', cur, n, b}
)lua";

// ARGV[4]: key. Returns {'none', entries, bytes} or {'ok', version, expiry, value}.
inline constexpr std::string_view redis_get_script = R"lua(
local key = ARGV[4]
local v, e, s = live(key)
if v then
  local val = redis.call('GET', P .. 'd:' .. key)
  if val then return {'ok', v, e, val} end
  remove(key, v, s, 'x')
end
local n, b = stats()
return {'none', n, b}
)lua";

// ARGV[4..]: ZRANGEBYLEX min, max, limit. Returns key, version, expiry, value per entry.
inline constexpr std::string_view redis_list_script = R"lua(
local min, max, limit = ARGV[4], ARGV[5], tonumber(ARGV[6])
local out, got = {}, 0
while got < limit do
  local keys = redis.call('ZRANGEBYLEX', I, min, max, 'LIMIT', 0, limit - got)
  if #keys == 0 then break end
  for _, k in ipairs(keys) do
    local v, e, s = live(k)
    if v then
      local val = redis.call('GET', P .. 'd:' .. k)
      if val then
        out[#out + 1] = k
        out[#out + 1] = v
        out[#out + 1] = e
        out[#out + 1] = val
        got = got + 1
      else
        remove(k, v, s, 'x')
      end
    else
      redis.call('ZREM', I, k)
    end
  end
  min = '(' .. keys[#keys]
end
return out
)lua";

// ARGV[4]: most entries to sweep. Returns {entries, bytes, next expiry or '-'}.
inline constexpr std::string_view redis_sweep_script = R"lua(
sweep(tonumber(ARGV[4]))
local n, b = stats()
return {n, b, next_expiry()}
)lua";

/// The scripts by number, as `redis_command::script` refers to them.
enum redis_script : int { script_write, script_erase, script_get, script_list, script_sweep };
inline constexpr std::array<std::string_view, 5> redis_script_bodies{
    redis_write_script, redis_erase_script, redis_get_script, redis_list_script,
    redis_sweep_script};

}  // namespace xsn::advanced::detail
