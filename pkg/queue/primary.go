package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Which Redis primary a publish writes to.
//
// Redis replicates asynchronously: a primary that a failover replaced
// may have handed out ids its successor never received, and the
// successor then hands the same ids out again. So that no cursor a
// browser holds can silently point past what the queue holds, every
// enqueue carries the term of the primary it is meant for (its
// master_replid, which a promoted replica and a restarted server each
// get anew), and enqueue.lua gives a sequence a new epoch when the term
// it stored differs (read.lua keeps the old epoch's cursors valid up to
// where that epoch ended).
//
// A term is only as good as its match with the server that runs the
// script: a publish that took the old term and then found a connection
// to the new primary would continue the old epoch there. So a new term
// is adopted only while no publish is under way: until the publishes
// that took the old one are done, connections to the new primary are
// refused (Learned fails) and new publishes wait.
//
// A Primary also fences publishes while a failover is under way (see
// Fence): a primary about to be replaced accepts writes its successor
// never gets.

// ErrNewPrimary: a connection reached a primary with another term while
// publishes under the old one were still under way; it was refused.
var ErrNewPrimary = errors.New("queue: a new Redis primary; switching over")

// Primary tracks the term of the Redis primary that publishes write to
// and holds them while it changes. Its zero value is not usable; use
// NewPrimary. It is safe for concurrent use.
type Primary struct {
	mu       sync.Mutex
	term     string
	pending  string        // a new term, adopted when inflight reaches 0
	inflight int           // publishes under way with term
	fenced   time.Time     // publishes wait until then, or until Unfence
	changed  chan struct{} // closed (and replaced) when waiters may go on
}

// NewPrimary returns a Primary that knows no term yet.
func NewPrimary() *Primary {
	return &Primary{changed: make(chan struct{})}
}

// broadcastLocked wakes every publish waiting to enter.
func (p *Primary) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Term returns the current term ("" before any was learned).
func (p *Primary) Term() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.term
}

// Learned is told the term of the server a new connection reached. It
// returns ErrNewPrimary, and the connection must not be used, when the
// term is new while publishes under the old one are under way: they
// must not reach the new primary with the old term. The new term is
// adopted when they are done; until then new publishes wait.
func (p *Primary) Learned(term string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case term == p.term && p.pending == "":
		return nil
	case p.inflight == 0:
		p.term, p.pending = term, ""
		p.broadcastLocked()
		return nil
	}
	p.pending = term
	return fmt.Errorf("%w: term %.8s after %.8s, %d publishes under the old one", ErrNewPrimary, term, p.term, p.inflight)
}

// Fence makes publishes wait until Unfence, or until the moment until,
// whichever comes first: a failover has begun, and until the node's
// connections are on the new primary, a write could reach the old one
// after its replica was promoted, and be lost. A later Fence extends an
// earlier one.
func (p *Primary) Fence(until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until.After(p.fenced) {
		p.fenced = until
	}
}

// Unfence lets waiting publishes go on.
func (p *Primary) Unfence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fenced.IsZero() {
		p.fenced = time.Time{}
		p.broadcastLocked()
	}
}

// Fenced reports whether publishes are held now.
func (p *Primary) Fenced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.fenced)
}

// enter waits until publishes may go, then counts one under way and
// returns the term it writes with. The caller must call leave.
func (p *Primary) enter(ctx context.Context) (string, error) {
	p.mu.Lock()
	for {
		wait := time.Until(p.fenced)
		if p.pending == "" && wait <= 0 {
			p.inflight++
			term := p.term
			p.mu.Unlock()
			return term, nil
		}
		changed := p.changed
		p.mu.Unlock()
		var expired <-chan time.Time
		var t *time.Timer
		if wait > 0 {
			t = time.NewTimer(wait)
			expired = t.C
		}
		select {
		case <-changed:
		case <-expired:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("queue: held while the Redis primary changes: %w", err)
		}
		p.mu.Lock()
	}
}

// leave ends a publish that enter let in.
func (p *Primary) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	if p.inflight == 0 && p.pending != "" {
		p.term, p.pending = p.pending, ""
		p.broadcastLocked()
	}
}
