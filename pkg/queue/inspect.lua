-- inspect.lua: what the server API shows of a client's queue. Read-only.
--
-- KEYS[1]  meta hash (see enqueue.lua)
-- KEYS[2]  the queue list
--
-- Returns {epoch ('' without a sequence), last id given, entries queued}.

local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return {'', 0, 0} end
return {m[1], tonumber(m[2]) or 0, redis.call('LLEN', KEYS[2])}
