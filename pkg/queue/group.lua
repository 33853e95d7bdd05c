-- group.lua: a group's own keys, all under its hash tag {#g:NAME}, so
-- that every operation here runs on one Redis Cluster slot. Which
-- operation is ARGV[1]; the others follow it.
--
-- KEYS[1]  the group's hash {gen = this life of the group (random; a new
--          one when the group is made anew), seq = the last job's number,
--          done = the last job fanned out to every member, at = "SEQ
--          MEMBER": how far the head job got, n = copies the head job
--          made so far, v = bumped by every join}
-- KEYS[2]  the members: a sorted set, every score 0, read in order of
--          the ids (ZRANGEBYLEX)
-- KEYS[3]  the jobs: a list of group messages not yet fanned out to
--          every member, oldest first, each "SEQ MS EXCEPT PAYLOAD"
--          (EXCEPT is '~' when none: no client id has a ~)
-- KEYS[4]  the last 100 jobs done, "SEQ COPIES", newest first
-- KEYS[5]  the lease: the node fanning the jobs out now
-- KEYS[6]  the publish's idempotency record, "SEQ DIGEST" (SEQ 0: the
--          group had no member); unused by the other operations
--
-- A member's copy of job SEQ is written by fanout.lua, which keeps in
-- the member's own hash the last SEQ of this group it has (with gen):
-- jobs are fanned out in order, one after the other, so that a job done
-- again (its node died halfway, two nodes raced) skips every member that
-- has it.

local h, members, jobs, results, lease, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ops = {}

-- open: the group's gen and last seq, made when the group is new.
-- ARGV[2] a gen for a new group. Returns {gen, seq}.
function ops.open()
  local g = redis.call('HMGET', h, 'gen', 'seq')
  if not g[1] then
    redis.call('HSET', h, 'gen', ARGV[2], 'seq', 0, 'done', 0, 'v', 0)
    return {ARGV[2], '0'}
  end
  redis.call('PERSIST', h) -- see drop
  return {g[1], g[2]}
end

-- add: members joined (their own hashes say so already, with gen).
-- ARGV[2] gen, ARGV[3...] client ids. Returns the number of members, or
-- -1 when the group was made anew meanwhile (the join must go again).
function ops.add()
  if redis.call('HGET', h, 'gen') ~= ARGV[2] then return -1 end
  for i = 3, #ARGV, 500 do
    local batch = {}
    for j = i, math.min(i + 499, #ARGV) do
      batch[#batch + 1] = 0
      batch[#batch + 1] = ARGV[j]
    end
    redis.call('ZADD', members, unpack(batch))
  end
  redis.call('HINCRBY', h, 'v', 1)
  redis.call('PERSIST', h) -- see drop
  redis.call('PERSIST', results)
  return redis.call('ZCARD', members)
end

-- drop lets the group go when it has no member and no job left: its
-- hash and results expire a day later, unless a member joins first.
-- They stay that long so that a publish retried with its idempotency
-- key still finds its job done, and the group's seqs keep growing.
local function drop()
  if redis.call('ZCARD', members) == 0 and redis.call('LLEN', jobs) == 0 then
    redis.call('EXPIRE', h, 86400)
    redis.call('EXPIRE', results, 86400)
  end
end

-- remove: members left (their own hashes say so already). ARGV[2...]
-- client ids. Returns the number of members left.
function ops.remove()
  for i = 2, #ARGV, 500 do
    redis.call('ZREM', members, unpack(ARGV, i, math.min(i + 499, #ARGV)))
  end
  drop()
  return redis.call('ZCARD', members)
end

-- prune: forget members found to have left (their hash has no such
-- membership: it expired with their queue, or a leave stopped halfway),
-- unless a join came since they were read (v moved): the member may be
-- back. ARGV[2] v as read, ARGV[3...] client ids.
function ops.prune()
  if redis.call('HGET', h, 'v') ~= ARGV[2] then return 0 end
  for i = 3, #ARGV, 500 do
    redis.call('ZREM', members, unpack(ARGV, i, math.min(i + 499, #ARGV)))
  end
  drop()
  return 1
end

-- page: up to ARGV[3] members after ARGV[2] ('' from the first), in
-- order. Returns {v, count, members}.
function ops.page()
  local from = '-'
  if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
  local g = redis.call('HGET', h, 'v') or '0'
  return {g, redis.call('ZCARD', members),
    redis.call('ZRANGEBYLEX', members, from, '+', 'LIMIT', 0, tonumber(ARGV[3]))}
end

-- job: record a group message. ARGV[2] the least seq to give (the
-- node's clock in microseconds, so that seqs keep growing after a lost
-- write), ARGV[3] ms, ARGV[4] except or '~', ARGV[5] payload, ARGV[6]
-- digest of the whole batch, ARGV[7] idempotency record's lifetime
-- (0: none), ARGV[8] the most ms the oldest job waiting may be behind
-- ARGV[3]. Returns {seq (0: no member, nothing recorded), replayed
-- (0/1), members}, IDEMCONFLICT, or GROUPBUSY (nothing recorded) when
-- the group's fan-outs are that far behind.
function ops.job()
  local count = redis.call('ZCARD', members)
  local idemTTL = tonumber(ARGV[7])
  if idemTTL > 0 then
    local prev = redis.call('GET', idem)
    if prev then
      local seq, digest = string.match(prev, '^(%d+) (%S*)$')
      if digest ~= ARGV[6] then
        return redis.error_reply('IDEMCONFLICT first attempt had other messages')
      end
      return {seq, 1, count}
    end
  end
  local head = redis.call('LINDEX', jobs, 0)
  if head then
    local lag = tonumber(ARGV[3]) - (tonumber(string.match(head, '^%d+ (%d+) ')) or 0)
    if lag > tonumber(ARGV[8]) then
      return redis.error_reply('GROUPBUSY its oldest message waiting was accepted ' .. string.format('%d', lag) .. ' ms ago')
    end
  end
  local seq = '0'
  if count > 0 then
    local last = tonumber(redis.call('HGET', h, 'seq') or '0')
    local want = tonumber(ARGV[2])
    if last + 1 > want then want = last + 1 end
    seq = string.format('%d', want)
    redis.call('HSET', h, 'seq', seq)
    redis.call('RPUSH', jobs, seq .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])
  end
  if idemTTL > 0 then
    redis.call('SET', idem, seq .. ' ' .. ARGV[6], 'EX', idemTTL)
  end
  return {seq, 0, count}
end

-- claim: take the lease, or keep it. ARGV[2] this node's token,
-- ARGV[3] its lifetime, ms. Returns 1 when held.
function ops.claim()
  if redis.call('SET', lease, ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
  if redis.call('GET', lease) == ARGV[2] then
    redis.call('PEXPIRE', lease, ARGV[3])
    return 1
  end
  return 0
end

-- release: give the lease up. ARGV[2] token. Returns the jobs left.
function ops.release()
  if redis.call('GET', lease) == ARGV[2] then redis.call('DEL', lease) end
  return redis.call('LLEN', jobs)
end

-- head: the job to fan out next. Returns {gen, done, at, n, job or ''}.
function ops.head()
  local g = redis.call('HMGET', h, 'gen', 'done', 'at', 'n')
  local job = redis.call('LINDEX', jobs, 0) or ''
  return {g[1] or '', g[2] or '0', g[3] or '', g[4] or '0', job}
end

-- progress: the head job's copies up to member ARGV[4] are written,
-- ARGV[5] more of them; renews the lease. ARGV[2] token, ARGV[3] seq,
-- ARGV[6] the lease's lifetime, ms. Returns 0 when the lease was lost
-- (another node goes on with the job; the copies are written anyway).
function ops.progress()
  if redis.call('GET', lease) ~= ARGV[2] then return 0 end
  redis.call('PEXPIRE', lease, ARGV[6])
  local at = redis.call('HGET', h, 'at') or ''
  local n = tonumber(ARGV[5])
  if string.sub(at, 1, #ARGV[3] + 1) ~= ARGV[3] .. ' ' then
    redis.call('HSET', h, 'n', 0) -- a new job: count from 0
  end
  redis.call('HSET', h, 'at', ARGV[3] .. ' ' .. ARGV[4])
  redis.call('HINCRBY', h, 'n', n)
  return 1
end

-- finish: job ARGV[2] reached every member; ARGV[3] copies. Returns the
-- jobs left.
function ops.finish()
  local head = redis.call('LINDEX', jobs, 0)
  if head and string.sub(head, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then
    redis.call('LPOP', jobs)
    redis.call('HSET', h, 'done', ARGV[2], 'at', '', 'n', 0)
    redis.call('LPUSH', results, ARGV[2] .. ' ' .. ARGV[3])
    redis.call('LTRIM', results, 0, 99)
  end
  local left = redis.call('LLEN', jobs)
  drop()
  return left
end

-- done: is job ARGV[2] fanned out? Returns {state (1: done, 0: not
-- yet, -1: lost: Redis lost the group's keys or the job), copies (-1:
-- not known any more), lease held (0/1)}.
function ops.done()
  local seq = tonumber(ARGV[2])
  local g = redis.call('HMGET', h, 'gen', 'done')
  local held = redis.call('EXISTS', lease)
  if not g[1] then return {-1, -1, held} end
  if tonumber(g[2]) < seq then
    local head = redis.call('LINDEX', jobs, 0)
    if head and tonumber(string.match(head, '^(%d+)')) <= seq then return {0, -1, held} end
    return {-1, -1, held}
  end
  for _, r in ipairs(redis.call('LRANGE', results, 0, -1)) do
    local s, c = string.match(r, '^(%d+) (%d+)$')
    if s == ARGV[2] then return {1, tonumber(c), held} end
  end
  return {1, -1, held}
end

return ops[ARGV[1]]()
