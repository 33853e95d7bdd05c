-- counts.lua: how many nodes hold each client; flush.lua and sweep.lua
-- start with this file (a script cannot call another's functions).
--
-- A client is online while at least one node holds it: has a poll held
-- or a stream open for it, or had one less than the linger ago. Every
-- node keeps, per presence shard, a set of the clients it holds; the
-- shard's counts hash keeps, per online client, "COUNT SINCE": in how
-- many of those sets it is, and since when (unix ms) it is online. A
-- change that takes a count from 0 up is the client coming online; one
-- that takes it to 0 is the client going offline: only then is anything
-- written besides the count, namely its last-seen time and, when events
-- are on, an event with a sequence number that the deliverer checks for
-- gaps (the stream is capped).
--
-- The keys of one shard share a hash tag, so a script may touch all of
-- them on Redis Cluster.

-- change adds delta (1 or -1) to the count of each client of list, all
-- of them in or out of one node's set just now; at[i] is when list[i]
-- was last seen (unix ms, as a string), for those going offline.
-- k holds the shard's keys: counts, seen, events, seq. Returns how many
-- came online and how many went offline.
local function change(k, list, delta, at, now, withEvents, maxlen)
  if #list == 0 then return 0, 0 end
  local vals = redis.call('HMGET', k.counts, unpack(list))
  local set, del, gone, evs = {}, {}, {}, {}
  local on, off = 0, 0
  for i, c in ipairs(list) do
    local n, since = 0, now
    if vals[i] then
      local a, b = string.match(vals[i], '^(%d+) (%d+)$')
      if a then n, since = tonumber(a), b end
    end
    local m = n + delta
    if m > 0 then
      if n == 0 then
        since = now
        on = on + 1
        evs[#evs + 1] = {'client_online', c, now}
      end
      set[#set + 1] = c
      set[#set + 1] = string.format('%d', m) .. ' ' .. since
    else
      del[#del + 1] = c
      if n > 0 then
        off = off + 1
        gone[#gone + 1] = at[i]
        gone[#gone + 1] = c
        evs[#evs + 1] = {'client_offline', c, at[i]}
      end
    end
  end
  if #set > 0 then redis.call('HSET', k.counts, unpack(set)) end
  if #del > 0 then redis.call('HDEL', k.counts, unpack(del)) end
  if #gone > 0 then redis.call('ZADD', k.seen, unpack(gone)) end
  if withEvents and #evs > 0 then
    local last = redis.call('INCRBY', k.seq, #evs)
    for i, e in ipairs(evs) do
      redis.call('XADD', k.events, 'MAXLEN', '~', maxlen, '*',
        'n', string.format('%d', last - #evs + i), 'e', e[1], 'c', e[2], 't', e[3])
    end
  end
  return on, off
end
