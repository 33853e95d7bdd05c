-- read.lua: acknowledge what a browser says it has, then read what follows.
--
-- KEYS[1]  meta hash {e = epoch, s = last id assigned, d = when the
--          keys' expiry is due (expiry.lua), p = the epochs the sequence
--          went on from and their last ids; see enqueue.lua}
-- KEYS[2]  the queue list, oldest first; it always holds the ids
--          s-LLEN+1 .. s, because entries are only appended (with
--          consecutive ids) and only removed from the head.
-- ARGV[1]  the cursor's epoch, or '' when the browser gave none
-- ARGV[2]  acknowledge every id up to this one (0: nothing)
-- ARGV[3]  return entries with ids after this one (a poll passes the same
--          id as ARGV[2]; a stream passes the last id it has sent)
-- ARGV[4]  the most entries to return (0: none, acknowledge only)
-- ARGV[5]  idle expiry of the client's keys, seconds
-- ARGV[6]  now, unix ms (the node's clock)
-- ARGV[7]  1 to refresh the expiry whatever its age (the queue passes 0
--          since it confirms durability in rounds of its own)
--
-- A cursor of an epoch the sequence went on from when a new primary took
-- over (enqueue.lua) is a cursor of the current epoch up to the last id
-- that epoch had; past that it names messages this primary never had,
-- lost with the one before, and is reset like a cursor of another life.
--
-- Returns {epoch, id of the first entry returned (or where it would be;
-- after+1 when acknowledging only), reset (0/1), entries}.

-- keep, stale and due come from expiry.lua, which comes first.

local meta, list = KEYS[1], KEYS[2]
local cursorEpoch = ARGV[1]
local ackTo, after = tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, ttl, now = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]

local m = redis.call('HMGET', meta, 'e', 's', 'd', 'p')
local epoch = m[1]
if not epoch then
  -- No sequence: an empty queue. A cursor pointing into one means the
  -- sequence was lost (expired, or Redis restarted empty).
  local reset = 0
  if ackTo > 0 or after > 0 or cursorEpoch ~= '' then reset = 1 end
  return {'', 1, reset, {}}
end

local seq = tonumber(m[2])
local reset = 0
if cursorEpoch ~= '' and cursorEpoch ~= epoch then
  reset = 1
  for e, last in string.gmatch(m[4] or '', '(%S+):(%d+)') do
    if e == cursorEpoch and ackTo <= tonumber(last) and after <= tonumber(last) then
      reset = 0 -- an epoch this one went on from, within what it had
    end
  end
end
if reset == 1 or after > seq or ackTo > seq then
  reset = 1 -- a cursor from another life of the sequence: acknowledge nothing
elseif ackTo == seq then
  redis.call('DEL', list)
elseif ackTo > 0 then
  -- The list ends at id seq: keep the seq-ackTo entries after ackTo, or
  -- all there are when it holds fewer (acknowledged before, or dropped
  -- by the cap). An old acknowledgement arriving late removes nothing.
  redis.call('LTRIM', list, ackTo - seq, -1)
end

if ARGV[7] == '1' or stale(m[3], now, ttl) then
  redis.call('EXPIRE', meta, keep(ttl))
  redis.call('EXPIRE', list, keep(ttl))
  redis.call('HSET', meta, 'd', due(now, ttl))
end

if limit == 0 then
  return {epoch, after + 1, reset, {}}
end
local len = redis.call('LLEN', list)
local head = seq - len + 1
local start = head
if reset == 0 and after + 1 > head then start = after + 1 end
local entries = {}
if start <= seq then
  entries = redis.call('LRANGE', list, start - head, start - head + limit - 1)
end
return {epoch, start, reset, entries}
