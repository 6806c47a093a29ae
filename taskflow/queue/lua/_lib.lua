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
--   KEYS[18] cwait       ZSET (all scores 0) of tasks parked until their concurrency key has a
--                        free slot; member = park_prefix(key) .. 16 hex digits of the task's
--                        ready score .. id, so one key's tasks sort together, oldest first
--   KEYS[19] cwaitm      HASH id -> its member in cwait (to withdraw a parked task)
-- No script names a key that is not in KEYS: every key it touches is declared, and all of
-- them share the queue's hash tag, so each call stays in one Redis Cluster slot.

local K_READY, K_DELAYED, K_LEASES, K_RUNNING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_DATA, K_PRIO, K_DELIV, K_LOST = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_CKEY, K_CCONC, K_CANCEL, K_RATE = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local K_SEQ, K_FENCE, K_NOTIFY, K_STATS = KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local K_FAILS, K_CWAIT, K_CWAITM = KEYS[17], KEYS[18], KEYS[19]

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

-- The start of the cwait members of concurrency key `key`: its length, then the key, so no
-- key's prefix is the start of another's.
local function park_prefix(key)
  return string.format('%08x', #key) .. key .. '|'
end

-- Park task `id` (ready score `score`) until a slot of `key` frees.
local function park(key, score, id)
  local member = park_prefix(key) .. string.format('%016x', tonumber(score)) .. id
  redis.call('ZADD', K_CWAIT, 0, member)
  redis.call('HSET', K_CWAITM, id, member)
  redis.call('HINCRBY', K_STATS, 'parked', 1)
end

-- Withdraw a parked task; false when it was not parked.
local function unpark(id)
  local member = redis.call('HGET', K_CWAITM, id)
  if not member then return false end
  redis.call('ZREM', K_CWAIT, member)
  redis.call('HDEL', K_CWAITM, id)
  redis.call('HINCRBY', K_STATS, 'parked', -1)
  return true
end

-- A running task gives back its concurrency slot; the oldest parked task of that key,
-- if any, returns to ready with its original score.
local function release_slot(id)
  local spec = redis.call('HGET', K_CKEY, id)
  if not spec then return end
  local _, key = split_ckey(spec)
  local left = redis.call('HINCRBY', K_CCONC, key, -1)
  if left <= 0 then redis.call('HDEL', K_CCONC, key) end
  local prefix = park_prefix(key)
  local first = redis.call('ZRANGEBYLEX', K_CWAIT, '[' .. prefix, '(' .. prefix .. '\255',
    'LIMIT', 0, 1)
  if first[1] then
    local member = first[1]
    local score = tonumber(string.sub(member, #prefix + 1, #prefix + 16), 16)
    local parked = string.sub(member, #prefix + 17)
    redis.call('ZREM', K_CWAIT, member)
    redis.call('HDEL', K_CWAITM, parked)
    redis.call('ZADD', K_READY, score, parked)
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
