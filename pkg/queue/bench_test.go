package queue

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
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
func BenchmarkMessageInRedis(b *testing.B) { messageInRedis(b, false) }

// BenchmarkIdempotentMessageInRedis is BenchmarkMessageInRedis with an
// idempotency key on every publish: the record of the key is written
// too.
func BenchmarkIdempotentMessageInRedis(b *testing.B) { messageInRedis(b, true) }

func messageInRedis(b *testing.B, idempotent bool) {
	ctx := context.Background()
	rs := redisserver.Start(b, redisserver.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "no"}})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	// As on a node: every publish carries the primary's term.
	info, err := rs.Do("INFO", "replication")
	if err != nil {
		b.Fatal(err)
	}
	primary := NewPrimary()
	if err := primary.Learned(infoField(info, "master_replid")); err != nil || primary.Term() == "" {
		b.Fatalf("term %q: %v", primary.Term(), err)
	}
	q := New(rdb, Options{Primary: primary})

	const clients = 1000
	payload := message.EncodeText(strings.Repeat("x", 48))
	var n int // publishes so far: the idempotency keys
	deliver := func(c int) {
		to := "c" + strconv.Itoa(c)
		batch := message.Batch{Messages: []message.Message{{To: to, Data: payload}}}
		if idempotent {
			n++
			batch.IdempotencyKey = "k" + strconv.Itoa(n)
		}
		pub, err := q.Publish(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := q.Ack(ctx, to, message.Cursor{ID: pub.Receipts[0].ID}); err != nil {
			b.Fatal(err)
		}
	}
	for c := range clients { // sequences exist before the timing starts
		deliver(c)
	}
	calls0, aof0 := redisCounts(b, rs.Addr)

	b.ResetTimer()
	for i := range b.N {
		deliver(i % clients)
	}
	b.StopTimer()

	calls1, aof1 := redisCounts(b, rs.Addr)
	var calls int64
	for _, n := range bench.CallsDelta(calls0, calls1) {
		calls += n
	}
	b.ReportMetric(float64(calls)/float64(b.N), "cmds/msg")
	b.ReportMetric(float64(aof1-aof0)/float64(b.N), "aof-B/msg")
}

// redisCounts reads the command counters (INFO commandstats) and the AOF's
// size of the Redis at addr.
func redisCounts(b *testing.B, addr string) (calls map[string]int64, aofBytes int64) {
	b.Helper()
	calls, err := bench.RedisCommands(addr)
	if err != nil {
		b.Fatal(err)
	}
	info, err := bench.RedisInfo(addr, "persistence")
	if err != nil {
		b.Fatal(err)
	}
	if aofBytes, err = strconv.ParseInt(infoField(info, "aof_current_size"), 10, 64); err != nil {
		b.Fatalf("INFO persistence aof_current_size: %v", err)
	}
	return calls, aofBytes
}
