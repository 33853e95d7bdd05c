package bench

import (
	"slices"
	"sync"
	"time"
)

// Timeline records when things happened in a run, so that windows of it
// (a rolling restart, the baseline before it) can be told apart
// afterwards: when each message was sent, when each was first delivered
// and how late, duplicate deliveries, and empty poll answers with how
// long their poll was held. A Runner whose GenConfig.Timeline is set
// feeds it; it costs a few bytes per message and per empty answer.
// Safe for concurrent use.
type Timeline struct {
	mu         sync.Mutex
	sent       []int64 // by global message index: unix nanos, 0 unsent
	deliveries []delivery
	dups       []int64 // sent time of each duplicate delivery
	empties    []emptyAnswer
}

type delivery struct{ sent, took int64 }

type emptyAnswer struct{ at, held int64 }

func (tl *Timeline) noteSent(first, n uint64, at int64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for uint64(len(tl.sent)) < first+n {
		tl.sent = append(tl.sent, 0)
	}
	for i := first; i < first+n; i++ {
		tl.sent[i] = at
	}
}

func (tl *Timeline) noteDelivered(sent, now int64) {
	tl.mu.Lock()
	tl.deliveries = append(tl.deliveries, delivery{sent, now - sent})
	tl.mu.Unlock()
}

func (tl *Timeline) noteDup(sent int64) {
	tl.mu.Lock()
	tl.dups = append(tl.dups, sent)
	tl.mu.Unlock()
}

func (tl *Timeline) noteEmpty(at, held int64) {
	tl.mu.Lock()
	tl.empties = append(tl.empties, emptyAnswer{at, held})
	tl.mu.Unlock()
}

// sentAt is when message g was sent (0: never).
func (tl *Timeline) sentAt(g uint64) int64 {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if g >= uint64(len(tl.sent)) {
		return 0
	}
	return tl.sent[g]
}

// Window is what happened in one span of a run: messages by when they
// were sent, empty answers by when they came.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Published counts the messages sent in the window whose publish was
	// acknowledged; Lost those of them never delivered; Delivered the
	// first deliveries of messages sent in the window, Duplicated the
	// later ones.
	Published  uint64      `json:"published"`
	Delivered  uint64      `json:"delivered"`
	Lost       uint64      `json:"lost"`
	Duplicated uint64      `json:"duplicated"`
	Latency    Percentiles `json:"latency"`
	// Empty counts the poll answers without a message in the window;
	// Timeouts those of them held at least TimeoutAfter (the poll
	// timeout less its jitter), Instant those held under InstantUnder:
	// an empty answer at once invites an instant re-poll.
	Empty    uint64 `json:"empty"`
	Timeouts uint64 `json:"timeouts"`
	Instant  uint64 `json:"instant"`
}

// WindowOptions say how Windows classifies empty answers.
type WindowOptions struct {
	// TimeoutAfter: an empty answer to a poll held at least this long is
	// a timeout.
	TimeoutAfter time.Duration
	// InstantUnder: an empty answer to a poll held less than this is
	// instant. Default 500ms.
	InstantUnder time.Duration
}

// Windows summarises the run in each window [from, to). Call it after
// the Runner's last phase, with its Close'd accounting done: lost
// messages are those the Runner's trackers still miss.
func (r *Runner) Windows(spans [][2]time.Time, opts WindowOptions) []Window {
	tl := r.cfg.Timeline
	if tl == nil {
		return nil
	}
	if opts.InstantUnder <= 0 {
		opts.InstantUnder = 500 * time.Millisecond
	}
	out := make([]Window, len(spans))
	for i, s := range spans {
		out[i] = Window{From: s[0], To: s[1]}
	}
	// in calls fn for every window holding the moment at.
	in := func(at int64, fn func(w *Window)) {
		for i := range out {
			if at >= out[i].From.UnixNano() && at < out[i].To.UnixNano() {
				fn(&out[i])
			}
		}
	}
	n := r.busy()
	for _, s := range r.subs {
		s.tr.ForEach(func(seq uint64, acked, received bool) {
			if !acked {
				return
			}
			at := tl.sentAt((seq-1)*n + uint64(s.idx))
			in(at, func(w *Window) {
				w.Published++
				if !received {
					w.Lost++
				}
			})
		})
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	lat := make([][]int64, len(out))
	for _, d := range tl.deliveries {
		for i := range out {
			if d.sent >= out[i].From.UnixNano() && d.sent < out[i].To.UnixNano() {
				out[i].Delivered++
				lat[i] = append(lat[i], d.took)
			}
		}
	}
	for _, sent := range tl.dups {
		in(sent, func(w *Window) { w.Duplicated++ })
	}
	for _, e := range tl.empties {
		in(e.at, func(w *Window) {
			w.Empty++
			if opts.TimeoutAfter > 0 && e.held >= int64(opts.TimeoutAfter) {
				w.Timeouts++
			}
			if e.held < int64(opts.InstantUnder) {
				w.Instant++
			}
		})
	}
	for i, l := range lat {
		out[i].Latency = exactPercentiles(l)
	}
	return out
}

// exactPercentiles summarises nanosecond durations in milliseconds.
func exactPercentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	q := func(f float64) float64 { return float64(ns[min(len(ns)-1, int(f*float64(len(ns))))]) / 1e6 }
	return Percentiles{Count: uint64(len(ns)), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: float64(ns[len(ns)-1]) / 1e6}
}
