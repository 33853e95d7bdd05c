-- heartbeat.lua: a node says it is alive.
--
-- KEYS[1]  the nodes sorted set: node id -> when it counts as dead
--          (unix ms) unless it says so again
-- ARGV[1]  the node's id
-- ARGV[2]  when it counts as dead, unix ms
-- ARGV[3]  1 when the node registered this id before
--
-- Returns 1, or 0 when the id was registered before and is gone: the
-- sweeper took the node for dead and counted its clients out, so it must
-- register under a new id and add its clients again.

if ARGV[3] == '1' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
