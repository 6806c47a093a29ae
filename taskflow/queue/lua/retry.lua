-- retry: a claimed task goes back to be claimed again.
-- mode "retry": the handler failed and will run after delay_ms (backoff).
-- mode "release": the worker hands the task back unrun (shutdown); the claim is not counted.
-- Touches: running, leases, ckey/cconc and parking ZSETs, deliveries ("release"),
-- failures ("retry"),
-- delayed or ready, seq, notify.
-- ARGV: [1] cwait prefix, [2] n, then per task: id, fencing token, delay_ms, mode.
-- Returns one 1 (accepted) or 0 (stale token) per task.
local n = tonumber(ARGV[2])
local now = now_ms()
local res, readied = {}, 0
for i = 0, n - 1 do
  local b = 3 + i * 4
  local id, token, delay, mode = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3]
  if end_lease(id, token) then
    if mode == 'release' then
      redis.call('HINCRBY', K_DELIV, id, -1)
    else
      redis.call('HINCRBY', K_FAILS, id, 1)
    end
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, now + delay, id)
    else
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
