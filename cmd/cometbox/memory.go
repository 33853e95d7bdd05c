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
// sits still: every poll waits, little allocates, so no garbage
// collection runs for a long while, and the burst's garbage, its freed
// pages and the grown stacks of the goroutines that parked stay resident.
// Every interval this looks at how much was allocated and how far the
// heap is from the runtime's next collection. The node is quiet when, at
// that rate, the next collection is more than quietHorizon intervals
// away; on the first quiet interval after a busy one, or on a quiet one
// when many free pages are not yet returned, it collects and returns them
// at once (debug.FreeOSMemory, about as costly as one normal collection).
// A collection also halves the stacks of goroutines that use under a
// quarter of theirs, and a parked poll's goroutine keeps the stack its
// last request grew (with 10,000 held after a load phase: 6.5 kB on
// average, where waiting needs 2), so it first collects until the stacks
// stop shrinking, at most 4 times. Under load, even light load whose
// collections come within the horizon, it does nothing: the runtime's own
// pacing and scavenger are right, and a forced collection (0.1 to 0.4 s
// of CPU with 10,000 held) would only take from the polls it serves.
func returnMemory(ctx context.Context, log *slog.Logger, interval time.Duration, threshold uint64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},              // allocated since start
		{Name: "/memory/classes/heap/free:bytes"},    // free pages not returned
		{Name: "/memory/classes/heap/objects:bytes"}, // live and not yet collected
		{Name: "/gc/heap/goal:bytes"},                // the heap size the next collection is to end at
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
		heap := heapState{
			allocs: samples[0].Value.Uint64(), free: samples[1].Value.Uint64(),
			objects: samples[2].Value.Uint64(), goal: samples[3].Value.Uint64(),
		}
		if settled, ok := r.next(heap); ok {
			start := time.Now()
			stacks := shrinkStacks(samples[4:])
			debug.FreeOSMemory()
			log.Debug("returned memory to the OS", "free_bytes", heap.free, "stack_bytes", stacks, "settled", settled, "took", time.Since(start))
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
	threshold  uint64 // free bytes worth returning
	lastAllocs uint64
	busy       bool // the last interval was busy
}

// heapState is what memoryReturner looks at, in bytes.
type heapState struct {
	allocs  uint64 // allocated since start
	free    uint64 // free pages not returned to the OS
	objects uint64 // heap objects, live or not yet collected
	goal    uint64 // the heap size the next collection is to end at (it starts before)
}

// quietHorizon is how many intervals away, at the current allocation
// rate, the runtime's next collection must be for a node to be quiet. At
// 1,000 msg/s a node with 10,000 held collects every 11 s by itself
// (it was taken for quiet, and forced 1 to 4 more every 20 to 30 s);
// idle, with only timed-out polls coming back, every few minutes.
const quietHorizon = 60

// unboundedGoal is a heap goal that means the runtime will not collect by
// itself: GOGC=off without a memory limit (the goal is then about 2^63).
const unboundedGoal = 1 << 62

// next takes an interval's heap state and reports whether to return
// memory now, and whether because a busy spell just settled.
func (r *memoryReturner) next(h heapState) (settled, ok bool) {
	allocated := h.allocs - r.lastAllocs
	r.lastAllocs = h.allocs
	quiet := r.quiet(allocated, h)
	settled = quiet && r.busy
	r.busy = !quiet
	return settled, quiet && (settled || h.free > r.threshold)
}

// quiet reports whether an interval that allocated so much leaves the
// runtime's next collection more than quietHorizon intervals away. When
// the runtime will not collect by itself, an interval is quiet when it
// allocated under a quarter of the threshold.
func (r *memoryReturner) quiet(allocated uint64, h heapState) bool {
	switch {
	case h.goal >= unboundedGoal:
		return allocated < r.threshold/4
	case allocated == 0:
		return true
	case h.goal <= h.objects:
		return false // a collection is due
	}
	return (h.goal-h.objects)/allocated > quietHorizon
}
