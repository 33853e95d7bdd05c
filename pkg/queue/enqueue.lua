-- enqueue.lua: append messages to one client's queue, atomically.
--
-- KEYS[1]  meta hash {e = epoch, s = last id assigned, d = when the
--          keys' expiry is due (expiry.lua), a = 0 (read by scripts of
--          versions before 2026-11-26, during a rolling update), t = the
--          term of the primary that last wrote it, p = the epochs it went
--          on from, with the last id each had (see below)}
-- KEYS[2]  the queue list; entries are "<publish ms> {"id":N,"data":...}"
-- KEYS[3]  idempotency record for this batch (ignored when ARGV[4] is 0):
--          "EPOCH/DIGEST FIRST COUNT", this client's share of the batch
--          (see below)
-- ARGV[1]  epoch to use if the sequence is created now
-- ARGV[2]  queue cap: oldest entries are dropped beyond it
-- ARGV[3]  idle expiry of the client's keys, seconds (see expiry.lua)
-- ARGV[4]  how long the idempotency record lives, seconds (0: no record)
-- ARGV[5]  wake-up channel
-- ARGV[6]  wake-up command: PUBLISH, or SPUBLISH on a cluster
-- ARGV[7]  publish time, unix ms (the node's clock; also "now" for refresh)
-- ARGV[8]  digest of the whole batch (every client's messages, in order),
--          kept in the idempotency record: a retry must have the same
-- ARGV[9]  the term of the primary the node means to write to (its
--          master_replid), or '' where terms are not used
-- ARGV[10…] the payloads, compact JSON
--
-- The wake-up's payload is "EPOCH FIRST", followed, when they are small,
-- by the batch's entries one per line, so that a waiting poll whose
-- cursor is FIRST-1 can answer without reading the queue (queue.DecodeWake).
--
-- Returns {epoch, first id, replayed (0/1), entries dropped by the cap}.
-- The ids given are first .. first+n-1, consecutive because the whole
-- batch for this client is appended by this one script.
--
-- A new primary: Redis replicates asynchronously, so a primary that a
-- failover replaced (or a server restarted from an append-only file it
-- had not fsynced) may have handed out ids its successor never got, and
-- the successor would hand them out again, to other messages, in the
-- same epoch: a page whose cursor is past them would skip those
-- silently. So each enqueue carries the term of the primary it is for,
-- and when the hash holds another, the sequence goes on in a new epoch
-- (ARGV[1]) with the same ids: no id in it names two messages, and
-- read.lua takes a cursor of the old epoch as one of the new up to the
-- last id the old epoch had here (what this primary received), and
-- resets a cursor past that. p lists those old epochs, "EPOCH:LAST"
-- separated by spaces, newest last, the last four.
--
-- A retry under a known idempotency key replays the first attempt's
-- answer when it has as many messages for this client and the same
-- digest, and fails with IDEMCONFLICT otherwise. Records of versions
-- before 2026-12-07 are "EPOCH FIRST COUNT", without a digest: they are
-- replayed by count alone. The digest rides in the first field so that
-- those versions' script, during a rolling update, still reads this
-- version's records (as "EPOCH FIRST COUNT", with an epoch it does not
-- use) and replays them by count.

-- keep, stale and due come from expiry.lua, which comes first.

local meta, list, idem = KEYS[1], KEYS[2], KEYS[3]
local cap, ttl, idemTTL = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local digest, term = ARGV[8], ARGV[9]
local n = #ARGV - 9

if idemTTL > 0 then
  local prev = redis.call('GET', idem)
  if prev then
    local e, d, f, c = string.match(prev, '^([^/ ]+)/?(%S*) (%d+) (%d+)$')
    if not c then
      return redis.error_reply('ERR unreadable idempotency record ' .. idem)
    end
    if tonumber(c) ~= n then
      return redis.error_reply('IDEMCONFLICT first attempt had ' .. c .. ' messages for this client, retry has ' .. n)
    end
    if d ~= '' and d ~= digest then
      return redis.error_reply('IDEMCONFLICT first attempt had other messages')
    end
    return {e, tonumber(f), 1, 0}
  end
end

local m = redis.call('HMGET', meta, 'e', 'd', 't', 's')
local epoch = m[1]
local now = ARGV[7]
local refresh = not epoch or stale(m[2], now, ttl)
if not epoch then
  -- A new life of this client's sequence: ids start again at 1.
  epoch = ARGV[1]
  redis.call('DEL', list)
  redis.call('HSET', meta, 'e', epoch, 's', 0, 'a', 0, 'd', due(now, ttl), 't', term)
else
  if term ~= '' and m[3] ~= term then
    if m[3] and m[3] ~= '' then
      -- Another primary wrote last: go on in a new epoch (see above).
      local old = redis.call('HGET', meta, 'p') or ''
      local kept = {}
      for pair in string.gmatch(old, '%S+') do kept[#kept + 1] = pair end
      kept[#kept + 1] = epoch .. ':' .. m[4]
      while #kept > 4 do table.remove(kept, 1) end
      epoch = ARGV[1]
      redis.call('HSET', meta, 'e', epoch, 't', term, 'p', table.concat(kept, ' '))
    else
      -- Written by nodes without terms until now: nothing to compare.
      redis.call('HSET', meta, 't', term)
    end
  end
  if refresh then
    redis.call('HSET', meta, 'd', due(now, ttl))
  end
end

local last = redis.call('HINCRBY', meta, 's', n)
local first = last - n + 1
local len, created = 0, false
local batch = {}
local all, size = {}, 0
for i = 1, n do
  local entry = ARGV[7] .. ' {"id":' .. string.format('%d', first + i - 1) .. ',"data":' .. ARGV[9 + i] .. '}'
  batch[#batch + 1] = entry
  size = size + #entry + 1
  if size <= 16384 then all[#all + 1] = entry end
  if #batch == 200 or i == n then
    len = redis.call('RPUSH', list, unpack(batch))
    if len == #batch and i <= 200 then created = true end
    batch = {}
  end
end

local dropped = 0
if len > cap then
  dropped = len - cap
  redis.call('LTRIM', list, dropped, -1)
end
if refresh then
  redis.call('EXPIRE', meta, keep(ttl))
end
if refresh or created then
  -- A list made just now (the last acknowledgement deleted the one
  -- before) has no expiry yet.
  redis.call('EXPIRE', list, keep(ttl))
end
if idemTTL > 0 then
  redis.call('SET', idem, epoch .. '/' .. digest .. ' ' .. string.format('%d', first) .. ' ' .. n, 'EX', idemTTL)
end
local wake = epoch .. ' ' .. string.format('%d', first)
if size <= 16384 then wake = wake .. '\n' .. table.concat(all, '\n') end
redis.call(ARGV[6], ARGV[5], wake)
return {epoch, first, 0, dropped}
