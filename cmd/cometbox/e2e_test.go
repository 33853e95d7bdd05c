package main_test

// The multi-node suite: real redis-server, real cometbox processes,
// real HTTP on loopback. Each test starts what it needs and stops it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/internal/testenv"
	"github.com/cometbox/cometbox/pkg/token"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodeproc.Cleanup()
	os.Exit(code)
}

const secret = "e2e-publish-secret"

// cluster starts a redis-server and n nodes on it.
func cluster(t *testing.T, n int, args ...string) (*redisserver.Server, []*nodeproc.Node) {
	t.Helper()
	rs := redisserver.Start(t, redisserver.Options{})
	nodes := make([]*nodeproc.Node, n)
	for i := range nodes {
		a := append([]string{"-redis-url", rs.URL(), "-publish-secret", secret}, args...)
		nodes[i] = nodeproc.Start(t, fmt.Sprintf("node%c", 'A'+i), a...)
	}
	for _, nd := range nodes {
		nd.WaitReady()
	}
	return rs, nodes
}

func publish(t *testing.T, nd *nodeproc.Node, pairs ...string) string {
	t.Helper()
	status, body, err := tc.Publish(context.Background(), nd.URL, secret, "application/xml", tc.XML(pairs...))
	if err != nil || status != 200 {
		t.Fatalf("publish via %s = %d %s %v", nd.Name, status, body, err)
	}
	return body
}

func poll(t *testing.T, nd *nodeproc.Node, client, since string) tc.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := tc.Poll(ctx, nd.URL, client, since, "")
	if err != nil || a.Status != 200 {
		t.Fatalf("poll %s via %s since %q = %d %s %v", client, nd.Name, since, a.Status, a.Body, err)
	}
	return a
}

func texts(a tc.Answer) string {
	var out []string
	for _, m := range a.Messages {
		out = append(out, fmt.Sprintf("%d:%s", m.ID, m.Text()))
	}
	return strings.Join(out, " ")
}

// pollAsync starts a poll and returns its answer on a channel.
func pollAsync(ctx context.Context, nd *nodeproc.Node, client, since string) <-chan tc.Answer {
	ch := make(chan tc.Answer, 1)
	go func() {
		a, err := tc.Poll(ctx, nd.URL, client, since, "")
		if err != nil {
			a.Status, a.Body = -1, err.Error()
		}
		a.At = time.Now()
		ch <- a
	}()
	return ch
}

// metric reads one unlabelled sample from a node's /metrics.
func metric(t *testing.T, nd *nodeproc.Node, name string) float64 { return nd.Metric(name) }

// waitFor polls cond until it holds or d passes.
var waitFor = testenv.WaitFor

func TestPublishAnywherePollAnywhere(t *testing.T) {
	_, nodes := cluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	if body := publish(t, a, "alice", "one", "bob", "b", "alice", "two"); !strings.Contains(body, `<message to="alice" id="2"/>`) {
		t.Fatalf("receipts = %s", body)
	}
	viaB := poll(t, b, "alice", "")
	if texts(viaB) != "1:one 2:two" {
		t.Fatalf("poll via B = %q; want 1:one 2:two", texts(viaB))
	}
	// C sees the same, unacknowledged: B's poll had no cursor.
	if got := texts(poll(t, c, "alice", "")); got != "1:one 2:two" {
		t.Fatalf("poll via C = %q; want 1:one 2:two", got)
	}
	// Acknowledge through C with B's cursor: C holds, and a publish
	// through B wakes it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := pollAsync(ctx, c, "alice", viaB.Cursor)
	waitFor(t, 5*time.Second, "the poll to be held", func() bool { return metric(t, c, "cometbox_polls_waiting") == 1 })
	publish(t, b, "alice", "three")
	if got := <-held; texts(got) != "3:three" {
		t.Fatalf("held poll via C = %q (%d %s); want 3:three", texts(got), got.Status, got.Body)
	}
	if got := texts(poll(t, a, "bob", "")); got != "1:b" {
		t.Errorf("bob via A = %q; want 1:b", got)
	}
}

func TestHeldPollWokenThroughAnotherNode(t *testing.T) {
	_, nodes := cluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	held := pollAsync(ctx, nodes[1], "carol", "")
	waitFor(t, 5*time.Second, "the poll to be held", func() bool { return metric(t, nodes[1], "cometbox_polls_waiting") == 1 })
	time.Sleep(200 * time.Millisecond)
	select {
	case a := <-held:
		t.Fatalf("poll answered before any publish: %d %q", a.Status, a.Body)
	default:
	}
	published := time.Now()
	publish(t, nodes[0], "carol", "wake")
	a := <-held
	if texts(a) != "1:wake" {
		t.Fatalf("woken poll = %q %s", texts(a), a.Body)
	}
	t.Logf("held %v, answered %v after the publish", published.Sub(start).Round(time.Millisecond), time.Since(published).Round(time.Microsecond))
	if time.Since(published) > 2*time.Second {
		t.Errorf("answer came %v after the publish; want well under the poll timeout", time.Since(published))
	}
}

func TestTwoTabs(t *testing.T) {
	_, nodes := cluster(t, 3)
	publish(t, nodes[0], "dave", "first")
	tab1 := poll(t, nodes[1], "dave", "")
	tab2 := poll(t, nodes[2], "dave", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h1 := pollAsync(ctx, nodes[1], "dave", tab1.Cursor)
	h2 := pollAsync(ctx, nodes[2], "dave", tab2.Cursor)
	waitFor(t, 5*time.Second, "both tabs held", func() bool {
		return metric(t, nodes[1], "cometbox_polls_waiting")+metric(t, nodes[2], "cometbox_polls_waiting") == 2
	})
	publish(t, nodes[0], "dave", "second")
	for i, h := range []<-chan tc.Answer{h1, h2} {
		if got := texts(<-h); got != "2:second" {
			t.Errorf("tab %d got %q; want 2:second", i+1, got)
		}
	}
}

func TestRedeliveryAfterLostAnswer(t *testing.T) {
	_, nodes := cluster(t, 2)
	publish(t, nodes[0], "erin", "x", "erin", `{"not":"json, just text"}`)
	first := poll(t, nodes[0], "erin", "")
	// The answer is lost on its way: the page re-polls, through another
	// node, with the cursor it had before. Same ids, same payloads.
	again := poll(t, nodes[1], "erin", "")
	if texts(first) != texts(again) || texts(first) != `1:x 2:{"not":"json, just text"}` {
		t.Fatalf("re-poll = %q; first answer %q", texts(again), texts(first))
	}
	// This time the page got it and acknowledges with its cursor.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a, err := tc.Poll(ctx, nodes[1].URL, "erin", first.Cursor, "")
	if err == nil {
		t.Fatalf("poll after acknowledging everything answered %d %q; want it held", a.Status, a.Body)
	}
	// A fresh page now gets nothing old.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if a, err := tc.Poll(ctx2, nodes[0].URL, "erin", "", ""); err == nil {
		t.Fatalf("fresh page after the acknowledgement got %d %q; want it held", a.Status, a.Body)
	}
}

func TestGapAfterCap(t *testing.T) {
	_, nodes := cluster(t, 2, "-queue-cap", "3")
	publish(t, nodes[0], "f", "1")
	first := poll(t, nodes[1], "f", "")
	publish(t, nodes[0], "f", "2", "f", "3", "f", "4", "f", "5")
	a := poll(t, nodes[1], "f", first.Cursor)
	if a.Gap != "2-2" || texts(a) != "3:3 4:4 5:5" {
		t.Fatalf("poll after the cap dropped one = gap %q, %q; want gap 2-2, 3 4 5", a.Gap, texts(a))
	}
}

func TestQueueExpiry(t *testing.T) {
	_, nodes := cluster(t, 2, "-queue-ttl", "1s")
	publish(t, nodes[0], "g", "old")
	a := poll(t, nodes[1], "g", "")
	oldEpoch, _, _ := strings.Cut(a.Cursor, ":")
	time.Sleep(2500 * time.Millisecond) // Redis expires the idle queue
	gone := poll(t, nodes[0], "g", a.Cursor)
	if !gone.Reset || len(gone.Messages) != 0 {
		t.Fatalf("poll of an expired queue = reset %v, %q; want a reset and []", gone.Reset, texts(gone))
	}
	if body := publish(t, nodes[1], "g", "new"); !strings.Contains(body, `id="1"`) {
		t.Errorf("first publish after expiry = %s; want id 1", body)
	}
	fresh := poll(t, nodes[0], "g", gone.Cursor)
	newEpoch, _, _ := strings.Cut(fresh.Cursor, ":")
	if texts(fresh) != "1:new" || newEpoch == oldEpoch {
		t.Errorf("after expiry: %q in epoch %s (old %s); want 1:new in a new epoch", texts(fresh), newEpoch, oldEpoch)
	}
}

// An open event stream keeps its client's queue however long it has
// nothing to send: it reads the queue every eighth of -queue-ttl (here
// more often than its heartbeats), which refreshes the keys' expiry. (A
// quiet stream used to let them expire, and its next message came after
// a reset, in a new epoch.)
func TestQuietStreamKeepsItsQueue(t *testing.T) {
	_, nodes := cluster(t, 1, "-queue-ttl", "2s")
	publish(t, nodes[0], "q", "1")
	first := poll(t, nodes[0], "q", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		nodes[0].URL+"/stream?client=q&since="+url.QueryEscape(first.Cursor), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream = %v, %v", resp, err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	time.Sleep(5 * time.Second) // past -queue-ttl plus an eighth (3 s) with nothing to send
	publish(t, nodes[0], "q", "2")
	epoch, _, _ := strings.Cut(first.Cursor, ":")
	for line := range lines {
		if line == "event: reset" {
			t.Fatal("the quiet stream's queue expired: reset")
		}
		if strings.HasPrefix(line, "id: ") {
			if got := strings.TrimPrefix(line, "id: "); got != epoch+":2" {
				t.Fatalf("the message after the quiet spell is %s; want %s:2", got, epoch)
			}
			return
		}
	}
	t.Fatal("the stream ended before the message")
}

// TestManyHeldPolls holds 500 polls across three nodes, publishes to
// every client through one node, three rounds, and checks that each page
// got exactly its own messages, once, in order.
func TestManyHeldPolls(t *testing.T) {
	_, nodes := cluster(t, 3)
	const clients, rounds = 500, 3
	pages := make([]*tc.Page, clients)
	for i := range pages {
		pages[i] = &tc.Page{Base: nodes[i%3].URL, Client: fmt.Sprintf("user:%d", i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		received = make([]int, clients) // messages each page has, read by the publisher
	)
	errs := make(chan error, clients)
	for i, p := range pages {
		wg.Go(func() {
			for len(p.Seen) < rounds {
				if _, a, err := p.PollOnce(ctx); err != nil || a.Status != 200 {
					errs <- fmt.Errorf("%s: %d %s %v", p.Client, a.Status, a.Body, err)
					return
				}
				mu.Lock()
				received[i] = len(p.Seen)
				mu.Unlock()
			}
		})
	}
	for r := 1; r <= rounds; r++ {
		waitFor(t, 20*time.Second, fmt.Sprintf("round %d: all %d polls held", r, clients), func() bool {
			sum := 0.0
			for _, nd := range nodes {
				sum += metric(t, nd, "cometbox_polls_waiting")
			}
			return sum == clients
		})
		var pairs []string
		for _, p := range pages {
			pairs = append(pairs, p.Client, fmt.Sprintf("%s round %d", p.Client, r))
		}
		publish(t, nodes[r%3], pairs...)
		if r < rounds {
			// Let every page take its message and poll again before the
			// next round, so that each round wakes held polls.
			waitFor(t, 20*time.Second, "every page to receive round "+strconv.Itoa(r), func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, n := range received {
					if n < r {
						return false
					}
				}
				return true
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	lost, dup := 0, 0
	for _, p := range pages {
		for r := 1; r <= rounds; r++ {
			want := fmt.Sprintf("%s round %d", p.Client, r)
			n := 0
			for _, m := range p.Seen {
				if m.Text() == want {
					n++
				}
			}
			switch {
			case n == 0:
				lost++
			case n > 1:
				dup += n - 1
			}
		}
		if len(p.Seen) != rounds {
			t.Errorf("%s saw %d messages; want %d", p.Client, len(p.Seen), rounds)
		}
	}
	t.Logf("%d clients x %d rounds: lost %d, duplicated %d", clients, rounds, lost, dup)
	if lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d; want 0, 0", lost, dup)
	}
}

// TestBrowsersLeaveMidPoll checks that polls abandoned by their browsers
// release everything: held-poll gauge, goroutines, subscriptions.
func TestBrowsersLeaveMidPoll(t *testing.T) {
	_, nodes := cluster(t, 1, "-max-polls-per-client", "0")
	nd := nodes[0]
	baseline := metric(t, nd, "go_goroutines")
	ctx, cancel := context.WithCancel(context.Background())
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { tc.Poll(ctx, nd.URL, fmt.Sprintf("leaver%d", i%50), "", "") })
	}
	waitFor(t, 10*time.Second, "all polls held", func() bool { return metric(t, nd, "cometbox_polls_waiting") == n })
	if got := metric(t, nd, "go_goroutines"); got < baseline+n*9/10 {
		t.Fatalf("goroutines while holding %d polls = %v (baseline %v); the check cannot see leaks", n, got, baseline)
	}
	cancel()
	wg.Wait()
	tc.HTTP.CloseIdleConnections()
	waitFor(t, 10*time.Second, "held polls to drop to 0", func() bool { return metric(t, nd, "cometbox_polls_waiting") == 0 })
	waitFor(t, 10*time.Second, "subscriptions to end after the linger", func() bool { return metric(t, nd, "cometbox_pubsub_channels") == 0 })
	waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool { return metric(t, nd, "go_goroutines") <= baseline+2 })
}

// TestSIGTERMDrain stops a real node holding polls: readiness drops at
// once; through the drain delay the node serves as usual (held polls stay
// held, a new poll is held, a publish completes); then held polls are
// answered [] spread over the drain window, and the process exits 0.
func TestSIGTERMDrain(t *testing.T) {
	rs, nodes := cluster(t, 2)
	_ = rs
	nd := nodeproc.Start(t, "drainer", "-redis-url", rs.URL(), "-publish-secret", secret,
		"-drain-delay", "1500ms", "-drain-spread", "2s", "-max-polls-per-client", "0")
	nd.WaitReady()
	const n = 40
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answers := make([]<-chan tc.Answer, n)
	for i := range answers {
		answers[i] = pollAsync(ctx, nd, fmt.Sprint("drain", i), "")
	}
	waitFor(t, 5*time.Second, "polls held", func() bool { return metric(t, nd, "cometbox_polls_waiting") == n })

	sigterm := time.Now()
	nd.Signal(syscall.SIGTERM)
	waitFor(t, time.Second, "readyz 503", func() bool {
		resp, err := http.Get(nd.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	// Within the drain delay the node serves as usual: a new poll is
	// held, and a publish is taken.
	late := pollAsync(ctx, nd, "drain-late", "")
	waitFor(t, time.Second, "the new poll held", func() bool { return metric(t, nd, "cometbox_polls_waiting") == n+1 })
	if status, body, err := tc.Publish(ctx, nd.URL, secret, "application/xml", tc.XML("drain0", "kept")); err != nil || status != 200 {
		t.Fatalf("publish during drain = %d %s %v", status, body, err)
	}
	const delay, spread = 1500 * time.Millisecond, 2 * time.Second
	var times []time.Duration
	for i, ch := range append(answers, late) {
		a := <-ch
		if a.Status != 200 || (len(a.Messages) > 0 && i != 0) {
			t.Errorf("held poll %d answered %d %q; want 200", i, a.Status, a.Body)
		}
		if a.Status == 200 && len(a.Messages) == 0 {
			times = append(times, a.At.Sub(sigterm))
		}
	}
	t.Logf("answered after SIGTERM: %v", times)
	distinct := map[int64]bool{}
	for _, d := range times {
		if d < delay || d > delay+spread+500*time.Millisecond {
			t.Errorf("a held poll was answered %v after SIGTERM; want after the %v delay, within the %v spread", d, delay, spread)
		}
		distinct[d.Milliseconds()/50] = true
	}
	if len(distinct) < 5 {
		t.Errorf("answers fell in %d 50ms slots; want them spread over the window", len(distinct))
	}
	if code := nd.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d; want 0\n%s", code, nd.Logs())
	}
	if took := time.Since(sigterm); took < delay || took > delay+spread+2*time.Second {
		t.Errorf("exit %v after SIGTERM; want after the drain delay plus the spread, and a little", took)
	}
	// Nothing queued is lost: the message published during the drain
	// waits in Redis for the client's next poll, on another node.
	if got := texts(poll(t, nodes[0], "drain0", "")); !strings.Contains(got, "kept") {
		t.Errorf("after the drain, drain0 has %q; want the message published during it", got)
	}
}

func TestRedisDown(t *testing.T) {
	rs, nodes := cluster(t, 1)
	nd := nodes[0]
	rs.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, do := range map[string]func() (int, http.Header){
		"publish": func() (int, http.Header) {
			req, _ := http.NewRequestWithContext(ctx, "POST", nd.URL+"/publish", strings.NewReader(tc.XML("h", "x")))
			req.Header.Set("Content-Type", "application/xml")
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := tc.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, resp.Header
		},
		"poll": func() (int, http.Header) {
			a, err := tc.Poll(ctx, nd.URL, "h", "", "")
			if err != nil {
				t.Fatal(err)
			}
			return a.Status, a.Header
		},
	} {
		start := time.Now()
		status, hdr := do()
		if status != 503 || hdr.Get("Retry-After") == "" {
			t.Errorf("%s with Redis down = %d (Retry-After %q); want 503 with Retry-After", name, status, hdr.Get("Retry-After"))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s with Redis down took %v; want a fast answer", name, d)
		}
	}
	resp, _ := http.Get(nd.URL + "/readyz")
	if resp.StatusCode != 503 {
		t.Errorf("readyz with Redis down = %d; want 503", resp.StatusCode)
	}
	resp.Body.Close()

	rs.Restart()
	nd.WaitReady()
	publish(t, nd, "h", "back")
	if got := texts(poll(t, nd, "h", "")); got != "1:back" {
		t.Errorf("after Redis came back: %q", got)
	}
}

func TestTokensOnARealNode(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{})
	nd := nodeproc.Start(t, "tokens", "-redis-url", rs.URL(), "-token-secret", "tsecret")
	nd.WaitReady()
	ctx := context.Background()
	if a, _ := tc.Poll(ctx, nd.URL, "ivan", "", ""); a.Status != 401 {
		t.Errorf("poll without token = %d; want 401", a.Status)
	}
	other := token.Mint([]byte("tsecret"), "judy", time.Now().Add(time.Minute))
	if a, _ := tc.Poll(ctx, nd.URL, "ivan", "", other); a.Status != 403 {
		t.Errorf("poll with judy's token = %d; want 403", a.Status)
	}
	if status, _, _ := tc.Publish(ctx, nd.URL, "", "application/xml", tc.XML("ivan", "hi")); status != 200 {
		t.Fatalf("publish = %d", status)
	}
	ok := token.Mint([]byte("tsecret"), "ivan", time.Now().Add(time.Minute))
	if a, err := tc.Poll(ctx, nd.URL, "ivan", "", ok); err != nil || texts(a) != "1:hi" {
		t.Errorf("poll with ivan's token = %d %q %v", a.Status, a.Body, err)
	}
}

// TestDurableReplicas runs a primary with a real replica: with
// -durable-replicas 1 a publish is answered 200 once the replica has it,
// and 503 not_durable when no replica confirms in time. The write itself
// stands, so a retry with the same idempotency key completes it without a
// duplicate.
func TestDurableReplicas(t *testing.T) {
	primary := redisserver.Start(t, redisserver.Options{Args: []string{"--repl-diskless-sync-delay", "0"}})
	_, port, _ := strings.Cut(primary.Addr, ":")
	replica := redisserver.Start(t, redisserver.Options{Args: []string{"--replicaof", "127.0.0.1", port}})
	waitFor(t, 10*time.Second, "the replica to sync", func() bool {
		info, _ := primary.Do("INFO", "replication")
		return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	nd := nodeproc.Start(t, "durable", "-redis-url", primary.URL(), "-publish-secret", secret,
		"-durable-replicas", "1", "-durable-timeout", "3s") // generous: CI machines are busy
	nd.WaitReady()
	ctx := context.Background()
	if status, body, _ := tc.Publish(ctx, nd.URL, secret, "application/xml", tc.XML("dur", "replicated")); status != 200 {
		t.Fatalf("publish with a replica = %d %s", status, body)
	}
	if got, _ := replica.Do("LLEN", "cb:{dur}:q"); got != ":1" {
		t.Errorf("replica holds %s messages after a 200; want 1", got)
	}

	replica.Kill()
	waitFor(t, 10*time.Second, "the primary to notice", func() bool {
		info, _ := primary.Do("INFO", "replication")
		return strings.Contains(info, "connected_slaves:0")
	})
	start := time.Now()
	status, body, _ := tc.Publish(ctx, nd.URL, secret, "application/xml", tc.XML("dur", "alone"), "Idempotency-Key", "k1")
	if status != 503 || !strings.Contains(body, `code="not_durable"`) {
		t.Fatalf("publish without a replica = %d %s; want 503 not_durable", status, body)
	}
	t.Logf("not_durable after %v", time.Since(start).Round(time.Millisecond))

	replica.Restart()
	waitFor(t, 10*time.Second, "the replica to come back", func() bool {
		info, _ := primary.Do("INFO", "replication")
		return strings.Contains(info, "state=online")
	})
	status, body, _ = tc.Publish(ctx, nd.URL, secret, "application/xml", tc.XML("dur", "alone"), "Idempotency-Key", "k1")
	if status != 200 || !strings.Contains(body, `id="2"`) {
		t.Fatalf("retry with the same key = %d %s; want 200 with the first attempt's id 2", status, body)
	}
	if got := texts(poll(t, nd, "dur", "")); got != "1:replicated 2:alone" {
		t.Errorf("queue = %q; want each message once", got)
	}
}

// TestDurableAOF: -durable-aof needs WAITAOF (Redis 7.2); on an older
// Redis the node refuses to start and says why.
func TestDurableAOF(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{AOF: true})
	info, err := rs.Do("INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			fmt.Sscanf(v, "%d.%d", &major, &minor)
		}
	}
	if major > 7 || (major == 7 && minor >= 2) {
		nd := nodeproc.Start(t, "aof", "-redis-url", rs.URL(), "-publish-secret", secret, "-durable-aof")
		nd.WaitReady()
		publish(t, nd, "aof", "fsynced")
		return
	}
	bin := nodeproc.Binary(t)
	out, err := exec.Command(bin, "-listen", "127.0.0.1:0", "-redis-url", rs.URL(), "-durable-aof").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "7.2") {
		t.Fatalf("node with -durable-aof on Redis %d.%d: %v\n%s\nwant a startup error naming Redis 7.2", major, minor, err, out)
	}
	t.Logf("Redis %d.%d: node refused to start: %s", major, minor, strings.TrimSpace(string(out)))
}

// With -admin-listen the operator's routes leave the public port, which
// keeps what browsers and back ends need and /healthz for balancers; the
// admin listener says draining until the node exits.
func TestAdminListener(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{})
	nd := nodeproc.Start(t, "admin", "-redis-url", rs.URL(), "-publish-secret", secret,
		"-admin-listen", "127.0.0.1:0", "-drain-delay", "1s")
	if nd.AdminURL == "" || nd.AdminURL == nd.URL {
		t.Fatalf("admin URL %q, public %q; want a listener of its own", nd.AdminURL, nd.URL)
	}
	nd.WaitReady()
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for url, want := range map[string]int{
		nd.URL + "/healthz": 200, nd.URL + "/readyz": 404, nd.URL + "/metrics": 404,
		nd.AdminURL + "/healthz": 200, nd.AdminURL + "/readyz": 200, nd.AdminURL + "/metrics": 200,
		nd.AdminURL + "/poll?client=a": 404, nd.AdminURL + "/publish": 404,
	} {
		if got := status(url); got != want {
			t.Errorf("GET %s = %d; want %d", url, got, want)
		}
	}
	if got := metric(t, nd, "cometbox_polls_waiting"); got != 0 {
		t.Errorf("cometbox_polls_waiting = %v on the admin listener; want 0", got)
	}
	nd.Signal(syscall.SIGTERM)
	waitFor(t, time.Second, "readyz 503 on the admin listener", func() bool { return status(nd.AdminURL+"/readyz") == 503 })
	if code := nd.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d; want 0", code)
	}
}
