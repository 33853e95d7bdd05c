package deployments_test

// The docker-compose topology as plain processes: a real redis-server
// with its append-only file, cometbox nodes each on a loopback address
// of its own and found by DNS (cluster_test.go), and Debian's haproxy
// running deployments/haproxy/haproxy.cfg as docker-compose mounts it,
// with only the addresses and ports (and check timings, for speed) from
// the environment.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/internal/testenv"
)

const publishSecret = "deploy-test-secret"

// TestHAProxyConfig runs haproxy's own check on the config, with the
// defaults docker-compose uses and with the test's addresses.
func TestHAProxyConfig(t *testing.T) {
	bin := testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	cfg := loadHAProxy(t)
	for _, k := range []string{"LB_BIND_ADDR", "LB_STATS_ADDR", "NODE_SERVICE", "NODE_PORT", "NODE_ADMIN_PORT", "LB_MAX_NODES",
		"LB_DNS_ADDR", "LB_DNS_HOLD", "LB_CHECK_INTER", "LB_CHECK_FALL", "LB_CHECK_RISE"} {
		if _, ok := cfg.env[k]; !ok {
			t.Errorf("haproxy.cfg: no ${%s-default}", k)
		}
	}
	server := duration(t, "timeout server", cfg.timeouts["server"])
	client := duration(t, "timeout client", cfg.timeouts["client"])
	if poll := 25 * time.Second; server <= poll || client <= poll {
		t.Errorf("haproxy.cfg: timeout server %v, client %v; want both above the poll timeout %v", server, client, poll)
	}
	// The nodes come from DNS, none by hand: one scalable service.
	if got := cfg.servers["cometbox"]; len(got) > 0 {
		t.Errorf("haproxy.cfg: backend cometbox lists servers %v; want only a server-template over the service name", got)
	}
	if got := cfg.templates["cometbox"]; len(got) != 1 || cfg.expand(got[0]) != "cometbox:8080" {
		t.Errorf("haproxy.cfg: backend cometbox server-template addresses %v; want one, on docker-compose's service cometbox:8080", got)
	}
	for _, want := range []string{"check port", "resolvers dns", "init-addr none", "slowstart"} {
		if !strings.Contains(cfg.defaultServer["cometbox"], want) {
			t.Errorf("haproxy.cfg: backend cometbox default-server %q; want %q", cfg.defaultServer["cometbox"], want)
		}
	}

	// Docker's DNS server is not here: haproxy starts with every slot
	// empty, as it would before the nodes are up.
	cmd := exec.Command(bin, "-c", "-f", cfg.path)
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("haproxy -c with the docker-compose defaults: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "-c", "-f", cfg.path)
	cmd.Env = append(os.Environ(), lbEnv("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", 4, 5, true)...)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "ALERT") {
		t.Errorf("haproxy -c with addresses: %v\n%s", err, out)
	}
}

// httpStatus is the status of GET url; 0 when it fails.
func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pollsServed is how many /poll requests a node has answered.
func pollsServed(t *testing.T, n *nodeproc.Node) float64 {
	t.Helper()
	return getScrape(t, n.OpsURL()+"/metrics").sum("cometbox_http_requests_total", map[string]string{"route": "/poll"})
}

func publishTo(t *testing.T, n *nodeproc.Node, pairs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, body, err := tc.Publish(ctx, n.URL, publishSecret, "application/xml", tc.XML(pairs...))
	if err != nil || st != http.StatusOK {
		t.Fatalf("publish via %s: %d %s %v", n.Name, st, body, err)
	}
}

// quickPolls polls client through the balancer n times; the client has
// a message waiting, so each poll is answered at once.
func quickPolls(t *testing.T, base, client string, n int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a, err := tc.Poll(ctx, base, client, "", "")
		cancel()
		if err != nil || a.Status != http.StatusOK || len(a.Messages) == 0 {
			t.Fatalf("poll %d of %s through the balancer: %d %q %v", i, client, a.Status, a.Body, err)
		}
	}
}

// TestTopology runs the docker-compose topology as processes: publish
// through one node directly, poll through the balancer; polls spread
// evenly; an event stream passes unbuffered; a node killed mid-poll
// loses nothing; a draining node leaves the rotation within its drain
// delay while it still serves.
func TestTopology(t *testing.T) {
	testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	rs := redisserver.Start(t, redisserver.Options{AOF: true})
	const drainDelay = 3 * time.Second
	c := newCluster(t, "-redis-url", rs.URL(), "-publish-secret", publishSecret,
		"-drain-delay", drainDelay.String(), "-drain-spread", "500ms", "-poll-timeout", "10s")
	nodes := make([]*nodeproc.Node, 3)
	for i := range nodes {
		nodes[i] = c.Add()
	}
	for _, n := range nodes {
		n.WaitReady()
	}
	lb := startBalancer(t, c)
	lb.waitRotation(t, "haproxy to see the three nodes UP", nodes...)
	t.Run("public routes", func(t *testing.T) {
		// The operator's routes are on each node's admin port, and the
		// balancer forwards what browsers and back ends need, /healthz
		// too, and nothing else.
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 404, "/metrics": 404, "/debug/pprof/": 404} {
			if got := httpStatus(lb.URL + path); got != want {
				t.Errorf("GET %s through the balancer = %d; want %d", path, got, want)
			}
		}
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 404, "/metrics": 404} {
			if got := httpStatus(nodes[0].URL + path); got != want {
				t.Errorf("GET %s on a node's public port = %d; want %d", path, got, want)
			}
		}
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
			if got := httpStatus(nodes[0].AdminURL + path); got != want {
				t.Errorf("GET %s on a node's admin port = %d; want %d", path, got, want)
			}
		}
	})
	t.Run("even spread", func(t *testing.T) {
		publishTo(t, nodes[0], "spread", "waiting")
		before := make([]float64, 3)
		for i, n := range nodes {
			before[i] = pollsServed(t, n)
		}
		const polls = 30
		quickPolls(t, lb.URL, "spread", polls)
		for i, n := range nodes {
			if got := pollsServed(t, n) - before[i]; got < polls/3-3 || got > polls/3+3 {
				t.Errorf("%s answered %v of %d polls; want about a third", n.Name, got, polls)
			}
		}
	})

	t.Run("event stream unbuffered", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.URL+"/stream?client=sse", nil)
		resp, err := tc.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
		expect := func(prefix string, within time.Duration) {
			t.Helper()
			timeout := time.After(within)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("stream ended before %q", prefix)
					}
					if strings.HasPrefix(l, prefix) {
						return
					}
				case <-timeout:
					t.Fatalf("no %q through the balancer within %v: it buffers the stream", prefix, within)
				}
			}
		}
		expect("event: hello", 2*time.Second)
		// Each event as the node writes it, not held back: without
		// "option http-no-delay" HAProxy sends the bytes of a response
		// it has not finished with MSG_MORE, and the kernel holds them
		// up to 200ms for more.
		var took []time.Duration
		for i := 1; i <= 5; i++ {
			start := time.Now()
			publishTo(t, nodes[1], "sse", fmt.Sprintf("streamed%d", i))
			expect(fmt.Sprintf(`data: {"id":%d,"data":"streamed%d"}`, i, i), 2*time.Second)
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		if took[2] > 100*time.Millisecond {
			t.Errorf("events took %v from publish to the browser through the balancer; want a median under 100ms", took)
		}
	})

	// A page follows alice through the balancer while a back end
	// publishes to one node directly; the node holding alice's poll is
	// killed mid-poll.
	var survivors []*nodeproc.Node
	t.Run("node killed mid-poll", func(t *testing.T) {
		const total = 12
		// Go's transport, like a browser, sends a GET again by itself when
		// a reused connection closes without an answer, and HAProxy closes
		// the browser's connection in that case. The page opens a new
		// connection for every poll, so only HAProxy's own retry can hide
		// the dead node from it.
		keepAlive := tc.HTTP
		tc.HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		defer func() { tc.HTTP = keepAlive }()
		page := &tc.Page{Base: lb.URL, Client: "alice"}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var (
			mu       sync.Mutex
			got      int
			failures []string
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				fresh, a, err := page.PollOnce(ctx)
				mu.Lock()
				got += len(fresh)
				n := got
				if err != nil || a.Status != http.StatusOK {
					failures = append(failures, fmt.Sprintf("%d %q %v", a.Status, a.Body, err))
				}
				mu.Unlock()
				if n >= total {
					return
				}
				if err != nil || a.Status != http.StatusOK {
					time.Sleep(100 * time.Millisecond) // a browser's retry
				}
			}
		}()
		defer func() { cancel(); <-done }() // before tc.HTTP is restored
		received := func() int { mu.Lock(); defer mu.Unlock(); return got }

		// holder is the node holding alice's poll, once it is held: the
		// only node with a held poll, twice in a row (the node that just
		// answered may still count its poll for a moment).
		holder := func() *nodeproc.Node {
			var prev, h *nodeproc.Node
			waitFor(t, 5*time.Second, "alice's poll to be held", func() bool {
				var holding []*nodeproc.Node
				for _, n := range nodes {
					if getScrape(t, n.OpsURL()+"/metrics").sum("cometbox_polls_waiting", nil) > 0 {
						holding = append(holding, n)
					}
				}
				switch {
				case len(holding) != 1:
					prev = nil
				case holding[0] == prev:
					h = prev
					return true
				default:
					prev = holding[0]
				}
				return false
			})
			return h
		}

		// Publish through one node; move the poll (each answer's re-poll
		// goes to the least loaded node) until another node holds it.
		publisher := nodes[0]
		sent := 0
		send := func() {
			sent++
			publishTo(t, publisher, "alice", fmt.Sprintf("m%d", sent))
			waitFor(t, 5*time.Second, fmt.Sprintf("m%d to reach the page", sent), func() bool { return received() >= sent })
		}
		for range 3 {
			send()
		}
		victim := holder()
		for victim == publisher && sent < 9 {
			send()
			victim = holder()
		}
		if victim == publisher {
			t.Fatalf("the poll stayed on the publishing node %s", publisher.Name)
		}
		t.Logf("killing %s while it holds alice's poll (publishing through %s)", victim.Name, publisher.Name)
		victim.Kill()
		waitFor(t, 5*time.Second, "haproxy to take the killed node out", func() bool {
			return strings.HasPrefix(lb.status(t, addrOf(t, victim)), "DOWN")
		})
		for sent < total {
			send()
		}
		<-done
		for i, m := range page.Seen {
			if want := fmt.Sprintf("m%d", i+1); m.Text() != want || m.ID != uint64(i+1) {
				t.Errorf("message %d: id %d %q; want id %d %q", i, m.ID, m.Text(), i+1, want)
			}
		}
		if len(page.Seen) != total {
			t.Errorf("the page got %d messages; want %d", len(page.Seen), total)
		}
		// HAProxy sends a poll whose node died before answering to
		// another node (retry-on empty-response), so the page sees no
		// error at all.
		if len(failures) > 0 {
			t.Errorf("the page saw %d failed polls after %s was killed: %v", len(failures), victim.Name, failures)
		}
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
	})
	if len(survivors) != 2 {
		t.Fatal("no survivors to drain")
	}

	t.Run("drained node leaves the rotation", func(t *testing.T) {
		stay, drain := survivors[0], survivors[1]
		start := time.Now()
		drain.Signal(syscall.SIGTERM)
		waitFor(t, drainDelay, "haproxy to take the draining node out of the rotation", func() bool {
			st := lb.status(t, addrOf(t, drain))
			return st != "" && st != "UP" && !strings.HasPrefix(st, "UP ")
		})
		t.Logf("%s out of the rotation %v after SIGTERM", drain.Name, time.Since(start).Round(time.Millisecond))
		drainBefore, stayBefore := pollsServed(t, drain), pollsServed(t, stay)
		const polls = 10
		quickPolls(t, lb.URL, "spread", polls)
		if got := pollsServed(t, drain) - drainBefore; got != 0 {
			t.Errorf("the draining node answered %v new polls through the balancer; want none", got)
		}
		if got := pollsServed(t, stay) - stayBefore; got != polls {
			t.Errorf("%s answered %v of %d polls; want all", stay.Name, got, polls)
		}
		// Still within its drain delay, still serving: the balancer
		// stopped sending to it because of /readyz, not because it died.
		if resp, err := http.Get(drain.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("the draining node stopped serving early: %v", err)
		} else {
			resp.Body.Close()
		}
		if elapsed := time.Since(start); elapsed >= drainDelay {
			t.Errorf("the checks took %v, beyond the drain delay %v", elapsed, drainDelay)
		}
		if code := drain.Wait(drainDelay + 10*time.Second); code != 0 {
			t.Errorf("the drained node exited %d; want 0", code)
		}
	})

	t.Run("balancer metrics and logs", func(t *testing.T) {
		var haproxyUses []seriesUse
		for _, u := range seriesUses(t) {
			if strings.HasPrefix(u.name, "haproxy_") {
				haproxyUses = append(haproxyUses, u)
			}
		}
		checkSeries(t, haproxyUses, getScrape(t, lb.Stats+"/metrics"))

		// Query strings carry browser tokens: never in the balancer's log.
		const canary = "canary-4b1d"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if a, err := tc.Poll(ctx, lb.URL, "spread", "", canary); err != nil || a.Status != http.StatusOK {
			t.Fatalf("poll with a token: %d %v", a.Status, err)
		}
		waitFor(t, 2*time.Second, "the balancer to log requests", func() bool {
			return strings.Contains(lb.log.String(), `"GET /poll HTTP/1.1"`)
		})
		if strings.Contains(lb.log.String(), canary) {
			t.Error("the balancer logged a query string (it holds browser tokens)")
		}
	})
}
