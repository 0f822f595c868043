#pragma once
// Part of xsn_advanced (private): the Lua script of `redis_state_store`.
//
// One script serves every operation: Redis runs a garbage-collection step of its Lua heap every
// 50 script calls, and its cost grows with the heap, so one copy of the helpers (not one per
// operation) keeps that periodic stall short (measured: 5 scripts +86 KiB, one +33 KiB).
//
// The script gets no declared keys and ARGV = {P, now, now_ms, ..., op}: the key prefix, the
// store clock's now as 20 decimal digits (nanoseconds + 2^63, so that it is never negative and
// compares exactly without floating point), now in milliseconds for the expiry index, the
// operation's own arguments, and last the operation: `w` write, `b` batch of writes, `e` erase,
// `g` get, `l` list, `s` sweep. Its text is the fast paths (the common cases, returning before any helper exists),
// then `redis_prelude`, then the bodies (every case).
//
// Layout under P (layout 2; see docs/redis.md):
//   `d:<key>`  hash {m = "version expiry size", d = value}: one key per entry, so that a write
//              reads one field and writes one key (expiry: 20 digits or "-")
//   `i`        sorted set of the keys (score 0, ordered by bytes), for listing
//   `x`        sorted set key -> expiry ms, keys with a TTL only
//   `t`        hash key -> "version size", keys with a TTL only: what Redis' wall-clock backstop
//              (PEXPIRE on `d:<key>`) removed, for the counters and the `expire` message
//   `c`        hash {v = last version, n = entries, b = bytes}
//   channel `w`: "p|e|x version key" per change.
// A malformed record raises an error starting with XSNBAD. Each `local function` is a closure
// made at every call (about 2 us for the prelude, measured): the fast paths come before them.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace xsn::inline v0::advanced::detail {

// The write's fast path: an unconditional put, or a compare-and-set, of a key that exists, without
// TTL before or after and without limits: four calls, and the counters are not read back. Replies
// {'ok', version, byte delta} or {'conflict', version}; the other paths reply with the counters
// themselves, {status, version, entries, bytes}. ARGV[12]: the record's name (`P d:<key>`).
inline constexpr std::string_view redis_write_fast = R"lua(
if ARGV[6] == '-' and ARGV[9] == '0' and ARGV[10] == '0' then
  local d = ARGV[12]
  local m = redis.call('HGET', d, 'm')
  local v, s
  if m then v, s = string.match(m, '^(%d+) %- (%d+)$') end
  if v then
    if ARGV[11] ~= '' and ARGV[11] ~= v then return {'conflict', v} end
    local C = ARGV[1] .. 'c'
    local size = #ARGV[4] + #ARGV[5]
    local db = size - tonumber(s)
    local vs = string.format('%d', redis.call('HINCRBY', C, 'v', 1))
    if db ~= 0 then redis.call('HINCRBY', C, 'b', db) end
    redis.call('HSET', d, 'm', vs .. ' - ' .. size, 'd', ARGV[5])
    redis.call('PUBLISH', ARGV[1] .. 'w', 'p ' .. vs .. ' ' .. ARGV[4])
    return {'ok', vs, db}
  end
end
)lua";

// The get's fast path: a record without TTL. ARGV[5]: the record's name.
inline constexpr std::string_view redis_get_fast = R"lua(
local r = redis.call('HMGET', ARGV[5], 'm', 'd')
if r[1] and r[2] then
  local v = string.match(r[1], '^(%d+) %- %d+$')
  if v then return {'ok', v, '-', r[2]} end
end
)lua";

inline constexpr std::string_view redis_prelude = R"lua(
local P, NOW, NOWMS = ARGV[1], ARGV[2], ARGV[3]
local C, I, X, T = P .. 'c', P .. 'i', P .. 'x', P .. 't'
local function bad(what) error({err = 'XSNBAD ' .. what}) end
local function tle(a, b)
  local ah, bh = tonumber(string.sub(a, 1, 10)), tonumber(string.sub(b, 1, 10))
  if ah ~= bh then return ah < bh end
  return tonumber(string.sub(a, 11)) <= tonumber(string.sub(b, 11))
end
local function parse(m)
  local v, e, s = string.match(m, '^(%d+) (%S+) (%d+)$')
  if not v or (e ~= '-' and (#e ~= 20 or string.find(e, '%D'))) then bad('malformed record') end
  return v, e, tonumber(s)
end
local function publish(kind, v, key)
  redis.call('PUBLISH', P .. 'w', kind .. ' ' .. v .. ' ' .. key)
end
local function counters()
  local c = redis.call('HMGET', C, 'n', 'b')
  local n, b = tonumber(c[1] or '0'), tonumber(c[2] or '0')
  if not n or not b then bad('malformed counters') end
  return n, b
end
local function untime(key)
  redis.call('ZREM', X, key)
  redis.call('HDEL', T, key)
end
local function remove(key, v, e, s, kind)
  redis.call('DEL', P .. 'd:' .. key)
  redis.call('ZREM', I, key)
  if e ~= '-' then untime(key) end
  redis.call('HINCRBY', C, 'n', -1)
  if s ~= 0 then redis.call('HINCRBY', C, 'b', -s) end
  publish(kind, v, key)
end
-- An indexed entry whose hash is gone (Redis' backstop, or deleted behind the store's back):
-- removed as expired, with the version and size `t` kept for it when it had a TTL.
local function vanished(key)
  local t = redis.call('HGET', T, key)
  local v, s = '0', 0
  if t then
    v, s = string.match(t, '^(%d+) (%d+)$')
    if not v then v, s = '0', 0 end
  end
  remove(key, v, t and '' or '-', tonumber(s), 'x')
end
-- The record of `key`: version, expiry, size, hash name; nil when absent (or expired: removed).
local function live(key)
  local d = P .. 'd:' .. key
  local m = redis.call('HGET', d, 'm')
  if not m then return nil end
  local v, e, s = parse(m)
  if e ~= '-' and tle(e, NOW) then
    remove(key, v, e, s, 'x')
    return nil
  end
  return v, e, s
end
local function sweep(max)
  local keys = redis.call('ZRANGEBYSCORE', X, '-inf', NOWMS, 'LIMIT', 0, max)
  for _, k in ipairs(keys) do
    local m = redis.call('HGET', P .. 'd:' .. k, 'm')
    if not m then
      if redis.call('ZSCORE', I, k) then vanished(k) else untime(k) end
    else
      local v, e, s = parse(m)
      if e == '-' then
        untime(k)
      elseif tle(e, NOW) then
        remove(k, v, e, s, 'x')
      end
    end
  end
end
)lua";

// The write of one entry, shared by the single write and the batch: `write(key, value, expiry
// ("-" or 20 digits), expiry ms, backstop ms (0: none), expected version ("" for an unconditional
// put))` returns status ('ok', 'conflict', 'full') and version; the limits are ME and MB (0: none).
inline constexpr std::string_view redis_write_function = R"lua(
local W = OP == 'w'
local ME, MB = tonumber(ARGV[W and 9 or 4]), tonumber(ARGV[W and 10 or 5])
local function fits(v, s, size)
  local n, b = counters()
  local add = 0
  if not v then add = 1 end
  return (ME == 0 or n + add <= ME) and (MB == 0 or b - (s or 0) + size <= MB)
end
-- A batch without limits adds the entries' byte deltas here and writes their sum once (BD);
-- otherwise (nil) every write updates the counter itself, as `fits` must see it.
local BD = nil
local function write(key, val, exp, expms, backstop, expected, version)
  local v, e, s = live(key)
  if expected ~= '' and expected ~= (v or '0') then return 'conflict', v or '0' end
  local size = #key + #val
  if (ME ~= 0 or MB ~= 0) and not fits(v, s, size) then
    sweep(1000)
    if not fits(v, s, size) then return 'full', '0' end
  end
  local vs = version or string.format('%d', redis.call('HINCRBY', C, 'v', 1))
  local db = size - (s or 0)
  if not v then
    if redis.call('ZADD', I, 0, key) == 1 then
      redis.call('HINCRBY', C, 'n', 1)
    else
      -- Indexed, yet no record: account for it as expired before writing the new one.
      vanished(key)
      redis.call('ZADD', I, 0, key)
      redis.call('HINCRBY', C, 'n', 1)
    end
  end
  if BD then
    BD = BD + db
  elseif db ~= 0 then
    redis.call('HINCRBY', C, 'b', db)
  end
  local d = P .. 'd:' .. key
  redis.call('HSET', d, 'm', vs .. ' ' .. exp .. ' ' .. size, 'd', val)
  if exp ~= '-' then
    if backstop ~= '0' then
      redis.call('PEXPIRE', d, backstop)
    elseif e and e ~= '-' then
      redis.call('PERSIST', d)
    end
    redis.call('ZADD', X, expms, key)
    redis.call('HSET', T, key, vs .. ' ' .. size)
  elseif e and e ~= '-' then
    redis.call('PERSIST', d)
    untime(key)
  end
  publish('p', vs, key)
  return 'ok', vs
end
)lua";

// ARGV[4..]: key, value, expiry ("-" or 20 digits), expiry ms, backstop ms (0: none),
// max entries, max bytes (0: none), expected version ("" for an unconditional put), the record's
// name. Replies {status, version, entries, bytes}.
inline constexpr std::string_view redis_write_script = R"lua(
local st, v = write(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[11])
local n, b = counters()
return {st, v, n, b}
)lua";

// A batch: ARGV[4..]: max entries, max bytes (0: none), then per entry the six arguments of
// `write` (key, value, expiry, expiry ms, backstop ms, expected). The batch's versions are
// reserved with one HINCRBY; entry i gets the i-th (skipped when it fails). Each entry runs on
// its own (`pcall`: an error, such as a malformed record or Redis' OOM, fails that entry and the
// next ones still run) and replies status and version, or 'err' and the error's text; then the
// counters, entries and bytes ('-' when they are malformed). Nothing is unpacked onto the Lua
// stack, so the argument count is bounded only by what the client sends in one call.
inline constexpr std::string_view redis_batch_script = R"lua(
local out = {}
local last = #ARGV - 6
-- One version per entry, taken from the counter at once (a call fewer per entry); the version
-- of an entry that fails is skipped, so versions still grow and are never handed out twice.
local count = (#ARGV - 6) / 6
local base = redis.call('HINCRBY', C, 'v', count) - count
if ME == 0 and MB == 0 then BD = 0 end
for i = 6, last, 6 do
  base = base + 1
  local ok, st, v = pcall(write, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
                          ARGV[i + 5], string.format('%d', base))
  if ok then
    out[#out + 1] = st
    out[#out + 1] = v
  else
    out[#out + 1] = 'err'
    out[#out + 1] = type(st) == 'table' and (st.err or '?') or tostring(st)
  end
end
if BD and BD ~= 0 then redis.call('HINCRBY', C, 'b', BD) end
local ok, n, b = pcall(counters)
if ok then
  out[#out + 1] = n
  out[#out + 1] = b
else
  out[#out + 1] = '-'
  out[#out + 1] = '-'
end
return out
)lua";

// ARGV[4..]: key, expected version ("" for an unconditional erase).
inline constexpr std::string_view redis_erase_script = R"lua(
local key = ARGV[4]
local v, e, s = live(key)
local cur = v or '0'
if ARGV[5] ~= '' and ARGV[5] ~= cur then
  local n, b = counters()
  return {'conflict', cur, n, b}
end
if v then
  remove(key, v, e, s, 'e')
elseif redis.call('ZSCORE', I, key) then
  vanished(key)
end
local n, b = counters()
return {'ok', cur, n, b}
)lua";

// ARGV[4..]: key, the record's name. Returns {'none', entries, bytes} or
// {'ok', version, expiry, value}.
inline constexpr std::string_view redis_get_script = R"lua(
local key = ARGV[4]
local r = redis.call('HMGET', P .. 'd:' .. key, 'm', 'd')
if r[1] then
  local v, e, s = parse(r[1])
  if not r[2] then bad('malformed record') end
  if e == '-' or not tle(e, NOW) then return {'ok', v, e, r[2]} end
  remove(key, v, e, s, 'x')
elseif redis.call('ZSCORE', I, key) then
  vanished(key)
end
local n, b = counters()
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
    local r = redis.call('HMGET', P .. 'd:' .. k, 'm', 'd')
    if not r[1] then
      vanished(k)
    else
      local v, e, s = parse(r[1])
      if not r[2] then bad('malformed record') end
      if e ~= '-' and tle(e, NOW) then
        remove(k, v, e, s, 'x')
      else
        out[#out + 1] = k
        out[#out + 1] = v
        out[#out + 1] = e
        out[#out + 1] = r[2]
        got = got + 1
      end
    end
  end
  min = '(' .. keys[#keys]
end
return out
)lua";

// ARGV[4]: most entries to sweep. Returns {entries, bytes, next expiry or '-'}.
inline constexpr std::string_view redis_sweep_script = R"lua(
sweep(tonumber(ARGV[4]))
local n, b = counters()
for _ = 1, 100 do
  local first = redis.call('ZRANGE', X, 0, 0)
  if #first == 0 then return {n, b, '-'} end
  local k = first[1]
  local m = redis.call('HGET', P .. 'd:' .. k, 'm')
  if m then
    local _, e = parse(m)
    if e ~= '-' then return {n, b, e} end
    untime(k)
  elseif redis.call('ZSCORE', I, k) then
    vanished(k)
    n, b = counters()
  else
    untime(k)
  end
end
return {n, b, '-'}
)lua";

/// The operations, as `redis_command::arg` ends a script call with `redis_op_code`.
enum redis_script : int {
  script_write,
  script_batch,
  script_erase,
  script_get,
  script_list,
  script_sweep
};
inline constexpr std::array<std::string_view, 6> redis_op_codes{"w", "b", "e", "g", "l", "s"};
inline constexpr std::array<std::string_view, 6> redis_script_bodies{
    redis_write_script, redis_batch_script, redis_erase_script,
    redis_get_script,   redis_list_script,  redis_sweep_script};

/// The operation argument (the last one) of a call of `op`.
inline std::string_view redis_op_code(redis_script op) {
  return redis_op_codes[static_cast<std::size_t>(op)];
}

/// The whole script: the fast paths, the prelude, then one body per operation.
inline std::string redis_script_text() {
  std::string text = "local OP = ARGV[#ARGV]\nif OP == 'w' then\n";
  text += redis_write_fast;
  text += "elseif OP == 'g' then\n";
  text += redis_get_fast;
  text += "end\n";
  text += redis_prelude;
  // The writes (single and batch) share `write`, made only for them.
  text += "if OP == 'w' or OP == 'b' then\n";
  text += redis_write_function;
  for (std::size_t i = 0; i < redis_script_bodies.size(); ++i) {
    text += i == 0 ? "if OP == '" : i == 2 ? "end\nelseif OP == '" : "elseif OP == '";
    text += redis_op_codes[i];
    text += "' then\n";
    text += redis_script_bodies[i];
  }
  text += "end\nerror({err = 'XSNBAD unknown operation'})\n";
  return text;
}

}  // namespace xsn::inline v0::advanced::detail
