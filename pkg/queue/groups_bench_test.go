package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
)

// BenchmarkGroupMessageInRedis is what one group message to a group of
// 10,000 members costs Redis, on a real redis-server with the
// append-only file on: recording it, paging through the members and
// writing each one's copy, and each member's acknowledgement of its copy
// (as its next poll sends it). It reports per copy the commands Redis ran
// and its time in the scripts (INFO commandstats), and the longest single
// call Redis ran (SLOWLOG, every call logged): a fan-out never holds Redis
// for long, whatever the group's size.
func BenchmarkGroupMessageInRedis(b *testing.B) {
	for _, pipeline := range []bool{false, true} {
		b.Run(fmt.Sprintf("pipeline=%v", pipeline), func(b *testing.B) { groupMessageInRedis(b, 10000, pipeline) })
	}
}

func groupMessageInRedis(b *testing.B, members int, pipeline bool) {
	ctx := context.Background()
	rs := redisserver.Start(b, redisserver.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "no",
		"--slowlog-max-len", "100000"}})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	q := New(rdb, Options{Pipeline: pipeline})
	var clients []string
	for i := range members {
		clients = append(clients, "m"+strconv.Itoa(i))
	}
	for c := range slices.Chunk(clients, MaxMembersPerCall) {
		if _, _, err := q.Join(ctx, "room", c); err != nil {
			b.Fatal(err)
		}
	}
	payload := message.EncodeText(strings.Repeat("x", 48))
	cursors := make([]uint64, members)
	deliver := func() {
		pub, err := q.Publish(ctx, message.Batch{Messages: []message.Message{{Group: "room", Data: payload}}})
		if err != nil || pub.Receipts[0].Members != members {
			b.Fatalf("Publish = %v, %v", pub.Receipts, err)
		}
		for i, c := range clients { // every member acknowledges its copy
			cursors[i]++
			q.AckSoon(c, message.Cursor{ID: cursors[i]}, nil)
		}
		q.flushAcks()
	}
	deliver() // sequences exist before the timing starts
	calls0, _ := redisCounts(b, rs.Addr)
	usec0 := scriptUsec(b, rs.Addr)
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		b.Fatal(err)
	}
	rdb.SlowLogReset(ctx)

	b.ResetTimer()
	for range b.N {
		deliver()
	}
	b.StopTimer()

	rdb.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
	calls1, _ := redisCounts(b, rs.Addr)
	usec1 := scriptUsec(b, rs.Addr)
	var calls int64
	for _, n := range bench.CallsDelta(calls0, calls1) {
		calls += n
	}
	copies := float64(b.N * members)
	logs, err := rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		b.Fatal(err)
	}
	var longest int64
	for _, l := range logs {
		longest = max(longest, l.Duration.Microseconds())
	}
	b.ReportMetric(float64(calls)/copies, "cmds/copy")
	b.ReportMetric(float64(usec1-usec0)/copies, "redis-µs/copy")
	b.ReportMetric(float64(longest), "longest-call-µs")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/copies, "ns/copy")
}

// scriptUsec is the time Redis spent in scripts (EVALSHA and EVAL), µs.
func scriptUsec(b *testing.B, addr string) int64 {
	b.Helper()
	info, err := bench.RedisInfo(addr, "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	var us int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name != "cmdstat_evalsha" && name != "cmdstat_eval" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				us += n
			}
		}
	}
	return us
}

// BenchmarkClientInManyGroups is a client in 10,000 groups, on a real
// redis-server: one op is a page of 1,000 of its groups (GroupsOf reads
// and sorts all of its memberships in one call), and a direct message to
// it with its acknowledgement, which its memberships must not slow. It
// reports the longest single call Redis ran for each (SLOWLOG).
func BenchmarkClientInManyGroups(b *testing.B) {
	ctx := context.Background()
	rs := redisserver.Start(b, redisserver.Options{Args: []string{"--slowlog-max-len", "100000"}})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	q := New(rdb, Options{Pipeline: true})
	const groups = 10000
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	sem := make(chan struct{}, 64)
	for g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, _, err := q.Join(ctx, fmt.Sprintf("g%05d", g), []string{"alice"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slowest := func(f func()) int64 {
		rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0")
		rdb.SlowLogReset(ctx)
		f()
		rdb.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
		logs, err := rdb.SlowLogGet(ctx, -1).Result()
		if err != nil {
			b.Fatal(err)
		}
		var longest int64
		for _, l := range logs {
			longest = max(longest, l.Duration.Microseconds())
		}
		return longest
	}
	var pageUs, msgUs int64
	b.ResetTimer()
	for i := range b.N {
		pageUs = max(pageUs, slowest(func() {
			p, err := q.GroupsOf(ctx, "alice", fmt.Sprintf("g%05d", (i*1000)%groups), 1000)
			if err != nil || p.Total != groups {
				b.Fatalf("GroupsOf = %d of %d, %v", len(p.Names), p.Total, err)
			}
		}))
		msgUs = max(msgUs, slowest(func() {
			pub, err := q.Publish(ctx, message.Batch{Messages: []message.Message{{To: "alice", Data: message.EncodeText("x")}}})
			if err == nil {
				_, err = q.Ack(ctx, "alice", message.Cursor{ID: pub.Receipts[0].ID})
			}
			if err != nil {
				b.Fatal(err)
			}
		}))
	}
	b.ReportMetric(float64(pageUs), "page-longest-µs")
	b.ReportMetric(float64(msgUs), "message-longest-µs")
}
