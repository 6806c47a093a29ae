-- complete: a worker ends claims after PostgreSQL recorded what they did (the completion path
-- writes PostgreSQL first, so Redis never forgets a task whose outcome is not yet durable).
-- Every action is fenced by the claim's token: a worker whose lease was taken over changes
-- nothing.
-- Actions:
--   ack <state>     the task ended (succeeded, failed or cancelled): forgotten, counted in stats
--                   ('' counts nothing: the task is gone from PostgreSQL)
--   retry <delay>   the handler failed and runs again after delay ms (a failure is counted)
--   release         handed back unrun (shutdown): ready again at once, nothing counted
-- Touches: running, leases, ckey/cconc, cwait and cwaitm (slot released, one parked task
-- readied), data, prio, deliveries, lost, failures, cancel (forgotten on ack), stats, delayed,
-- ready, seq, notify.
-- ARGV: [1] n, then per task: id, fencing token, action, argument.
-- Returns one 1 (done) or 0 (stale token: the lease was lost) per task.
local n = tonumber(ARGV[1])
local now = now_ms()
local res, readied = {}, 0
for i = 0, n - 1 do
  local b = 2 + i * 4
  local id, token, action, arg = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if end_lease(id, token) then
    if action == 'ack' then
      forget(id)
      if arg ~= '' then redis.call('HINCRBY', K_STATS, arg, 1) end
    elseif action == 'retry' then
      redis.call('HINCRBY', K_FAILS, id, 1)
      local delay = tonumber(arg)
      if delay > 0 then
        redis.call('ZADD', K_DELAYED, now + delay, id)
      else
        make_ready(id)
        readied = readied + 1
      end
    else -- release
      make_ready(id)
      readied = readied + 1
    end
    res[#res + 1] = 1
  else
    res[#res + 1] = 0
  end
end
wake(readied)
return res
