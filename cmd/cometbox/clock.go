package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// maxClockSkew is how far the node's clock may be from Redis's before the
// node warns at startup. Two things run on the node's clock: token expiry
// (forgiving -token-leeway) and the refresh of each client's keys' expiry
// (queue.Options.TTL), where a node behind another by some seconds can
// shorten a queue's idle life by those seconds.
const maxClockSkew = 2 * time.Second

// clockSkew estimates how far now is ahead of Redis's clock (negative:
// behind), taking Redis's time as read half-way through the round trip.
func clockSkew(ctx context.Context, now func() time.Time, redisTime func(context.Context) (time.Time, error)) (time.Duration, error) {
	before := now()
	theirs, err := redisTime(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading Redis's clock: %w", err)
	}
	after := now()
	return before.Add(after.Sub(before) / 2).Sub(theirs), nil
}

// checkClock logs a warning when the node's clock is more than
// maxClockSkew away from Redis's (a proxy for the other nodes', which
// should all follow the same time source).
func checkClock(ctx context.Context, log *slog.Logger, now func() time.Time, redisTime func(context.Context) (time.Time, error)) {
	skew, err := clockSkew(ctx, now, redisTime)
	if err != nil {
		log.Warn("could not compare the node's clock with Redis's", "err", err)
		return
	}
	if skew > maxClockSkew || skew < -maxClockSkew {
		log.Warn("the node's clock differs from Redis's: keep every node's clock synchronised (NTP); "+
			"token expiry and the idle expiry of queues (-queue-ttl) are timed by the nodes' clocks",
			"skew", skew.Round(time.Millisecond))
	}
}
