// Package poll answers a browser's long-poll: read the client's queue, and
// if nothing is there, wait for a wake-up, the poll timeout, the browser
// leaving, or the node draining.
//
// A Poller holds no client state beyond the polls it is holding; every
// message lives in the Queue. It is safe for concurrent use.
package poll

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
)

// Queue reads a client's messages; *queue.Queue implements it.
type Queue interface {
	// Read acknowledges everything up to since and returns what follows,
	// without blocking.
	Read(ctx context.Context, client string, since message.Cursor, limit int) (message.Page, error)
	// ReadAfter acknowledges up to ack and returns what follows after,
	// without blocking.
	ReadAfter(ctx context.Context, client string, ack message.Cursor, after uint64, limit int) (message.Page, error)
}

// Notifier wakes polls when their client's queue changes.
type Notifier interface {
	// Watch returns once wake-ups for client are guaranteed to arrive.
	Watch(ctx context.Context, client string) (Watcher, error)
}

// Watcher is one poll's subscription to its client's wake-ups.
type Watcher interface {
	// Woken receives after each wake-up (coalesced).
	Woken() <-chan struct{}
	// Stop releases the subscription.
	Stop()
}

// Errors a Poll may return besides its context's and the Queue's.
var (
	// ErrUnavailable: Redis could not be reached; retry soon elsewhere.
	ErrUnavailable = errors.New("poll: backend unavailable")
	// ErrOverloaded: this node holds its maximum of polls.
	ErrOverloaded = errors.New("poll: node holds its maximum of polls")
	// ErrTooManyPolls: this client already holds its maximum of polls on
	// this node.
	ErrTooManyPolls = errors.New("poll: too many polls for this client")
)

// Options tunes a Poller. The zero value is ready to use.
type Options struct {
	// Timeout bounds one wait; each poll's is jittered down by up to 10%
	// so that re-polls spread out. Default: 25s.
	Timeout time.Duration
	// Limit is the most messages one answer carries. Default: 100.
	Limit int
	// SubscribeTimeout bounds the wait for a wake-up subscription.
	// Default: 5s.
	SubscribeTimeout time.Duration
	// ReadTimeout bounds one read of the queue. Default: 5s.
	ReadTimeout time.Duration
	// DrainSpread is the window over which held polls are answered when
	// the node drains. Default: 3s.
	DrainSpread time.Duration
	// MaxHeld bounds the polls this node holds at once. 0: no bound.
	MaxHeld int
	// MaxPerClient bounds the polls one client holds on this node at
	// once. 0: no bound.
	MaxPerClient int
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 25 * time.Second
	}
	if o.Limit <= 0 {
		o.Limit = 100
	}
	if o.SubscribeTimeout <= 0 {
		o.SubscribeTimeout = 5 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.DrainSpread <= 0 {
		o.DrainSpread = 3 * time.Second
	}
	return o
}

// Poller holds long-polls.
type Poller struct {
	q    Queue
	n    Notifier
	m    *metrics.Metrics
	opts Options

	held      atomic.Int64
	mu        sync.Mutex
	perClient map[string]int

	drainOnce sync.Once
	draining  chan struct{}
}

// New returns a Poller.
func New(q Queue, n Notifier, m *metrics.Metrics, opts Options) *Poller {
	return &Poller{
		q:         q,
		n:         n,
		m:         m,
		opts:      opts.withDefaults(),
		perClient: make(map[string]int),
		draining:  make(chan struct{}),
	}
}

// Result is a poll's answer.
type Result struct {
	message.Page
	// Outcome is one of the metrics.Outcome* values.
	Outcome string
}

// Poll answers one long-poll by client at since. It returns at once when
// messages, a gap or a reset are waiting; otherwise it waits for them
// until the timeout (an empty Page, Outcome timeout), the node drains (an
// empty Page, Outcome drained) or ctx ends (ctx's error).
func (p *Poller) Poll(ctx context.Context, client string, since message.Cursor) (res Result, err error) {
	release, err := p.admit(client)
	if err != nil {
		return Result{}, err
	}
	defer release()
	done := p.m.PollStarted()
	defer func() { done(res.Outcome) }()

	subCtx, cancel := context.WithTimeout(ctx, p.opts.SubscribeTimeout)
	w, err := p.n.Watch(subCtx, client) // subscribe first: no lost wake-ups
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Result{Outcome: metrics.OutcomeGone}, ctx.Err()
		}
		p.m.RedisError("subscribe")
		return Result{Outcome: metrics.OutcomeError}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer w.Stop()

	page, err := p.read(ctx, client, since)
	if err != nil || page.Settled() || p.Draining() {
		return p.result(ctx, page, err)
	}

	timer := time.NewTimer(jitterDown(p.opts.Timeout, 0.1))
	defer timer.Stop()
	drain := p.draining
	var drainTimer <-chan time.Time
	for {
		select {
		case <-w.Woken():
			page, err = p.read(ctx, client, since)
			if err != nil || page.Settled() {
				return p.result(ctx, page, err)
			}
		case <-timer.C:
			return Result{Page: page, Outcome: metrics.OutcomeTimeout}, nil
		case <-ctx.Done():
			return Result{Outcome: metrics.OutcomeGone}, ctx.Err()
		case <-drain:
			// Answer at a random moment within the spread, so that the
			// browsers' re-polls reach the other nodes without a stampede.
			drain = nil
			drainTimer = time.After(rand.N(p.opts.DrainSpread))
		case <-drainTimer:
			return Result{Page: page, Outcome: metrics.OutcomeDrained}, nil
		}
	}
}

func (p *Poller) read(ctx context.Context, client string, since message.Cursor) (message.Page, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadTimeout)
	defer cancel()
	return p.q.Read(ctx, client, since, p.opts.Limit)
}

func (p *Poller) result(ctx context.Context, page message.Page, err error) (Result, error) {
	switch {
	case err != nil && ctx.Err() != nil:
		return Result{Outcome: metrics.OutcomeGone}, ctx.Err()
	case err != nil:
		p.m.RedisError("read")
		return Result{Outcome: metrics.OutcomeError}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case page.Settled():
		return Result{Page: page, Outcome: metrics.OutcomeMessages}, nil
	default:
		return Result{Page: page, Outcome: metrics.OutcomeDrained}, nil
	}
}

// Stream feeds one long-lived stream (server-sent events) of client from
// since, until ctx ends or the node drains (both return nil) or emit or
// Redis fails.
//
// emit is called first with the stream's opening page, settled or not;
// then with every settled page (messages, a gap or a reset) as soon as it
// is read; and with an empty page every heartbeat. Messages sent are not
// acknowledged: the browser acknowledges them with its next connection's
// cursor or an explicit ack (see queue.Ack). An error before the first
// emit means the stream was never opened (a limit, or Redis).
func (p *Poller) Stream(ctx context.Context, client string, since message.Cursor, heartbeat time.Duration, emit func(message.Page) error) error {
	release, err := p.admit(client)
	if err != nil {
		return err
	}
	defer release()
	defer p.m.StreamOpened()()

	subCtx, cancel := context.WithTimeout(ctx, p.opts.SubscribeTimeout)
	w, err := p.n.Watch(subCtx, client)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.m.RedisError("subscribe")
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer w.Stop()

	ack, after := since, since.ID
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	drain := p.draining
	var drainTimer <-chan time.Time
	for opened := false; ; {
		readCtx, cancel := context.WithTimeout(ctx, p.opts.ReadTimeout)
		page, err := p.q.ReadAfter(readCtx, client, ack, after, p.opts.Limit)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.m.RedisError("read")
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !opened || page.Settled() {
			opened = true
			if err := emit(page); err != nil {
				return err
			}
			if page.Reset { // continue in the new epoch; nothing to acknowledge there yet
				ack = message.Cursor{Epoch: page.Next.Epoch}
			}
			after = page.Next.ID
			if len(page.Messages) == p.opts.Limit {
				continue // more are waiting
			}
		}
	wait:
		for {
			select {
			case <-w.Woken():
				break wait
			case <-tick.C:
				if err := emit(message.Page{Next: message.Cursor{Epoch: page.Next.Epoch, ID: after}}); err != nil {
					return err
				}
			case <-ctx.Done():
				return nil
			case <-drain:
				drain = nil
				drainTimer = time.After(rand.N(p.opts.DrainSpread))
			case <-drainTimer:
				return nil
			}
		}
	}
}

// admit applies the node's and the client's poll limits.
func (p *Poller) admit(client string) (release func(), err error) {
	if max := p.opts.MaxHeld; max > 0 && p.held.Load() >= int64(max) {
		p.m.LimitRejected("polls_per_node")
		return nil, ErrOverloaded
	}
	p.mu.Lock()
	if max := p.opts.MaxPerClient; max > 0 && p.perClient[client] >= max {
		p.mu.Unlock()
		p.m.LimitRejected("polls_per_client")
		return nil, ErrTooManyPolls
	}
	p.perClient[client]++
	p.mu.Unlock()
	p.held.Add(1)
	return func() {
		p.held.Add(-1)
		p.mu.Lock()
		if p.perClient[client]--; p.perClient[client] <= 0 {
			delete(p.perClient, client)
		}
		p.mu.Unlock()
	}, nil
}

// Held returns how many polls are being answered right now.
func (p *Poller) Held() int { return int(p.held.Load()) }

// Drain makes every held poll answer with what it has within
// Options.DrainSpread, and every new poll answer at once. It is safe to
// call more than once.
func (p *Poller) Drain() {
	p.drainOnce.Do(func() { close(p.draining) })
}

// Draining reports whether Drain was called.
func (p *Poller) Draining() bool {
	select {
	case <-p.draining:
		return true
	default:
		return false
	}
}

// jitterDown returns d reduced by a random fraction of up to frac.
func jitterDown(d time.Duration, frac float64) time.Duration {
	return d - time.Duration(rand.Float64()*frac*float64(d))
}
