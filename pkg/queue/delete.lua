-- delete.lua: the server API deletes a client's queue.
--
-- KEYS[1]  meta hash (see enqueue.lua)
-- KEYS[2]  the queue list
-- ARGV[1]  the client's wake-up channel
-- ARGV[2]  PUBLISH, or SPUBLISH on a cluster
--
-- The sequence goes with its keys: the next message starts a new one, in
-- a new epoch. Held polls are woken with an empty wake-up (read the
-- queue), so that those with a cursor learn of the reset at once.
-- Idempotency records stay until they expire: a retry of a batch
-- published before still replays its old ids.
--
-- Returns how many of the two keys existed.

local n = redis.call('DEL', KEYS[1], KEYS[2])
redis.call(ARGV[2], ARGV[1], '')
return n
