-- claim: lease up to `count` tasks to one worker, highest priority first, FIFO within one.
-- Touches: delayed -> ready (due tasks are promoted first), ready, leases, running, fence,
-- deliveries, failures and data (read), ckey/cconc, cwait and cwaitm (concurrency limits), rate
-- (token bucket), stats ("parked"), seq.
-- Cost is O(log N) in the queue length per claimed task.
-- ARGV: [1] count, [2] lease ms, [3] worker id, [4] promote limit,
--       [5] rate (tasks/s, 0 = unlimited), [6] burst.
-- Returns {now_ms, next_due_ms or -1, id1, token1, attempt1, failures1, blob1, id2, ...}
-- (attempt numbers the claims; failures counts earlier attempts the handler failed).
local count, lease_ms, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local promote_limit, rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()

-- Fencing tokens start from the clock, so they keep growing even after Redis lost its data
-- (a worker from before the loss can never hold a token that is issued again).
if redis.call('EXISTS', K_FENCE) == 0 then
  redis.call('SET', K_FENCE, now)
end

local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, promote_limit)
for _, id in ipairs(due) do
  redis.call('ZREM', K_DELAYED, id)
  make_ready(id)
end

local tokens = nil
if rate > 0 then
  local bucket = redis.call('HMGET', K_RATE, 'tokens', 'ts')
  tokens = tonumber(bucket[1]) or burst
  local ts = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000.0)
  count = math.min(count, math.floor(tokens))
end

local out = {now, -1}
local claimed, scanned = 0, 0
local scan_limit = count * 4 + 64
while claimed < count and scanned < scan_limit do
  local popped = redis.call('ZPOPMIN', K_READY, count - claimed)
  if not popped[1] then break end
  for j = 1, #popped, 2 do
    local id, score = popped[j], popped[j + 1]
    scanned = scanned + 1
    local blob = redis.call('HGET', K_DATA, id)
    local parked = false
    if blob then
      local spec = redis.call('HGET', K_CKEY, id)
      if spec then
        local limit, key = split_ckey(spec)
        if tonumber(redis.call('HGET', K_CCONC, key) or 0) >= limit then
          park(key, score, id)
          parked = true
        else
          redis.call('HINCRBY', K_CCONC, key, 1)
        end
      end
      if not parked then
        local token = redis.call('INCR', K_FENCE)
        local attempt = redis.call('HINCRBY', K_DELIV, id, 1)
        redis.call('HSET', K_RUNNING, id, token .. '|' .. worker)
        redis.call('ZADD', K_LEASES, now + lease_ms, id)
        out[#out + 1] = id
        out[#out + 1] = tostring(token)
        out[#out + 1] = attempt
        out[#out + 1] = tonumber(redis.call('HGET', K_FAILS, id) or 0)
        out[#out + 1] = blob
        claimed = claimed + 1
      end
    end
  end
end

if tokens ~= nil then
  redis.call('HSET', K_RATE, 'tokens', tostring(tokens - claimed), 'ts', now)
end
local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if nxt[2] then out[2] = tonumber(nxt[2]) end
return out
