-- lease.lua: take, keep or give up the sweeper's lease.
--
-- KEYS[1]  the lease: the id of the node that holds it
-- ARGV[1]  this node's id
-- ARGV[2]  how long the lease lasts unless kept, ms; 0 gives it up
--
-- Returns 1 when this node holds the lease now, else 0.

local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
