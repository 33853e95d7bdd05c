-- flush.lua: one node's changes to the clients it holds, in one shard.
--
-- KEYS[1]  the shard's counts hash (counts.lua)
-- KEYS[2]  the shard's last-seen sorted set: client -> unix ms
-- KEYS[3]  this node's set in the shard: the clients it holds
-- KEYS[4]  the shard's events stream
-- KEYS[5]  the shard's event sequence counter
-- ARGV[1]  now, unix ms (the node's clock)
-- ARGV[2]  1 to write events
-- ARGV[3]  about how many events the stream keeps
-- ARGV[4]  A: how many clients follow that the node now holds
-- ARGV[5 .. 4+A]  those clients
-- ARGV[5+A ..]    pairs: a client the node no longer holds, and when its
--                 last poll or stream there ended (unix ms)
--
-- Adding a client the set has, or removing one it lacks, changes
-- nothing: a call whose answer was lost can be made again.
--
-- Returns {clients that came online, clients that went offline}.

-- change comes from counts.lua, which comes first.

local k = {counts = KEYS[1], seen = KEYS[2], events = KEYS[4], seq = KEYS[5]}
local mine = KEYS[3]
local now, withEvents, maxlen = ARGV[1], ARGV[2] == '1', ARGV[3]
local nAdd = tonumber(ARGV[4])

local adds, removes, at = {}, {}, {}
for i = 5, 4 + nAdd do adds[#adds + 1] = ARGV[i] end
for i = 5 + nAdd, #ARGV - 1, 2 do
  removes[#removes + 1] = ARGV[i]
  at[#at + 1] = ARGV[i + 1]
end

local on, off = 0, 0
if #adds > 0 then
  local member = redis.call('SMISMEMBER', mine, unpack(adds))
  local new = {}
  for i, c in ipairs(adds) do
    if member[i] == 0 then new[#new + 1] = c end
  end
  if #new > 0 then
    redis.call('SADD', mine, unpack(new))
    local a, b = change(k, new, 1, nil, now, withEvents, maxlen)
    on, off = on + a, off + b
  end
end
if #removes > 0 then
  local member = redis.call('SMISMEMBER', mine, unpack(removes))
  local gone, goneAt = {}, {}
  for i, c in ipairs(removes) do
    if member[i] == 1 then
      gone[#gone + 1] = c
      goneAt[#goneAt + 1] = at[i]
    end
  end
  if #gone > 0 then
    redis.call('SREM', mine, unpack(gone))
    local a, b = change(k, gone, -1, goneAt, now, withEvents, maxlen)
    on, off = on + a, off + b
  end
end
return {on, off}
