package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets durations in nanoseconds on a log scale with 64
// sub-buckets per power of two (HDR-like), so any reported percentile is
// within 1/64 (about 1.6 %) of the true value. Record is lock-free and safe
// from many goroutines.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

const (
	subBits     = 6
	subCount    = 1 << subBits // 64
	histMaxExp  = 40           // 2^40 ns ≈ 18 min; longer values are clamped
	histBuckets = subCount * (histMaxExp - subBits + 2)
)

// bucketOf maps v >= 0 to its bucket index.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2*subCount {
		return int(u) // exact below 128 ns
	}
	e := bits.Len64(u) - subBits - 1 // u>>e is in [64, 128)
	idx := (e+1)*subCount + int(u>>uint(e)) - subCount
	if idx >= histBuckets {
		return histBuckets - 1
	}
	return idx
}

// bucketValue is a representative (middle) value of bucket idx.
func bucketValue(idx int) int64 {
	if idx < 2*subCount {
		return int64(idx)
	}
	e := idx/subCount - 1
	m := idx%subCount + subCount
	lo := int64(m) << uint(e)
	return lo + (int64(1)<<uint(e))/2
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Snapshot copies the histogram's current state.
func (h *Histogram) Snapshot() *HistSnapshot {
	s := &HistSnapshot{Counts: make([]uint64, histBuckets), Max: h.max.Load()}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	return s
}

// HistSnapshot is an immutable copy of a Histogram; it can be merged and
// subtracted (for per-interval views) and encoded sparsely in JSON.
type HistSnapshot struct {
	Counts []uint64
	Max    int64 // ns
}

// Total is the number of observations.
func (s *HistSnapshot) Total() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Quantile returns the value below which a fraction q of observations lie
// (q in [0,1]); 0 with no observations. The top quantile is capped at Max.
func (s *HistSnapshot) Quantile(q float64) time.Duration {
	total := s.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			v := bucketValue(i)
			if s.Max > 0 && v > s.Max {
				v = s.Max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(s.Max)
}

// Sub returns s minus an earlier snapshot of the same histogram (Max is
// s's: a lifetime maximum).
func (s *HistSnapshot) Sub(prev *HistSnapshot) *HistSnapshot {
	out := &HistSnapshot{Counts: make([]uint64, len(s.Counts)), Max: s.Max}
	for i := range s.Counts {
		out.Counts[i] = s.Counts[i]
		if prev != nil && i < len(prev.Counts) {
			out.Counts[i] -= prev.Counts[i]
		}
	}
	return out
}

// Merge adds o into s.
func (s *HistSnapshot) Merge(o *HistSnapshot) {
	if o == nil {
		return
	}
	if len(s.Counts) < len(o.Counts) {
		c := make([]uint64, len(o.Counts))
		copy(c, s.Counts)
		s.Counts = c
	}
	for i, c := range o.Counts {
		s.Counts[i] += c
	}
	s.Max = max(s.Max, o.Max)
}

// Sparse is the JSON form of a snapshot: [bucket, count] pairs.
type Sparse struct {
	Buckets [][2]uint64 `json:"buckets"`
	MaxNs   int64       `json:"max_ns"`
}

// Sparse encodes s.
func (s *HistSnapshot) Sparse() Sparse {
	sp := Sparse{MaxNs: s.Max, Buckets: [][2]uint64{}}
	for i, c := range s.Counts {
		if c != 0 {
			sp.Buckets = append(sp.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return sp
}

// Snapshot decodes sp.
func (sp Sparse) Snapshot() *HistSnapshot {
	s := &HistSnapshot{Counts: make([]uint64, histBuckets), Max: sp.MaxNs}
	for _, b := range sp.Buckets {
		if b[0] < histBuckets {
			s.Counts[b[0]] += b[1]
		}
	}
	return s
}

// Percentiles summarises a snapshot in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Percentiles returns p50/p90/p99/max of s.
func (s *HistSnapshot) Percentiles() Percentiles {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Percentiles{
		Count: s.Total(),
		P50:   ms(s.Quantile(0.50)),
		P90:   ms(s.Quantile(0.90)),
		P99:   ms(s.Quantile(0.99)),
		Max:   ms(time.Duration(s.Max)),
	}
}
