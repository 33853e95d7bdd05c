package main_test

// Nodes on a Sentinel-managed primary (a primary, two replicas, three
// sentinels, no persistence, as an operator runs one): a crash, a
// planned switchover (SENTINEL FAILOVER) and both with -durable-replicas,
// under load, with the oracle. Figures are logged as "sentinel-suite:"
// lines.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
)

// sentinelWorld is a world whose Redis is a SentinelSet.
type sentinelWorld struct {
	*world
	set *redisserver.SentinelSet

	pollFails atomic.Int64 // polls answered neither 200 nor (before the test ends) at all
	failures  sync.Map     // "status body" -> *atomic.Int64, for the log
	notReady  atomic.Int64 // /readyz answers other than 200 while sampled
}

func newSentinelWorld(t *testing.T, sopts redisserver.SentinelOptions, clients int, nodeArgs ...string) *sentinelWorld {
	t.Helper()
	set := redisserver.StartSentinel(t, sopts)
	w := &sentinelWorld{world: &world{t: t, oracle: tc.NewOracle()}, set: set}
	for i := range 2 {
		args := append([]string{"-redis-url", set.URL(), "-publish-secret", secret,
			"-max-polls-per-client", "0", "-poll-timeout", "10s"}, nodeArgs...)
		w.nodes = append(w.nodes, nodeproc.Start(t, fmt.Sprintf("sentinel%c", 'A'+i), args...))
	}
	for _, nd := range w.nodes {
		nd.WaitReady()
	}
	for i := range clients {
		w.pages = append(w.pages, &tc.Page{Client: fmt.Sprintf("s%d", i), Oracle: w.oracle})
	}
	return w
}

// follow starts every page following the nodes, counting the polls that
// fail; the returned func stops them and waits.
func (w *sentinelWorld) follow(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	bases := w.bases()
	var wg sync.WaitGroup
	for _, p := range w.pages {
		wg.Go(func() {
			i := rand.IntN(len(bases))
			for ctx.Err() == nil {
				p.Base = bases[i%len(bases)]
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, a, err := p.PollOnce(pctx)
				cancel()
				if err == nil && a.Status == http.StatusOK || ctx.Err() != nil {
					continue
				}
				w.pollFails.Add(1)
				why := strings.TrimSpace(a.Body)
				if err != nil {
					why = err.Error()
				}
				if len(why) > 80 {
					why = why[:80]
				}
				n, _ := w.failures.LoadOrStore(fmt.Sprint(a.Status, " ", why), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				i++ // elsewhere, after a back-off, as the browser client does
				select {
				case <-ctx.Done():
				case <-time.After(100*time.Millisecond + rand.N(100*time.Millisecond)):
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// pollFailures describes the failed polls, most frequent first.
func (w *sentinelWorld) pollFailures() string {
	var out []string
	w.failures.Range(func(k, v any) bool {
		out = append(out, fmt.Sprintf("%d× %s", v.(*atomic.Int64).Load(), k))
		return true
	})
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return strings.Join(out, "; ")
}

// watchReady samples every node's /readyz every 100ms until ctx ends.
func (w *sentinelWorld) watchReady(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, nd := range w.nodes {
		wg.Go(func() {
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				req, _ := http.NewRequestWithContext(rctx, http.MethodGet, nd.URL+"/readyz", nil)
				resp, err := tc.HTTP.Do(req)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					w.notReady.Add(1)
				default:
					if resp.StatusCode != http.StatusOK {
						w.notReady.Add(1)
					}
					resp.Body.Close()
				}
				rcancel()
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// wakeProbe measures the wake-up path: a poll held on one node for a
// client of its own, a publish through the other node, and the time from
// the publish's 200 to the poll's answer. It runs until stopped and
// returns the latencies measured after the moment mark was called.
type wakeProbe struct {
	mu      sync.Mutex
	marked  bool
	after   []time.Duration
	pending time.Time // when the publish now awaited was answered
}

func (w *sentinelWorld) probeWakeups(ctx context.Context) (p *wakeProbe, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	p = &wakeProbe{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cursor := ""
		for i := 0; ctx.Err() == nil; i++ {
			held, sender := w.nodes[i%2], w.nodes[(i+1)%2]
			pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
			answer := pollAsync(pctx, held, "wakeprobe", cursor)
			time.Sleep(150 * time.Millisecond) // held by now
			var acked time.Time
			for ctx.Err() == nil {
				status, _, _ := tc.Publish(ctx, sender.URL, secret, "application/xml", tc.XML("wakeprobe", fmt.Sprint(i)))
				if status == 200 {
					acked = time.Now()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			p.mu.Lock()
			p.pending = acked
			p.mu.Unlock()
			a := <-answer
			pcancel()
			if ctx.Err() != nil {
				return
			}
			if a.Status == 200 && a.Cursor != "" {
				cursor = a.Cursor
			}
			p.mu.Lock()
			p.pending = time.Time{}
			if p.marked && a.Status == 200 && !acked.IsZero() {
				// Answered with the message, or empty at the poll timeout:
				// either way, how long after the publish.
				p.after = append(p.after, max(a.At.Sub(acked), 0))
			}
			p.mu.Unlock()
		}
	}()
	return p, func() { cancel(); <-done }
}

func (p *wakeProbe) mark() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marked = true
}

// worst is the slowest wake-up measured after mark, and how many were.
func (p *wakeProbe) worst() (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var worst time.Duration
	for _, d := range p.after {
		worst = max(worst, d)
	}
	if !p.pending.IsZero() && p.marked { // still waiting
		worst = max(worst, time.Since(p.pending))
	}
	return worst, len(p.after)
}

// publishConcurrently publishes at about rate per second, each publish
// on its own (up to 1,000 at once), as many back ends do: a publish that
// waits does not hold back the next; lat, when not nil, times each
// publish answered 200. The returned func stops and waits.
func (w *sentinelWorld) publishConcurrently(ctx context.Context, rate int, lat *latencies) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	slots := make(chan struct{}, 1000)
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
				wg.Go(func() {
					defer func() { <-slots }()
					start := time.Now()
					if w.publishOne(context.WithoutCancel(ctx)) && lat != nil {
						lat.add(time.Since(start))
					}
				})
			default: // a thousand waiting: this one is not sent
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// run starts the pages, the readiness sampler and publishes at 200 a
// second; the returned func stops them all.
func (w *sentinelWorld) run(ctx context.Context) (stop func()) {
	stopPages := w.follow(ctx)
	stopReady := w.watchReady(ctx)
	stopPub := w.publishConcurrently(ctx, 200, nil)
	return func() { stopPub(); stopReady(); stopPages() }
}

// resets counts the resets every page took in.
func (w *sentinelWorld) resets() int {
	n := 0
	for _, p := range w.pages {
		n += p.Resets()
	}
	return n
}

// TestSentinelCrashThenSwitchover is the operator's afternoon of issue
// 24: the primary is killed mid-traffic (it stays dead), the sentinels
// promote a replica; later a planned switchover (SENTINEL FAILOVER)
// moves the primary to the remaining replica. Publishes fail while the
// sentinels find the crash and are held while they switch; the nodes
// follow by themselves; nothing acknowledged is lost without a reset
// (a crash may lose what the dead primary had not yet sent on: that
// must be announced, never silent), and the switchover loses nothing.
func TestSentinelCrashThenSwitchover(t *testing.T) {
	w := newSentinelWorld(t, redisserver.SentinelOptions{}, 200)
	w.oracle.ExcuseResets = true
	ctx := context.Background()
	stop := w.run(ctx)
	defer stop()
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	old, promoted := w.set.KillPrimary(20 * time.Second)
	t.Logf("primary %s killed; %s promoted after %v", old.Addr, promoted.Addr, time.Since(start).Round(time.Millisecond))
	waitFor(t, 15*time.Second, "publishes accepted again", func() bool {
		n := w.accepted.Load()
		time.Sleep(200 * time.Millisecond)
		return w.accepted.Load() > n
	})
	t.Logf("publishes accepted again %v after the kill; refused %d", time.Since(start).Round(time.Millisecond), w.refused.Load())
	for _, nd := range w.nodes {
		nd.WaitReady()
	}
	crashFails, crashRefused, crashResets := w.pollFails.Load(), w.refused.Load(), w.resets()
	time.Sleep(time.Second)

	probe, stopProbe := w.probeWakeups(ctx)
	defer stopProbe()
	time.Sleep(500 * time.Millisecond)
	start = time.Now()
	from, to := w.set.Switchover(20 * time.Second)
	t.Logf("switchover from %s to %s took %v", from.Addr, to.Addr, time.Since(start).Round(time.Millisecond))
	probe.mark()
	time.Sleep(3 * time.Second)
	worst, n := probe.worst()
	stopProbe()
	stop()
	if n == 0 || worst > 1500*time.Millisecond {
		t.Errorf("slowest wake-up after the switchover %v (%d measured); want within about a second", worst, n)
	}
	r := w.settle(20 * time.Second)
	t.Logf("sentinel-suite: crash then switchover: %s; crash: publishes refused %d, failed polls %d, resets %d; switchover: publishes refused %d, failed polls %d, resets %d, slowest of %d wake-ups after it %v; /readyz not 200 %d times",
		r, crashRefused, crashFails, crashResets, w.refused.Load()-crashRefused, w.pollFails.Load()-crashFails,
		w.resets()-crashResets, n, worst.Round(time.Millisecond), w.notReady.Load())
	if d := w.resets() - crashResets; d > 0 {
		t.Errorf("%d pages reset by the planned switchover; want none (nothing was lost)", d)
	}
}

// TestSentinelSwitchover runs a planned switchover with both replicas
// up, with the default settings: nothing acknowledged is lost, no page is
// reset, no publish or poll fails, and wake-ups flow through the new
// primary at once.
func TestSentinelSwitchover(t *testing.T) {
	w := newSentinelWorld(t, redisserver.SentinelOptions{}, 200)
	ctx := context.Background()
	stop := w.run(ctx)
	defer stop()
	probe, stopProbe := w.probeWakeups(ctx)
	defer stopProbe()
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	old, promoted := w.set.Switchover(20 * time.Second)
	t.Logf("switchover from %s to %s took %v", old.Addr, promoted.Addr, time.Since(start).Round(time.Millisecond))
	probe.mark()
	time.Sleep(3 * time.Second)
	worst, n := probe.worst()
	stopProbe()
	stop()
	if n == 0 || worst > 1500*time.Millisecond {
		t.Errorf("slowest wake-up after the switchover %v (%d measured); want within about a second", worst, n)
	}
	r := w.settle(20 * time.Second)
	t.Logf("sentinel-suite: switchover: %s; resets %d; publishes refused %d; failed polls %d; /readyz not 200 %d times; slowest of %d wake-ups after it %v",
		r, w.resets(), w.refused.Load(), w.pollFails.Load(), w.notReady.Load(), n, worst.Round(time.Millisecond))
	if w.resets() > 0 {
		t.Errorf("%d pages reset by a planned switchover; want none (nothing was lost)", w.resets())
	}
	if w.refused.Load() > 0 || w.pollFails.Load() > 0 || w.notReady.Load() > 0 {
		t.Errorf("publishes refused %d, polls failed %d, /readyz not 200 %d times; want none", w.refused.Load(), w.pollFails.Load(), w.notReady.Load())
	}
}

// TestSentinelCrashThenSwitchoverDurable is the same afternoon with
// -durable-replicas 1. After the crash the new primary has one replica;
// after the switchover it has none until the old one rejoins (some 10 s
// later): meanwhile publishes are refused with 503 not_durable, while
// polls and /readyz go on being served, and nothing is lost.
func TestSentinelCrashThenSwitchoverDurable(t *testing.T) {
	w := newSentinelWorld(t, redisserver.SentinelOptions{}, 200, "-durable-replicas", "1", "-durable-timeout", "1s")
	ctx := context.Background()
	stop := w.run(ctx)
	defer stop()
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	old, promoted := w.set.KillPrimary(20 * time.Second)
	t.Logf("primary %s killed; %s promoted after %v", old.Addr, promoted.Addr, time.Since(start).Round(time.Millisecond))
	acceptedAt := w.accepted.Load()
	waitFor(t, 15*time.Second, "publishes accepted again", func() bool { return w.accepted.Load() > acceptedAt+20 })
	for _, nd := range w.nodes {
		nd.WaitReady()
	}
	time.Sleep(time.Second)

	failsBefore, refusedBefore, notReadyBefore := w.pollFails.Load(), w.refused.Load(), w.notReady.Load()
	start = time.Now()
	from, to := w.set.Switchover(20 * time.Second)
	t.Logf("switchover from %s to %s took %v", from.Addr, to.Addr, time.Since(start).Round(time.Millisecond))
	w.set.WaitDemoted(from, 30*time.Second)
	t.Logf("old primary a replica again %v after the switchover began", time.Since(start).Round(time.Millisecond))
	acceptedAt = w.accepted.Load()
	waitFor(t, 10*time.Second, "publishes accepted again", func() bool { return w.accepted.Load() > acceptedAt+20 })
	time.Sleep(time.Second)
	stop()
	r := w.settle(20 * time.Second)
	fails, refused, notReady := w.pollFails.Load()-failsBefore, w.refused.Load()-refusedBefore, w.notReady.Load()-notReadyBefore
	t.Logf("sentinel-suite: crash then switchover, -durable-replicas 1: %s; after the switchover: publishes refused %d, failed polls %d (%s), /readyz not 200 %d times",
		r, refused, fails, w.pollFailures(), notReady)
	if refused == 0 {
		t.Error("no publish refused while the new primary had no replica")
	}
	if fails > 0 {
		t.Errorf("%d polls failed while publishes were refused (%s); want none", fails, w.pollFailures())
	}
	if notReady > 0 {
		t.Errorf("/readyz answered other than 200 %d times; want always ready", notReady)
	}
}

// TestSentinelSwitchoverCosts measures what each way of guarding a
// planned switchover loses and costs, for docs/guarantees.md. It runs
// only when COMETBOX_SENTINEL_COSTS is set (about 40 s a variant):
//
//	COMETBOX_SENTINEL_COSTS=1 go test -count=1 -run TestSentinelSwitchoverCosts -v ./cmd/cometbox | grep costs:
//
// With COMETBOX_BIN set to a build from before the switchover fence
// (git worktree add /tmp/old ed8b9ba; go build -o /tmp/cometbox-old
// ./cmd/cometbox), the same variants measure the node without it.
func TestSentinelSwitchoverCosts(t *testing.T) {
	if os.Getenv("COMETBOX_SENTINEL_COSTS") == "" {
		t.Skip("a measurement: set COMETBOX_SENTINEL_COSTS=1 to run it")
	}
	variants := []struct {
		name        string
		redis, node []string
		crashFirst  bool
	}{
		{name: "defaults"},
		{name: "-durable-replicas 1", node: []string{"-durable-replicas", "1"}},
		{name: "min-replicas-to-write 1, max-lag 1", redis: []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"}},
		{name: "defaults, after a crash (one replica left)", crashFirst: true},
		{name: "-durable-replicas 1, after a crash (one replica left)", node: []string{"-durable-replicas", "1"}, crashFirst: true},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			w := newSentinelWorld(t, redisserver.SentinelOptions{Args: v.redis}, 1000, v.node...)
			w.oracle.ExcuseResets = true
			ctx := context.Background()
			stopPages := w.follow(ctx)
			defer stopPages()
			stopReady := w.watchReady(ctx)
			defer stopReady()
			if v.crashFirst {
				w.set.KillPrimary(20 * time.Second)
				time.Sleep(5 * time.Second) // the nodes follow, however they do
			}
			lat := &latencies{}
			stopPub := w.publishConcurrently(ctx, 500, lat)
			defer stopPub()
			time.Sleep(3 * time.Second)
			probe, stopProbe := w.probeWakeups(ctx)
			defer stopProbe()
			acceptedBefore, refusedBefore := w.accepted.Load(), w.refused.Load()
			failsBefore, notReadyBefore, resetsBefore := w.pollFails.Load(), w.notReady.Load(), w.resets()
			lat.mark()
			start := time.Now()
			old, _ := w.set.Switchover(20 * time.Second)
			probe.mark()
			w.set.WaitDemoted(old, 30*time.Second)
			demoted := time.Since(start)
			time.Sleep(3 * time.Second)
			worst, n := probe.worst()
			stopProbe()
			stopPub()
			// Wait for what can still come, then count, without failing.
			for deadline := time.Now().Add(30 * time.Second); w.oracle.Missing(w.pages) > 0 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
			}
			r := w.oracle.Verify(w.pages)
			t.Logf("costs: %s: from the switchover to 3 s after the old primary's demotion (%v): accepted %d, refused %d, lost silently %d, lost with a reset %d (resets %d), publish latency p50 %v p99 %v max %v, failed polls %d, /readyz not 200 %d times, slowest of %d wake-ups %v",
				v.name, demoted.Round(100*time.Millisecond), w.accepted.Load()-acceptedBefore, w.refused.Load()-refusedBefore,
				r.Lost, r.Announced, w.resets()-resetsBefore, lat.quantile(0.5), lat.quantile(0.99), lat.quantile(1),
				w.pollFails.Load()-failsBefore, w.notReady.Load()-notReadyBefore, n, worst.Round(time.Millisecond))
		})
	}
}

// latencies records how long publishes answered 200 took, after mark.
type latencies struct {
	mu     sync.Mutex
	marked bool
	d      []time.Duration
}

func (l *latencies) mark() { l.mu.Lock(); l.marked = true; l.mu.Unlock() }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.marked {
		l.d = append(l.d, d)
	}
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond)
}
