package deployments_test

// `docker compose up --scale cometbox=N` as processes: the balancer and
// Prometheus find however many nodes the DNS answer names, and a node
// added or removed while browsers poll loses nothing (issue 19, item 2).

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/internal/testenv"
)

// TestScale runs 1, 3 and 6 nodes behind haproxy.cfg, found by DNS alone:
// HAProxy puts each in its rotation, polls through it reach every node
// evenly, and each node's /metrics is where Prometheus's DNS discovery
// looks for it (the service name's A records, the admin port).
func TestScale(t *testing.T) {
	testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	rs := redisserver.Start(t, redisserver.Options{})
	for _, n := range []int{1, 3, 6} {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			c := newCluster(t, "-redis-url", rs.URL(), "-publish-secret", publishSecret, "-poll-timeout", "10s")
			nodes := make([]*nodeproc.Node, n)
			for i := range nodes {
				nodes[i] = c.Add()
			}
			for _, nd := range nodes {
				nd.WaitReady()
			}
			lb := startBalancer(t, c)
			lb.waitRotation(t, fmt.Sprintf("haproxy to put the %d nodes in its rotation", n), nodes...)
			if s := lb.servers(t); len(s) < 10 {
				t.Errorf("haproxy has %d server slots; want the config's default, room for 10 nodes or more", len(s))
			}

			client := fmt.Sprintf("scale-%d", n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if st, body, err := tc.Publish(ctx, lb.URL, publishSecret, "application/xml", tc.XML(client, "waiting")); err != nil || st != 200 {
				t.Fatalf("publish through the balancer: %d %s %v", st, body, err)
			}
			before := make([]float64, n)
			for i, nd := range nodes {
				before[i] = pollsServed(t, nd)
			}
			polls := 10 * n
			quickPolls(t, lb.URL, client, polls)
			for i, nd := range nodes {
				if got := pollsServed(t, nd) - before[i]; got < 10-3 || got > 10+3 {
					t.Errorf("%s answered %v of %d polls; want about %d", nd.Name, got, polls, 10)
				}
			}

			// Prometheus's dns_sd_configs: the name's A records, each
			// scraped on the admin port.
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "udp", c.DNS.Addr)
			}}
			found, err := r.LookupNetIP(ctx, "ip4", serviceName)
			if err != nil {
				t.Fatalf("look up %s: %v", serviceName, err)
			}
			if len(found) != n {
				t.Errorf("%s resolves to %v; want the %d nodes", serviceName, found, n)
			}
			for _, a := range found {
				url := "http://" + netip.AddrPortFrom(a, uint16(c.AdminPort)).String() + "/metrics"
				if len(getScrape(t, url)["cometbox_build_info"]) == 0 {
					t.Errorf("%s: no cometbox_build_info", url)
				}
			}
		})
	}
}

// TestScaleWhilePolling scales three nodes to four and back to three
// while 90 pages long-poll and 6 event streams follow through the
// balancer and a back end publishes 50 messages a second through it, as
// `docker compose up --scale` does: the new node joins the DNS answer
// before it listens and takes its share of the polls once ready; the
// removed one
// leaves the answer as it gets SIGTERM, drains, and exits. Nothing is
// lost or delivered twice, and no poll, stream or publish fails.
func TestScaleWhilePolling(t *testing.T) {
	testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	rs := redisserver.Start(t, redisserver.Options{})
	const (
		pollTimeout          = 5 * time.Second
		drainDelay           = 2 * time.Second
		drainSpread          = time.Second
		polls, busy, streams = 90, 60, 6
		rate                 = 50
	)
	c := newCluster(t, "-redis-url", rs.URL(), "-publish-secret", publishSecret, "-poll-timeout", pollTimeout.String(),
		"-drain-delay", drainDelay.String(), "-drain-spread", drainSpread.String(), "-shutdown-timeout", "5s")
	nodes := make([]*nodeproc.Node, 3)
	for i := range nodes {
		nodes[i] = c.Add()
	}
	for _, n := range nodes {
		n.WaitReady()
	}
	lb := startBalancer(t, c)
	lb.waitRotation(t, "haproxy to see the three nodes UP", nodes...)

	held := func(n *nodeproc.Node) int {
		return int(getScrape(t, n.OpsURL()+"/metrics").sum("cometbox_polls_waiting", nil))
	}
	load := newDrainLoad(lb.URL, polls, busy, streams)
	load.start(pollTimeout)
	stopped := false
	defer func() {
		if !stopped {
			load.stop()
		}
	}()
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
	time.Sleep(time.Second)

	// Up: 3 → 4. Docker names a container in its DNS answer before the
	// process in it listens: HAProxy fills a slot with the address, and
	// what it sends there before the node listens goes to another node
	// (retries, redispatch).
	addedAddr := c.nextAddr()
	c.DNS.Add(addedAddr)
	waitFor(t, 5*time.Second, "haproxy to give the new address a slot", func() bool { return lb.status(t, addedAddr) != "" })
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	added := c.Start(addedAddr)
	added.WaitReady()
	lb.waitRotation(t, "haproxy to put the new node in its rotation", append(slices.Clone(nodes), added)...)
	inRotation := time.Since(start)
	var peak atomic.Int64
	waitFor(t, 2*pollTimeout+10*time.Second, "the new node to hold its share of the polls", func() bool {
		h := held(added)
		peak.Store(int64(max(int(peak.Load()), h)))
		return h >= polls/6
	})
	share := time.Since(start)
	served := pollsServed(t, added)

	// Down: 4 → 3, the new node again, as compose removes the last
	// replica it numbered.
	heldAtSignal := held(added)
	sigterm := time.Now()
	c.DNS.Remove(addedAddr)
	added.Signal(syscall.SIGTERM)
	var outAt time.Duration
	waitFor(t, drainDelay, "haproxy to take the removed node out of the rotation", func() bool {
		st := lb.status(t, addedAddr)
		if st == "" || st != "UP" {
			outAt = time.Since(sigterm)
			return true
		}
		return false
	})
	code := added.Wait(drainDelay + 10*time.Second)
	exitAfter := time.Since(sigterm)
	time.Sleep(2 * time.Second)

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
	t.Logf("scaled up: %s in HAProxy's rotation %v after it started, holding %d polls after %v (peak %d, %v answered)",
		added.Name, inRotation.Round(time.Millisecond), polls/6, share.Round(time.Millisecond), peak.Load(), served)
	t.Logf("scaled down: %s held %d polls at SIGTERM; out of the rotation %v after, exit %d %v after",
		added.Name, heldAtSignal, outAt.Round(time.Millisecond), code, exitAfter.Round(time.Millisecond))
	t.Logf("polls: %v; streams: %d accepted, %d lost, %d twice; publishes refused %d; failures %d",
		report, len(load.streamAcc), streamLost, streamDup, load.refused.Load(), len(load.failures))

	if !report.OK() {
		t.Errorf("polls: %v: %v", report, report.Problems)
	}
	if report.Accepted < rate*5 {
		t.Errorf("only %d messages accepted; want the publisher running through the whole test", report.Accepted)
	}
	if streamLost > 0 || streamDup > 0 {
		t.Errorf("streams: %d of %d accepted messages lost, %d delivered twice", streamLost, len(load.streamAcc), streamDup)
	}
	if len(load.failures) > 0 {
		t.Errorf("%d polls or streams failed, e.g. %v", len(load.failures), load.failures[:min(5, len(load.failures))])
	}
	if n := load.refused.Load(); n > 0 {
		t.Errorf("%d publishes refused or failed", n)
	}
	if code != 0 {
		t.Errorf("the removed node exited %d; want 0", code)
	}
	if heldAtSignal == 0 {
		t.Error("the removed node held no poll at SIGTERM; the test proves nothing about its drain")
	}
}
