-- reclaim: end expired leases the way PostgreSQL decided (see expired.lua). Fenced by the
-- token that expired.lua reported: a lease that changed hands since is left alone.
-- Actions:
--   requeue <count>       ready again; count 1 adds a lost lease (the worker vanished)
--   delay <due_ms|fails>  the attempt had failed and was recorded: wait for the retry at due_ms
--                         with that many failures (the worker died before telling Redis)
--   forget <state>        the task ended (state counted in stats; '' counts nothing)
-- A lease without a token (its running entry is gone) is simply dropped from leases.
-- Touches: leases, running, ckey/cconc, cwait and cwaitm, lost, failures, delayed, ready, seq,
-- notify, and data/prio/deliveries/cancel/stats for tasks it forgets.
-- ARGV: [1] n, then per task: id, token, action, argument.
-- Returns one 1 (applied) or 0 (the lease is no longer the one reported) per task.
local n = tonumber(ARGV[1])
local res, readied = {}, 0
for i = 0, n - 1 do
  local b = 2 + i * 4
  local id, token, action, arg = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local applied = false
  if token == '' then
    if redis.call('HEXISTS', K_RUNNING, id) == 0 then
      redis.call('ZREM', K_LEASES, id)
      applied = true
    end
  elseif end_lease(id, token) then
    applied = true
  end
  if applied and token ~= '' then
    if action == 'requeue' then
      if arg == '1' then redis.call('HINCRBY', K_LOST, id, 1) end
      if redis.call('HEXISTS', K_DATA, id) == 1 then
        make_ready(id)
        readied = readied + 1
      end
    elseif action == 'delay' then
      local bar = string.find(arg, '|', 1, true)
      redis.call('HSET', K_FAILS, id, string.sub(arg, bar + 1))
      redis.call('ZADD', K_DELAYED, tonumber(string.sub(arg, 1, bar - 1)), id)
    else -- forget
      forget(id)
      if arg ~= '' then redis.call('HINCRBY', K_STATS, arg, 1) end
    end
  end
  res[#res + 1] = applied and 1 or 0
end
wake(readied)
return res
