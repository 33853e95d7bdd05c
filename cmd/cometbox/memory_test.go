package main

import (
	"math"
	"runtime/metrics"
	"sync"
	"testing"
)

// Memory is returned when a busy spell settles, or when a quiet node has
// many free pages; never while the node is busy, however much is free (a
// forced collection under load only adds latency; it used to run then).
// Busy is allocating fast enough that the runtime collects by itself
// within quietHorizon intervals: light load too (a node at 1,000 msg/s
// used to be taken for quiet, and collected every 20 to 30 s); with
// collection off, a quarter of the threshold a second.
func TestMemoryReturner(t *testing.T) {
	const mb = 1 << 20
	const off = math.MaxInt64 // the goal with GOGC=off and no memory limit
	r := memoryReturner{threshold: 32 * mb}
	var allocs uint64
	for i, step := range []struct {
		allocated, free, objects, goal uint64
		want                           bool
	}{
		{0, 1 * mb, 20 * mb, 100 * mb, false},         // quiet from the start
		{100 * mb, 64 * mb, 90 * mb, 100 * mb, false}, // busy, much free
		{100 * mb, 64 * mb, 90 * mb, 100 * mb, false}, // still busy
		{1 * mb, 10 * mb, 40 * mb, 150 * mb, true},    // the first quiet interval after: settled
		{1 * mb, 10 * mb, 40 * mb, 150 * mb, false},   // quiet, little free
		{1 * mb, 40 * mb, 40 * mb, 150 * mb, true},    // quiet, much free
		{8 * mb, 40 * mb, 50 * mb, 150 * mb, false},   // light load: the next collection is 13 intervals away
		{0, 40 * mb, 50 * mb, 150 * mb, true},         // nothing allocated: settled
		{2 * mb, 40 * mb, 50 * mb, 150 * mb, false},   // 50 intervals away: busy
		{1 * mb, 40 * mb, 160 * mb, 150 * mb, false},  // a collection is due now: busy
		{1 * mb, 40 * mb, 40 * mb, 150 * mb, true},    // 110 intervals away: settled
		{1 * mb, 40 * mb, 40 * mb, 100 * mb, false},   // 60 intervals away: busy
		{1 * mb, 40 * mb, 40 * mb, 101 * mb, true},    // 61: settled
		{100 * mb, 40 * mb, 50 * mb, off, false},      // collection off: busy by what it allocated
		{4 * mb, 40 * mb, 50 * mb, off, true},         // under a quarter of the threshold: settled
	} {
		allocs += step.allocated
		h := heapState{allocs: allocs, free: step.free, objects: step.objects, goal: step.goal}
		if _, got := r.next(h); got != step.want {
			t.Errorf("interval %d (allocated %d MiB, free %d MiB, %d MiB to the goal): return = %v; want %v",
				i, step.allocated/mb, step.free/mb, int64(step.goal-step.objects)/mb, got, step.want)
		}
	}
}

// Goroutines that wait with a stack grown by earlier work (as a parked
// poll's goroutine does after serving a re-poll) get it shrunk: one
// collection only halves a stack, so shrinkStacks collects until they
// stop shrinking.
func TestShrinkStacks(t *testing.T) {
	const waiters = 500
	release := make(chan struct{})
	var grown, done sync.WaitGroup
	grown.Add(waiters)
	done.Add(waiters)
	for range waiters {
		go func() {
			defer done.Done()
			growStack(200) // tens of kB of stack, then back to a shallow wait
			grown.Done()
			<-release
		}()
	}
	grown.Wait()
	defer func() { close(release); done.Wait() }()

	stacks := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(stacks)
	before := stacks[0].Value.Uint64()
	after := shrinkStacks(stacks)
	// Each waiter had at least 32 kB; shrunk by 4 halvings, 2 to 4 kB.
	if after > before/4 {
		t.Errorf("stacks %d kB before, %d kB after shrinkStacks; want a quarter or less", before>>10, after>>10)
	}
}

// growStack recurses depth times with a frame of over 100 bytes each.
//
//go:noinline
func growStack(depth int) byte {
	var pad [128]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return growStack(depth-1) + pad[depth%len(pad)]
}
