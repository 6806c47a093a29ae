-- expired: list the leases whose deadline passed (their worker died or stalled). Changes
-- nothing: housekeeping asks PostgreSQL what became of each attempt, then repairs with reclaim.
-- Touches: leases, running, deliveries, lost, cancel (all read).
-- ARGV: [1] limit.
-- Returns {id, token, worker, attempt, lost leases so far, cancel requested (0/1), ...}.
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(expired) do
  local cur = redis.call('HGET', K_RUNNING, id) or '|'
  local bar = string.find(cur, '|', 1, true)
  out[#out + 1] = id
  out[#out + 1] = string.sub(cur, 1, bar - 1)
  out[#out + 1] = string.sub(cur, bar + 1)
  out[#out + 1] = redis.call('HGET', K_DELIV, id) or '0'
  out[#out + 1] = redis.call('HGET', K_LOST, id) or '0'
  out[#out + 1] = redis.call('SISMEMBER', K_CANCEL, id)
end
return out
