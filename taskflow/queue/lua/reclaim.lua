-- reclaim: take back tasks whose lease deadline passed (their worker died or stalled).
-- The task becomes ready again without counting an application failure; after
-- `max_lost` lost leases it is given up as poison. A task asked to cancel is cancelled.
-- Touches: leases, running, ckey/cconc and parking ZSETs, lost, cancel, ready, seq,
-- notify, and data/prio/deliveries/stats for tasks it ends.
-- ARGV: [1] cwait prefix, [2] limit, [3] max_lost.
-- Returns {id, worker, attempt, outcome, ...}; outcome is "requeued", "poison" or
-- "cancelled".
local limit, max_lost = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, limit)
local out, readied = {}, 0
for _, id in ipairs(expired) do
  local cur = redis.call('HGET', K_RUNNING, id) or '|'
  local bar = string.find(cur, '|', 1, true)
  local token, worker = string.sub(cur, 1, bar - 1), string.sub(cur, bar + 1)
  local attempt = redis.call('HGET', K_DELIV, id) or '0'
  if token == '' then
    redis.call('ZREM', K_LEASES, id)
  else
    end_lease(id, token)
  end
  local outcome
  if redis.call('SISMEMBER', K_CANCEL, id) == 1 then
    forget(id)
    redis.call('HINCRBY', K_STATS, 'cancelled', 1)
    outcome = 'cancelled'
  elseif redis.call('HINCRBY', K_LOST, id, 1) >= max_lost then
    forget(id)
    redis.call('HINCRBY', K_STATS, 'failed', 1)
    outcome = 'poison'
  elseif redis.call('HEXISTS', K_DATA, id) == 1 then
    make_ready(id)
    readied = readied + 1
    outcome = 'requeued'
  else
    outcome = 'cancelled'
  end
  out[#out + 1] = id
  out[#out + 1] = worker
  out[#out + 1] = attempt
  out[#out + 1] = outcome
end
wake(readied)
return out
