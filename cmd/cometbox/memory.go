package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnMemory gives free heap memory back to the operating system after
// a burst. A reconnect storm runs thousands of polls through their full
// HTTP handlers at once before they park; the Go runtime keeps the memory
// they used and returns it only slowly, so the node's resident size would
// stay at the burst's peak for minutes. Every interval, when more than
// threshold bytes of heap are free but not yet returned, this returns
// them at once (a forced GC, about as costly as one normal cycle).
func returnMemory(ctx context.Context, log *slog.Logger, interval time.Duration, threshold uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		if free := sample[0].Value.Uint64(); free > threshold {
			start := time.Now()
			debug.FreeOSMemory()
			log.Debug("returned free memory to the OS", "bytes", free, "took", time.Since(start))
		}
	}
}
