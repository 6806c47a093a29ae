-- enqueue: make tasks known to Redis and dispatchable.
-- Touches: data, prio, deliveries, failures, ckey (written once per task), ready or delayed, seq,
-- notify. A task Redis already knows (its id is in data) is left untouched, so the
-- housekeeping sweep can call this for every task PostgreSQL says is pending.
-- ARGV: [1] n, then per task 7 values:
--   id, blob, priority, due_ms (0 = now), deliveries so far, failures so far,
--   "limit|key" or "".
-- Returns the number of tasks added.
local n = tonumber(ARGV[1])
local now = now_ms()
local added, ready = 0, 0
for i = 0, n - 1 do
  local b = 2 + i * 7
  local id, blob, priority = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local due, deliveries, failures = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local ckey = ARGV[b + 6]
  if redis.call('HSETNX', K_DATA, id, blob) == 1 then
    added = added + 1
    redis.call('HSET', K_PRIO, id, priority)
    if deliveries > 0 then redis.call('HSET', K_DELIV, id, deliveries) end
    if failures > 0 then redis.call('HSET', K_FAILS, id, failures) end
    if ckey ~= '' then redis.call('HSET', K_CKEY, id, ckey) end
    if due > now then
      redis.call('ZADD', K_DELAYED, due, id)
    else
      redis.call('ZADD', K_READY, ready_score(priority), id)
      ready = ready + 1
    end
  end
end
wake(ready)
return added
