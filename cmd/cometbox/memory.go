package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnMemory keeps a node's resident size close to what its held polls
// need.
//
// A burst of polls (a reconnect storm, a deploy) runs thousands of them
// through their full HTTP handlers before they park. Afterwards the node
// sits still: every poll waits, nothing allocates, so no garbage
// collection runs, and the burst's garbage, its freed pages and the grown
// stacks of the goroutines that parked stay resident. Every interval this
// looks at how much was allocated; on the first quiet interval after a
// busy one, or when many free pages are not yet returned, it collects and
// returns them at once (debug.FreeOSMemory, about as costly as one normal
// collection). Under steady load it does nothing: the runtime's own
// pacing is right then.
func returnMemory(ctx context.Context, log *slog.Logger, interval time.Duration, threshold uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},           // allocated since start
		{Name: "/memory/classes/heap/free:bytes"}, // free pages not returned
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastAllocs uint64
	busy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(samples)
		for _, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return // an unknown metric: this runtime is not the one this was written for
			}
		}
		allocs, free := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		quiet := allocs-lastAllocs < threshold/4
		lastAllocs = allocs
		settled := quiet && busy // the first quiet interval after a busy one
		busy = !quiet
		if free > threshold || settled {
			start := time.Now()
			debug.FreeOSMemory()
			log.Debug("returned memory to the OS", "free_bytes", free, "settled", settled, "took", time.Since(start))
		}
	}
}
