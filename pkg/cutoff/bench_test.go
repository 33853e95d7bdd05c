package cutoff_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/cutoff"
)

// BenchmarkCheck is what the token check costs Redis per poll, on a real
// redis-server, when polls arrive one at a time (serial) and when many
// are checked at once (parallel: 64 goroutines a CPU, as a loaded node's
// re-polls). It reports the commands Redis ran per check.
func BenchmarkCheck(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			rs := redisserver.Start(b, redisserver.Options{})
			rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 64})
			b.Cleanup(func() { _ = rdb.Close() })
			c := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel})
			exp := time.Now().Add(time.Hour)
			calls0, err := bench.RedisCommands(rs.Addr)
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			check := func() {
				if err := c.Check(ctx, "c"+strconv.FormatInt(n.Add(1)%1000, 10), exp); err != nil {
					b.Error(err)
				}
			}
			b.ResetTimer()
			if parallel {
				b.SetParallelism(64)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						check()
					}
				})
			} else {
				for range b.N {
					check()
				}
			}
			b.StopTimer()
			calls1, err := bench.RedisCommands(rs.Addr)
			if err != nil {
				b.Fatal(err)
			}
			var calls int64
			for _, v := range bench.CallsDelta(calls0, calls1) {
				calls += v
			}
			b.ReportMetric(float64(calls)/float64(b.N), "cmds/check")
		})
	}
}
