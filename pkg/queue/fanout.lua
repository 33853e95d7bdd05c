-- fanout.lua: a copy of one group message in the queue of each of some
-- members, each an ordinary message of the member's sequence (its own
-- id, acknowledged, capped and reported as enqueue.lua's are), with the
-- group named in it: {"id":N,"group":"NAME","data":...}.
--
-- KEYS     pairs, one per member: its meta hash, then its queue list (see
--          enqueue.lua); on a Redis Cluster all on one slot
-- ARGV[1]  the membership's field in the meta hash, "g:NAME"
-- ARGV[2]  the group's gen
-- ARGV[3]  the job's seq
-- ARGV[4]  the group's name
-- ARGV[5]  the payload, compact JSON
-- ARGV[6]  when the group message was accepted, unix ms (stored with each
--          copy, as a publish's time)
-- ARGV[7]  queue cap
-- ARGV[8]  idle expiry of the client's keys, seconds
-- ARGV[9]  wake-up command: PUBLISH, or SPUBLISH on a cluster
-- ARGV[10] the term of the primary the node means to write to, or ''
-- ARGV[11] the start of the wake-up channels' names (the key prefix)
-- ARGV[12] the start of the epochs of the sequences made or moved on here
-- ARGV[13…] the members' client ids, in the order of KEYS
--
-- A member gets the copy only when its hash holds the membership, with
-- the group's gen and a seq below the job's (then the job's is stored):
-- copies are made in the order of the jobs, so a job done twice (its
-- node died halfway, or two nodes raced for it) makes no second copy.
-- A member whose hash has no such membership left the group (or its
-- queue expired, and its memberships with it): it is returned, for the
-- group to forget it.
--
-- A copy does not refresh the expiry of the member's keys: a member that
-- neither polls nor is published to directly for the idle expiry loses
-- its queue, and its memberships with it. A queue list made anew gets
-- the expiry enqueue.lua gives one.
--
-- Returns {members with the copy (made now or before), copies made now,
-- entries dropped by the cap, {members that left}}.

-- keep, stale and due come from expiry.lua, which comes first.

local field, gen, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local group, payload, now = ARGV[4], ARGV[5], ARGV[6]
local cap, ttl, wake, term = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local prefix, epochs = ARGV[11], ARGV[12]
local mark = gen .. ':' .. ARGV[3]
local have, made, dropped, gone = 0, 0, 0, {}

for i = 1, #KEYS / 2 do
  local meta, list, client = KEYS[2 * i - 1], KEYS[2 * i], ARGV[12 + i]
  local m = redis.call('HMGET', meta, 'e', 's', 't', field)
  local g, last = nil, nil
  if m[4] then g, last = string.match(m[4], '^([^:]*):(%d+)$') end
  if g ~= gen then
    gone[#gone + 1] = client
  elseif tonumber(last) >= seq then
    have = have + 1 -- a copy made before
  else
    local epoch, s = m[1], tonumber(m[2]) or 0
    local fresh = epochs .. string.format('%x', i)
    if not epoch then
      -- A member joined before its sequence existed (member.lua makes
      -- one), or an older node's: a new life, as enqueue.lua makes one.
      epoch, s = fresh, 0
      redis.call('DEL', list)
      redis.call('HSET', meta, 'e', epoch, 's', 0, 'a', 0, 't', term)
    elseif term ~= '' and m[3] ~= term then
      if m[3] and m[3] ~= '' then
        -- Another primary wrote last: go on in a new epoch (enqueue.lua).
        local old = redis.call('HGET', meta, 'p') or ''
        local kept = {}
        for pair in string.gmatch(old, '%S+') do kept[#kept + 1] = pair end
        kept[#kept + 1] = epoch .. ':' .. string.format('%d', s)
        while #kept > 4 do table.remove(kept, 1) end
        epoch = fresh
        redis.call('HSET', meta, 'e', epoch, 't', term, 'p', table.concat(kept, ' '))
      else
        redis.call('HSET', meta, 't', term)
      end
    end
    local id = string.format('%d', s + 1)
    redis.call('HSET', meta, 's', id, field, mark)
    local entry = now .. ' {"id":' .. id .. ',"group":"' .. group .. '","data":' .. payload .. '}'
    local len = redis.call('RPUSH', list, entry)
    if len == 1 then
      redis.call('EXPIRE', list, keep(ttl))
    elseif len > cap then
      dropped = dropped + len - cap
      redis.call('LTRIM', list, len - cap, -1)
    end
    local body = epoch .. ' ' .. id
    if #entry <= 16384 then body = body .. '\n' .. entry end
    redis.call(wake, prefix .. '{' .. client .. '}:w', body)
    have, made = have + 1, made + 1
  end
end
return {have, made, dropped, gone}
