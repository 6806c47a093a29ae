-- promote: move delayed tasks whose time has come to ready (claim does this too, so idle
-- queues with no claiming worker still show the right backlog).
-- Touches: delayed, ready, prio (read), seq, notify.
-- ARGV: [1] limit.
-- Returns the number of tasks promoted.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do
  redis.call('ZREM', K_DELAYED, id)
  make_ready(id)
end
wake(#due)
return #due
