// Package poll answers a browser's long-poll: read the client's queue, and
// if nothing is there, wait for a wake-up, the poll timeout, the browser
// leaving, or the node draining.
//
// Waiting comes in two shapes. Poll blocks its caller until the answer
// is ready: simple, one goroutine per poll. Hold returns at once with a
// *Held when the poll must wait, and leaves the waiting to the caller,
// which is told of wake-ups and of the drain by callbacks; package
// httpapi uses it to park a held poll on a tiny goroutine instead of a
// whole HTTP handler. Stream feeds a server-sent event stream.
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
	// DecodeWake returns the page a Read at since would, when a wake-up's
	// payload carries exactly the messages that follow since.
	DecodeWake(payload string, since message.Cursor, limit int) (message.Page, bool)
	// WakeEnd returns the cursor of the last message a wake-up's payload
	// announces, when it can tell.
	WakeEnd(payload string) (message.Cursor, bool)
	// AckSoon acknowledges up to ack without waiting for Redis, and calls
	// onReset if ack turns out not to be from the client's sequence.
	AckSoon(client string, ack message.Cursor, onReset func())
}

// Presence is told when a client's polls and streams begin and end on
// this node; *presence.Presence implements it. Both must return at once.
type Presence interface {
	Begin(client string)
	End(client string)
}

// Subscribe subscribes to client's wake-ups and returns once they are
// guaranteed to arrive, or fails after waiting wait for that (when above
// 0); from then on wake is called after each change to
// client's queue, with the wake-up's payload (empty when the queue must be
// read), until stop is called. wake must return at once. latest, when not
// empty, is the payload of a wake-up that came earlier, after which every
// change to the queue has a wake-up still to come to wake.
// (*notify.Notifier).Watch is one.
type Subscribe func(ctx context.Context, client string, wait time.Duration, wake func(payload string)) (stop func(), latest string, err error)

// Errors a poll may return besides its context's and the Queue's.
var (
	// ErrUnavailable: Redis could not be reached; retry soon elsewhere.
	ErrUnavailable = errors.New("poll: backend unavailable")
	// ErrOverloaded: this node holds its maximum of polls.
	ErrOverloaded = errors.New("poll: node holds its maximum of polls")
	// ErrTooManyPolls: this client already holds its maximum of polls on
	// this node.
	ErrTooManyPolls = errors.New("poll: too many polls for this client")
)

// checkKey is the context key of a check (WithCheck).
type checkKey struct{}

// WithCheck returns a copy of ctx with which Hold, Poll and Stream call
// check once the client's wake-up subscription is confirmed, before they
// read anything; an error from it ends the poll or stream with that
// error (counted as refused, or as an error when it wraps
// ErrUnavailable). A check that reads something written together with a wake-up
// (a disconnect that revokes the client's tokens, package cutoff) then
// either sees it, or the poll or stream is subscribed in time to be
// woken by it: nothing slips between the two.
func WithCheck(ctx context.Context, check func(context.Context) error) context.Context {
	return context.WithValue(ctx, checkKey{}, check)
}

// runCheck runs the check ctx carries, if any.
func runCheck(ctx context.Context) error {
	if check, ok := ctx.Value(checkKey{}).(func(context.Context) error); ok {
		return check(ctx)
	}
	return nil
}

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
	// Refresh is how often a quiet stream reads its queue all the same
	// (jittered down by up to 10%): reading refreshes the expiry of the
	// client's keys, which would otherwise run out while a stream stays
	// open with nothing to send. Keep it well under the queue's TTL (the
	// node uses an eighth of it). Default: 3h.
	Refresh time.Duration
	// Presence, when set, is told of every poll and stream as it begins
	// and ends. Default: none.
	Presence Presence
	// Disconnects, when set, recognises the wake-up payload that ends a
	// client's polls and streams on every node (package cutoff writes
	// it): a held poll is answered with its empty page, a stream ends.
	// Default: none.
	Disconnects func(payload string) bool
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
	if o.Refresh <= 0 {
		o.Refresh = 3 * time.Hour
	}
	return o
}

// Poller holds long-polls.
type Poller struct {
	q         Queue
	subscribe Subscribe
	m         *metrics.Metrics
	opts      Options

	held      atomic.Int64
	mu        sync.Mutex
	perClient map[string]int
	holding   map[*Held]struct{} // polls waiting through Hold, told of a drain
	draining  chan struct{}
	drainOnce sync.Once
	drainEnd  atomic.Int64 // unix nanos: the end of the drain spread
}

// New returns a Poller.
func New(q Queue, subscribe Subscribe, m *metrics.Metrics, opts Options) *Poller {
	return &Poller{
		q:         q,
		subscribe: subscribe,
		m:         m,
		opts:      opts.withDefaults(),
		perClient: make(map[string]int),
		holding:   make(map[*Held]struct{}),
		draining:  make(chan struct{}),
	}
}

// Result is a poll's answer.
type Result struct {
	message.Page
	// Outcome is one of the metrics.Outcome* values.
	Outcome string
}

// Held is a poll that must wait: nothing was queued after its cursor when
// it was read. Its holder waits for a wake-up (then calls Recheck), for
// Deadline (the poll timeout) or for the drain callback, and ends it with
// Finish.
type Held struct {
	p        *Poller
	client   string
	since    message.Cursor
	page     message.Page // the last read
	deadline time.Time
	stop     func()       // the wake-up subscription
	wake     func(string) // what the subscription calls
	release  func()       // the admission
	done     func(string) // the metrics
	onDrain  func(at time.Time)
	drained  sync.Once
	finished atomic.Bool
}

// Hold begins a poll by client at since: it applies the limits,
// subscribes to wake-ups (calling wake after each, which must return at
// once), and reads the queue. When the answer is ready (messages, a gap,
// a reset, or the node draining) it returns it and a nil *Held.
// Otherwise it returns a *Held, which the caller must Finish.
func (p *Poller) Hold(ctx context.Context, client string, since message.Cursor, wake func(payload string)) (Result, *Held, error) {
	if err := ctx.Err(); err != nil { // gone already: hold nothing for it
		return Result{Outcome: metrics.OutcomeGone}, nil, err
	}
	release, err := p.admit(client)
	if err != nil {
		return Result{}, nil, err
	}
	h := &Held{p: p, client: client, since: since, wake: wake, release: release, done: p.m.PollStarted()}
	h.deadline = time.Now().Add(jitterDown(p.opts.Timeout, 0.1))

	var latest string
	h.stop, latest, err = p.subscribe(ctx, client, p.opts.SubscribeTimeout, wake) // subscribe first: no lost wake-ups
	if err != nil {
		if ctx.Err() != nil {
			h.Finish(metrics.OutcomeGone)
			return Result{Outcome: metrics.OutcomeGone}, nil, ctx.Err()
		}
		p.m.RedisError("subscribe")
		h.Finish(metrics.OutcomeError)
		return Result{Outcome: metrics.OutcomeError}, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := runCheck(ctx); err != nil {
		outcome := metrics.OutcomeRefused
		if errors.Is(err, ErrUnavailable) {
			outcome = metrics.OutcomeError
		}
		h.Finish(outcome)
		return Result{Outcome: outcome}, nil, err
	}

	var res Result
	if p.caughtUp(latest, since) {
		// The browser has what the latest wake-up announced, and anything
		// enqueued since has a wake-up on its way: wait for it without
		// reading the queue, and acknowledge in the background. Should the
		// sequence have gone meanwhile (a flush), the acknowledgement says
		// so, and the poll reads, to answer the reset at once.
		p.q.AckSoon(client, since, h.rewake)
		h.page = message.Page{Next: since}
		res = h.Empty(metrics.OutcomeTimeout)
	} else {
		var settled bool
		res, settled, err = h.Recheck(ctx)
		if err != nil || settled {
			h.Finish(res.Outcome)
			return res, nil, err
		}
	}
	p.mu.Lock()
	p.holding[h] = struct{}{}
	p.mu.Unlock()
	return res, h, nil
}

// rewake makes the poll read its queue, unless it has finished: under the
// Poller's lock, so that Finish, which takes it, cannot have handed the
// poll's connection on meanwhile.
func (h *Held) rewake() {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if !h.finished.Load() {
		h.wake("")
	}
}

// caughtUp reports whether since is the last message announced by the
// wake-up payload latest.
func (p *Poller) caughtUp(latest string, since message.Cursor) bool {
	if latest == "" {
		return false
	}
	end, ok := p.q.WakeEnd(latest)
	return ok && end == since
}

// Recheck reads the queue (again, after a wake-up). settled reports that
// the poll can be answered with res; otherwise res is the empty answer to
// give if the poll times out.
func (h *Held) Recheck(ctx context.Context) (res Result, settled bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.p.opts.ReadTimeout)
	defer cancel()
	page, err := h.p.q.Read(ctx, h.client, h.since, h.p.opts.Limit)
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		return Result{Outcome: metrics.OutcomeGone}, true, ctx.Err()
	case errors.Is(err, message.ErrNotDurable):
		// What the read found is not yet confirmed on the replicas (or on
		// disk) that publishes wait for, so it is not shown: the poll
		// waits as if nothing had come, and reads again in a moment.
		if h.page.Next == (message.Cursor{}) {
			h.page = message.Page{Next: h.since}
		}
		time.AfterFunc(notDurableRetry, h.rewake)
		return Result{Page: h.page, Outcome: metrics.OutcomeTimeout}, false, nil
	case err != nil:
		h.p.m.RedisError("read")
		return Result{Outcome: metrics.OutcomeError}, true, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case page.Settled():
		return Result{Page: page, Outcome: metrics.OutcomeMessages}, true, nil
	}
	h.page = page
	return Result{Page: page, Outcome: metrics.OutcomeTimeout}, false, nil
}

// FromWake answers the poll from a wake-up's payload, when it carries the
// messages that follow the poll's cursor: one Redis round trip saved.
// Otherwise ok is false and the caller must Recheck.
//
// A disconnect (Options.Disconnects) answers the poll with its empty
// page.
func (h *Held) FromWake(payload string) (res Result, ok bool) {
	if payload == "" {
		return Result{}, false
	}
	if h.p.disconnects(payload) {
		return h.Empty(metrics.OutcomeDisconnected), true
	}
	page, ok := h.p.q.DecodeWake(payload, h.since, h.p.opts.Limit)
	if !ok {
		return Result{}, false
	}
	return Result{Page: page, Outcome: metrics.OutcomeMessages}, true
}

// Deadline is when the poll times out and is answered with its empty
// page.
func (h *Held) Deadline() time.Time { return h.deadline }

// Empty is the answer of a poll that timed out or drained.
func (h *Held) Empty(outcome string) Result {
	return Result{Page: h.page, Outcome: outcome}
}

// OnDrain sets the function called, once, when the node drains, with the
// moment (spread over Options.DrainSpread) at which this poll should be
// answered. If the node is draining already it is called at once. It is
// never called after Finish has returned; it may be called with the
// Poller's lock held, so it must return at once and not call the Poller.
func (h *Held) OnDrain(fn func(at time.Time)) {
	p := h.p
	p.mu.Lock()
	h.onDrain = fn
	p.mu.Unlock()
	if p.Draining() {
		h.drain()
	}
}

// drain calls the drain callback, once.
func (h *Held) drain() {
	h.drained.Do(func() { h.onDrain(h.p.drainMoment()) })
}

// Finish ends the poll with its outcome: it releases the subscription
// and the limits. It is safe to call more than once; only the first
// counts.
func (h *Held) Finish(outcome string) {
	if h.finished.Swap(true) {
		return
	}
	h.p.mu.Lock()
	delete(h.p.holding, h)
	h.p.mu.Unlock()
	if h.stop != nil {
		h.stop()
	}
	h.release()
	h.done(outcome)
}

// Poll answers one long-poll by client at since, blocking until the
// answer is ready: at once when messages, a gap or a reset are waiting;
// otherwise when they come, at the timeout (an empty Page, Outcome
// timeout), when the node drains (an empty Page, Outcome drained) or when
// ctx ends (ctx's error).
func (p *Poller) Poll(ctx context.Context, client string, since message.Cursor) (Result, error) {
	woken := NewWakeups()
	res, h, err := p.Hold(ctx, client, since, woken.Send)
	if err != nil || h == nil {
		return res, err
	}
	return h.Wait(ctx, woken)
}

// Wakeups carries wake-up payloads to a waiting poll, keeping only the
// newest: if it does not answer the poll, the read that follows sees
// everything anyway.
type Wakeups chan string

// NewWakeups returns an empty Wakeups.
func NewWakeups() Wakeups { return make(Wakeups, 1) }

// Send hands payload over, replacing one not yet taken; it never blocks,
// so it can be a Subscribe wake function.
func (w Wakeups) Send(payload string) {
	for {
		select {
		case w <- payload:
			return
		default:
		}
		select {
		case <-w:
		default:
		}
	}
}

// Wait blocks until the poll's answer is ready: a wake-up on woken that
// answers it (from its payload or a re-read), the deadline, the drain, or
// ctx ending (ctx's error). It finishes the poll.
func (h *Held) Wait(ctx context.Context, woken Wakeups) (Result, error) {
	drained := make(chan time.Time, 1)
	h.OnDrain(func(at time.Time) { drained <- at })
	timer := time.NewTimer(time.Until(h.Deadline()))
	defer timer.Stop()
	var drainTimer <-chan time.Time
	for {
		select {
		case payload := <-woken:
			if res, ok := h.FromWake(payload); ok {
				h.Finish(res.Outcome)
				return res, nil
			}
			res, settled, err := h.Recheck(ctx)
			if err != nil || settled {
				h.Finish(res.Outcome)
				return res, err
			}
		case <-timer.C:
			h.Finish(metrics.OutcomeTimeout)
			return h.Empty(metrics.OutcomeTimeout), nil
		case <-ctx.Done():
			h.Finish(metrics.OutcomeGone)
			return Result{Outcome: metrics.OutcomeGone}, ctx.Err()
		case at := <-drained:
			drainTimer = time.After(time.Until(at))
		case <-drainTimer:
			h.Finish(metrics.OutcomeDrained)
			return h.Empty(metrics.OutcomeDrained), nil
		}
	}
}

// notDurableRetry is how soon a poll or stream reads again after Redis
// could not confirm what it read (message.ErrNotDurable).
const notDurableRetry = time.Second

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // a wake-up is already pending; one re-read serves both
	}
}

// Stream feeds one long-lived stream (server-sent events) of client from
// since, until ctx ends, the node drains or the client is disconnected
// (these return nil) or emit or Redis fails.
//
// emit is called first with the stream's opening page, settled or not;
// then with every settled page (messages, a gap or a reset) as soon as it
// is read; and with an empty page every heartbeat. A quiet stream reads
// its queue again every Options.Refresh, to keep its client's keys from
// expiring (emitting nothing new unless that read is settled). Messages
// sent are not acknowledged: the browser acknowledges them with its next
// connection's cursor or an explicit ack (see queue.Ack). An error before
// the first emit means the stream was never opened (a limit, or Redis).
func (p *Poller) Stream(ctx context.Context, client string, since message.Cursor, heartbeat time.Duration, emit func(message.Page) error) error {
	release, err := p.admit(client)
	if err != nil {
		return err
	}
	defer release()
	defer p.m.StreamOpened()()

	woken, kicked := make(chan struct{}, 1), make(chan struct{}, 1)
	stop, _, err := p.subscribe(ctx, client, p.opts.SubscribeTimeout, func(payload string) {
		if p.disconnects(payload) {
			signal(kicked)
		} else {
			signal(woken)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.m.RedisError("subscribe")
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer stop()
	if err := runCheck(ctx); err != nil {
		return err
	}

	ack, after := since, since.ID
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	refresh := time.NewTimer(p.opts.Refresh)
	defer refresh.Stop()
	drain := p.draining
	var drainTimer <-chan time.Time
	for opened := false; ; {
		readCtx, cancel := context.WithTimeout(ctx, p.opts.ReadTimeout)
		page, err := p.q.ReadAfter(readCtx, client, ack, after, p.opts.Limit)
		cancel()
		refresh.Reset(jitterDown(p.opts.Refresh, 0.1)) // streams opened together spread out
		var retry <-chan time.Time
		if errors.Is(err, message.ErrNotDurable) {
			// Not shown until confirmed (see Recheck): read again soon.
			page, err = message.Page{Next: message.Cursor{Epoch: ack.Epoch, ID: after}}, nil
			retry = time.After(notDurableRetry)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.m.RedisError("read")
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !page.Reset && page.Next.Epoch != "" {
			// A stream opened without an epoch (a fresh page) holds the
			// sequence it read from now on, so that the next read notices
			// a new one (Redis lost the keys) and says reset. One whose
			// sequence went on in a new epoch without losing what it had
			// (a new Redis primary; see package queue) follows it, as its
			// browser does through the events' ids: a later change of
			// epoch may no longer know the first.
			ack.Epoch = page.Next.Epoch
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
			case <-woken:
				break wait
			case <-retry:
				break wait
			case <-refresh.C:
				break wait
			case <-tick.C:
				if err := emit(message.Page{Next: message.Cursor{Epoch: page.Next.Epoch, ID: after}}); err != nil {
					return err
				}
			case <-ctx.Done():
				return nil
			case <-kicked: // disconnected: the browser reconnects, and is checked again
				return nil
			case <-drain:
				drain = nil
				drainTimer = time.After(time.Until(p.drainMoment()))
			case <-drainTimer:
				return nil
			}
		}
	}
}

// admit applies the node's and the client's poll limits, and tells
// Options.Presence of the poll or stream; release undoes both.
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
	if p.opts.Presence != nil {
		p.opts.Presence.Begin(client)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.held.Add(-1)
			p.mu.Lock()
			if p.perClient[client]--; p.perClient[client] <= 0 {
				delete(p.perClient, client)
			}
			p.mu.Unlock()
			if p.opts.Presence != nil {
				p.opts.Presence.End(client)
			}
		})
	}, nil
}

// disconnects reports whether a wake-up's payload is a disconnect.
func (p *Poller) disconnects(payload string) bool {
	return payload != "" && p.opts.Disconnects != nil && p.opts.Disconnects(payload)
}

// Held returns how many polls and streams are being answered right now.
func (p *Poller) Held() int { return int(p.held.Load()) }

// Waiting returns how many polls wait for a wake-up: begun by Hold, read
// with nothing to answer, not yet finished.
func (p *Poller) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.holding)
}

// Drain makes every held poll and stream answer with what it has within
// Options.DrainSpread from now, each at a random moment, so that the
// browsers' re-polls reach other nodes without a stampede. A poll that
// arrives later waits like any other and is answered within what is left
// of the spread (at once once it is over): never with an instant empty
// answer that would invite an instant re-poll. It is safe to call more
// than once.
func (p *Poller) Drain() {
	p.drainOnce.Do(func() {
		p.drainEnd.Store(time.Now().Add(p.opts.DrainSpread).UnixNano())
		close(p.draining)
		// Under the lock, so that no poll is told after its Finish: by then
		// its holder may have handed its connection on.
		p.mu.Lock()
		defer p.mu.Unlock()
		for h := range p.holding {
			if h.onDrain != nil {
				h.drain()
			}
		}
	})
}

// drainMoment picks when, within what is left of the drain spread, a
// held poll or stream is answered.
func (p *Poller) drainMoment() time.Time {
	now := time.Now()
	left := time.Unix(0, p.drainEnd.Load()).Sub(now)
	if left <= 0 {
		return now
	}
	return now.Add(rand.N(left))
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

// Wait blocks until no poll or stream is held, or ctx ends.
func (p *Poller) Wait(ctx context.Context) error {
	for p.Held() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// jitterDown returns d reduced by a random fraction of up to frac.
func jitterDown(d time.Duration, frac float64) time.Duration {
	return d - time.Duration(rand.Float64()*frac*float64(d))
}
