-- extend: heartbeat of a worker for the tasks it runs.
-- Touches: leases (deadline pushed), running and cancel (read).
-- ARGV: [1] lease ms, [2] n, then per task: id, fencing token.
-- Returns one status per task: "ok", "cancel" (stop the handler; the lease is still
-- extended so the worker can ack) or "lost" (the lease expired and was reclaimed).
local lease_ms, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local res = {}
for i = 0, n - 1 do
  local id, token = ARGV[3 + i * 2], ARGV[4 + i * 2]
  local cur = redis.call('HGET', K_RUNNING, id)
  local held = false
  if cur then
    local bar = string.find(cur, '|', 1, true)
    held = string.sub(cur, 1, bar - 1) == token
  end
  if not held then
    res[#res + 1] = 'lost'
  else
    redis.call('ZADD', K_LEASES, 'XX', now + lease_ms, id)
    if redis.call('SISMEMBER', K_CANCEL, id) == 1 then
      res[#res + 1] = 'cancel'
    else
      res[#res + 1] = 'ok'
    end
  end
end
return res
