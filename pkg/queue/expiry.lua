-- expiry.lua: the keys' idle expiry, shared by enqueue.lua and read.lua,
-- which the queue loads with this file in front of them.
--
-- Refreshing the expiry of a client's keys on every call would cost two
-- commands a message (and their bytes in the AOF and on every replica).
-- A refresh sets the expiry to the idle expiry plus an eighth, and notes
-- in the hash's field d when that is due (unix ms, by the clock of the
-- node that set it). A script refreshes again only when the expiry is
-- stale: less than the idle expiry left (an eighth has passed), more
-- than the idle expiry plus an eighth left (that node's clock is ahead
-- of this one's, or the idle expiry was lowered since), or no d. So the
-- keys live at least the idle expiry after the last publish or poll, and
-- at most an eighth more, whatever idle expiry each node is configured
-- with at the time.

-- keep is the expiry to set, in seconds, for an idle expiry of ttl.
local function keep(ttl)
  return ttl + math.ceil(ttl / 8)
end

-- stale reports whether keys due at d (unix ms, or nil) need their
-- expiry refreshed now (unix ms), for an idle expiry of ttl seconds.
local function stale(d, now, ttl)
  local due = tonumber(d)
  if not due then return true end
  local left = due - tonumber(now)
  return left < ttl * 1000 or left > keep(ttl) * 1000
end

-- due is the d that a refresh now (unix ms) writes.
local function due(now, ttl)
  return string.format('%d', tonumber(now) + keep(ttl) * 1000)
end

