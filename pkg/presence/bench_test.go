package presence_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/queue"
)

// BenchmarkMessageWithPresenceInRedis is queue's BenchmarkMessageInRedis
// (one publish and the acknowledgement by the poll that delivered it, on
// a real redis-server) with presence on: each client holds a poll all
// the time, and the poll that delivers a message ends as the next one
// begins, on the same node or another; each node flushes its presence
// changes every 250 ms and says it is alive every second. Time is simulated (a clock moved by 1/rate per poll), so
// that a batch holds what it would at that rate; each client polls every
// gap. It reports cmds/msg, every command Redis ran (scripts and those
// inside them) per message, and presence-cmds/msg, the part of it that
// presence adds (the flushes and the heartbeats; presence has a
// redis-server of its own here, so that the two are counted apart).
// Cases:
//
//   - none: presence off, the figure to compare with;
//   - same: every poll on the same node;
//   - hop: polls alternate between two nodes (a balancer that picks a
//     node per request);
//
// and tokens: presence off, and each poll's token checked against what
// a disconnect revoked (package cutoff), as nodes with -token-secret do;
//
// each at gap 1s (a busy client: back on a node within the linger) and
// 25s (idle clients: every poll lasts the poll timeout, so a hopping
// client is back on a node only after the linger, and every poll adds it
// on one node and removes it from the other), at 1,000 and 40 polls a
// second.
func BenchmarkMessageWithPresenceInRedis(b *testing.B) {
	for _, c := range []struct {
		name   string
		on     bool
		hop    bool
		gap    time.Duration
		rate   int
		tokens bool
	}{
		{"none", false, false, time.Second, 1000, false},
		{"tokens", false, false, time.Second, 1000, true},
		{"same/gap=1s/rate=1000", true, false, time.Second, 1000, false},
		{"hop/gap=1s/rate=1000", true, true, time.Second, 1000, false},
		{"same/gap=25s/rate=1000", true, false, 25 * time.Second, 1000, false},
		{"hop/gap=25s/rate=1000", true, true, 25 * time.Second, 1000, false},
		{"hop/gap=25s/rate=40", true, true, 25 * time.Second, 40, false},
	} {
		b.Run(c.name, func(b *testing.B) { messageWithPresence(b, c.on, c.hop, c.gap, c.rate, c.tokens) })
	}
}

func messageWithPresence(b *testing.B, on, hop bool, gap time.Duration, rate int, tokens bool) {
	ctx := context.Background()
	start := func() (*redisserver.Server, *redis.Client) {
		rs := redisserver.Start(b, redisserver.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "no"}})
		rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
		b.Cleanup(func() { _ = rdb.Close() })
		return rs, rdb
	}
	rsQ, rdbQ := start()
	rsP, rdb := start()
	q := queue.New(rdbQ, queue.Options{})
	co := cutoff.New(rdbQ, cutoff.Options{WakeChannel: q.WakeChannel})
	exp := time.Now().Add(time.Hour)
	clock := newClock()
	const flushEvery = 250 * time.Millisecond
	opts := presence.Options{Now: clock.Now, Flush: flushEvery, Sink: &sink{}}
	nodes := []*presence.Presence{presence.New(rdb, nil, nil, opts), presence.New(rdb, nil, nil, opts)}
	for _, n := range nodes {
		presence.Heartbeat(n, ctx)
	}

	// Every client holds a poll all the time: a poll ends (with its
	// message, or at the poll timeout) and the next begins at once, on
	// the same node or the other one. A client's turn comes every gap.
	clients := int(gap.Seconds() * float64(rate))
	step := time.Second / time.Duration(rate)
	payload := message.EncodeText(strings.Repeat("x", 48))
	node := func(poll int) *presence.Presence {
		if hop {
			return nodes[(poll/clients)%2]
		}
		return nodes[0]
	}
	var poll int // polls so far
	var nextFlush, nextBeat time.Time
	deliver := func(withQueue bool) {
		to := "c" + strconv.Itoa(poll%clients)
		if withQueue {
			pub, err := q.Publish(ctx, message.Batch{Messages: []message.Message{{To: to, Data: payload}}})
			if err != nil {
				b.Fatal(err)
			}
			if tokens {
				if err := co.Check(ctx, to, exp); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := q.Ack(ctx, to, message.Cursor{ID: pub.Receipts[0].ID}); err != nil {
				b.Fatal(err)
			}
		}
		if on {
			if poll >= clients {
				node(poll - clients).End(to)
			}
			node(poll).Begin(to)
			clock.Add(step)
			now := clock.Now()
			if !now.Before(nextFlush) {
				nextFlush = now.Add(flushEvery)
				for _, n := range nodes {
					presence.Flush(n, ctx)
				}
			}
			if !now.Before(nextBeat) {
				nextBeat = now.Add(time.Second)
				for _, n := range nodes {
					presence.Heartbeat(n, ctx)
				}
			}
		}
		poll++
	}
	for range clients { // sequences exist before the timing starts
		deliver(true)
	}
	for range 3 * clients { // and presence is in its steady state
		deliver(false)
	}
	count := func(addr string) map[string]int64 {
		calls, err := bench.RedisCommands(addr)
		if err != nil {
			b.Fatal(err)
		}
		return calls
	}
	q0, p0 := count(rsQ.Addr), count(rsP.Addr)
	b.ResetTimer()
	for range b.N {
		deliver(true)
	}
	b.StopTimer()
	sum := func(calls map[string]int64) (n int64) {
		for _, c := range calls {
			n += c
		}
		return n
	}
	queueCalls := sum(bench.CallsDelta(q0, count(rsQ.Addr)))
	presenceCalls := sum(bench.CallsDelta(p0, count(rsP.Addr)))
	b.ReportMetric(float64(queueCalls+presenceCalls)/float64(b.N), "cmds/msg")
	b.ReportMetric(float64(presenceCalls)/float64(b.N), "presence-cmds/msg")
}
