// Package notify wakes waiting polls when a message is enqueued for their
// client through any node.
//
// A Notifier keeps one Redis pub/sub connection per shard: one in all for
// a single Redis (or a Sentinel-managed primary), one per master it needs
// on a Redis Cluster, where wake-ups use sharded pub/sub (SSUBSCRIBE) so
// that they stay on the shard that owns the client. The first Watch for a
// client subscribes to that client's wake-up channel; Watch returns only
// once Redis has confirmed the subscription, so a caller that then reads
// the queue cannot miss a message enqueued in between. After the last
// Watch for a client stops, the channel stays subscribed for a short
// linger (the browser re-polls at once) and is then unsubscribed.
//
// Pub/sub is only a wake-up, never the data: Redis drops what it publishes
// while a subscriber is away. So whenever a channel is (re)subscribed on a
// new connection, every watcher of it is woken to re-read its queue; and a
// periodic self-probe per connection (a PUBLISH to the node's own probe
// channel that must come back) catches a connection that died silently
// and replaces it.
//
// On a Redis Cluster each connection is bound to one master; the
// topology is followed in cluster.go: a channel whose slot moves is
// subscribed again on its new master alone, and a shard that stops being
// a master (a failover) or leaves is dropped.
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
	"strconv"
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
	// ProbePrefix starts the name of the node's own probe channels.
	// Default: "cb:probe:".
	ProbePrefix string
	// ProbeInterval is how often the node publishes to its probe channel
	// to prove each subscription connection alive. Default: 5s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// connection is declared dead and replaced. Default: 3s.
	ProbeTimeout time.Duration
	// Linger keeps a channel subscribed this long after its last watcher
	// stopped, so that the browser's next poll finds it ready.
	// Default: 2s; negative: unsubscribe at once.
	Linger time.Duration
	// Cluster, when set, makes the Notifier a Redis Cluster client: it
	// subscribes with SSUBSCRIBE on a connection per master, and follows
	// the cluster's topology through Cluster (see ClusterOf). Default:
	// nil, a single Redis.
	Cluster Cluster
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
	// ErrDown is returned by Watch while the pub/sub connection of the
	// client's shard is failing, at once rather than after the caller's
	// timeout.
	ErrDown = errors.New("notify: pub/sub connection down")
)

// Notifier multiplexes wake-up subscriptions over a connection per shard.
type Notifier struct {
	rdb     Redis
	channel func(client string) string
	log     *slog.Logger
	m       *metrics.Metrics
	opts    Options
	id      string // this process's random id, in its probe channels

	newConns chan *conn    // connections for Run to start
	runDone  chan struct{} // closed when Run returns
	topology chan struct{} // asks the cluster loop for a look at the topology

	mu      sync.Mutex
	chans   map[string]*channel
	conns   map[string]*conn // by shard address; "" for a single Redis
	started bool
	closed  bool
}

type state uint8

const (
	subscribing state = iota + 1
	subscribed
	unsubscribing
	// moving: a cluster shard gave the channel up (its slot moved, or the
	// shard stopped being a master); it waits for a new shard (cluster.go).
	moving
)

// channel is one wake-up channel and the watchers waiting on it.
type channel struct {
	name     string
	conn     *conn
	state    state
	since    time.Time  // when the current state began
	watchers []*watcher // usually one or two: a slice is smaller than a map
	pinned   bool       // a probe channel: never unsubscribed
	// latest is the payload of the newest wake-up received since the
	// subscription was confirmed, until a Watch takes it.
	latest string
}

// joinLocked adds w to the watchers of the subscribed channel, armed at
// once, and hands it the channel's latest wake-up, which only one watcher
// gets.
func (ch *channel) joinLocked(w *watcher) (latest string) {
	w.ch, w.armed = ch, true
	ch.watchers = append(ch.watchers, w)
	latest, ch.latest = ch.latest, ""
	return latest
}

// remove takes w out of the channel's watchers and reports whether it was
// there.
func (ch *channel) remove(w *watcher) bool {
	for i, x := range ch.watchers {
		if x == w {
			last := len(ch.watchers) - 1
			ch.watchers[i] = ch.watchers[last]
			ch.watchers[last] = nil
			ch.watchers = ch.watchers[:last]
			return true
		}
	}
	return false
}

// conn is the pub/sub connection of one shard. Its fields after the first
// five are guarded by the Notifier's mutex.
type conn struct {
	shard    string
	rdb      Redis         // the client of the shard alone, for its subscriptions and probes
	kick     chan struct{} // wakes the writer
	probeNow chan struct{} // asks the ticker for a probe at once
	gone     chan struct{} // closed when the shard is dropped: ends the conn's goroutines

	probe     *channel      // replaced when its slot leaves the shard
	ps        *redis.PubSub // replaced, with gen bumped, after a failure
	gen       uint64
	dropped   bool // no longer a master: out of conns
	pendSub   []string
	pendUnsub []string
	probeSent time.Time // when the last probe's PUBLISH was sent, until it comes back
	probeWant string    // the last probe's nonce
	probeGot  string    // the nonce of the last probe that came back
	probeSeq  uint64
	probeOK   time.Time
	lastErr   error
	down      error     // set when the connection failed, cleared by the next confirmation
	downSince time.Time // when down was first set, for the recovery log
}

// watcher is one waiter's interest in a client's wake-ups.
type watcher struct {
	wake  func(payload string)
	ready chan struct{} // closed once the subscription is confirmed, or failed; nil if it was at once
	armed bool          // ready is closed, or was never needed
	err   error         // why the subscription failed, when it did
	n     *Notifier
	ch    *channel
}

// New returns a Notifier. channelOf maps a client id to its wake-up channel
// (package queue's WakeChannel).
func New(rdb Redis, channelOf func(client string) string, log *slog.Logger, m *metrics.Metrics, opts Options) *Notifier {
	var id [8]byte
	_, _ = rand.Read(id[:])
	n := &Notifier{
		rdb:      rdb,
		channel:  channelOf,
		log:      log,
		m:        m,
		opts:     opts.withDefaults(),
		id:       hex.EncodeToString(id[:]),
		newConns: make(chan *conn, 16),
		topology: make(chan struct{}, 1),
		runDone:  make(chan struct{}),
		chans:    make(map[string]*channel),
		conns:    make(map[string]*conn),
	}
	if !n.sharded() {
		n.mu.Lock()
		n.addConnLocked("", rdb, n.opts.ProbePrefix+n.id)
		n.mu.Unlock()
	}
	return n
}

func (n *Notifier) sharded() bool { return n.opts.Cluster != nil }

// Watch subscribes to client's wake-ups and returns once Redis has
// confirmed the subscription, or with ctx's error, or after wait (when
// above 0) with context.DeadlineExceeded. From then on wake is
// called after each message enqueued for client, with the wake-up's
// payload, and with an empty payload after the subscription was made anew
// on another connection (when messages may have been missed): the caller
// re-reads the queue. wake runs with the Notifier's lock held: it must
// return at once and not call back into the Notifier. The caller must
// call stop when done; stop is idempotent.
//
// latest is the payload of the newest wake-up that arrived for client
// while the channel stayed subscribed (typically while it lingered after
// the previous poll), when no Watch took it before; "" otherwise. Every
// message enqueued after the ones it announces has a wake-up still to
// come to this watcher: a caller that has seen those messages need not
// read the queue.
func (n *Notifier) Watch(ctx context.Context, client string, wait time.Duration, wake func(payload string)) (stop func(), latest string, err error) {
	name := n.channel(client)
	w := &watcher{wake: wake, n: n}

	// Usually the channel is subscribed already (the client's previous
	// poll has just ended): no waiting, so no timer.
	n.mu.Lock()
	if ch := n.chans[name]; ch != nil && ch.state == subscribed && !n.closed {
		latest := ch.joinLocked(w)
		n.mu.Unlock()
		return w.stop, latest, nil
	}
	n.mu.Unlock()
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}

	// The channel's connection is found without the lock (on a cluster it
	// may ask Redis); a channel seen then may be gone by the time the
	// lock is taken again, so look until the two agree.
	var cn *conn
	n.mu.Lock()
	for n.chans[name] == nil && (cn == nil || cn.dropped) && !n.closed {
		n.mu.Unlock()
		var err error
		if cn, err = n.connFor(ctx, name); err != nil {
			return nil, "", err
		}
		n.mu.Lock()
	}
	if n.closed {
		n.mu.Unlock()
		return nil, "", ErrClosed
	}
	ch := n.chans[name]
	if ch == nil {
		if cn.down != nil {
			err := cn.down
			n.mu.Unlock()
			return nil, "", fmt.Errorf("%w: %w", ErrDown, err)
		}
		ch = &channel{name: name, conn: cn}
		n.chans[name] = ch
		n.subscribeLocked(ch)
	} else if ch.conn.down != nil && ch.state != subscribed {
		err := ch.conn.down
		n.mu.Unlock()
		return nil, "", fmt.Errorf("%w: %w", ErrDown, err)
	}
	if ch.state == subscribed {
		latest := ch.joinLocked(w)
		n.mu.Unlock()
		return w.stop, latest, nil
	}
	w.ch = ch
	ch.watchers = append(ch.watchers, w)
	w.ready = make(chan struct{})
	n.mu.Unlock()

	select {
	case <-w.ready:
		n.mu.Lock()
		closed, err := n.closed, w.err
		n.mu.Unlock()
		switch {
		case closed:
			w.stop()
			return nil, "", ErrClosed
		case err != nil:
			return nil, "", fmt.Errorf("notify: subscribe %s: %w: %w", name, ErrDown, err)
		}
		return w.stop, "", nil // just confirmed: no wake-up came yet
	case <-ctx.Done():
		w.stop()
		return nil, "", fmt.Errorf("notify: subscribe %s: %w", name, ctx.Err())
	}
}

// connFor returns the connection of the shard that owns channel name,
// making it (and its probe channel) when it is the first on that shard.
func (n *Notifier) connFor(ctx context.Context, name string) (*conn, error) {
	shard, rdb := "", n.rdb
	if n.sharded() {
		var err error
		if shard, rdb, err = n.opts.Cluster.MasterOf(ctx, name); err != nil {
			return nil, fmt.Errorf("notify: shard of %s: %w: %w", name, ErrDown, err)
		}
	}
	n.mu.Lock()
	cn := n.conns[shard]
	n.mu.Unlock()
	if cn != nil {
		return cn, nil
	}
	probe, err := n.probeName(ctx, shard)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if cn := n.conns[shard]; cn != nil {
		return cn, nil // made meanwhile
	}
	return n.addConnLocked(shard, rdb, probe), nil
}

// probeName finds a probe channel name on shard: on a cluster, one whose
// hash tag falls in a slot that shard owns.
func (n *Notifier) probeName(ctx context.Context, shard string) (string, error) {
	base := n.opts.ProbePrefix + n.id
	if !n.sharded() {
		return base, nil
	}
	for i := range 4096 {
		name := fmt.Sprintf("%s:{%d}", base, i)
		owner, _, err := n.opts.Cluster.MasterOf(ctx, name)
		if err != nil {
			return "", fmt.Errorf("notify: probe channel for %s: %w: %w", shard, ErrDown, err)
		}
		if owner == shard {
			return name, nil
		}
	}
	return "", fmt.Errorf("notify: no probe channel found on shard %s", shard)
}

func (n *Notifier) addConnLocked(shard string, rdb Redis, probe string) *conn {
	cn := &conn{shard: shard, rdb: rdb, kick: make(chan struct{}, 1), probeNow: make(chan struct{}, 1), gone: make(chan struct{})}
	cn.probe = &channel{name: probe, conn: cn, pinned: true}
	n.chans[probe] = cn.probe
	n.conns[shard] = cn
	n.replaceLocked(cn)
	if n.started {
		select {
		case n.newConns <- cn:
		case <-n.runDone:
		}
	}
	return cn
}

// stop ends the watch. It is safe to call more than once.
func (w *watcher) stop() {
	n := w.n
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := w.ch
	if ch == nil {
		return
	}
	if !ch.remove(w) {
		return
	}
	if len(ch.watchers) == 0 && ch.state == subscribed {
		ch.since = time.Now() // the linger starts
		if n.opts.Linger < 0 {
			n.unsubscribeLocked(ch)
		}
	}
}

// Reconnect replaces every pub/sub connection at once, as a failed
// self-probe would, without counting it as a failure: for a caller that
// knows the connections are on a server that no longer gets the
// wake-ups (a Sentinel switched the primary; the old one still answers,
// so no error or probe would tell for seconds). Every channel is
// subscribed anew, and its watchers re-read their queues once it is
// confirmed.
func (n *Notifier) Reconnect() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for _, cn := range n.conns {
		n.m.PubSubReconnected()
		old := cn.ps
		n.replaceLocked(cn)
		go func() { _ = old.Close() }()
	}
}

// Ready reports whether wake-ups are flowing: every connection's last
// self-probe came back in time. It returns the reason otherwise.
func (n *Notifier) Ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	for _, cn := range n.conns {
		if cn.down != nil {
			return fmt.Errorf("%w: %s: %w", ErrDown, shardName(cn.shard), cn.down)
		}
		if cn.probeOK.IsZero() || time.Since(cn.probeOK) > n.opts.ProbeInterval+2*n.opts.ProbeTimeout {
			if cn.lastErr != nil {
				return fmt.Errorf("notify: %s: no working subscription: %w", shardName(cn.shard), cn.lastErr)
			}
			return fmt.Errorf("notify: %s: no working subscription yet", shardName(cn.shard))
		}
	}
	return nil
}

func shardName(shard string) string {
	if shard == "" {
		return "redis"
	}
	return "shard " + shard
}

// Run keeps the subscription connections alive, dispatches wake-ups and
// probes, until ctx is done. It returns nil after ctx is done.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	start := func(cn *conn) {
		cctx, stop := context.WithCancel(ctx)
		wg.Go(func() {
			defer stop()
			select {
			case <-cn.gone:
			case <-cctx.Done():
			}
		})
		wg.Add(3)
		go func() { defer wg.Done(); n.writeLoop(cctx, cn) }()
		go func() { defer wg.Done(); n.tickLoop(cctx, cn) }()
		go func() { defer wg.Done(); n.readLoop(cctx, cn) }()
	}
	n.mu.Lock()
	n.started = true
	for _, cn := range n.conns {
		start(cn)
	}
	n.mu.Unlock()
	if n.sharded() {
		wg.Go(func() { n.clusterLoop(ctx) })
	}
	for running := true; running; {
		select {
		case cn := <-n.newConns:
			start(cn)
		case <-ctx.Done():
			running = false
		}
	}
	close(n.runDone)
	wg.Wait()

	n.mu.Lock()
	n.closed = true
	var pss []*redis.PubSub
	for _, cn := range n.conns {
		pss = append(pss, cn.ps)
	}
	for _, ch := range n.chans {
		for _, w := range ch.watchers {
			if !w.armed { // unblock waiting Watch calls: they return ErrClosed
				w.armed = true
				close(w.ready)
			}
		}
	}
	n.mu.Unlock()
	for _, ps := range pss {
		_ = ps.Close()
	}
	return nil
}

// readLoop receives from cn's current connection and dispatches.
func (n *Notifier) readLoop(ctx context.Context, cn *conn) {
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		ps := cn.ps
		n.mu.Unlock()
		_ = ps.Close() // unblocks ReceiveTimeout
	})
	defer stop()

	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		n.mu.Lock()
		ps, gen := cn.ps, cn.gen
		n.mu.Unlock()

		msg, err := ps.ReceiveTimeout(ctx, n.opts.ProbeInterval)
		if err != nil {
			switch {
			case isTimeout(err):
				continue // quiet connection; the probe decides whether it is dead
			case ctx.Err() != nil:
				return
			case n.sharded() && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")):
				// The shard refused a subscription: its slot is served
				// elsewhere. The connection is fine.
				n.refused(cn, gen, err)
				continue
			}
			n.fail(cn, gen, "receive", err)
			if !sleep(ctx, backoff.next()) {
				return
			}
			continue
		}
		backoff.reset()
		n.dispatch(cn, gen, msg)
	}
}

// dispatch handles one message from cn.
func (n *Notifier) dispatch(cn *conn, gen uint64, msg any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != cn.gen {
		return // from a connection already replaced
	}
	switch m := msg.(type) {
	case *redis.Message:
		if m.Channel == cn.probe.name {
			cn.probeGot = m.Payload
			if m.Payload == cn.probeWant {
				cn.probeOK = time.Now()
				cn.probeSent = time.Time{}
				cn.lastErr = nil
			}
			return
		}
		n.m.Wakeup()
		if ch := n.chans[m.Channel]; ch != nil {
			if ch.state == subscribed && ch.conn == cn { // not a late one from a shard it left
				ch.latest = m.Payload
			}
			ch.wakeLocked(m.Payload)
		}
	case *redis.Subscription:
		ch := n.chans[m.Channel]
		if ch == nil || ch.conn != cn {
			return
		}
		switch m.Kind {
		case "subscribe", "ssubscribe":
			n.confirmedLocked(ch)
		case "unsubscribe", "sunsubscribe":
			switch {
			case (ch.state == subscribed || ch.state == subscribing) && n.sharded():
				// Not asked for: the shard gave the channel's slot up.
				n.movingLocked(ch)
			case ch.state == subscribed || ch.state == subscribing:
				n.subscribeLocked(ch) // not asked for, and no other server to go to
			case ch.state != unsubscribing:
			case len(ch.watchers) > 0:
				n.subscribeLocked(ch)
			default:
				delete(n.chans, ch.name)
				n.countChannelsLocked()
			}
		}
	}
}

// confirmedLocked handles a subscription confirmation.
func (n *Notifier) confirmedLocked(ch *channel) {
	switch ch.state {
	case subscribing:
		cn := ch.conn
		if cn.down != nil { // the connection works again
			n.log.Info("pub/sub connection restored", "shard", shardName(cn.shard),
				"down_for", time.Since(cn.downSince).Round(time.Millisecond))
			cn.down = nil
		}
		n.m.Subscribed(time.Since(ch.since))
		ch.state, ch.since = subscribed, time.Now()
		if ch.pinned { // a new connection: prove it at once
			select {
			case cn.probeNow <- struct{}{}:
			default:
			}
		}
		// Watchers that already read their queue re-read it: anything
		// published while the channel was not subscribed was dropped.
		for _, w := range ch.watchers {
			if w.armed {
				w.wake("")
			} else {
				w.armed = true
				close(w.ready)
			}
		}
		n.countChannelsLocked()
	case subscribed:
		// The client library re-subscribed on a new connection by itself.
		ch.latest = ""
		ch.wakeLocked("")
	}
}

func (n *Notifier) countChannelsLocked() {
	n.m.PubSubChannels(len(n.chans) - len(n.conns))
}

func (ch *channel) wakeLocked(payload string) {
	for _, w := range ch.watchers {
		w.wake(payload)
	}
}

// subscribeLocked and unsubscribeLocked change a channel's state; either
// forgets its latest wake-up, since wake-ups may be lost until it is
// confirmed anew.
func (n *Notifier) subscribeLocked(ch *channel) {
	ch.state, ch.since, ch.latest = subscribing, time.Now(), ""
	ch.conn.pendSub = append(ch.conn.pendSub, ch.name)
	kick(ch.conn.kick)
}

func (n *Notifier) unsubscribeLocked(ch *channel) {
	ch.state, ch.since, ch.latest = unsubscribing, time.Now(), ""
	ch.conn.pendUnsub = append(ch.conn.pendUnsub, ch.name)
	kick(ch.conn.kick)
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// writeLoop sends cn's pending SUBSCRIBE and UNSUBSCRIBE commands, batched.
func (n *Notifier) writeLoop(ctx context.Context, cn *conn) {
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-cn.kick:
		}
		for {
			n.mu.Lock()
			ps, gen := cn.ps, cn.gen
			subs, unsubs := cn.pendSub, cn.pendUnsub
			cn.pendSub, cn.pendUnsub = nil, nil
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
			if gen == cn.gen { // put them back for the retry
				cn.pendSub = append(subs, cn.pendSub...)
				cn.pendUnsub = append(unsubs, cn.pendUnsub...)
			}
			n.mu.Unlock()
			n.fail(cn, gen, "subscribe", err)
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
		if n.sharded() {
			k = 1 // SUNSUBSCRIBE takes channels of one slot only
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
		var err error
		if n.sharded() {
			k = 1 // SSUBSCRIBE takes channels of one slot only
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

// tickLoop probes cn's subscription, ends its lingering channels and
// replaces it when a probe or a confirmation does not come back.
func (n *Notifier) tickLoop(ctx context.Context, cn *conn) {
	tick := time.NewTicker(tickEvery(n.opts))
	defer tick.Stop()
	lastProbe := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cn.probeNow:
			lastProbe = time.Now()
			n.sendProbe(ctx, cn)
		case now := <-tick.C:
			n.sweep(cn, now)
			if now.Sub(lastProbe) >= n.opts.ProbeInterval {
				lastProbe = now
				n.sendProbe(ctx, cn)
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

func (n *Notifier) sendProbe(ctx context.Context, cn *conn) {
	n.mu.Lock()
	if !cn.probeSent.IsZero() || cn.probe.state != subscribed {
		// The last probe is still out (sweep judges it), or the probe
		// channel is not subscribed yet (its confirmation asks for one).
		n.mu.Unlock()
		return
	}
	cn.probeSeq++
	nonce := strconv.FormatUint(cn.probeSeq, 10)
	cn.probeWant = nonce
	gen := cn.gen
	n.mu.Unlock()

	// The probe judges the subscription, not the command connections: its
	// clock starts once the PUBLISH is sent, however long a busy pool
	// made it wait for a connection.
	ctx, cancel := context.WithTimeout(ctx, 2*n.opts.ProbeTimeout)
	defer cancel()
	var err error
	if n.sharded() {
		err = cn.rdb.SPublish(ctx, cn.probe.name, nonce).Err()
	} else {
		err = cn.rdb.Publish(ctx, cn.probe.name, nonce).Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != cn.gen {
		return
	}
	if n.sharded() && redis.HasErrorPrefix(err, "MOVED") {
		// The probe channel's slot left the shard, or the shard is no
		// longer a master.
		n.movingLocked(cn.probe)
		return
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			n.m.RedisError("probe")
			cn.lastErr = err // Redis itself is down or busy; not the subscription's fault
		}
		return
	}
	if cn.probeGot != nonce { // not back yet: the sweep judges it from now
		cn.probeSent = time.Now()
	}
}

// sweep unsubscribes cn's channels whose linger is over, and replaces cn
// when a probe or a confirmation is overdue.
func (n *Notifier) sweep(cn *conn, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !cn.probeSent.IsZero() && now.Sub(cn.probeSent) > n.opts.ProbeTimeout {
		n.failLocked(cn, cn.gen, "probe", errors.New("self-probe did not come back"))
		return
	}
	overdue := 2 * n.opts.ProbeTimeout
	for _, ch := range n.chans {
		if ch.conn != cn {
			continue
		}
		switch {
		case ch.state == subscribed && len(ch.watchers) == 0 && !ch.pinned && now.Sub(ch.since) >= n.opts.Linger:
			n.unsubscribeLocked(ch)
		case (ch.state == subscribing || ch.state == unsubscribing) && now.Sub(ch.since) > overdue:
			n.failLocked(cn, cn.gen, "subscribe", fmt.Errorf("no confirmation for %s in %v", ch.name, overdue))
			return
		}
	}
}

func (n *Notifier) fail(cn *conn, gen uint64, op string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failLocked(cn, gen, op, err)
}

// failLocked replaces cn's connection of generation gen, unless that was
// done already. Every channel still wanted is subscribed anew; its
// watchers re-read their queues once the new subscription is confirmed.
func (n *Notifier) failLocked(cn *conn, gen uint64, op string, err error) {
	if gen != cn.gen || n.closed || cn.dropped {
		return
	}
	kick(n.topology) // the shard may have failed over
	n.m.RedisError(op)
	n.m.PubSubReconnected()
	if cn.down == nil {
		n.log.Warn("pub/sub connection lost; reconnecting", "shard", shardName(cn.shard), "op", op, "err", err)
		cn.downSince = time.Now()
	} else {
		n.log.Debug("pub/sub reconnect failed", "shard", shardName(cn.shard), "op", op, "err", err)
	}
	cn.lastErr, cn.down = err, err
	// Whoever waits for a subscription learns now that it failed, rather
	// than at its timeout; watchers already armed stay and re-read once
	// the new connection confirms their channel.
	for _, ch := range n.chans {
		if ch.conn != cn {
			continue
		}
		kept := ch.watchers[:0]
		for _, w := range ch.watchers {
			if w.armed {
				kept = append(kept, w)
				continue
			}
			w.err, w.armed = err, true
			close(w.ready)
		}
		clear(ch.watchers[len(kept):])
		ch.watchers = kept
	}
	old := cn.ps
	n.replaceLocked(cn)
	go func() { _ = old.Close() }()
}

// replaceLocked gives cn a new connection and queues the subscription of
// every channel still wanted on it.
func (n *Notifier) replaceLocked(cn *conn) {
	ctx := context.Background()
	if n.sharded() {
		cn.ps = cn.rdb.SSubscribe(ctx)
	} else {
		cn.ps = cn.rdb.Subscribe(ctx)
	}
	cn.gen++
	cn.pendSub, cn.pendUnsub = nil, nil
	cn.probeSent = time.Time{}
	for name, ch := range n.chans {
		if ch.conn != cn {
			continue
		}
		if len(ch.watchers) == 0 && !ch.pinned {
			delete(n.chans, name)
			continue
		}
		if ch.state != moving { // a moving one waits for its new shard
			n.subscribeLocked(ch)
		}
	}
	n.countChannelsLocked()
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
