package main

import (
	"context"
	"log/slog"
	"runtime"
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
// busy one, or on a quiet one when many free pages are not yet returned,
// it collects and returns them at once (debug.FreeOSMemory, about as
// costly as one normal collection). A collection also halves the stacks
// of goroutines that use under a quarter of theirs, and a parked poll's
// goroutine keeps the stack its last request grew (with 10,000 held after
// a load phase: 6.5 kB on average, where waiting needs 2), so it first
// collects until the stacks stop shrinking, at most 4 times. Under load
// it does nothing: a forced collection then would only add to the latency
// of the polls it serves, and the runtime's own pacing and scavenger are
// right.
func returnMemory(ctx context.Context, log *slog.Logger, interval time.Duration, threshold uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},           // allocated since start
		{Name: "/memory/classes/heap/free:bytes"}, // free pages not returned
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	r := memoryReturner{threshold: threshold}
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
		if settled, ok := r.next(allocs, free); ok {
			start := time.Now()
			stacks := shrinkStacks(samples[2:])
			debug.FreeOSMemory()
			log.Debug("returned memory to the OS", "free_bytes", free, "stack_bytes", stacks, "settled", settled, "took", time.Since(start))
		}
	}
}

// shrinkStacks collects until the goroutine stacks (stacks, a sample of
// their bytes) shrink by less than a sixteenth, at most 4 times, and
// returns their final size.
func shrinkStacks(stacks []metrics.Sample) uint64 {
	metrics.Read(stacks)
	prev := stacks[0].Value.Uint64()
	for range 4 {
		runtime.GC()
		metrics.Read(stacks)
		now := stacks[0].Value.Uint64()
		if now > prev-prev/16 {
			return now
		}
		prev = now
	}
	return prev
}

// memoryReturner decides, one interval at a time, when to return memory.
type memoryReturner struct {
	threshold  uint64 // free bytes worth returning; a quarter of it allocated in an interval is busy
	lastAllocs uint64
	busy       bool // the last interval was busy
}

// next takes an interval's samples (bytes allocated since start, free
// pages not returned) and reports whether to return memory now, and
// whether because a busy spell just settled.
func (r *memoryReturner) next(allocs, free uint64) (settled, ok bool) {
	quiet := allocs-r.lastAllocs < r.threshold/4
	r.lastAllocs = allocs
	settled = quiet && r.busy
	r.busy = !quiet
	return settled, quiet && (settled || free > r.threshold)
}
