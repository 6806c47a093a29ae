-- ack: a claimed task reached a terminal state (succeeded, failed or cancelled).
-- Touches: running, leases (the lease ends), ckey/cconc and parking ZSETs (slot released,
-- one parked task readied), data, prio, deliveries, lost, cancel (forgotten), stats,
-- ready and notify (a released parked task).
-- ARGV: [1] cwait prefix, [2] n, then per task: id, fencing token, outcome.
-- Returns one 1 (accepted) or 0 (stale token: the lease was lost) per task.
local n = tonumber(ARGV[2])
local res = {}
for i = 0, n - 1 do
  local b = 3 + i * 3
  local id, token, outcome = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  if end_lease(id, token) then
    forget(id)
    redis.call('HINCRBY', K_STATS, outcome, 1)
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
return res
