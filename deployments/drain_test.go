package deployments_test

// A drain under load, behind the balancer: three nodes with
// docker-compose's drain settings behind haproxy.cfg with its own check
// timings, a few hundred pages long-polling and a few event streams
// through it, a back end publishing at a steady rate; one node is sent
// SIGTERM, exits, and is started again (issue 21).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/internal/testenv"
)

// composeDrain is the drain docker-compose.yml gives its nodes.
type composeDrain struct {
	delay, spread, shutdown, poll time.Duration
}

func loadComposeDrain(t *testing.T) composeDrain {
	t.Helper()
	const where = "docker-compose.yml: " + nodeService
	env := mapping(t, where, loadYAML(t, "docker-compose.yml")[0], "services", nodeService, "environment")
	d := func(k string) time.Duration { return duration(t, where+" "+k, text(t, where, env, k)) }
	return composeDrain{d("COMETBOX_DRAIN_DELAY"), d("COMETBOX_DRAIN_SPREAD"), d("COMETBOX_SHUTDOWN_TIMEOUT"), d("COMETBOX_POLL_TIMEOUT")}
}

// drainLoad is the traffic of TestDrainBehindBalancer and what it saw.
type drainLoad struct {
	lb     string
	oracle *tc.Oracle
	pages  []*tc.Page
	// busy is how many of the pages (the first ones) get messages; the
	// others are idle, like most browsers most of the time: their polls
	// are held until they time out, or the node drains.
	busy int
	// streams are the clients following an event stream; their messages
	// are accounted here, the pages' by the oracle.
	streams []string

	mu        sync.Mutex
	empties   []event            // polls answered 200 with no message
	failures  []event            // polls and streams that failed
	latencies []latency          // first deliveries, polls and streams
	ends      []event            // streams the node ended
	streamAcc map[string]bool    // payloads accepted for stream clients
	streamGot map[string]int     // payload -> deliveries on streams
	refused   atomic.Int64       // publishes not answered 200
	seq       atomic.Int64       // payload numbers
	opened    atomic.Int64       // streams that got their hello
	pubWG     sync.WaitGroup     // publishes in flight
	clientWG  sync.WaitGroup     // pages and streams
	cancel    context.CancelFunc // of pages and streams
}

type event struct {
	at     time.Time
	client string
	what   string
	took   time.Duration // of an empty poll: how long it was held
}

type latency struct {
	published time.Time
	took      time.Duration
}

func newDrainLoad(lb string, polls, busy, streams int) *drainLoad {
	l := &drainLoad{lb: lb, busy: busy, oracle: tc.NewOracle(), streamAcc: map[string]bool{}, streamGot: map[string]int{}}
	for i := range polls {
		l.pages = append(l.pages, &tc.Page{Base: lb, Client: fmt.Sprintf("drain-p%d", i), Oracle: l.oracle})
	}
	for i := range streams {
		l.streams = append(l.streams, fmt.Sprintf("drain-s%d", i))
	}
	return l
}

// start runs every page and stream until stop.
func (l *drainLoad) start(pollTimeout time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, p := range l.pages {
		l.clientWG.Go(func() { l.follow(ctx, p, pollTimeout) })
	}
	for _, c := range l.streams {
		l.clientWG.Go(func() { l.stream(ctx, c) })
	}
}

func (l *drainLoad) stop() {
	l.cancel()
	l.clientWG.Wait()
}

func (l *drainLoad) record(list *[]event, client, what string) {
	l.mu.Lock()
	*list = append(*list, event{at: time.Now(), client: client, what: what})
	l.mu.Unlock()
}

// delivered notes the first delivery of a payload "N@UNIXNANO".
func (l *drainLoad) delivered(at time.Time, payload string) {
	_, ns, _ := strings.Cut(payload, "@")
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		l.record(&l.failures, "", "payload "+payload)
		return
	}
	pub := time.Unix(0, n)
	l.mu.Lock()
	l.latencies = append(l.latencies, latency{pub, at.Sub(pub)})
	l.mu.Unlock()
}

// follow polls like a browser page: the same cursor again after a
// failure, a moment later.
func (l *drainLoad) follow(ctx context.Context, p *tc.Page, pollTimeout time.Duration) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollTimeout+10*time.Second)
		began := time.Now()
		fresh, a, err := p.PollOnce(pctx)
		cancel()
		at := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil || a.Status != http.StatusOK:
			l.record(&l.failures, p.Client, fmt.Sprintf("poll: %d %q %v", a.Status, a.Body, err))
			time.Sleep(100 * time.Millisecond)
		case len(a.Messages) == 0:
			l.mu.Lock()
			l.empties = append(l.empties, event{at: at, client: p.Client, took: at.Sub(began)})
			l.mu.Unlock()
		}
		for _, m := range fresh {
			l.delivered(at, m.Text())
		}
	}
}

// stream follows client's event stream like EventSource, resuming with
// Last-Event-ID, but at once: not after the stream's "retry: 2000".
func (l *drainLoad) stream(ctx context.Context, client string) {
	var last string
	seen := map[string]bool{}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.lb+"/stream?client="+url.QueryEscape(client), nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := tc.HTTP.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			if ctx.Err() != nil {
				return
			}
			st := 0
			if err == nil {
				st = resp.StatusCode
				resp.Body.Close()
			}
			l.record(&l.failures, client, fmt.Sprintf("stream: %d %v", st, err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var ev, id, data string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			case line == "":
				switch ev {
				case "hello":
					l.opened.Add(1)
				case "":
					if data == "" {
						break // "retry: 2000" alone
					}
					var m tc.Message
					if err := json.Unmarshal([]byte(data), &m); err != nil {
						l.record(&l.failures, client, "stream event "+data)
						break
					}
					payload := m.Text()
					l.mu.Lock()
					l.streamGot[payload]++
					l.mu.Unlock()
					if !seen[payload] {
						seen[payload] = true
						l.delivered(time.Now(), payload)
					}
					last = id
				}
				ev, id, data = "", "", ""
			}
		}
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		l.record(&l.ends, client, fmt.Sprint(sc.Err()))
	}
}

// publish sends one message to client through the balancer.
func (l *drainLoad) publish(client string, isStream bool) {
	defer l.pubWG.Done()
	now := time.Now()
	payload := fmt.Sprintf("%d@%d", l.seq.Add(1), now.UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, _, err := tc.Publish(ctx, l.lb, publishSecret, "application/xml", tc.XML(client, payload))
	if err != nil || st != http.StatusOK {
		l.refused.Add(1)
		return
	}
	if isStream {
		l.mu.Lock()
		l.streamAcc[payload] = true
		l.mu.Unlock()
		return
	}
	l.oracle.Accepted(client, payload)
}

// publishAt publishes rate messages a second, one per request, each to
// a busy page or a stream picked at random, until stop is closed.
func (l *drainLoad) publishAt(rate int, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			l.pubWG.Wait()
			return
		case <-tick.C:
		}
		l.pubWG.Add(1)
		if k := rand.IntN(l.busy + len(l.streams)); k < l.busy {
			go l.publish(l.pages[k].Client, false)
		} else {
			go l.publish(l.streams[k-l.busy], true)
		}
	}
}

// between returns the events in [from, to).
func between(evs []event, from, to time.Time) []event {
	var out []event
	for _, e := range evs {
		if !e.at.Before(from) && e.at.Before(to) {
			out = append(out, e)
		}
	}
	return out
}

// latencyStats summarises the latencies of messages published in [from, to).
type latencyStats struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func (s latencyStats) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("%d messages, p50 %v p90 %v p99 %v max %v", s.n, r(s.p50), r(s.p90), r(s.p99), r(s.max))
}

func latencies(ls []latency, from, to time.Time) latencyStats {
	var ds []time.Duration
	for _, l := range ls {
		if !l.published.Before(from) && l.published.Before(to) {
			ds = append(ds, l.took)
		}
	}
	if len(ds) == 0 {
		return latencyStats{}
	}
	slices.Sort(ds)
	q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
	return latencyStats{len(ds), q(0.5), q(0.9), q(0.99), ds[len(ds)-1]}
}

// TestDrainBehindBalancer sends SIGTERM to one of three nodes behind
// haproxy.cfg (its own check timings: every 1s, out after 2 failures)
// while 300 pages long-poll through it (200 get messages, 100 are idle),
// 30 event streams follow through it, and a back end publishes 100
// messages a second through it, with docker-compose's drain settings
// (delay 5s, spread 3s, poll timeout 25s); then it starts the node again.
// It checks the drain that deployments/README.md describes:
//
//   - through the delay the node serves as usual: no held poll or stream
//     is answered early, and HAProxy takes it out of the rotation on
//     /readyz alone, within the delay;
//   - after the delay its held polls are answered [] and its streams end,
//     spread over the spread, and it exits 0 about delay + spread after
//     the signal;
//   - nothing is lost or duplicated, no poll, stream or publish fails;
//   - the drain adds at most one empty answer per poll the node held (the
//     answer its timeout would have given, only earlier), none of them
//     instant: not the storm of instant empty answers and re-polls that
//     leastconn feeds back to a node answering [] at once;
//   - messages published during the drain arrive about as fast as before
//     it (p90 near the baseline's, p99 under a second).
func TestDrainBehindBalancer(t *testing.T) {
	testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	cd := loadComposeDrain(t)
	rs := redisserver.Start(t, redisserver.Options{})
	const (
		polls, busy, streams = 300, 200, 30
		rate                 = 100 // messages a second, one per publish
	)
	c := newCluster(t, "-redis-url", rs.URL(), "-publish-secret", publishSecret, "-poll-timeout", cd.poll.String(),
		"-drain-delay", cd.delay.String(), "-drain-spread", cd.spread.String(),
		"-shutdown-timeout", cd.shutdown.String())
	nodes := make([]*nodeproc.Node, 3)
	for i := range nodes {
		nodes[i] = c.Add()
	}
	for _, n := range nodes {
		n.WaitReady()
	}
	lb := startBalancerWith(t, c, false)
	allUp := func() bool { return len(lb.inRotation(t)) == 3 }
	waitFor(t, 15*time.Second, "haproxy to see the three nodes UP", allUp)

	load := newDrainLoad(lb.URL, polls, busy, streams)
	load.start(cd.poll)
	stopped := false
	defer func() {
		if !stopped {
			load.stop()
		}
	}()
	held := func(n *nodeproc.Node) int {
		return int(getScrape(t, n.OpsURL()+"/metrics").sum("cometbox_polls_waiting", nil))
	}
	waitFor(t, 15*time.Second, "every poll held and every stream open", func() bool {
		total := 0
		for _, n := range nodes {
			total += held(n)
		}
		return total >= polls && load.opened.Load() >= streams
	})
	stopPublishing := make(chan struct{})
	published := make(chan struct{})
	go func() { defer close(published); load.publishAt(rate, stopPublishing) }()
	defer func() {
		select {
		case <-stopPublishing:
		default:
			close(stopPublishing)
		}
		<-published
	}()

	// The baseline: every node in rotation, nothing draining.
	time.Sleep(2 * time.Second)
	baseFrom := time.Now()
	time.Sleep(6 * time.Second)

	const vi = 1
	victim := nodes[vi]
	victimAddr := addrOf(t, victim)
	heldAtSignal := held(victim)
	sigterm := time.Now()
	victim.Signal(syscall.SIGTERM)
	var downAt atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for time.Since(sigterm) < cd.delay+cd.spread {
			if st := lb.status(t, victimAddr); st != "" && !strings.HasPrefix(st, "UP") {
				downAt.Store(int64(time.Since(sigterm)))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// Late in the delay the node still holds polls: the idle pages' it
	// held at the signal, and the busy pages' that no message has
	// answered yet.
	time.Sleep(cd.delay - 300*time.Millisecond)
	heldLate := held(victim)
	code := victim.Wait(cd.shutdown + 10*time.Second)
	exitAfter := time.Since(sigterm)
	<-watchDone

	// Started again on its address, which stayed in the DNS answer, as
	// `docker compose restart` keeps a container's.
	nodes[vi] = c.Start(victimAddr)
	nodes[vi].WaitReady()
	waitFor(t, 15*time.Second, "haproxy to see the restarted node UP", allUp)
	back := time.Since(sigterm)
	time.Sleep(3 * time.Second)
	close(stopPublishing)
	<-published
	waitFor(t, 15*time.Second, "every accepted message delivered", func() bool {
		load.mu.Lock()
		defer load.mu.Unlock()
		for p := range load.streamAcc {
			if load.streamGot[p] == 0 {
				return false
			}
		}
		return load.oracle.Missing(load.pages) == 0
	})
	end := time.Now()
	load.stop()
	stopped = true

	report := load.oracle.Verify(load.pages)
	streamLost, streamDup := 0, 0
	for p := range load.streamAcc {
		if load.streamGot[p] == 0 {
			streamLost++
		}
	}
	for _, n := range load.streamGot {
		streamDup += max(0, n-1)
	}
	// An empty answer is a timeout when its poll was held for at least
	// the poll timeout less its 20 % jitter; any other was drained.
	isTimeout := func(e event) bool { return e.took >= cd.poll*8/10-time.Second }
	delayEnd, drained := sigterm.Add(cd.delay), sigterm.Add(exitAfter)
	window := drained.Add(time.Second) // the drain, and the re-polls it caused
	var timeouts, early, drainedEmpty, instant []event
	perClient := map[string]int{}
	for _, e := range between(load.empties, sigterm, window) {
		switch {
		case isTimeout(e):
			timeouts = append(timeouts, e)
		case e.at.Before(delayEnd):
			early = append(early, e)
		default:
			drainedEmpty = append(drainedEmpty, e)
			perClient[e.client]++
			if e.took < 500*time.Millisecond {
				instant = append(instant, e)
			}
		}
	}
	worst := 0
	for _, n := range perClient {
		worst = max(worst, n)
	}
	baseEmpty := between(load.empties, baseFrom, sigterm)
	latBase := latencies(load.latencies, baseFrom, sigterm)
	latDrain := latencies(load.latencies, sigterm, drained)
	latBack := latencies(load.latencies, drained, end)
	var ended []time.Duration
	for _, e := range between(load.ends, sigterm, window) {
		ended = append(ended, e.at.Sub(sigterm).Round(time.Millisecond))
	}
	t.Logf("drain of %s: %d polls held at SIGTERM, %d late in the delay; out of HAProxy's rotation %v after SIGTERM; exit %d %v after; UP again %v after",
		victim.Name, heldAtSignal, heldLate, time.Duration(downAt.Load()).Round(time.Millisecond), code, exitAfter.Round(time.Millisecond), back.Round(time.Millisecond))
	t.Logf("empty polls: baseline %d in %v; from SIGTERM to 1s after the exit %d: %d timeouts, %d before the delay's end, %d drained (%d pages, at most %d each; %d held under 500ms)",
		len(baseEmpty), sigterm.Sub(baseFrom).Round(time.Second), len(timeouts)+len(early)+len(drainedEmpty), len(timeouts), len(early), len(drainedEmpty), len(perClient), worst, len(instant))
	t.Logf("latency: baseline %v; published during the drain %v; after %v", latBase, latDrain, latBack)
	t.Logf("streams ended by the drain, after SIGTERM: %v", ended)
	t.Logf("polls: %v; streams: %d accepted, %d lost, %d twice; publishes refused %d; failures %d",
		report, len(load.streamAcc), streamLost, streamDup, load.refused.Load(), len(load.failures))

	// Nothing lost, nothing twice.
	if !report.OK() {
		t.Errorf("polls: %v: %v", report, report.Problems)
	}
	if streamLost > 0 || streamDup > 0 {
		t.Errorf("streams: %d of %d accepted messages lost, %d delivered twice", streamLost, len(load.streamAcc), streamDup)
	}
	// HAProxy sends a request that finds the listener closed to another
	// node, so no page sees an error, and no publish fails.
	if len(load.failures) > 0 {
		t.Errorf("%d polls or streams failed, e.g. %v", len(load.failures), load.failures[:min(5, len(load.failures))])
	}
	if n := load.refused.Load(); n > 0 {
		t.Errorf("%d publishes refused or failed", n)
	}

	// The order: out of the rotation on readiness within the delay, held
	// polls held through it, answered within the spread after it.
	if d := time.Duration(downAt.Load()); d == 0 || d >= cd.delay {
		t.Errorf("HAProxy took %s out of the rotation %v after SIGTERM; want within the %v drain delay", victim.Name, d, cd.delay)
	}
	if code != 0 {
		t.Errorf("the drained node exited %d; want 0", code)
	}
	if lo, hi := cd.delay+cd.spread/2, cd.delay+cd.spread+2*time.Second; exitAfter < lo || exitAfter > hi {
		t.Errorf("the drained node exited %v after SIGTERM; want about delay + spread (%v to %v)", exitAfter, lo, hi)
	}
	if heldAtSignal == 0 || heldLate*5 < heldAtSignal {
		t.Errorf("the draining node held %d polls at SIGTERM and %d late in its delay; want them held through the delay (at least a fifth: the idle pages')", heldAtSignal, heldLate)
	}
	if len(early) > 0 {
		t.Errorf("%d polls answered empty within the drain delay, not by a timeout; want none: held polls stay held", len(early))
	}
	// The empty answers the drain causes: one per poll the node held when
	// the delay ended (leastconn gave it about a third of the pages; the
	// polls it took during the delay replace those a message answered),
	// 5 % more for noise, each after the poll had been held a while.
	if limit := max(heldAtSignal, heldLate) + polls/20; len(drainedEmpty) > limit {
		t.Errorf("the drain answered %d polls empty; want at most %d, one per poll it held", len(drainedEmpty), limit)
	}
	if worst > 1 {
		t.Errorf("a page got %d empty answers from the drain; want at most one", worst)
	}
	if len(instant) > 0 {
		t.Errorf("%d polls answered empty within 500ms, e.g. after %v: an instant [] invites an instant re-poll", len(instant), instant[0].took)
	}
	// Messages published during the drain arrive about as fast as
	// before it. On a machine of 2 shared cores the scheduler stalls
	// everything for 100 to 250ms now and then, in any window, which
	// moves a p99 of a few hundred messages (baselines of 6 to 56ms were
	// seen); what a broken drain does is hold messages for seconds (until
	// the spread or the timeout) on a third of the pages. So: p90 within
	// 3x the baseline's + 25ms, p99 under a second.
	if latDrain.n == 0 || latBase.n == 0 {
		t.Fatalf("no latency samples: baseline %v, drain %v", latBase, latDrain)
	}
	if limit := 3*latBase.p90 + 25*time.Millisecond; latDrain.p90 > limit {
		t.Errorf("p90 latency of messages published during the drain %v; want at most %v (3 x the baseline's p90 %v + 25ms)", latDrain.p90, limit, latBase.p90)
	}
	if latDrain.p99 > time.Second {
		t.Errorf("p99 latency of messages published during the drain %v; want under a second", latDrain.p99)
	}
	// Streams: held through the delay, ended within the spread after it.
	if len(ended) == 0 {
		t.Errorf("no stream ended by the drain: none on %s?", victim.Name)
	}
	for _, d := range ended {
		if d < cd.delay || d > cd.delay+cd.spread+500*time.Millisecond {
			t.Errorf("a stream ended %v after SIGTERM; want after the %v delay, within the %v spread", d, cd.delay, cd.spread)
		}
	}
}
