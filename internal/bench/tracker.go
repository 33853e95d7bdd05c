package bench

import (
	"math/bits"
	"slices"
	"sync"
)

// seqSet is a growable bitset of sequence numbers >= 1.
type seqSet []uint64

func (s *seqSet) set(seq uint64) (was bool) {
	i, b := (seq-1)/64, uint64(1)<<((seq-1)%64)
	for uint64(len(*s)) <= i {
		*s = append(*s, 0)
	}
	was = (*s)[i]&b != 0
	(*s)[i] |= b
	return was
}

// Tracker accounts, for one subscriber, which sequence numbers were
// acknowledged by a publish and which were received, so lost, duplicated
// and unexpected messages can be counted exactly. Safe for concurrent use
// by the subscriber and the publishers.
type Tracker struct {
	mu       sync.Mutex
	acked    seqSet
	received seqSet
	dups     uint64
}

// Acked records that the publish of seq was acknowledged by the server.
func (t *Tracker) Acked(seq uint64) {
	if seq == 0 {
		return
	}
	t.mu.Lock()
	t.acked.set(seq)
	t.mu.Unlock()
}

// Received records a delivery of seq and reports whether it is a
// duplicate (seq was received before).
func (t *Tracker) Received(seq uint64) (dup bool) {
	if seq == 0 {
		return false
	}
	t.mu.Lock()
	dup = t.received.set(seq)
	if dup {
		t.dups++
	}
	t.mu.Unlock()
	return dup
}

// Lossy describes a subscriber's losses: the first acknowledged sequence
// number it did not receive (0: none) and the highest it received. A
// subscriber that received nothing after its first loss is stalled (its
// poll was never answered again); otherwise it skipped messages.
func (t *Tracker) Lossy() (firstLost, maxReceived uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, a := range t.acked {
		var r uint64
		if i < len(t.received) {
			r = t.received[i]
		}
		if m := a &^ r; m != 0 {
			firstLost = uint64(i)*64 + uint64(bits.TrailingZeros64(m)) + 1
			break
		}
	}
	for i := len(t.received) - 1; i >= 0; i-- {
		if w := t.received[i]; w != 0 {
			maxReceived = uint64(i)*64 + uint64(bits.Len64(w))
			break
		}
	}
	return firstLost, maxReceived
}

// Counts returns: acknowledged messages not (yet) received (lost, once
// delivery had time to finish), received messages never acknowledged
// (extra: e.g. a publish that failed on the wire but was enqueued), and
// duplicate deliveries.
func (t *Tracker) Counts() (lost, extra, dups uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := max(len(t.acked), len(t.received))
	for i := range n {
		var a, r uint64
		if i < len(t.acked) {
			a = t.acked[i]
		}
		if i < len(t.received) {
			r = t.received[i]
		}
		lost += uint64(bits.OnesCount64(a &^ r))
		extra += uint64(bits.OnesCount64(r &^ a))
	}
	return lost, extra, t.dups
}

// ForEach calls fn for every sequence number acknowledged or received,
// in order.
func (t *Tracker) ForEach(fn func(seq uint64, acked, received bool)) {
	t.mu.Lock()
	acked, received := slices.Clone(t.acked), slices.Clone(t.received)
	t.mu.Unlock()
	for i := range max(len(acked), len(received)) {
		var a, r uint64
		if i < len(acked) {
			a = acked[i]
		}
		if i < len(received) {
			r = received[i]
		}
		for w := a | r; w != 0; w &= w - 1 {
			b := bits.TrailingZeros64(w)
			fn(uint64(i)*64+uint64(b)+1, a&(1<<b) != 0, r&(1<<b) != 0)
		}
	}
}
