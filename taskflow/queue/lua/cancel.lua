-- cancel: withdraw a task.
-- A waiting task (ready, delayed or parked) is removed at once; a running one is flagged in
-- cancel, and its worker stops the handler at its next heartbeat and acks it.
-- Touches: ready, delayed, cwait and cwaitm, running (read), cancel, data, prio,
-- deliveries, lost, ckey, stats.
-- A running task's id is also published on ARGV[2], the queue's cancel channel, so its
-- worker can stop the handler at once instead of at its next heartbeat.
-- ARGV: [1] id, [2] cancel channel.
-- Returns "removed", "running" or "unknown".
local id = ARGV[1]
if redis.call('HEXISTS', K_RUNNING, id) == 1 then
  redis.call('SADD', K_CANCEL, id)
  redis.call('PUBLISH', ARGV[2], id)
  return 'running'
end
if redis.call('HEXISTS', K_DATA, id) == 0 then
  return 'unknown'
end
redis.call('ZREM', K_READY, id)
redis.call('ZREM', K_DELAYED, id)
unpark(id)
forget(id)
redis.call('HINCRBY', K_STATS, 'cancelled', 1)
return 'removed'
