-- member.lua: group memberships, on the members' side. Which operation
-- is ARGV[1].
--
-- A client's memberships live in its own meta hash (see enqueue.lua),
-- one field per group, "g:NAME" = "GEN:SEQ": the group's gen when it
-- joined, and the last job of that group it has a copy of (fanout.lua).
-- So a membership expires with the client's queue, and a client's
-- groups cost nothing to its publishes and polls.
--
-- join and leave take KEYS as pairs, meta hash then list, one pair per
-- client (on one Redis Cluster slot, or any on one Redis).

-- keep, stale and due come from expiry.lua, which comes first.

local ops = {}

-- join: ARGV[2] field, ARGV[3] the group's gen, ARGV[4] its last seq
-- (jobs up to it are not for the new member), ARGV[5] idle expiry,
-- seconds, ARGV[6] now, ms, ARGV[7] the start of the epochs of the
-- sequences made here. A client already in the group (same gen) keeps
-- its place. A client without a sequence gets one (empty), so that its
-- polls keep its keys, and with them its memberships, alive (read.lua
-- refreshes only sequences). Joining is a use of the client's keys:
-- their expiry is refreshed as a poll's is. Returns a 0/1 per client: 1
-- when it was not a member.
function ops.join()
  local field, gen, seq = ARGV[2], ARGV[3], ARGV[4]
  local ttl, now = tonumber(ARGV[5]), ARGV[6]
  local out = {}
  for i = 1, #KEYS, 2 do
    local meta, list = KEYS[i], KEYS[i + 1]
    local m = redis.call('HMGET', meta, field, 'd', 'e')
    local joined = 0
    if not m[1] or string.match(m[1], '^([^:]*)') ~= gen then
      redis.call('HSET', meta, field, gen .. ':' .. seq)
      joined = 1
    end
    if not m[3] then
      -- A new life of the client's sequence, as enqueue.lua makes one.
      redis.call('DEL', list)
      redis.call('HSET', meta, 'e', ARGV[7] .. string.format('%x', i), 's', 0, 'a', 0)
    end
    if stale(m[2], now, ttl) then
      redis.call('EXPIRE', meta, keep(ttl))
      redis.call('EXPIRE', list, keep(ttl))
      redis.call('HSET', meta, 'd', due(now, ttl))
    end
    out[#out + 1] = joined
  end
  return out
end

-- leave: ARGV[2] field. Returns a 0/1 per client: 1 when it was a
-- member.
function ops.leave()
  local out = {}
  for i = 1, #KEYS, 2 do
    out[#out + 1] = redis.call('HDEL', KEYS[i], ARGV[2])
  end
  return out
end

return ops[ARGV[1]]()
