-- heartbeat.lua: a node says it is alive.
--
-- KEYS[1]  the nodes sorted set: node id -> when it counts as dead
--          (unix ms, by Redis's clock) unless it says so again
-- ARGV[1]  the node's id
-- ARGV[2]  how long it counts as alive from now, ms
-- ARGV[3]  1 when the node registered this id before
--
-- Dead times are by Redis's clock, which the sweeper's reap.lua reads
-- too: nodes whose clocks disagree are still judged alike.
--
-- Returns 1, or 0 when the id was registered before and is gone: the
-- sweeper took the node for dead and counted its clients out, so it must
-- register under a new id and add its clients again.

if ARGV[3] == '1' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
return 1
