package presence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/internal/testenv"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/presence"
)

// clock is a test's time, moved by hand; it moves miniredis's too (its
// TIME, which the heartbeats and the sweeper read).
type clock struct {
	mu  sync.Mutex
	now time.Time
	mr  *miniredis.Miniredis
}

func newClock() *clock { return &clock{now: time.UnixMilli(1_800_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	if c.mr != nil {
		c.mr.SetTime(c.now)
	}
	c.mu.Unlock()
}

// sink records what it is handed, and fails while failing is set.
type sink struct {
	mu      sync.Mutex
	events  []presence.Event
	failing bool
}

func (s *sink) Send(ctx context.Context, events []presence.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("receiver down")
	}
	s.events = append(s.events, events...)
	return nil
}

// got lists the events as "kind client", in order.
func (s *sink) got() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, strings.TrimPrefix(e.Kind, "client_")+" "+e.Client)
	}
	return strings.Join(out, ", ")
}

type world struct {
	t     *testing.T
	ctx   context.Context
	rdb   *redis.Client
	clock *clock
	sink  *sink
}

func newWorld(t *testing.T) *world {
	mr, rdb := redistest.New(t)
	return &world{t: t, ctx: context.Background(), rdb: rdb, clock: newClock().on(mr), sink: &sink{}}
}

// on makes the clock move mr's time too, from now on.
func (c *clock) on(mr *miniredis.Miniredis) *clock {
	c.mr = mr
	mr.SetTime(c.now)
	return c
}

// node is one node's Presence, registered.
func (w *world) node(name string, opts presence.Options) *presence.Presence {
	opts.Node = name
	opts.Now = w.clock.Now
	if opts.Sink == nil {
		opts.Sink = w.sink
	}
	p := presence.New(w.rdb, nil, nil, opts)
	presence.Heartbeat(p, w.ctx)
	return p
}

func (w *world) state(p *presence.Presence, client string) presence.State {
	w.t.Helper()
	st, err := p.Lookup(w.ctx, []string{client})
	if err != nil {
		w.t.Fatalf("Lookup(%s) = %v", client, err)
	}
	return st[0]
}

// deliver hands every shard's events to the sink.
func (w *world) deliver(p *presence.Presence, shards int) {
	w.t.Helper()
	for s := 0; s < shards; s++ {
		for {
			n, err := presence.DeliverShard(p, w.ctx, s)
			if err != nil {
				w.t.Fatalf("DeliverShard(%d) = %v", s, err)
			}
			if n == 0 {
				break
			}
		}
	}
}

func TestOnlineWhileHeldAndForTheLinger(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{Linger: 5 * time.Second})
	if st := w.state(a, "alice"); st.Online || !st.LastSeen.IsZero() {
		t.Fatalf("before any poll: %+v; want offline, never seen", st)
	}
	a.Begin("alice")
	presence.Flush(a, w.ctx)
	began := w.clock.Now()
	if st := w.state(a, "alice"); !st.Online || !st.Since.Equal(began) {
		t.Fatalf("while held: %+v; want online since %v", st, began)
	}
	w.clock.Add(20 * time.Second)
	a.End("alice")
	ended := w.clock.Now()
	w.clock.Add(4 * time.Second)
	presence.Flush(a, w.ctx)
	if st := w.state(a, "alice"); !st.Online {
		t.Fatalf("4s after the poll ended: %+v; want online (linger 5s)", st)
	}
	w.clock.Add(time.Second)
	presence.Flush(a, w.ctx)
	if st := w.state(a, "alice"); st.Online || !st.LastSeen.Equal(ended) {
		t.Fatalf("after the linger: %+v; want offline, last seen %v", st, ended)
	}
	if a.Clients() != 0 {
		t.Errorf("Clients() = %d after the linger; want 0", a.Clients())
	}
	w.deliver(a, 1)
	if got := w.sink.got(); got != "online alice, offline alice" {
		t.Errorf("events = %q; want online then offline", got)
	}
}

func TestRePollOnTheSameNodeWritesNothing(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{})
	a.Begin("bob")
	presence.Flush(a, w.ctx)
	before := commands(t, w)
	for range 50 { // a poll answered, the next one within a second
		a.End("bob")
		w.clock.Add(time.Second)
		a.Begin("bob")
		presence.Flush(a, w.ctx)
	}
	if n := commands(t, w) - before - 1; n != 0 { // less the first INFO
		t.Errorf("50 re-polls on the same node cost %d Redis commands; want 0", n)
	}
}

// commands counts the commands Redis ran so far (miniredis counts each
// script call once, whatever it runs inside).
func commands(t *testing.T, w *world) int {
	t.Helper()
	info, err := w.rdb.Info(w.ctx, "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			fmt.Sscan(v, &n)
		}
	}
	return n
}

func TestHopBetweenNodesDoesNotFlap(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{})
	b := w.node("b", presence.Options{})
	nodes := []*presence.Presence{a, b}
	for i := range 10 { // each poll on the other node, 25s each
		n := nodes[i%2]
		n.Begin("carol")
		presence.Flush(a, w.ctx)
		presence.Flush(b, w.ctx)
		w.clock.Add(25 * time.Second)
		n.End("carol")
		w.clock.Add(50 * time.Millisecond)
		if st := w.state(a, "carol"); !st.Online {
			t.Fatalf("poll %d: %+v; want online", i, st)
		}
	}
	w.clock.Add(5 * time.Second)
	presence.Flush(a, w.ctx)
	presence.Flush(b, w.ctx)
	w.deliver(a, 1)
	if got := w.sink.got(); got != "online carol, offline carol" {
		t.Errorf("events = %q; want one online, one offline", got)
	}
}

func TestTwoTabsOnTwoNodes(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{})
	b := w.node("b", presence.Options{})
	a.Begin("dave")
	b.Begin("dave")
	presence.Flush(a, w.ctx)
	presence.Flush(b, w.ctx)
	a.End("dave") // one tab closes
	w.clock.Add(10 * time.Second)
	presence.Flush(a, w.ctx)
	if st := w.state(a, "dave"); !st.Online {
		t.Fatalf("one tab left: %+v; want online", st)
	}
	b.End("dave")
	w.clock.Add(10 * time.Second)
	presence.Flush(b, w.ctx)
	if st := w.state(a, "dave"); st.Online {
		t.Fatalf("both tabs left: %+v; want offline", st)
	}
	w.deliver(a, 1)
	if got := w.sink.got(); got != "online dave, offline dave" {
		t.Errorf("events = %q", got)
	}
}

func TestDeadNodeSweptByAnother(t *testing.T) {
	w := newWorld(t)
	opts := presence.Options{Linger: 5 * time.Second, NodeTTL: 3 * time.Second}
	a := w.node("a", opts)
	b := w.node("b", opts)
	a.Begin("erin")
	a.Begin("frank")
	b.Begin("frank") // held on b too: stays online
	presence.Flush(a, w.ctx)
	presence.Flush(b, w.ctx)
	heard := w.clock.Now()
	// a dies: no more heartbeats. b goes on.
	for range 7 {
		w.clock.Add(time.Second)
		presence.Heartbeat(b, w.ctx)
		if err := presence.Sweep(b, w.ctx); err != nil {
			t.Fatal(err)
		}
		if st := w.state(b, "erin"); !st.Online {
			t.Fatalf("%v after a's last heartbeat: %+v; want online until its dead time (3s) and the linger (5s)",
				w.clock.Now().Sub(heard), st)
		}
	}
	w.clock.Add(time.Second)
	presence.Heartbeat(b, w.ctx)
	if err := presence.Sweep(b, w.ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.state(b, "erin"); st.Online || !st.LastSeen.Equal(heard) {
		t.Fatalf("8s after: %+v; want offline, last seen at a's last heartbeat %v", st, heard)
	}
	if st := w.state(b, "frank"); !st.Online {
		t.Errorf("frank, still held on b: %+v; want online", st)
	}
	w.deliver(b, 1)
	if got := w.sink.got(); got != "online erin, online frank, offline erin" {
		t.Errorf("events = %q", got)
	}
}

func TestNodeTakenForDeadAddsItsClientsAgain(t *testing.T) {
	w := newWorld(t)
	opts := presence.Options{Linger: time.Second, NodeTTL: time.Second}
	a := w.node("a", opts)
	b := w.node("b", opts)
	a.Begin("gina")
	presence.Flush(a, w.ctx)
	old := presence.ID(a)
	w.clock.Add(5 * time.Second) // a's heartbeats did not get through
	presence.Heartbeat(b, w.ctx)
	if err := presence.Sweep(b, w.ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.state(b, "gina"); st.Online {
		t.Fatalf("after a was taken for dead: %+v; want offline", st)
	}
	presence.Heartbeat(a, w.ctx)
	if presence.ID(a) == old {
		t.Fatalf("a kept its id %s after it was swept", old)
	}
	presence.Flush(a, w.ctx)
	if st := w.state(b, "gina"); !st.Online {
		t.Fatalf("after a came back: %+v; want online", st)
	}
}

func TestFailedFlushIsRetried(t *testing.T) {
	mr, rdb := redistest.New(t)
	w := &world{t: t, ctx: context.Background(), rdb: rdb, clock: newClock().on(mr), sink: &sink{}}
	a := w.node("a", presence.Options{})
	a.Begin("hank")
	mr.SetError("LOADING")
	presence.Flush(a, w.ctx)
	mr.SetError("")
	if st := w.state(a, "hank"); st.Online {
		t.Fatalf("after a failed flush: %+v", st)
	}
	presence.Heartbeat(a, w.ctx) // a heartbeat confirms the id again first
	presence.Flush(a, w.ctx)
	if st := w.state(a, "hank"); !st.Online {
		t.Fatalf("after the retry: %+v; want online", st)
	}
}

// While the node may not write (its heartbeat failed), what it keeps
// for its next write stays one change a client, however many polls come
// and go meanwhile; once it may write again, the last change counts.
func TestUnwrittenChangesStayBounded(t *testing.T) {
	mr, rdb := redistest.New(t)
	w := &world{t: t, ctx: context.Background(), rdb: rdb, clock: newClock().on(mr), sink: &sink{}}
	a := w.node("a", presence.Options{Linger: time.Second})
	a.Begin("ivy")
	presence.Flush(a, w.ctx)
	mr.SetError("LOADING")
	presence.Heartbeat(a, w.ctx) // fails: nothing is written until one succeeds
	for i := range 10000 {
		a.End("ivy") // ivy re-polls
		a.Begin("ivy")
		c := fmt.Sprint("c", i%100) // and others come and go
		a.Begin(c)
		a.End(c)
		if i%1000 == 999 {
			w.clock.Add(2 * time.Second)
			presence.Flush(a, w.ctx)
		}
	}
	if n := presence.Pending(a); n > 2*101 {
		t.Errorf("%d changes kept after 20000 polls of 101 clients while Redis failed; want one a client at most", n)
	}
	a.End("ivy")
	mr.SetError("")
	presence.Heartbeat(a, w.ctx)
	w.clock.Add(2 * time.Second)
	presence.Flush(a, w.ctx) // the others, added
	w.clock.Add(2 * time.Second)
	presence.Flush(a, w.ctx) // and removed after their linger, as ivy
	for _, c := range []string{"ivy", "c0", "c99"} {
		if st := w.state(a, c); st.Online {
			t.Errorf("%s after Redis came back and the linger passed: %+v; want offline", c, st)
		}
	}
	if n := presence.Pending(a); n != 0 {
		t.Errorf("%d changes kept once written; want 0", n)
	}
}

func TestShards(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{Shards: 4})
	var clients []string
	for i := range 40 {
		c := fmt.Sprintf("user:%d", i)
		clients = append(clients, c)
		a.Begin(c)
	}
	presence.Flush(a, w.ctx)
	states, err := a.Lookup(w.ctx, append(clients, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states[:40] {
		if !st.Online {
			t.Errorf("%s: %+v; want online", st.Client, st)
		}
	}
	if states[40].Online {
		t.Errorf("nobody: %+v; want offline", states[40])
	}
	keys, _ := w.rdb.Keys(w.ctx, "cb:{#p*}:c").Result()
	if len(keys) != 4 {
		t.Errorf("counts hashes = %v; want one per shard", keys)
	}
	list, err := a.List(w.ctx, "user:1", 100)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range list {
		names = append(names, st.Client)
	}
	slices.Sort(names)
	if want := []string{"user:1", "user:10", "user:11", "user:12", "user:13", "user:14", "user:15", "user:16", "user:17", "user:18", "user:19"}; !slices.Equal(names, want) {
		t.Errorf("List(user:1) = %v; want %v", names, want)
	}
	w.deliver(a, 4)
	if n := strings.Count(w.sink.got(), "online"); n != 40 {
		t.Errorf("%d online events; want 40", n)
	}
}

func TestEventsHandedOverAgainAfterAFailure(t *testing.T) {
	w := newWorld(t)
	a := w.node("a", presence.Options{})
	a.Begin("ivy")
	presence.Flush(a, w.ctx)
	w.sink.failing = true
	if _, err := presence.DeliverShard(a, w.ctx, 0); err == nil {
		t.Fatal("DeliverShard with a failing sink succeeded")
	}
	w.sink.failing = false
	w.deliver(a, 1)
	w.deliver(a, 1)
	if got := w.sink.got(); got != "online ivy" {
		t.Errorf("events = %q; want the one event once", got)
	}
	if n, _ := w.rdb.XLen(w.ctx, "cb:{#p0}:e").Result(); n != 0 {
		t.Errorf("%d events left in the stream after delivery; want 0", n)
	}
}

func TestNoEventsWithoutASink(t *testing.T) {
	w := newWorld(t)
	p := presence.New(w.rdb, nil, nil, presence.Options{Now: w.clock.Now})
	presence.Heartbeat(p, w.ctx)
	p.Begin("jack")
	presence.Flush(p, w.ctx)
	if n, _ := w.rdb.Exists(w.ctx, "cb:{#p0}:e").Result(); n != 0 {
		t.Error("an event stream was written without a sink")
	}
	if st := w.state(p, "jack"); !st.Online {
		t.Errorf("%+v; want online", st)
	}
}

func TestTrimmedEventsAreCounted(t *testing.T) {
	w := newWorld(t)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	p := presence.New(w.rdb, nil, m, presence.Options{Now: w.clock.Now, Sink: w.sink, MaxEvents: 2})
	presence.Heartbeat(p, w.ctx)
	for _, c := range []string{"k1", "k2", "k3", "k4", "k5"} {
		p.Begin(c)
	}
	presence.Flush(p, w.ctx) // five events in a stream that keeps two
	w.deliver(p, 1)
	if got := w.sink.got(); got != "online k4, online k5" {
		t.Errorf("events = %q; want the last two", got)
	}
	if n := sample(t, reg, "cometbox_webhook_events_dropped_total", "trimmed"); n != 3 {
		t.Errorf("dropped{trimmed} = %v; want 3", n)
	}
}

// Run, on two nodes with short timings: the node that holds the lease
// hands events over, and once the other stops, it sweeps its clients
// out.
func TestRun(t *testing.T) {
	_, rdb := redistest.New(t)
	s := &sink{}
	opts := presence.Options{Linger: 200 * time.Millisecond, Flush: 20 * time.Millisecond,
		Heartbeat: 50 * time.Millisecond, NodeTTL: 200 * time.Millisecond, Sink: s}
	run := func(name string) (*presence.Presence, context.CancelFunc, chan struct{}) {
		o := opts
		o.Node = name
		p := presence.New(rdb, nil, nil, o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = p.Run(ctx) }()
		return p, cancel, done
	}
	a, stopA, doneA := run("a")
	b, stopB, doneB := run("b")
	defer func() { stopB(); <-doneB }()
	a.Begin("lena")
	b.Begin("mo")
	testenv.WaitFor(t, 5*time.Second, "two online events", func() bool {
		return strings.Count(s.got(), "online") == 2
	})
	stopA() // a stops with lena held: b counts her out, a linger after a's dead time
	<-doneA
	stopped := time.Now()
	testenv.WaitFor(t, 5*time.Second, "lena offline", func() bool { return strings.Contains(s.got(), "offline lena") })
	if took := time.Since(stopped); took > 2*time.Second {
		t.Errorf("lena went offline %v after her node stopped; want within dead time, linger and a sweep", took)
	}
	st, err := b.Lookup(context.Background(), []string{"lena", "mo"})
	if err != nil || st[0].Online || !st[1].Online {
		t.Errorf("Lookup = %+v, %v; want lena offline, mo online", st, err)
	}
}

// sample reads the value of a metric's series whose one label has value
// label.
func sample(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A node whose clock is far behind the others' is not taken for dead:
// dead times are by Redis's clock.
func TestNodeWithASlowClockIsNotTakenForDead(t *testing.T) {
	w := newWorld(t)
	slow := func() time.Time { return w.clock.Now().Add(-30 * time.Second) }
	a := presence.New(w.rdb, nil, nil, presence.Options{Node: "a", Now: slow, Sink: w.sink})
	presence.Heartbeat(a, w.ctx)
	b := w.node("b", presence.Options{})
	a.Begin("kim")
	presence.Flush(a, w.ctx)
	for range 5 {
		w.clock.Add(time.Second)
		presence.Heartbeat(a, w.ctx)
		presence.Heartbeat(b, w.ctx)
		if err := presence.Sweep(b, w.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := w.state(b, "kim"); !st.Online {
		t.Errorf("kim, held by a node whose clock is 30s behind: %+v; want online", st)
	}
}

// cancelInLease cancels a context while the sweeper's lease is being
// kept, as a shutdown may at any moment, once armed.
type cancelInLease struct {
	*redis.Client
	armed  chan struct{}
	cancel context.CancelFunc
}

func (c *cancelInLease) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if len(keys) == 1 && strings.HasSuffix(keys[0], "{#}lease") && len(args) == 2 && args[1] != int64(0) {
		select {
		case <-c.armed:
			c.cancel()
		default:
		}
	}
	return c.Client.EvalSha(ctx, sha, keys, args...)
}

// A sweeper that stops gives its lease up, whenever the stop comes: the
// next node takes over at once, not a NodeTTL later.
func TestStoppedSweeperGivesItsLeaseUp(t *testing.T) {
	mr, rdb := redistest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := &cancelInLease{Client: rdb, armed: make(chan struct{}), cancel: cancel}
	p := presence.New(c, nil, nil, presence.Options{Node: "a", Heartbeat: 20 * time.Millisecond, NodeTTL: time.Hour})
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	testenv.WaitFor(t, 5*time.Second, "the lease taken", func() bool { return mr.Exists("cb:{#}lease") })
	close(c.armed) // the next keeping of the lease is cut by the stop
	<-done
	if mr.Exists("cb:{#}lease") {
		t.Errorf("lease still held by %q after the sweeper stopped; want it given up", func() string { v, _ := mr.Get("cb:{#}lease"); return v }())
	}
}
