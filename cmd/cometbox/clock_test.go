package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A node whose clock is off from Redis's by more than maxClockSkew says
// so at startup, by how much and which way; within it, nothing is said.
func TestCheckClock(t *testing.T) {
	redisNow := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		offset time.Duration // the node's clock minus Redis's
		err    error
		want   string // in the log; "" for nothing logged
	}{
		{"in step", 300 * time.Millisecond, nil, ""},
		{"ahead", 5 * time.Second, nil, "skew=5s"},
		{"behind", -90 * time.Second, nil, "skew=-1m30s"},
		{"no answer", 0, errors.New("connection refused"), "could not compare the node's clock with Redis's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, nil))
			now := func() time.Time { return redisNow.Add(tt.offset) }
			redisTime := func(context.Context) (time.Time, error) { return redisNow, tt.err }
			checkClock(context.Background(), log, now, redisTime)
			got := out.String()
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("log = %q; want %q", got, tt.want)
			}
		})
	}
}

// The skew is taken against the middle of the round trip to Redis.
func TestClockSkewMidpoint(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	calls := 0
	now := func() time.Time { // the round trip takes 2 s
		calls++
		return start.Add(time.Duration(calls-1) * 2 * time.Second)
	}
	for _, tt := range []struct {
		redis time.Time
		want  time.Duration
	}{
		{start.Add(time.Second), 0},
		{start, time.Second},
		{start.Add(3 * time.Second), -2 * time.Second},
	} {
		calls = 0
		skew, err := clockSkew(context.Background(), now, func(context.Context) (time.Time, error) { return tt.redis, nil })
		if err != nil || skew != tt.want {
			t.Errorf("Redis at %v of a 2 s round trip: skew %v, %v; want %v", tt.redis.Sub(start), skew, err, tt.want)
		}
	}
}
