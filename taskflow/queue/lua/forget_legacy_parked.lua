-- forget_legacy_parked: a per-concurrency-key ZSET of parked tasks from before the single
-- ``cwait`` index (``tf:{ns/queue}:cwait:<key>``). Nothing reads those sets any more, so their
-- tasks would wait forever while Redis still knows them. This forgets them in Redis; they are
-- still queued in PostgreSQL, so the housekeeping sweep dispatches them again through
-- enqueue.lua, which parks them in the new index if their key is still full.
--
-- KEYS[1]  the legacy ZSET (members: task ids)        read, deleted
-- KEYS[2]  the queue's data HASH (id -> dispatch blob)  HDEL of each member
-- KEYS[3]  the queue's stats HASH                      "parked" decremented
-- Returns the number of tasks forgotten.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
end
redis.call('DEL', KEYS[1])
if #ids > 0 then
  redis.call('HINCRBY', KEYS[3], 'parked', -#ids)
end
return #ids
