-- expiry.lua: the keys' idle expiry, shared by enqueue.lua and read.lua,
-- which the queue loads with this file in front of them.
--
-- Refreshing the expiry of a client's keys on every call would cost two
-- commands a message (and their bytes in the AOF and on every replica).
-- A script refreshes it only when it is stale: last set an eighth of the
-- idle expiry ago or more, by the clock of the node that set it (the
-- hash's field x, unix ms), or at a time in the future (that node's
-- clock is ahead of this one's). It then sets it to the idle expiry plus
-- an eighth. So the keys live at least the idle expiry after the last
-- publish or poll, and at most an eighth more.

-- stale reports whether an expiry set at x (unix ms, or nil) needs
-- refreshing now (unix ms), for an idle expiry of ttl seconds.
local function stale(x, now, ttl)
  local at, t = tonumber(x), tonumber(now)
  return not at or t < at or t - at >= ttl * 125
end

-- keep is the expiry to set, in seconds, for an idle expiry of ttl.
local function keep(ttl)
  return ttl + math.ceil(ttl / 8)
end

