-- read.lua: acknowledge what a poll says it has, then read what follows.
--
-- KEYS[1]  meta hash {e = epoch, s = last id assigned, a = last id acknowledged}
-- KEYS[2]  the queue list, oldest first; it always holds the ids
--          s-LLEN+1 .. s, because entries are only appended (with
--          consecutive ids) and only removed from the head.
-- ARGV[1]  the cursor's epoch, or '' when the poll gave none
-- ARGV[2]  the cursor's id (0: nothing yet)
-- ARGV[3]  the most entries to return
-- ARGV[4]  idle expiry of the client's keys, seconds
--
-- Returns {epoch, last id, first id in the queue, reset (0/1), entries}.

local meta, list = KEYS[1], KEYS[2]
local sinceEpoch, since = ARGV[1], tonumber(ARGV[2])
local limit, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])

local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  -- No sequence: an empty queue. A cursor pointing into one means the
  -- sequence was lost (expired, or Redis restarted empty).
  local reset = 0
  if since > 0 or sinceEpoch ~= '' then reset = 1 end
  return {'', 0, 1, reset, {}}
end

local seq = tonumber(redis.call('HGET', meta, 's'))
local ack = tonumber(redis.call('HGET', meta, 'a'))
local reset = 0
if (sinceEpoch ~= '' and sinceEpoch ~= epoch) or since > seq then
  reset = 1 -- a cursor from another life of the sequence: acknowledge nothing
elseif since > ack then
  local len = redis.call('LLEN', list)
  local drop = since - (seq - len + 1) + 1
  if drop >= len then
    redis.call('DEL', list)
  elseif drop > 0 then
    redis.call('LTRIM', list, drop, -1)
  end
  redis.call('HSET', meta, 'a', since)
end

redis.call('EXPIRE', meta, ttl)
redis.call('EXPIRE', list, ttl)
local len = redis.call('LLEN', list)
return {epoch, seq, seq - len + 1, reset, redis.call('LRANGE', list, 0, limit - 1)}
