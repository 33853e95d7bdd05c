package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

// BenchmarkMessageInRedis is what one message costs Redis, on a real
// redis-server with the append-only file on: its enqueue script and the
// next poll's acknowledgement, for clients that already have a sequence
// (1,000 of them, in turn). Besides ns/op (two round trips, mostly the
// network), it reports from INFO what Redis did per message: the
// commands it ran (the scripts and those inside them) and the bytes
// appended to the AOF (which every replica receives too). Both are
// exact counts, unlike the scripts' time, which at one call at a time
// is mostly the machine's.
func BenchmarkMessageInRedis(b *testing.B) {
	ctx := context.Background()
	rs := redisserver.Start(b, redisserver.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "no"}})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	q := queue.New(rdb, queue.Options{})

	const clients = 1000
	payload := message.EncodeText(strings.Repeat("x", 48))
	cursors := make([]message.Cursor, clients)
	deliver := func(c int) {
		to := "c" + strconv.Itoa(c)
		pub, err := q.Publish(ctx, message.Batch{Messages: []message.Message{{To: to, Data: payload}}})
		if err != nil {
			b.Fatal(err)
		}
		cursors[c].ID = pub.Receipts[0].ID
		if _, err := q.Ack(ctx, to, cursors[c]); err != nil {
			b.Fatal(err)
		}
	}
	for c := range clients { // sequences exist before the timing starts
		deliver(c)
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	aof0 := infoInt(b, rdb, "persistence", "aof_current_size")

	b.ResetTimer()
	for i := range b.N {
		deliver(i % clients)
	}
	b.StopTimer()

	n := float64(b.N)
	b.ReportMetric(commandCalls(b, rdb)/n, "cmds/msg")
	b.ReportMetric(float64(infoInt(b, rdb, "persistence", "aof_current_size")-aof0)/n, "aof-B/msg")
}

// infoInt reads a numeric field of an INFO section.
func infoInt(b *testing.B, rdb *redis.Client, section, field string) int64 {
	b.Helper()
	v, err := strconv.ParseInt(infoField(b, rdb, section, field), 10, 64)
	if err != nil {
		b.Fatalf("INFO %s %s: %v", section, field, err)
	}
	return v
}

func infoField(b *testing.B, rdb *redis.Client, section, field string) string {
	b.Helper()
	text, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	b.Fatalf("INFO %s has no %s", section, field)
	return ""
}

// commandCalls sums the calls of INFO commandstats: scripts and the
// commands inside them alike, leaving out INFO, CONFIG, HELLO and CLIENT.
func commandCalls(b *testing.B, rdb *redis.Client) (calls float64) {
	b.Helper()
	text, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(text, "\r\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || name == "info" || name == "hello" || strings.HasPrefix(name, "config") || strings.HasPrefix(name, "client") {
			continue
		}
		var c float64
		if _, err := fmt.Sscanf(stats, "calls=%g,", &c); err != nil {
			b.Fatalf("commandstats line %q: %v", line, err)
		}
		calls += c
	}
	return calls
}
