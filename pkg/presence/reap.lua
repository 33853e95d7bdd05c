-- reap.lua: the sweeper moves nodes that stopped saying they are alive
-- to the dead set, and lists the dead set (what earlier sweeps left
-- unfinished included).
--
-- KEYS[1]  the nodes sorted set (heartbeat.lua)
-- KEYS[2]  the dead sorted set: node id -> when it was last heard of
-- ARGV[1]  the linger, ms: nodes dead for at least this long are reaped
-- ARGV[2]  how long a node counts as alive after it said so, ms
--
-- Times are by Redis's clock, as heartbeat.lua's. Moving and listing in
-- one script means that a node whose heartbeat lands after it is reaped
-- finds its id gone (and starts afresh), and one whose heartbeat lands
-- before is not reaped.
--
-- Returns the dead set, as {id, last heard of, id, ...}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = string.format('%d', now - tonumber(ARGV[1]))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', deadline, 'WITHSCORES', 'LIMIT', 0, 100)
for i = 1, #ids, 2 do
  local heard = tonumber(ids[i + 1]) - tonumber(ARGV[2])
  redis.call('ZADD', KEYS[2], string.format('%d', heard), ids[i])
  redis.call('ZREM', KEYS[1], ids[i])
end
return redis.call('ZRANGE', KEYS[2], 0, 99, 'WITHSCORES')
