-- Shared prelude, prepended to every script by taskflow/queue/scripts.py.
--
-- Every script receives the same KEYS, all of one queue (one hash tag, one cluster slot):
--   KEYS[1]  ready       ZSET id -> score (priority, then FIFO)
--   KEYS[2]  delayed     ZSET id -> due time (ms)
--   KEYS[3]  leases      ZSET id -> lease deadline (ms)
--   KEYS[4]  running     HASH id -> "token|worker"
--   KEYS[5]  data        HASH id -> dispatch blob (JSON text)
--   KEYS[6]  prio        HASH id -> priority
--   KEYS[7]  deliveries  HASH id -> claims so far
--   KEYS[8]  lost        HASH id -> leases expired so far
--   KEYS[9]  ckey        HASH id -> "limit|concurrency key"
--   KEYS[10] cconc       HASH concurrency key -> running holders
--   KEYS[11] cancel      SET  ids of running tasks asked to cancel
--   KEYS[12] rate        HASH tokens, ts (token bucket)
--   KEYS[13] seq         STRING counter for FIFO order
--   KEYS[14] fence       STRING counter of fencing tokens
--   KEYS[15] notify      LIST wake-up tokens for idle workers
--   KEYS[16] stats       HASH outcome -> count, "parked" -> parked tasks
--   KEYS[17] failures    HASH id -> attempts that ended in an application failure
-- ARGV[1] is always the prefix of the per-concurrency-key parking ZSETs (same hash tag).

local K_READY, K_DELAYED, K_LEASES, K_RUNNING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_DATA, K_PRIO, K_DELIV, K_LOST = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_CKEY, K_CCONC, K_CANCEL, K_RATE = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local K_SEQ, K_FENCE, K_NOTIFY, K_STATS = KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local K_FAILS = KEYS[17]
local CWAIT_PREFIX = ARGV[1]

-- Priority p in [-1000, 1000]: (1000 - p) * 2^42 + seq stays below 2^53, exact in a double.
local PRIO_SPAN = 4398046511104

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ready_score(priority)
  local seq = redis.call('INCR', K_SEQ)
  return (1000 - tonumber(priority)) * PRIO_SPAN + seq
end

local function make_ready(id)
  local priority = redis.call('HGET', K_PRIO, id) or 0
  redis.call('ZADD', K_READY, ready_score(priority), id)
end

local function wake(n)
  if n > 0 then
    local tokens = {}
    for i = 1, math.min(n, 16) do tokens[i] = '1' end
    redis.call('RPUSH', K_NOTIFY, unpack(tokens))
    redis.call('LTRIM', K_NOTIFY, -64, -1)
  end
end

local function split_ckey(spec)
  local bar = string.find(spec, '|', 1, true)
  return tonumber(string.sub(spec, 1, bar - 1)), string.sub(spec, bar + 1)
end

-- A running task gives back its concurrency slot; the oldest parked task of that key,
-- if any, returns to ready with its original score.
local function release_slot(id)
  local spec = redis.call('HGET', K_CKEY, id)
  if not spec then return end
  local _, key = split_ckey(spec)
  local left = redis.call('HINCRBY', K_CCONC, key, -1)
  if left <= 0 then redis.call('HDEL', K_CCONC, key) end
  local parked = redis.call('ZPOPMIN', CWAIT_PREFIX .. key, 1)
  if parked[1] then
    redis.call('ZADD', K_READY, parked[2], parked[1])
    redis.call('HINCRBY', K_STATS, 'parked', -1)
    wake(1)
  end
end

-- Redis forgets a task that reached a terminal state.
local function forget(id)
  redis.call('HDEL', K_DATA, id)
  redis.call('HDEL', K_PRIO, id)
  redis.call('HDEL', K_DELIV, id)
  redis.call('HDEL', K_LOST, id)
  redis.call('HDEL', K_FAILS, id)
  redis.call('HDEL', K_CKEY, id)
  redis.call('SREM', K_CANCEL, id)
end

-- Ends a claim. Returns false when token does not hold the task's current lease.
local function end_lease(id, token)
  local cur = redis.call('HGET', K_RUNNING, id)
  if not cur then return false end
  local bar = string.find(cur, '|', 1, true)
  if string.sub(cur, 1, bar - 1) ~= token then return false end
  redis.call('HDEL', K_RUNNING, id)
  redis.call('ZREM', K_LEASES, id)
  release_slot(id)
  return true
end
