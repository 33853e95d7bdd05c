package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/metrics"
)

// fakeCluster is a topology a test sets: which shard owns a channel, and
// which shards are masters.
type fakeCluster struct {
	rdb Redis

	mu      sync.Mutex
	owners  map[string]string // channel -> shard; default "a"
	masters []string
	err     error
}

func (f *fakeCluster) MasterOf(_ context.Context, channel string) (string, Redis, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", nil, f.err
	}
	if owner, ok := f.owners[channel]; ok {
		return owner, f.rdb, nil
	}
	return "a", f.rdb, nil
}

func (f *fakeCluster) Masters(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.masters, f.err
}

func (f *fakeCluster) set(channel, shard string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owners[channel] = shard
}

// clusterNotifier is a sharded Notifier, not running, with connections to
// shards a and b (each probe channel its own), and a channel subscribed
// on b.
func clusterNotifier(t *testing.T) (n *Notifier, fc *fakeCluster, reg *prometheus.Registry, a, b *conn, ch *channel) {
	t.Helper()
	_, rdb := redistest.New(t)
	fc = &fakeCluster{rdb: rdb, owners: map[string]string{"probe-b": "b"}, masters: []string{"a", "b"}}
	reg = prometheus.NewRegistry()
	n = New(rdb, func(c string) string { return "cb:{" + c + "}:w" }, slog.New(slog.DiscardHandler), metrics.New(reg),
		Options{Cluster: fc, ProbeTimeout: time.Second})
	n.mu.Lock()
	defer n.mu.Unlock()
	a, b = n.addConnLocked("a", rdb, "probe-a"), n.addConnLocked("b", rdb, "probe-b")
	for _, cn := range []*conn{a, b} { // as if the probes were confirmed
		cn.probe.state, cn.pendSub = subscribed, nil
	}
	ch = subscribedOn(n, b, "cb:{x}:w")
	t.Cleanup(func() { _ = a.ps.Close(); _ = b.ps.Close() })
	return n, fc, reg, a, b, ch
}

// subscribedOn adds a channel subscribed on cn. The caller holds n.mu.
func subscribedOn(n *Notifier, cn *conn, name string) *channel {
	ch := &channel{name: name, conn: cn, state: subscribed}
	n.chans[name] = ch
	return ch
}

// wakes gives ch an armed watcher and returns the payloads of its
// wake-ups.
func wakes(n *Notifier, ch *channel) *[]string {
	var got []string
	ch.watchers = append(ch.watchers, &watcher{wake: func(p string) { got = append(got, p) }, armed: true, n: n, ch: ch})
	return &got
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// A wake-up still on its way from a shard a channel has left must not
// become the channel's latest: a re-poll trusting it would skip a read
// that newer messages need.
func TestLatestOnlyFromTheChannelsShard(t *testing.T) {
	n, _, _, a, b, ch := clusterNotifier(t)
	got := wakes(n, ch)
	n.dispatch(a, a.gen, &redis.Message{Channel: ch.name, Payload: "e 5\nold"})
	if ch.latest != "" || len(*got) != 1 {
		t.Fatalf("after a wake-up from the old shard: latest %q, woken %d; want none, 1", ch.latest, len(*got))
	}
	n.dispatch(b, b.gen, &redis.Message{Channel: ch.name, Payload: "e 6\nnew"})
	if ch.latest != "e 6\nnew" {
		t.Fatalf("after a wake-up from its shard: latest %q", ch.latest)
	}
}

// A shard that gives a slot up unsubscribes its channels by itself: each
// is subscribed again on its new shard, once, and only its own watchers
// re-read, once that is confirmed. The other channels of the shard are
// left alone.
func TestSlotMoveMovesOnlyThatChannel(t *testing.T) {
	n, fc, reg, a, b, moved := clusterNotifier(t)
	moved.latest = "e 5\nmsg"
	movedWakes := wakes(n, moved)
	n.mu.Lock()
	stays := subscribedOn(n, b, "cb:{y}:w")
	n.mu.Unlock()
	staysWakes := wakes(n, stays)

	fc.set(moved.name, "a")
	n.dispatch(b, b.gen, &redis.Subscription{Kind: "sunsubscribe", Channel: moved.name})
	if moved.state != moving || moved.latest != "" || len(*movedWakes) != 0 {
		t.Fatalf("after the shard gave it up: state %v, latest %q, wake-ups %q; want moving, none, none", moved.state, moved.latest, *movedWakes)
	}
	if pending := n.reconcile(context.Background()); pending {
		t.Fatal("reconcile left the channel waiting")
	}
	if moved.conn != a || moved.state != subscribing || len(a.pendSub) != 1 || a.pendSub[0] != moved.name {
		t.Fatalf("channel on %s in state %v, a's pending subscriptions %q; want subscribing on a", moved.conn.shard, moved.state, a.pendSub)
	}
	n.dispatch(a, a.gen, &redis.Subscription{Kind: "ssubscribe", Channel: moved.name})
	if len(*movedWakes) != 1 || (*movedWakes)[0] != "" {
		t.Fatalf("moved channel's wake-ups %q; want one re-read", *movedWakes)
	}
	if len(*staysWakes) != 0 || stays.state != subscribed || stays.conn != b || len(b.pendSub) != 0 {
		t.Fatalf("the channel that stayed: wake-ups %q, state %v, b's pending %q; want untouched", *staysWakes, stays.state, b.pendSub)
	}
	if got := counter(t, reg, "cometbox_pubsub_channel_moves_total"); got != 1 {
		t.Fatalf("moves counted %v; want 1", got)
	}
}

// A MOVED refusal names a slot: only the channels of that slot waiting
// for their confirmation move.
func TestRefusalMovesOnlyItsSlot(t *testing.T) {
	n, _, _, _, b, _ := clusterNotifier(t)
	n.mu.Lock()
	p, q := subscribedOn(n, b, "cb:{p}:w"), subscribedOn(n, b, "cb:{q}:w")
	n.subscribeLocked(p)
	n.subscribeLocked(q)
	n.mu.Unlock()
	n.refused(b, b.gen, fmt.Errorf("MOVED %d 127.0.0.1:7001", keySlot(p.name)))
	if p.state != moving || q.state != subscribing {
		t.Fatalf("states after MOVED for p's slot: p %v, q %v; want moving, subscribing", p.state, q.state)
	}
}

// When the topology just read still gives the slot to the shard that gave
// it up (the node asked has not heard of the move), the channel waits and
// is tried again; past the probe timeout it is subscribed there anyway.
func TestStaleTopologyTriedAgain(t *testing.T) {
	n, fc, _, _, b, ch := clusterNotifier(t)
	wakes(n, ch)
	fc.set(ch.name, "b")
	n.dispatch(b, b.gen, &redis.Subscription{Kind: "sunsubscribe", Channel: ch.name})
	if pending := n.reconcile(context.Background()); !pending || ch.state != moving || len(b.pendSub) != 0 {
		t.Fatalf("pending %v, state %v, b's pending %q; want still moving, nothing sent", pending, ch.state, b.pendSub)
	}
	n.mu.Lock()
	ch.since = time.Now().Add(-2 * time.Second)
	n.mu.Unlock()
	if pending := n.reconcile(context.Background()); pending || ch.state != subscribing || ch.conn != b {
		t.Fatalf("pending %v, state %v on %s; want subscribing on b", pending, ch.state, ch.conn.shard)
	}
}

// A channel whose new shard is unknown (the topology cannot be read)
// waits, forgets its latest wake-up, and is tried again.
func TestUnknownShardTriedAgain(t *testing.T) {
	n, fc, _, _, b, ch := clusterNotifier(t)
	ch.latest = "e 5\nmsg"
	got := wakes(n, ch)
	fc.mu.Lock()
	fc.err = errors.New("cluster slots unknown")
	fc.mu.Unlock()
	n.dispatch(b, b.gen, &redis.Subscription{Kind: "sunsubscribe", Channel: ch.name})
	if pending := n.reconcile(context.Background()); !pending || ch.state != moving || ch.latest != "" || len(*got) != 0 {
		t.Fatalf("pending %v, state %v, latest %q, wake-ups %q; want moving, none, none", pending, ch.state, ch.latest, *got)
	}
}

// A shard that is no longer a master is dropped: its channels with
// watchers move, the others are forgotten, and readiness no longer counts
// its connection.
func TestShardNoLongerMasterDropped(t *testing.T) {
	n, fc, _, a, b, ch := clusterNotifier(t)
	wakes(n, ch)
	n.mu.Lock()
	idle := subscribedOn(n, b, "cb:{idle}:w")
	a.probeOK, b.lastErr = time.Now(), errors.New("self-probe did not come back")
	n.mu.Unlock()
	if err := n.Ready(); err == nil {
		t.Fatal("Ready() = nil with shard b's probe failing")
	}
	fc.mu.Lock()
	fc.masters = []string{"a"}
	fc.mu.Unlock()
	n.reconcile(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns["b"] != nil || !b.dropped || n.chans["probe-b"] != nil || n.chans[idle.name] != nil {
		t.Fatalf("b still known: conn %v, probe %v, idle channel %v", n.conns["b"] != nil, n.chans["probe-b"] != nil, n.chans[idle.name] != nil)
	}
	if ch.conn != a || ch.state != subscribing {
		t.Fatalf("b's channel on %s in state %v; want subscribing on a", ch.conn.shard, ch.state)
	}
	n.mu.Unlock()
	err := n.Ready()
	n.mu.Lock()
	if err != nil {
		t.Fatalf("Ready() = %v; want nil once b is dropped", err)
	}
}

// A topology without masters (a node answering CLUSTER SLOTS after a
// reset) drops nothing.
func TestNoMastersDropsNothing(t *testing.T) {
	n, fc, _, _, _, _ := clusterNotifier(t)
	fc.mu.Lock()
	fc.masters = nil
	fc.mu.Unlock()
	n.reconcile(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.conns) != 2 {
		t.Fatalf("%d connections left; want both", len(n.conns))
	}
}

func TestKeySlot(t *testing.T) {
	for name, want := range map[string]int{
		"cb:{b}:w": 3300, "{b}": 3300, "b": 3300, "123456789": 12739,
	} {
		if got := keySlot(name); got != want {
			t.Errorf("keySlot(%q) = %d; want %d", name, got, want)
		}
	}
}
