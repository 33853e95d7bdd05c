package main

import "testing"

// Memory is returned when a busy spell settles, or when a quiet node has
// many free pages; never while the node is busy, however much is free (a
// forced collection under load only adds latency; it used to run then).
func TestMemoryReturner(t *testing.T) {
	const mb = 1 << 20
	r := memoryReturner{threshold: 32 * mb}
	var allocs uint64
	for i, step := range []struct {
		allocated, free uint64
		want            bool
	}{
		{0, 1 * mb, false},         // quiet from the start
		{100 * mb, 64 * mb, false}, // busy, much free
		{100 * mb, 64 * mb, false}, // still busy
		{1 * mb, 10 * mb, true},    // the first quiet interval after: settled
		{1 * mb, 10 * mb, false},   // quiet, little free
		{1 * mb, 40 * mb, true},    // quiet, much free
		{8 * mb, 40 * mb, false},   // a quarter of the threshold: busy
		{7 * mb, 40 * mb, true},    // quiet again
	} {
		allocs += step.allocated
		if _, got := r.next(allocs, step.free); got != step.want {
			t.Errorf("interval %d (allocated %d MiB, free %d MiB): return = %v; want %v",
				i, step.allocated/mb, step.free/mb, got, step.want)
		}
	}
}
