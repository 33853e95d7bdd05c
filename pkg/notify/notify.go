// Package notify wakes waiting polls when a message is enqueued for their
// client through any node.
//
// A Notifier keeps one Redis pub/sub connection per process. The first
// Watch for a client subscribes to that client's wake-up channel; Watch
// returns only once Redis has confirmed the subscription, so a caller that
// then reads the queue cannot miss a message enqueued in between. After the
// last Watch for a client stops, the channel stays subscribed for a short
// linger (the browser re-polls at once) and is then unsubscribed.
//
// Pub/sub is only a wake-up, never the data: Redis drops what it publishes
// while a subscriber is away. So whenever a channel is (re)subscribed on a
// new connection, every watcher of it is woken to re-read its queue; and a
// periodic self-probe (a PUBLISH to the node's own probe channel that must
// come back) catches a connection that died silently and replaces it.
//
// All methods are safe for concurrent use. Run must be running for
// subscriptions to be made.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/metrics"
)

// Redis is what a Notifier needs of a go-redis client.
type Redis interface {
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	SSubscribe(ctx context.Context, channels ...string) *redis.PubSub
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
	SPublish(ctx context.Context, channel string, message any) *redis.IntCmd
}

// Options tunes a Notifier. The zero value is ready to use.
type Options struct {
	// ProbePrefix starts the name of the node's own probe channel.
	// Default: "cb:probe:".
	ProbePrefix string
	// ProbeInterval is how often the node publishes to its probe channel
	// to prove the subscription alive. Default: 5s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// connection is declared dead and replaced. Default: 3s.
	ProbeTimeout time.Duration
	// Linger keeps a channel subscribed this long after its last watcher
	// stopped, so that the browser's next poll finds it ready.
	// Default: 2s; negative: unsubscribe at once.
	Linger time.Duration
	// Sharded subscribes with SSUBSCRIBE and probes with SPUBLISH (Redis
	// Cluster sharded pub/sub). Default: false.
	Sharded bool
}

func (o Options) withDefaults() Options {
	if o.ProbePrefix == "" {
		o.ProbePrefix = "cb:probe:"
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 5 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 3 * time.Second
	}
	if o.Linger == 0 {
		o.Linger = 2 * time.Second
	}
	return o
}

var (
	// ErrClosed is returned by Watch after Run has returned.
	ErrClosed = errors.New("notify: closed")
	// ErrDown is returned by Watch while the pub/sub connection is failing,
	// at once rather than after the caller's timeout.
	ErrDown = errors.New("notify: pub/sub connection down")
)

// Notifier multiplexes wake-up subscriptions over one pub/sub connection.
type Notifier struct {
	rdb     Redis
	channel func(client string) string
	log     *slog.Logger
	m       *metrics.Metrics
	opts    Options
	probe   string // this node's probe channel

	kick     chan struct{} // wakes the writer
	probeNow chan struct{} // asks the ticker for a probe at once

	mu        sync.Mutex
	ps        *redis.PubSub // the current connection
	gen       uint64        // bumped each time ps is replaced
	chans     map[string]*channel
	pendSub   []string // to subscribe on ps
	pendUnsub []string // to unsubscribe on ps
	probeSent time.Time
	probeOK   time.Time
	lastErr   error
	down      error     // set when a connection failed, cleared by the next confirmation
	downSince time.Time // when down was first set, for the recovery log
	closed    bool
}

type state uint8

const (
	subscribing state = iota + 1
	subscribed
	unsubscribing
)

// channel is one wake-up channel and the watchers waiting on it.
type channel struct {
	name     string
	state    state
	since    time.Time // when the current state began
	watchers map[*Watch]struct{}
	pinned   bool // the probe channel: never unsubscribed
}

// Watch is one waiter's interest in a client's wake-ups.
type Watch struct {
	// C receives a value after each wake-up. Wake-ups are coalesced:
	// C holds at most one, and a reader must re-read the queue each time.
	C <-chan struct{}

	c     chan struct{}
	ready chan struct{} // closed once the subscription is confirmed, or failed
	armed bool          // ready is closed
	err   error         // why the subscription failed, when it did
	n     *Notifier
	ch    *channel
}

// New returns a Notifier. channelOf maps a client id to its wake-up channel
// (package queue's WakeChannel).
func New(rdb Redis, channelOf func(client string) string, log *slog.Logger, m *metrics.Metrics, opts Options) *Notifier {
	opts = opts.withDefaults()
	var id [8]byte
	_, _ = rand.Read(id[:])
	n := &Notifier{
		rdb:      rdb,
		channel:  channelOf,
		log:      log,
		m:        m,
		opts:     opts,
		probe:    opts.ProbePrefix + hex.EncodeToString(id[:]),
		kick:     make(chan struct{}, 1),
		probeNow: make(chan struct{}, 1),
		chans:    make(map[string]*channel),
	}
	n.mu.Lock()
	n.chans[n.probe] = &channel{name: n.probe, watchers: map[*Watch]struct{}{}, pinned: true}
	n.replaceLocked()
	n.mu.Unlock()
	return n
}

// Watch subscribes to client's wake-ups and returns once Redis has
// confirmed the subscription, or with ctx's error. The caller must Stop
// the Watch when done.
func (n *Notifier) Watch(ctx context.Context, client string) (*Watch, error) {
	name := n.channel(client)
	c := make(chan struct{}, 1)
	w := &Watch{C: c, c: c, ready: make(chan struct{}), n: n}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if n.down != nil {
		err := n.down
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrDown, err)
	}
	ch := n.chans[name]
	if ch == nil {
		ch = &channel{name: name, watchers: make(map[*Watch]struct{})}
		n.chans[name] = ch
		n.subscribeLocked(ch)
	}
	w.ch = ch
	ch.watchers[w] = struct{}{}
	if ch.state == subscribed {
		w.armed = true
		close(w.ready)
	}
	n.mu.Unlock()

	select {
	case <-w.ready:
		n.mu.Lock()
		closed, err := n.closed, w.err
		n.mu.Unlock()
		switch {
		case closed:
			w.Stop()
			return nil, ErrClosed
		case err != nil:
			return nil, fmt.Errorf("notify: subscribe %s: %w: %w", name, ErrDown, err)
		}
		return w, nil
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("notify: subscribe %s: %w", name, ctx.Err())
	}
}

// Stop ends the Watch. It is safe to call more than once.
func (w *Watch) Stop() {
	n := w.n
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := w.ch
	if _, ok := ch.watchers[w]; !ok {
		return
	}
	delete(ch.watchers, w)
	if len(ch.watchers) == 0 && ch.state == subscribed {
		ch.since = time.Now() // the linger starts
		if n.opts.Linger < 0 {
			n.unsubscribeLocked(ch)
		}
	}
}

// Ready reports whether wake-ups are flowing: the last self-probe came
// back in time. It returns the reason otherwise.
func (n *Notifier) Ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.down != nil {
		return fmt.Errorf("%w: %w", ErrDown, n.down)
	}
	if n.probeOK.IsZero() || time.Since(n.probeOK) > n.opts.ProbeInterval+2*n.opts.ProbeTimeout {
		if n.lastErr != nil {
			return fmt.Errorf("notify: no working subscription: %w", n.lastErr)
		}
		return errors.New("notify: no working subscription yet")
	}
	return nil
}

// Run keeps the subscription connection alive, dispatches wake-ups and
// probes, until ctx is done. It returns nil after ctx is done.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.writeLoop(ctx) }()
	go func() { defer wg.Done(); n.tickLoop(ctx) }()
	n.readLoop(ctx)
	wg.Wait()

	n.mu.Lock()
	n.closed = true
	ps := n.ps
	for _, ch := range n.chans {
		for w := range ch.watchers {
			if !w.armed { // unblock waiting Watch calls: they return ErrClosed
				w.armed = true
				close(w.ready)
			}
		}
	}
	n.mu.Unlock()
	_ = ps.Close()
	return nil
}

// readLoop receives from the current connection and dispatches.
func (n *Notifier) readLoop(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		ps := n.ps
		n.mu.Unlock()
		_ = ps.Close() // unblocks ReceiveTimeout
	})
	defer stop()

	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		n.mu.Lock()
		ps, gen := n.ps, n.gen
		n.mu.Unlock()

		msg, err := ps.ReceiveTimeout(ctx, n.opts.ProbeInterval)
		if err != nil {
			if isTimeout(err) {
				continue // quiet connection; the probe decides whether it is dead
			}
			if ctx.Err() != nil {
				return
			}
			n.fail(gen, "receive", err)
			if !sleep(ctx, backoff.next()) {
				return
			}
			continue
		}
		backoff.reset()
		n.dispatch(gen, msg)
	}
}

func (n *Notifier) dispatch(gen uint64, msg any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != n.gen {
		return // from a connection already replaced
	}
	switch m := msg.(type) {
	case *redis.Message:
		if m.Channel == n.probe {
			n.probeOK = time.Now()
			n.probeSent = time.Time{}
			n.lastErr = nil
			return
		}
		n.m.Wakeup()
		if ch := n.chans[m.Channel]; ch != nil {
			ch.wakeLocked()
		}
	case *redis.Subscription:
		ch := n.chans[m.Channel]
		if ch == nil {
			return
		}
		switch m.Kind {
		case "subscribe", "ssubscribe":
			n.confirmedLocked(ch)
		case "unsubscribe", "sunsubscribe":
			if ch.state != unsubscribing {
				return
			}
			if len(ch.watchers) > 0 {
				n.subscribeLocked(ch)
			} else {
				delete(n.chans, ch.name)
				n.m.PubSubChannels(len(n.chans) - 1)
			}
		}
	}
}

// confirmedLocked handles a subscription confirmation.
func (n *Notifier) confirmedLocked(ch *channel) {
	switch ch.state {
	case subscribing:
		if n.down != nil { // the connection works again
			n.log.Info("pub/sub connection restored", "down_for", time.Since(n.downSince).Round(time.Millisecond))
			n.down = nil
		}
		n.m.Subscribed(time.Since(ch.since))
		ch.state, ch.since = subscribed, time.Now()
		if ch.pinned { // a new connection: prove it at once
			select {
			case n.probeNow <- struct{}{}:
			default:
			}
		}
		// Watchers that already read their queue re-read it: anything
		// published while the channel was not subscribed was dropped.
		for w := range ch.watchers {
			if w.armed {
				w.wake()
			} else {
				w.armed = true
				close(w.ready)
			}
		}
		n.m.PubSubChannels(len(n.chans) - 1)
	case subscribed:
		// The client library re-subscribed on a new connection by itself.
		ch.wakeLocked()
	}
}

func (ch *channel) wakeLocked() {
	for w := range ch.watchers {
		w.wake()
	}
}

func (w *Watch) wake() {
	select {
	case w.c <- struct{}{}:
	default: // a wake-up is already pending; one re-read serves both
	}
}

func (n *Notifier) subscribeLocked(ch *channel) {
	ch.state, ch.since = subscribing, time.Now()
	n.pendSub = append(n.pendSub, ch.name)
	n.kickWriter()
}

func (n *Notifier) unsubscribeLocked(ch *channel) {
	ch.state, ch.since = unsubscribing, time.Now()
	n.pendUnsub = append(n.pendUnsub, ch.name)
	n.kickWriter()
}

func (n *Notifier) kickWriter() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// writeLoop sends the pending SUBSCRIBE and UNSUBSCRIBE commands, batched.
func (n *Notifier) writeLoop(ctx context.Context) {
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
		for {
			n.mu.Lock()
			ps, gen := n.ps, n.gen
			subs, unsubs := n.pendSub, n.pendUnsub
			n.pendSub, n.pendUnsub = nil, nil
			n.mu.Unlock()
			if len(subs) == 0 && len(unsubs) == 0 {
				break
			}
			err := n.send(ctx, ps, subs, unsubs)
			if err == nil {
				backoff.reset()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			n.mu.Lock()
			if gen == n.gen { // put them back for the retry
				n.pendSub = append(subs, n.pendSub...)
				n.pendUnsub = append(unsubs, n.pendUnsub...)
			}
			n.mu.Unlock()
			n.fail(gen, "subscribe", err)
			if !sleep(ctx, backoff.next()) {
				return
			}
		}
	}
}

func (n *Notifier) send(ctx context.Context, ps *redis.PubSub, subs, unsubs []string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	const chunk = 512
	for len(unsubs) > 0 {
		k := min(chunk, len(unsubs))
		var err error
		if n.opts.Sharded {
			err = ps.SUnsubscribe(ctx, unsubs[:k]...)
		} else {
			err = ps.Unsubscribe(ctx, unsubs[:k]...)
		}
		if err != nil {
			return err
		}
		unsubs = unsubs[k:]
	}
	for len(subs) > 0 {
		k := min(chunk, len(subs))
		if n.opts.Sharded {
			k = 1 // SSUBSCRIBE takes channels of one slot only
		}
		var err error
		if n.opts.Sharded {
			err = ps.SSubscribe(ctx, subs[:k]...)
		} else {
			err = ps.Subscribe(ctx, subs[:k]...)
		}
		if err != nil {
			return err
		}
		subs = subs[k:]
	}
	return nil
}

// tickLoop probes the subscription, ends lingering channels and replaces
// a connection whose probe or subscription confirmations do not come back.
func (n *Notifier) tickLoop(ctx context.Context) {
	tick := time.NewTicker(tickEvery(n.opts))
	defer tick.Stop()
	lastProbe := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.probeNow:
			lastProbe = time.Now()
			n.sendProbe(ctx)
		case now := <-tick.C:
			n.sweep(now)
			if now.Sub(lastProbe) >= n.opts.ProbeInterval {
				lastProbe = now
				n.sendProbe(ctx)
			}
		}
	}
}

func tickEvery(o Options) time.Duration {
	d := min(o.ProbeInterval, o.ProbeTimeout) / 2
	if o.Linger > 0 {
		d = min(d, max(o.Linger/2, 50*time.Millisecond))
	}
	return max(d, 10*time.Millisecond)
}

func (n *Notifier) sendProbe(ctx context.Context) {
	n.mu.Lock()
	if !n.probeSent.IsZero() || n.chans[n.probe].state != subscribed {
		// The last probe is still out (sweep judges it), or the probe
		// channel is not subscribed yet (its confirmation asks for one).
		n.mu.Unlock()
		return
	}
	n.probeSent = time.Now()
	gen := n.gen
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, n.opts.ProbeTimeout)
	defer cancel()
	var err error
	if n.opts.Sharded {
		err = n.rdb.SPublish(ctx, n.probe, "probe").Err()
	} else {
		err = n.rdb.Publish(ctx, n.probe, "probe").Err()
	}
	if err != nil && ctx.Err() == nil {
		n.m.RedisError("probe")
		n.mu.Lock()
		if gen == n.gen {
			n.probeSent = time.Time{} // Redis itself is down; not the subscription's fault
			n.lastErr = err
		}
		n.mu.Unlock()
	}
}

// sweep unsubscribes channels whose linger is over and replaces the
// connection when a probe or a confirmation is overdue.
func (n *Notifier) sweep(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.probeSent.IsZero() && now.Sub(n.probeSent) > n.opts.ProbeTimeout {
		n.failLocked(n.gen, "probe", errors.New("self-probe did not come back"))
		return
	}
	overdue := 2 * n.opts.ProbeTimeout
	for _, ch := range n.chans {
		switch {
		case ch.state == subscribed && len(ch.watchers) == 0 && !ch.pinned && now.Sub(ch.since) >= n.opts.Linger:
			n.unsubscribeLocked(ch)
		case (ch.state == subscribing || ch.state == unsubscribing) && now.Sub(ch.since) > overdue:
			n.failLocked(n.gen, "subscribe", fmt.Errorf("no confirmation for %s in %v", ch.name, overdue))
			return
		}
	}
}

func (n *Notifier) fail(gen uint64, op string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failLocked(gen, op, err)
}

// failLocked replaces the connection of generation gen, unless that was
// done already. Every channel still wanted is subscribed anew; its
// watchers re-read their queues once the new subscription is confirmed.
func (n *Notifier) failLocked(gen uint64, op string, err error) {
	if gen != n.gen || n.closed {
		return
	}
	n.m.RedisError(op)
	n.m.PubSubReconnected()
	if n.down == nil {
		n.log.Warn("pub/sub connection lost; reconnecting", "op", op, "err", err, "channels", len(n.chans)-1)
		n.downSince = time.Now()
	} else {
		n.log.Debug("pub/sub reconnect failed", "op", op, "err", err)
	}
	n.lastErr, n.down = err, err
	// Whoever waits for a subscription learns now that it failed, rather
	// than at its timeout; watchers already armed stay and re-read once
	// the new connection confirms their channel.
	for _, ch := range n.chans {
		for w := range ch.watchers {
			if !w.armed {
				w.err, w.armed = err, true
				close(w.ready)
				delete(ch.watchers, w)
			}
		}
	}
	old := n.ps
	n.replaceLocked()
	go func() { _ = old.Close() }()
}

func (n *Notifier) replaceLocked() {
	ctx := context.Background()
	if n.opts.Sharded {
		n.ps = n.rdb.SSubscribe(ctx)
	} else {
		n.ps = n.rdb.Subscribe(ctx)
	}
	n.gen++
	n.pendSub, n.pendUnsub = nil, nil
	n.probeSent = time.Time{}
	for name, ch := range n.chans {
		if len(ch.watchers) == 0 && !ch.pinned {
			delete(n.chans, name)
			continue
		}
		n.subscribeLocked(ch)
	}
	n.m.PubSubChannels(0)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
