-- pending.lua: the groups that have group messages not yet fanned out
-- to every member, each with when the oldest was recorded (unix ms), so
-- that any node completes what a node that died left (fanout.go).
--
-- KEYS[1]  the sorted set, group name → ms
-- ARGV[1]  add GROUP MS (kept when already there), remove GROUP, or due
--          BEFORE LIMIT: the groups recorded before BEFORE, oldest first

local op = ARGV[1]
if op == 'add' then
  return redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[2])
elseif op == 'remove' then
  return redis.call('ZREM', KEYS[1], ARGV[2])
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
