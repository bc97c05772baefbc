"""The Lua scripts of :class:`~steerloop.stores.RedisStore` (each runs atomically in Redis).

Every script gets the same six keys of one stored key (all share one hash tag ``{...}``, so
one Redis Cluster slot):

1. ``H`` — hash ``g`` (generation), ``v`` (version), ``s`` (the value);
2. ``RES`` — hash idempotency key -> stored result;
3. ``IDS`` — list of ``<ms>:<idempotency key>``, oldest first: a result is dropped when it is
   not among the last ``keep`` and older than ``age`` ms, or beyond ``cap`` results;
4. ``LOCK`` — the turn: the holder's random token, expiring after the lease (``PX``);
5. ``QUEUE`` — list of waiting holders' tokens, first come first served;
6. ``WAITERS`` — hash waiting token -> deadline (ms, server clock) by which the waiter
   comes back if it was not woken: a waiter past its deadline is gone and is skipped.

A waiter blocks on ``<H>:wake:<token>`` (``BLPOP``). Ending a turn hands it to the first
live waiter directly — the lock is set to the waiter's token — and pushes the current
``generation:version:value`` onto its wake list, so the woken worker holds the turn *and*
the state without another round trip.

Replies use Lua ``false`` for "none" (a RESP null). ``state`` replies are
``{1, g, v, value|false, result|false}`` (the value is omitted when it is the one the caller
named), ``{0}`` for an absent key, ``{-1}`` for a hash that steerloop did not write.
"""

from __future__ import annotations

__all__ = ["BEGIN", "READ", "RELEASE", "WRITE"]

_COMMON = """
local H, RES, IDS, LOCK, QUEUE, WAITERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

local function stored()
  local h = redis.call('HMGET', H, 'g', 'v')
  if not h[1] then
    if redis.call('EXISTS', H) == 1 then return -1 end
    return false
  end
  return h
end

local function state(known_g, known_v, idem)
  local h = stored()
  if h == -1 then return {-1} end
  if not h then return {0} end
  local res = false
  if idem ~= '' then res = redis.call('HGET', RES, idem) end
  local value = false
  if h[1] ~= known_g or h[2] ~= known_v then value = redis.call('HGET', H, 's') end
  return {1, h[1], h[2], value, res}
end

local function payload()
  local h = stored()
  if not h or h == -1 then return '' end
  return h[1] .. ':' .. h[2] .. ':' .. redis.call('HGET', H, 's')
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function withdraw(holder)
  if redis.call('HDEL', WAITERS, holder) == 1 then redis.call('LREM', QUEUE, 1, holder) end
  redis.call('DEL', H .. ':wake:' .. holder)
end

-- End the current turn: hand it to the first live waiter with the state, or free it.
local function hand_off(lease_ms, data)
  local now = now_ms()
  while true do
    local nxt = redis.call('LPOP', QUEUE)
    if not nxt then
      redis.call('DEL', LOCK)
      return
    end
    local deadline = redis.call('HGET', WAITERS, nxt)
    redis.call('HDEL', WAITERS, nxt)
    if deadline and tonumber(deadline) >= now then
      redis.call('SET', LOCK, nxt, 'PX', lease_ms)
      local wake = H .. ':wake:' .. nxt
      redis.call('RPUSH', wake, data)
      redis.call('PEXPIRE', wake, lease_ms)
      return
    end
  end
end
"""

#: ARGV: known generation, known version, idempotency key ('' = none).
READ = (
    _COMMON
    + """
return state(ARGV[1], ARGV[2], ARGV[3])
"""
)

#: ARGV: known generation, known version, idempotency key, holder token, lease ms, longest
#: wait ms, grace ms. Returns {1, state} (turn taken), {2, state} (idempotency key applied:
#: no turn), or {0, wait ms} (queued: block on the wake list at most that long, then again).
BEGIN = (
    _COMMON
    + """
local holder = ARGV[4]
local lock = redis.call('GET', LOCK)
if ARGV[3] ~= '' and redis.call('HEXISTS', RES, ARGV[3]) == 1 then
  if lock == holder then hand_off(ARGV[5], payload()) end
  withdraw(holder)
  return {2, state(ARGV[1], ARGV[2], ARGV[3])}
end
if not lock or lock == holder then
  redis.call('SET', LOCK, holder, 'PX', ARGV[5])
  withdraw(holder)
  return {1, state(ARGV[1], ARGV[2], ARGV[3])}
end
local wait = math.max(1, math.min(redis.call('PTTL', LOCK), tonumber(ARGV[6])))
local deadline = now_ms() + wait + tonumber(ARGV[7])
if redis.call('HSET', WAITERS, holder, deadline) == 1 then redis.call('RPUSH', QUEUE, holder) end
local keep = tonumber(ARGV[5]) + tonumber(ARGV[6]) + tonumber(ARGV[7])
redis.call('PEXPIRE', QUEUE, keep)
redis.call('PEXPIRE', WAITERS, keep)
return {0, wait}
"""
)

#: ARGV: holder token ('' = no turn), expected generation ('' = the key must be absent),
#: expected version, value, ttl ms, idempotency key ('' = none), result, results kept, lease
#: ms, generation of a created key, version to write ('' = expected + 1), results cap,
#: results age ms.
#: Returns {1, g, v} written, {2, g, v, result} applied already, {3, ms} another worker's
#: turn, {4, g, v, value} conflict (the stored token and value; {4} when absent), {-1}.
WRITE = (
    _COMMON
    + """
local holder = ARGV[1]
local mine = holder ~= '' and redis.call('GET', LOCK) == holder
if ARGV[6] ~= '' then
  local r = redis.call('HGET', RES, ARGV[6])
  if r then
    local h = stored()
    if mine then hand_off(ARGV[9], payload()) end
    if not h or h == -1 then return {2, false, false, r} end
    return {2, h[1], h[2], r}
  end
end
if not mine and redis.call('EXISTS', LOCK) == 1 then return {3, redis.call('PTTL', LOCK)} end
local h = stored()
if h == -1 then return {-1} end
local g, v
if ARGV[2] == '' then
  if h then return {4, h[1], h[2], redis.call('HGET', H, 's')} end
  redis.call('DEL', RES, IDS)
  g = ARGV[10]
  v = '1'
else
  if not h then return {4} end
  if h[1] ~= ARGV[2] or h[2] ~= ARGV[3] then
    return {4, h[1], h[2], redis.call('HGET', H, 's')}
  end
  g = h[1]
  v = tostring(tonumber(h[2]) + 1)
end
if ARGV[11] ~= '' then v = ARGV[11] end
redis.call('HSET', H, 'g', g, 'v', v, 's', ARGV[4])
redis.call('PEXPIRE', H, ARGV[5])
if ARGV[6] ~= '' then
  local now = now_ms()
  redis.call('HSET', RES, ARGV[6], ARGV[7])
  redis.call('RPUSH', IDS, string.format('%d', now) .. ':' .. ARGV[6])
  local keep, cap, age = tonumber(ARGV[8]), tonumber(ARGV[12]), tonumber(ARGV[13])
  local n = redis.call('LLEN', IDS)
  while n > keep do
    local oldest = redis.call('LINDEX', IDS, 0)
    local sep = string.find(oldest, ':', 1, true)
    if n <= cap and now - tonumber(string.sub(oldest, 1, sep - 1)) < age then break end
    redis.call('LPOP', IDS)
    redis.call('HDEL', RES, string.sub(oldest, sep + 1))
    n = n - 1
  end
  redis.call('PEXPIRE', RES, ARGV[5])
  redis.call('PEXPIRE', IDS, ARGV[5])
end
if mine then hand_off(ARGV[9], g .. ':' .. v .. ':' .. ARGV[4]) end
return {1, g, v}
"""
)

#: ARGV: holder token, lease ms. Ends the holder's turn (handing it on), or withdraws the
#: holder from the queue. Returns 1 when a turn was ended.
RELEASE = (
    _COMMON
    + """
if redis.call('GET', LOCK) == ARGV[1] then
  hand_off(ARGV[2], payload())
  return 1
end
withdraw(ARGV[1])
return 0
"""
)
