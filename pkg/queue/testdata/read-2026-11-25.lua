-- read.lua: acknowledge what a browser says it has, then read what follows.
--
-- KEYS[1]  meta hash {e = epoch, s = last id assigned, a = last id acknowledged}
-- KEYS[2]  the queue list, oldest first; it always holds the ids
--          s-LLEN+1 .. s, because entries are only appended (with
--          consecutive ids) and only removed from the head.
-- ARGV[1]  the cursor's epoch, or '' when the browser gave none
-- ARGV[2]  acknowledge every id up to this one (0: nothing)
-- ARGV[3]  return entries with ids after this one (a poll passes the same
--          id as ARGV[2]; a stream passes the last id it has sent)
-- ARGV[4]  the most entries to return (0: none, acknowledge only)
-- ARGV[5]  idle expiry of the client's keys, seconds
--
-- Returns {epoch, id of the first entry returned (or where it would be),
-- reset (0/1), entries}.

local meta, list = KEYS[1], KEYS[2]
local cursorEpoch = ARGV[1]
local ackTo, after = tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])

local m = redis.call('HMGET', meta, 'e', 's', 'a')
local epoch = m[1]
if not epoch then
  -- No sequence: an empty queue. A cursor pointing into one means the
  -- sequence was lost (expired, or Redis restarted empty).
  local reset = 0
  if ackTo > 0 or after > 0 or cursorEpoch ~= '' then reset = 1 end
  return {'', 1, reset, {}}
end

local seq, acked = tonumber(m[2]), tonumber(m[3])
local len = redis.call('LLEN', list)
local reset = 0
if (cursorEpoch ~= '' and cursorEpoch ~= epoch) or after > seq or ackTo > seq then
  reset = 1 -- a cursor from another life of the sequence: acknowledge nothing
elseif ackTo > acked then
  local drop = ackTo - (seq - len + 1) + 1
  if drop >= len then
    if len > 0 then redis.call('DEL', list) end
    len = 0
  elseif drop > 0 then
    redis.call('LTRIM', list, drop, -1)
    len = len - drop
  end
  redis.call('HSET', meta, 'a', ackTo)
end

redis.call('EXPIRE', meta, ttl)
if len > 0 then redis.call('EXPIRE', list, ttl) end
local head = seq - len + 1
local start = head
if reset == 0 and after + 1 > head then start = after + 1 end
local entries = {}
if limit > 0 and start <= seq then
  entries = redis.call('LRANGE', list, start - head, start - head + limit - 1)
end
return {epoch, start, reset, entries}
