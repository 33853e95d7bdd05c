package main_test

// Nodes on a Redis Cluster that changes under them, as an operator
// changes one: slots resharded with redis-cli, a master failed over to
// its replica by hand, a master killed for the cluster to replace. After
// each: nothing acknowledged lost or delivered twice, every node ready,
// and a slot move costs a resubscription per channel that moved.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
)

// clusterWorld starts nodes on cluster c and a page per client.
func clusterWorld(t *testing.T, c *redisserver.Cluster, nodes int, clients []string, args ...string) *world {
	t.Helper()
	w := &world{t: t, oracle: tc.NewOracle()}
	for i := range nodes {
		a := append([]string{"-redis-url", "redis-cluster://" + c.Seeds(), "-publish-secret", secret,
			"-max-polls-per-client", "0", "-pubsub-probe-interval", "500ms", "-pubsub-probe-timeout", "1s"}, args...)
		w.nodes = append(w.nodes, nodeproc.Start(t, fmt.Sprintf("node%c", 'A'+i), a...))
	}
	for _, nd := range w.nodes {
		nd.WaitReady()
	}
	for _, client := range clients {
		w.pages = append(w.pages, &tc.Page{Client: client, Oracle: w.oracle})
	}
	return w
}

// clientsIn returns n client ids whose slots satisfy in.
func clientsIn(prefix string, n int, in func(slot int) bool) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := prefix + strconv.Itoa(i)
		if in(redisserver.Slot(id)) {
			out = append(out, id)
		}
	}
	return out
}

// readiness returns "" when the node's /readyz answers 200, else why not.
func readiness(nd *nodeproc.Node) string {
	resp, err := http.Get(nd.URL + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return ""
}

// allReady returns "" when every node is ready, else the first reason.
func (w *world) allReady() string {
	for _, nd := range w.nodes {
		if why := readiness(nd); why != "" {
			return nd.Name + ": " + why
		}
	}
	return ""
}

// waitAllReady waits until every node is ready, failing after d with the
// reason one is not.
func (w *world) waitAllReady(d time.Duration, after string) time.Duration {
	w.t.Helper()
	start := time.Now()
	for {
		why := w.allReady()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > d {
			w.t.Fatalf("a node not ready %v %s: %s", d, after, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stayReady checks that every node stays ready for d.
func (w *world) stayReady(d time.Duration) {
	w.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if why := w.allReady(); why != "" {
			w.t.Fatalf("a node turned unready: %s", why)
		}
	}
}

// sum adds metric over the nodes.
func (w *world) sum(name string) float64 {
	total := 0.0
	for _, nd := range w.nodes {
		total += metric(w.t, nd, name)
	}
	return total
}

// TestClusterFailoverKeepsNodesReady promotes a replica by hand (CLUSTER
// FAILOVER) under traffic: the demoted master's pub/sub connection is
// dropped and every node is ready again within a few probe intervals,
// and stays so.
func TestClusterFailoverKeepsNodesReady(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{})
	w := clusterWorld(t, c, 2, clientsIn("f", 60, func(int) bool { return true }), "-poll-timeout", "5s")
	ctx := context.Background()
	stopPages := w.follow(ctx, 15*time.Second)
	defer stopPages()
	stopPub := w.publishLoop(ctx, 100)
	defer stopPub()
	waitFor(t, 10*time.Second, "wake-up subscriptions of both nodes on every master", func() bool {
		for _, m := range c.Masters() {
			list, _ := m.Do("CLIENT", "LIST", "TYPE", "pubsub")
			if strings.Count(list, "name=cometbox:node") < 2 {
				return false
			}
		}
		return true
	})

	old := c.Masters()[0]
	promoted := c.ReplicaOf(old)
	c.Failover(promoted)
	took := w.waitAllReady(5*time.Second, "after the failover")
	t.Logf("failover %s -> %s: every node ready %v after the cluster agreed", old.Addr, promoted.Addr, took.Round(time.Millisecond))
	w.stayReady(3 * time.Second)
	stopPub()
	w.settle(20 * time.Second)
}

// TestClusterReshardMovesOnlyMovedChannels reshards 500 slots while 300
// polls are held: the nodes subscribe again only the channels whose slot
// moved, once each, and wake only their polls; every client still gets
// its messages.
func TestClusterReshardMovesOnlyMovedChannels(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{Replicas: -1})
	from, to := c.Masters()[0], c.Masters()[1]
	owners := c.Owners()
	lowest := slices.Index(owners, from) // redis-cli moves a master's lowest slots first
	clients := clientsIn("r", 100, func(s int) bool { return s >= lowest && s < lowest+500 && owners[s] == from })
	clients = append(clients, clientsIn("k", 200, func(s int) bool { return s < lowest || s >= lowest+500 })...)
	w := clusterWorld(t, c, 2, clients, "-poll-timeout", "30s")
	ctx := context.Background()
	stopPages := w.follow(ctx, 40*time.Second)
	defer stopPages()
	waitFor(t, 15*time.Second, "every poll held", func() bool { return w.heldPolls() == float64(len(clients)) })

	movesBefore := w.sum("cometbox_pubsub_channel_moves_total")
	subsBefore := w.sum("cometbox_pubsub_subscribe_duration_seconds_count")
	c.Reshard(from, to, 500)
	after := c.Owners()
	moved := 0
	for _, client := range clients {
		if s := redisserver.Slot(client); after[s] != owners[s] {
			moved++
		}
	}
	if moved < 50 {
		t.Fatalf("only %d of the clients' slots moved; the test needs more", moved)
	}
	waitFor(t, 10*time.Second, "the moved channels followed", func() bool {
		return w.sum("cometbox_pubsub_channel_moves_total")-movesBefore >= float64(moved)
	})
	// Give a storm, if any, time to show.
	time.Sleep(time.Second)
	moves := w.sum("cometbox_pubsub_channel_moves_total") - movesBefore
	subs := w.sum("cometbox_pubsub_subscribe_duration_seconds_count") - subsBefore
	t.Logf("reshard of 500 slots: %d of %d held channels moved; nodes counted %.0f moves, %.0f new subscriptions", moved, len(clients), moves, subs)
	if moves > float64(moved)+5 || subs > float64(moved)+10 {
		t.Errorf("moves %.0f, subscriptions %.0f for %d moved channels; want about one each", moves, subs, moved)
	}

	for _, p := range w.pages {
		w.publishTo(ctx, w.nodes[0].URL, p.Client)
	}
	w.settle(20 * time.Second)
}

// TestClusterTryAgainRetried publishes to and polls clients whose slot is
// migrating: the node retries what Redis refused with TRYAGAIN until the
// slot has moved, inside the request's deadline, instead of answering
// 503; a batch whose first client is refused stores the other clients'
// messages once; and a read whose keys have moved already follows ASK.
func TestClusterTryAgainRetried(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{Replicas: -1})
	w := clusterWorld(t, c, 1, nil, "-poll-timeout", "10s")
	nd := w.nodes[0]
	owners := c.Owners()
	from, to := c.Masters()[0], c.Masters()[1]
	onFrom := clientsIn("t", 4, func(s int) bool { return owners[s] == from })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// endAfter ends the migration of slot after d, in the background.
	endAfter := func(slot int, d time.Duration) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(d)
			c.EndMigration(slot, from, to)
		}()
		return done
	}

	// A publish to a client whose keys are on the source of a migration
	// meets TRYAGAIN (its idempotency key is not there) until the end.
	batch, other := onFrom[0], onFrom[1]
	publish(t, nd, batch, "before")
	c.BeginMigration(redisserver.Slot(batch), from, to)
	done := endAfter(redisserver.Slot(batch), 300*time.Millisecond)
	start := time.Now()
	status, body, err := tc.Publish(ctx, nd.URL, secret, "application/xml", tc.XML(batch, "during", other, "once"))
	<-done
	if err != nil || status != 200 {
		t.Errorf("publish during the migration = %d %s %v; want 200 once the slot has moved", status, body, err)
	} else {
		t.Logf("publish during the migration answered after %v", time.Since(start).Round(time.Millisecond))
	}
	if got := texts(poll(t, nd, other, "")); got != "1:once" {
		t.Errorf("the batch's other client has %q; want 1:once (stored once)", got)
	}

	// A poll acknowledging everything empties the queue, then waits: its
	// read meets TRYAGAIN (the list is gone, the hash is not) until the
	// end.
	waiter := onFrom[2]
	publish(t, nd, waiter, "before")
	first := poll(t, nd, waiter, "")
	c.BeginMigration(redisserver.Slot(waiter), from, to)
	done = endAfter(redisserver.Slot(waiter), 300*time.Millisecond)
	held := pollAsync(ctx, nd, waiter, first.Cursor)
	waitFor(t, 5*time.Second, "the poll to be held", func() bool {
		select {
		case a := <-held:
			t.Fatalf("poll during the migration = %d %s; want it held", a.Status, a.Body)
		default:
		}
		return metric(t, nd, "cometbox_polls_waiting") == 1
	})
	<-done
	publish(t, nd, waiter, "after")
	if a := <-held; a.Status != 200 || texts(a) != "2:after" {
		t.Fatalf("held poll = %d %q %s; want 200 2:after", a.Status, texts(a), a.Body)
	}

	// A read whose keys have moved to the importing master follows ASK
	// there while the slot is still migrating.
	asked := onFrom[3]
	publish(t, nd, asked, "x")
	c.BeginMigration(redisserver.Slot(asked), from, to)
	c.MoveKeys(redisserver.Slot(asked), from, to)
	if got := texts(poll(t, nd, asked, "")); got != "1:x" {
		t.Fatalf("poll during the migration = %q; want 1:x", got)
	}
	c.EndMigration(redisserver.Slot(asked), from, to)
}

// histogram reads the cumulative buckets of a histogram from a node.
func histogram(t *testing.T, nd *nodeproc.Node, name string) map[float64]float64 {
	t.Helper()
	resp, err := http.Get(nd.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(count, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("metric line %q", sc.Text())
		}
		out[bound] = n
	}
	return out
}

// latency is the delivery latency histogram of every node.
type latency map[float64]float64

func (w *world) latency() latency {
	sum := latency{}
	for _, nd := range w.nodes {
		for le, n := range histogram(w.t, nd, "cometbox_delivery_latency_seconds") {
			sum[le] += n
		}
	}
	return sum
}

// p99Since returns the bucket bound under which 99 % of the deliveries
// since earlier fell, and how many there were.
func (l latency) p99Since(earlier latency) (bound float64, n float64) {
	var les []float64
	for le := range l {
		les = append(les, le)
	}
	slices.Sort(les)
	total := l[math.Inf(1)] - earlier[math.Inf(1)]
	for _, le := range les {
		if l[le]-earlier[le] >= 0.99*total {
			return le, total
		}
	}
	return math.Inf(1), total
}

// TestClusterUnderChange runs 300 pages and 200 publishes a second through
// two nodes while the cluster changes three times: 500 slots resharded,
// a master failed over by hand, a master killed (SIGKILL) and replaced by
// its replica. Nothing acknowledged is lost or delivered twice; publishes
// are refused only while the killed master's slots have no master (and
// only those); every node is ready again within a few probe intervals of
// each change; delivery latency ends where it began.
func TestClusterUnderChange(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{})
	w := clusterWorld(t, c, 2, clientsIn("u", 300, func(int) bool { return true }), "-poll-timeout", "10s")
	ctx := context.Background()
	stopPages := w.follow(ctx, 20*time.Second)
	defer stopPages()
	const rate = 200
	stopPub := w.publishLoop(ctx, rate)
	defer stopPub()
	const readyWithin = 3 * time.Second // six probe intervals

	// phase runs change and reports what the publishes met meanwhile.
	phase := func(name string, change func()) {
		t.Helper()
		accepted, refused, start := w.accepted.Load(), w.refused.Load(), time.Now()
		change()
		ready := w.waitAllReady(readyWithin, "after "+name)
		a, r := w.accepted.Load()-accepted, w.refused.Load()-refused
		t.Logf("cluster-suite: %s took %v; every node ready %v later; publishes accepted %d, refused %d",
			name, time.Since(start).Round(time.Millisecond), ready.Round(time.Millisecond), a, r)
		if a == 0 {
			t.Errorf("%s: no publish accepted", name)
		}
	}
	steady := func(name string) (p99 float64) {
		t.Helper()
		before, refused := w.latency(), w.refused.Load()
		time.Sleep(3 * time.Second)
		p99, n := w.latency().p99Since(before)
		t.Logf("cluster-suite: %s: %0.f deliveries, p99 under %v ms, %d publishes refused", name, n, p99*1000, w.refused.Load()-refused)
		if r := w.refused.Load() - refused; r > 0 {
			t.Errorf("%s: %d publishes refused", name, r)
		}
		return p99
	}

	waitFor(t, 15*time.Second, "every poll held", func() bool { return w.heldPolls() >= 290 })
	time.Sleep(2 * time.Second) // the first subscriptions made, the pages' re-polls under way
	baseline := steady("baseline")
	masters := c.Masters()
	phase("reshard of 500 slots", func() {
		c.Reshard(masters[0], masters[1], 500)
		if r := w.refused.Load(); r > 0 {
			t.Errorf("%d publishes refused during the reshard", r)
		}
	})
	phase("manual failover", func() {
		refused := w.refused.Load()
		c.Failover(c.ReplicaOf(masters[1]))
		if r := w.refused.Load() - refused; r > 0 {
			t.Errorf("%d publishes refused during the manual failover", r)
		}
	})
	phase("master killed, replica promoted by the cluster", func() {
		refused, start := w.refused.Load(), time.Now()
		c.KillMaster(masters[2])
		// Only publishes to the killed master's third of the slots may
		// fail, and only until its replica took over.
		bound := int64(rate * time.Since(start).Seconds() / 2)
		if r := w.refused.Load() - refused; r > bound {
			t.Errorf("%d publishes refused while the master was down (%v); want at most %d", r, time.Since(start), bound)
		}
	})
	after := steady("after the changes")
	// The buckets are coarse (…, 0.1, 0.25, 0.5, 1 s) and CI runs this
	// beside other packages' tests under the race detector on two cores,
	// where a burst of re-polls after a failover reaches the 250 ms bucket:
	// four times the baseline, or 250 ms. A channel left behind would wait
	// for a probe interval and its timeout (1.5 s here) or a poll timeout,
	// well above either.
	if after > max(4*baseline, 0.25) {
		t.Errorf("delivery p99 under %v ms after the changes; baseline %v ms", after*1000, baseline*1000)
	}
	stopPub()
	if why := w.allReady(); why != "" {
		t.Fatalf("at the end: %s", why)
	}
	w.settle(20 * time.Second)
}
