-- disconnect.lua: end a client's polls and streams on every node and,
-- when asked, refuse its older tokens from now on.
--
-- KEYS[1]  the client's not-before record: tokens of the client that
--          expire at or before it (unix seconds) are refused
-- ARGV[1]  refuse tokens expiring at or before this, unix seconds; 0:
--          refuse none (a record already there stays)
-- ARGV[2]  how long the record lives, ms: until every token it refuses
--          has expired, leeway included
-- ARGV[3]  the client's wake-up channel
-- ARGV[4]  PUBLISH, or SPUBLISH on a cluster
-- ARGV[5]  the disconnect payload
--
-- The record is written before the wake-up is published, in one script:
-- a poll that subscribes and then reads the record either finds it or
-- is subscribed in time to get the wake-up.
--
-- A record never moves back: a later disconnect refusing fewer tokens
-- leaves it as it is.
--
-- Returns {how many nodes got the wake-up, the record (0: none)}.

local refuse = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if refuse > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  cur = refuse
end
local nodes = redis.call(ARGV[4], ARGV[3], ARGV[5])
return {nodes, string.format('%d', cur)}
