-- sweep.lua: count out, in one shard, the clients of a node that died
-- (or stopped), a chunk at a time.
--
-- KEYS[1]  the shard's counts hash (counts.lua)
-- KEYS[2]  the shard's last-seen sorted set
-- KEYS[3]  the dead node's set in the shard
-- KEYS[4]  the shard's events stream
-- KEYS[5]  the shard's event sequence counter
-- ARGV[1]  now, unix ms (the sweeping node's clock)
-- ARGV[2]  1 to write events
-- ARGV[3]  about how many events the stream keeps
-- ARGV[4]  when the dead node was last heard of, unix ms: the last-seen
--          time of those of its clients that go offline
-- ARGV[5]  how many clients to take from its set at most
--
-- Returns how many clients are left in the dead node's set.

-- change comes from counts.lua, which comes first.

local k = {counts = KEYS[1], seen = KEYS[2], events = KEYS[4], seq = KEYS[5]}
local list = redis.call('SPOP', KEYS[3], tonumber(ARGV[5]))
local at = {}
for i = 1, #list do at[i] = ARGV[4] end
change(k, list, -1, at, ARGV[1], ARGV[2] == '1', ARGV[3])
return redis.call('SCARD', KEYS[3])
