"""The Redis store's Lua scripts. Redis runs each with nothing interleaved and does not
roll one back that fails half-way, so each checks everything that could fail before
its first write (see `redis_store`). Keys and arguments are named above each script.
"""

from __future__ import annotations

from bastion.memory import codec

_ROLES = "{" + ", ".join(f"{r} = true" for r in sorted(codec.ROLES)) + "}"

# Shared by delete and sweep: remove one thread and every key and index entry of it.
_DROP = """
local function drop(prefix, id)
  local r = redis.call('HGET', prefix .. 'thread:' .. id, 'r')
  if not r then return 0 end
  redis.call('DEL', prefix .. 'thread:' .. id, prefix .. 'msgs:' .. id,
              prefix .. 'wm:thread:' .. id)
  redis.call('ZREM', prefix .. 'idle', id)
  redis.call('ZREM', prefix .. 'res:' .. r, id)
  return 1
end
"""
_GET_OR_CREATE = """
local t = ARGV[1] .. 'thread:' .. ARGV[2]
if redis.call('EXISTS', t) == 0 then
  redis.call('HSET', t, 'r', ARGV[3], 'v', 0, 'c', ARGV[4], 'u', ARGV[4], 'm', ARGV[5])
  redis.call('ZADD', ARGV[1] .. 'idle', ARGV[4], ARGV[2])
  redis.call('ZADD', ARGV[1] .. 'res:' .. ARGV[3], ARGV[4], ARGV[2])
end
return redis.call('HMGET', t, 'r', 'v', 'c', 'u', 'm')
"""
# ARGV: prefix, thread id, expected version, now, message JSON...
_APPEND = f"""
local t = ARGV[1] .. 'thread:' .. ARGV[2]
local v = redis.call('HGET', t, 'v')
if not v then return {{'missing'}} end
if v ~= ARGV[3] then return {{'conflict', v}} end
-- Every check before the first write: Redis would keep the writes of a failed script.
local roles = {_ROLES}
for i = 5, #ARGV do
  local ok, doc = pcall(cjson.decode, ARGV[i])
  if not ok or type(doc) ~= 'table' or not roles[doc['role']] then
    return {{'corrupt', tostring(i - 5)}}
  end
end
local m = ARGV[1] .. 'msgs:' .. ARGV[2]
for i = 5, #ARGV, 500 do  -- unpack() has a stack limit; chunks keep well under it
  redis.call('RPUSH', m, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('HINCRBY', t, 'v', 1)
redis.call('HSET', t, 'u', ARGV[4])
redis.call('ZADD', ARGV[1] .. 'idle', ARGV[4], ARGV[2])
redis.call('ZADD', ARGV[1] .. 'res:' .. redis.call('HGET', t, 'r'), ARGV[4], ARGV[2])
return {{'ok', redis.call('HMGET', t, 'r', 'v', 'c', 'u', 'm')}}
"""
# KEYS: lease, holders. ARGV: owner, ttl ms, thread id.
_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
# KEYS: lease, holders. ARGV: owner, thread id.
_RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_DELETE = _DROP + "return drop(ARGV[1], ARGV[2])"
# ARGV: prefix, cutoff, offset, batch. Leased threads are skipped, not deleted; the
# offset steps over the ones skipped so far.
_SWEEP = (
    _DROP
    + """
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'idle', '-inf', '(' .. ARGV[2],
                       'LIMIT', ARGV[3], ARGV[4])
local n = 0
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then n = n + drop(ARGV[1], id) end
end
return {n, #ids}
"""
)
# KEYS: run, running. ARGV: run id, status, then field, value, ...
_START_RUN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == 'running' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 1
"""
# KEYS: run. ARGV: prefix, run id, status, ended at, error ('' for none).
_FINISH_RUN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'ended_at', ARGV[4])
if ARGV[5] == '' then redis.call('HDEL', KEYS[1], 'error')
else redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
local replica = redis.call('HGET', KEYS[1], 'replica')
if replica then redis.call('SREM', ARGV[1] .. 'running:' .. replica, ARGV[2]) end
return 1
"""
# ARGV: prefix, replica, reason, now, then the run ids to keep running (they stay in the
# running set). Owner-checked: a lease another replica took over after ours expired
# stays theirs.
_RECOVER = """
local holders = ARGV[1] .. 'holders:' .. ARGV[2]
local held = redis.call('HGETALL', holders)
local leases = 0
for i = 1, #held, 2 do
  local lease = ARGV[1] .. 'lease:' .. held[i]
  if redis.call('GET', lease) == held[i + 1] then
    redis.call('DEL', lease)
    leases = leases + 1
  end
end
redis.call('DEL', holders)
local running = ARGV[1] .. 'running:' .. ARGV[2]
local keep = {}
for i = 5, #ARGV do keep[ARGV[i]] = true end
local runs = 0
for _, id in ipairs(redis.call('SMEMBERS', running)) do
  if not keep[id] then
    local run = ARGV[1] .. 'run:' .. id
    if redis.call('HGET', run, 'status') == 'running' then
      redis.call('HSET', run, 'status', 'error', 'ended_at', ARGV[4], 'error', ARGV[3])
      runs = runs + 1
    end
    redis.call('SREM', running, id)
  end
end
return {leases, runs}
"""

SCRIPTS: dict[str, str] = {
    "get_or_create": _GET_OR_CREATE,
    "append": _APPEND,
    "acquire": _ACQUIRE,
    "release": _RELEASE,
    "delete": _DELETE,
    "sweep": _SWEEP,
    "start_run": _START_RUN,
    "finish_run": _FINISH_RUN,
    "recover": _RECOVER,
}
"""The scripts by the name `RedisStore` calls them."""
