package main_test

// Presence, webhooks and the server API across real nodes on a real
// redis-server: a client hopping between nodes stays online, a killed
// node's clients go offline within the documented bound, webhooks survive
// their receiver being down, and disconnects, revoked tokens and deleted
// queues reach polls held on another node.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/pkg/token"
	"github.com/cometbox/cometbox/pkg/webhook"
)

const webhookSecret = "e2e-webhook-secret"

// hookReceiver is the back end's webhook endpoint: it checks every
// request's signature and records the events of those it accepts.
type hookReceiver struct {
	t    *testing.T
	url  string
	down atomic.Bool // answer 503

	mu       sync.Mutex
	events   []webhook.Event // every event accepted, duplicates included
	refused  int
	requests int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hooks/cometbox"
	return r
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err := webhook.Verify(req.Header.Get(webhook.Header), raw, []string{webhookSecret}, 0, time.Now()); err != nil {
		r.t.Errorf("webhook with a bad signature: %v", err)
		w.WriteHeader(400)
		return
	}
	if r.down.Load() {
		r.refused++
		w.WriteHeader(503)
		return
	}
	var body webhook.Body
	if err := json.Unmarshal(raw, &body); err != nil {
		r.t.Errorf("webhook body %s: %v", raw, err)
	}
	r.events = append(r.events, body.Events...)
	w.WriteHeader(204)
}

// of returns the client's events, duplicates (same id) dropped, as
// "online offline ...", and how many duplicates there were.
func (r *hookReceiver) of(client string) (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]webhook.Event{}
	var kinds []string
	dups := 0
	for _, e := range r.events {
		if e.Client != client {
			continue
		}
		if prev, ok := seen[e.ID]; ok {
			if prev != e {
				r.t.Errorf("event id %s named two events: %+v and %+v", e.ID, prev, e)
			}
			dups++
			continue
		}
		seen[e.ID] = e
		kinds = append(kinds, strings.TrimPrefix(e.Name, "client_"))
	}
	return strings.Join(kinds, " "), dups
}

// presenceNodes starts a redis-server and n nodes with presence, a short
// linger and poll timeout, and webhooks to hooks (when not nil).
func presenceNodes(t *testing.T, n int, hooks *hookReceiver, args ...string) []*nodeproc.Node {
	t.Helper()
	rs := redisserver.Start(t, redisserver.Options{})
	base := []string{"-redis-url", rs.URL(), "-publish-secret", secret, "-presence-linger", "1s", "-poll-timeout", "2s"}
	if hooks != nil {
		base = append(base, "-webhook-url", hooks.url, "-webhook-secret", webhookSecret)
	}
	nodes := make([]*nodeproc.Node, n)
	for i := range nodes {
		nodes[i] = nodeproc.Start(t, fmt.Sprintf("node%c", 'A'+i), append(base, args...)...)
	}
	for _, nd := range nodes {
		nd.WaitReady()
	}
	return nodes
}

// api calls the server API of nd with the publish secret.
func api(t *testing.T, nd *nodeproc.Node, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, nd.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := tc.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// online asks nd whether client is online.
func online(t *testing.T, nd *nodeproc.Node, client string) bool {
	t.Helper()
	status, out := api(t, nd, "GET", "/api/presence?client="+url.QueryEscape(client), "")
	clients, _ := out["clients"].([]any)
	if status != 200 || len(clients) != 1 {
		t.Fatalf("GET /api/presence = %d %v", status, out)
	}
	return clients[0].(map[string]any)["online"] == true
}

// A page whose every poll goes to the other node (a balancer that picks
// a node per request) stays online throughout: one online event, no
// offline one, until it leaves.
func TestPresenceHopBetweenNodes(t *testing.T) {
	hooks := newHookReceiver(t)
	nodes := presenceNodes(t, 2, hooks, "-poll-timeout", "1s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop := make(chan struct{})
	polled := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				polled <- n
				return
			default:
			}
			if _, err := tc.Poll(ctx, nodes[n%2].URL, "hopper", "", ""); err != nil {
				t.Errorf("poll %d: %v", n, err)
			}
			n++
		}
	}()
	waitFor(t, 5*time.Second, "hopper online", func() bool { return online(t, nodes[0], "hopper") })
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !online(t, nodes[1], "hopper") {
			t.Fatal("hopper shown offline between two polls")
		}
	}
	close(stop)
	n := <-polled
	left := time.Now()
	waitFor(t, 5*time.Second, "hopper offline", func() bool { return !online(t, nodes[0], "hopper") })
	took := time.Since(left)
	waitFor(t, 5*time.Second, "the offline webhook", func() bool { k, _ := hooks.of("hopper"); return k == "online offline" })
	kinds, dups := hooks.of("hopper")
	t.Logf("presence: %d polls on alternate nodes, one online and one offline event (%d duplicates); offline %v after the last poll ended (linger 1s)",
		n, dups, took.Round(10*time.Millisecond))
	if n < 4 || kinds != "online offline" {
		t.Errorf("%d polls; events %q; want one online, one offline", n, kinds)
	}
}

// A client whose only node is killed goes offline within the linger,
// the node's dead time (3s), a sweep (1s) and, when the killed node held
// the sweeper's lease, its lease (3s, overlapping the dead time); the
// offline webhook follows.
func TestPresenceNodeKilled(t *testing.T) {
	hooks := newHookReceiver(t)
	nodes := presenceNodes(t, 2, hooks, "-poll-timeout", "20s")
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _, _ = tc.Poll(ctx, a.URL, "victim", "", "") }()
	go func() { _, _ = tc.Poll(ctx, b.URL, "survivor", "", "") }()
	waitFor(t, 5*time.Second, "both online", func() bool { return online(t, b, "victim") && online(t, b, "survivor") })
	waitFor(t, 5*time.Second, "the online webhooks", func() bool {
		v, _ := hooks.of("victim")
		s, _ := hooks.of("survivor")
		return v == "online" && s == "online"
	})
	a.Kill()
	killed := time.Now()
	waitFor(t, 15*time.Second, "victim offline", func() bool { return !online(t, b, "victim") })
	offline := time.Since(killed)
	waitFor(t, 5*time.Second, "the offline webhook", func() bool { v, _ := hooks.of("victim"); return v == "online offline" })
	hooked := time.Since(killed)
	t.Logf("presence: a killed node's client offline after %v, its webhook after %v (bound: linger 1s + 4s)",
		offline.Round(10*time.Millisecond), hooked.Round(10*time.Millisecond))
	if offline > 5500*time.Millisecond {
		t.Errorf("offline %v after the kill; want within linger + 4s (and a margin)", offline)
	}
	if !online(t, b, "survivor") {
		t.Error("the survivor, held on the live node, went offline")
	}
	if s, _ := hooks.of("survivor"); s != "online" {
		t.Errorf("survivor's events = %q; want online only", s)
	}
}

// A receiver down for a while gets every event once it is up again, each
// client's in order, and duplicates only with the same event id.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	hooks := newHookReceiver(t)
	nodes := presenceNodes(t, 2, hooks)
	hooks.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clients := []string{"w1", "w2", "w3", "w4"}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { // each: online a moment, offline, online again
			_, _ = tc.Poll(ctx, nodes[i%2].URL, c, "", "")
			time.Sleep(2500 * time.Millisecond) // past the linger: offline
			_, _ = tc.Poll(ctx, nodes[(i+1)%2].URL, c, "", "")
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "refused deliveries", func() bool { hooks.mu.Lock(); defer hooks.mu.Unlock(); return hooks.refused >= 2 })
	hooks.down.Store(false)
	up := time.Now()
	waitFor(t, 40*time.Second, "every event", func() bool {
		for _, c := range clients {
			if k, _ := hooks.of(c); k != "online offline online offline" {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, c := range clients {
		_, d := hooks.of(c)
		dups += d
	}
	hooks.mu.Lock()
	t.Logf("webhooks: %d requests refused while down, every client's 4 events in order %v after it was up (%d duplicates, same ids)",
		hooks.refused, time.Since(up).Round(10*time.Millisecond), dups)
	hooks.mu.Unlock()
}

// A disconnect through one node ends the client's poll held on another
// at once; with refuse_tokens its old token is refused on every node,
// and a token minted after opens polls again.
func TestDisconnectAcrossNodes(t *testing.T) {
	const tokSecret = "e2e-token-secret"
	nodes := presenceNodes(t, 2, nil, "-token-secret", tokSecret, "-poll-timeout", "20s")
	a, b := nodes[0], nodes[1]
	old := token.Mint([]byte(tokSecret), "banned", time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	answered := make(chan tc.Answer, 1)
	go func() {
		ans, err := tc.Poll(ctx, b.URL, "banned", "", old)
		if err != nil {
			ans.Status, ans.Body = -1, err.Error()
		}
		answered <- ans
	}()
	waitFor(t, 5*time.Second, "the poll held on B", func() bool { return metric(t, b, "cometbox_polls_waiting") == 1 })
	start := time.Now()
	status, out := api(t, a, "POST", "/api/clients/banned/disconnect", `{"refuse_tokens":true,"token_ttl":3600}`)
	if status != 200 || out["nodes"] != float64(1) || out["tokens_refused_until"] == nil {
		t.Fatalf("disconnect via A = %d %v", status, out)
	}
	select {
	case ans := <-answered:
		if ans.Status != 200 || ans.Body != "[]" {
			t.Errorf("the poll held on B = %d %q; want []", ans.Status, ans.Body)
		}
		t.Logf("disconnect: a poll held on another node ended %v after the call", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the poll held on B was not ended by the disconnect through A")
	}
	for _, nd := range nodes {
		ans, err := tc.Poll(ctx, nd.URL, "banned", "", old)
		if err != nil || ans.Status != 403 || !strings.Contains(ans.Body, "token_revoked") {
			t.Errorf("poll with the old token via %s = %d %s %v; want 403 token_revoked", nd.Name, ans.Status, ans.Body, err)
		}
	}
	fresh := token.Mint([]byte(tokSecret), "banned", time.Now().Add(time.Hour+5*time.Second))
	publish(t, a, "banned", "after the ban")
	if ans, err := tc.Poll(ctx, b.URL, "banned", "", fresh); err != nil || ans.Status != 200 || texts(ans) != "1:after the ban" {
		t.Errorf("poll with a token minted after = %d %q %v; want the message", ans.Status, ans.Body, err)
	}
}

// Deleting a client's queue through one node answers its poll held on
// another with the reset signal, and the next message starts a new
// sequence.
func TestDeleteQueueAcrossNodes(t *testing.T) {
	nodes := presenceNodes(t, 2, nil, "-poll-timeout", "20s")
	a, b := nodes[0], nodes[1]
	publish(t, a, "gone", "one", "gone", "two")
	first := poll(t, b, "gone", "")
	waitFor(t, 5*time.Second, "gone online", func() bool { return online(t, a, "gone") })
	status, out := api(t, a, "GET", "/api/clients/gone", "")
	if status != 200 || out["length"] != float64(2) || out["first_id"] != float64(1) || out["last_id"] != float64(2) || out["online"] != true {
		t.Fatalf("inspect = %d %v; want 2 messages, 1 to 2, online", status, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := pollAsync(ctx, b, "gone", first.Cursor)
	waitFor(t, 5*time.Second, "the poll held on B", func() bool { return metric(t, b, "cometbox_polls_waiting") == 1 })
	if status, out := api(t, a, "DELETE", "/api/clients/gone", ""); status != 200 || out["deleted"] != true {
		t.Fatalf("delete = %d %v", status, out)
	}
	select {
	case ans := <-held:
		if ans.Status != 200 || !ans.Reset || ans.Body != "[]" {
			t.Errorf("the held poll = %d %q reset=%v; want [] with Cometbox-Reset", ans.Status, ans.Body, ans.Reset)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the poll held on B was not answered after the delete")
	}
	publish(t, a, "gone", "three")
	if ans := poll(t, b, "gone", first.Cursor); !ans.Reset || texts(ans) != "1:three" {
		t.Errorf("poll with the old cursor = %q reset=%v; want a reset and 1:three", texts(ans), ans.Reset)
	}
}

// On a Redis Cluster, presence spreads its shards over the masters, and
// a killed node's clients still go offline within the bound while the
// other node's stay online.
func TestPresenceOnRedisCluster(t *testing.T) {
	masters := redisserver.StartCluster(t, 3)
	hooks := newHookReceiver(t)
	url := "redis-cluster://" + masters[0].Addr + "," + masters[1].Addr
	var nodes []*nodeproc.Node
	for i := range 2 {
		nd := nodeproc.Start(t, fmt.Sprintf("node%c", 'A'+i), "-redis-url", url, "-publish-secret", secret,
			"-presence-linger", "1s", "-poll-timeout", "20s", "-webhook-url", hooks.url, "-webhook-secret", webhookSecret)
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.WaitReady()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var clients []string
	for i := range 20 {
		c := fmt.Sprintf("user:%d", i)
		clients = append(clients, c)
		go func() { _, _ = tc.Poll(ctx, nodes[i%2].URL, c, "", "") }()
	}
	waitFor(t, 10*time.Second, "every client online", func() bool {
		for _, c := range clients {
			if !online(t, nodes[1], c) {
				return false
			}
		}
		return true
	})
	for _, m := range masters {
		keys, _ := m.Do("KEYS", "cb:{#p*}:c")
		if strings.TrimSpace(keys) == "" {
			t.Errorf("master %s holds no presence shard", m.Addr)
		}
	}
	nodes[0].Kill()
	killed := time.Now()
	waitFor(t, 15*time.Second, "the killed node's clients offline", func() bool {
		for i, c := range clients {
			if i%2 == 0 && online(t, nodes[1], c) {
				return false
			}
		}
		return true
	})
	t.Logf("presence on a cluster: a killed node's 10 clients offline after %v", time.Since(killed).Round(10*time.Millisecond))
	for i, c := range clients {
		if i%2 == 1 && !online(t, nodes[1], c) {
			t.Errorf("%s, held on the live node, is offline", c)
		}
	}
	waitFor(t, 10*time.Second, "the offline webhooks", func() bool {
		for i, c := range clients {
			want := "online"
			if i%2 == 0 {
				want = "online offline"
			}
			if k, _ := hooks.of(c); k != want {
				return false
			}
		}
		return true
	})
}
