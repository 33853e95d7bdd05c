package main_test

// Groups on real nodes: a group message published on one node reaches
// members held on every node and members offline; members join and
// leave under publishing; a node killed halfway through a fan-out and a
// Sentinel switchover in the middle of one lose no copy and make none
// twice; members spread over every shard of a Redis Cluster. Figures are
// logged as "groups-suite:" lines.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
)

// groupCall makes a membership call and returns its status and body.
func groupCall(t *testing.T, base, method, group string, clients []string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string][]string{"clients": clients})
	req, err := http.NewRequest(method, base+"/groups/"+group+"/members", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := tc.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s /groups/%s/members: %v", method, group, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAllString(resp)
}

func readAllString(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// joinAll joins members to group, a thousand at a time.
func joinAll(t *testing.T, base, group string, members []string) {
	t.Helper()
	for c := range slices.Chunk(members, 1000) {
		if code, body := groupCall(t, base, http.MethodPost, group, c); code != 200 {
			t.Fatalf("join = %d %s", code, body)
		}
	}
}

// groupXML is a publish body with one group message.
func groupXML(group, except, text string) string {
	attr := ""
	if except != "" {
		attr = ` except="` + except + `"`
	}
	return `<messages><message group="` + group + `"` + attr + `>` + text + `</message></messages>`
}

// groupTexts reads a poll answer's messages as GROUP/TEXT.
func groupTexts(t *testing.T, a tc.Answer) []string {
	t.Helper()
	var msgs []struct {
		ID    uint64 `json:"id"`
		Group string `json:"group"`
		Data  string `json:"data"`
	}
	if err := json.Unmarshal([]byte(a.Body), &msgs); err != nil {
		t.Fatalf("answer %q: %v", a.Body, err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Group+"/"+m.Data)
	}
	return out
}

// copies counts, for each member, the entries of its queue in Redis that
// are copies of group's message text (read straight from Redis).
func copies(t *testing.T, rdb redis.Cmdable, group, text string, members []string) map[string]int {
	t.Helper()
	ctx := context.Background()
	out := make(map[string]int, len(members))
	for c := range slices.Chunk(members, 2000) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(c))
		for i, m := range c {
			cmds[i] = pipe.LRange(ctx, "cb:{"+m+"}:q", 0, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			t.Fatalf("reading queues: %v", err)
		}
		want := `"group":"` + group + `","data":"` + text + `"}`
		for i, m := range c {
			for _, e := range cmds[i].Val() {
				if strings.HasSuffix(e, want) {
					out[m]++
				}
			}
		}
	}
	return out
}

// exactlyOnce reports the members that have other than one copy.
func exactlyOnce(got map[string]int, members []string) (missing, twice int) {
	for _, m := range members {
		switch got[m] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	return missing, twice
}

func memberIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

// TestGroupsAcrossNodes: members held on either node, or offline, get a
// group message published through either; members join and leave while
// group messages are published; each member acknowledges its own copies.
func TestGroupsAcrossNodes(t *testing.T) {
	_, nodes := cluster(t, 2, "-max-polls-per-client", "0")
	a, b := nodes[0], nodes[1]
	members := memberIDs("m", 200)
	joinAll(t, a.URL, "room:1", members)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := map[string]<-chan tc.Answer{}
	for i, m := range members[:100] {
		held[m] = pollAsync(ctx, nodes[i%2], m, "")
	}
	waitFor(t, 5*time.Second, "100 polls held", func() bool {
		return metric(t, a, "cometbox_polls_waiting")+metric(t, b, "cometbox_polls_waiting") == 100
	})
	status, body, err := tc.Publish(ctx, b.URL, secret, "application/xml", groupXML("room:1", members[1], "hi"))
	if err != nil || status != 200 || !strings.Contains(body, `<message group="room:1" members="199"/>`) {
		t.Fatalf("group publish = %d %s %v", status, body, err)
	}
	for m, ch := range held {
		if m == members[1] {
			continue // left out: still held
		}
		select {
		case ans := <-ch:
			if got := groupTexts(t, ans); ans.Status != 200 || !slices.Equal(got, []string{"room:1/hi"}) {
				t.Fatalf("%s's held poll = %d %v", m, ans.Status, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's held poll not answered", m)
		}
	}
	if got := groupTexts(t, poll(t, a, members[150], "")); !slices.Equal(got, []string{"room:1/hi"}) {
		t.Fatalf("offline %s polls later: %v", members[150], got)
	}

	// Joining and leaving under publishing: a member that stays gets
	// every message once, in order; one that comes and goes gets some of
	// them, in order, none twice; the last copy of each reaches everyone.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 10 {
			if code, body := groupCall(t, nodes[i%2].URL, http.MethodDelete, "room:1", []string{"x1"}); code != 200 {
				t.Errorf("leave = %d %s", code, body)
			}
			if code, body := groupCall(t, nodes[i%2].URL, http.MethodPost, "room:1", []string{"x1"}); code != 200 {
				t.Errorf("join = %d %s", code, body)
			}
		}
	}()
	var want []string
	for i := range 30 {
		text := fmt.Sprintf("g%02d", i)
		want = append(want, "room:1/"+text)
		if status, body, err := tc.Publish(ctx, nodes[i%2].URL, secret, "application/xml", groupXML("room:1", "", text)); err != nil || status != 200 {
			t.Fatalf("publish %s = %d %s %v", text, status, body, err)
		}
	}
	wg.Wait()
	stay := poll(t, b, members[2], "")
	if got := groupTexts(t, stay); !slices.Equal(got, append([]string{"room:1/hi"}, want...)) {
		t.Fatalf("%s got %v", members[2], got)
	}
	got := groupTexts(t, poll(t, a, "x1", ""))
	seen := map[string]bool{}
	for i, g := range got {
		if seen[g] || i > 0 && g < got[i-1] {
			t.Fatalf("x1 got %v: out of order or twice", got)
		}
		seen[g] = true
	}
	t.Logf("groups-suite: x1, joining and leaving 10 times, got %d of 30", len(got))

	// Each member's copies are acknowledged by its own cursor only.
	ack, _ := http.NewRequest(http.MethodPost, a.URL+"/ack?client="+members[2]+"&since="+stay.Cursor, nil)
	if resp, err := tc.HTTP.Do(ack); err != nil || resp.StatusCode != 204 {
		t.Fatalf("ack = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for m, want := range map[string]string{members[2]: `"length":0`, members[3]: `"length":31`} {
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/api/clients/"+m, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := tc.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAllString(resp); !strings.Contains(body, want) {
			t.Errorf("%s: %s; want %s", m, body, want)
		}
		resp.Body.Close()
	}
}

// TestGroupNodeKilledMidFanOut kills the node fanning a group message out
// to 30,000 members right after its first copies: the other node
// completes the fan-out by itself within seconds, and the publisher's
// retry with its idempotency key is answered 200 without a second copy.
func TestGroupNodeKilledMidFanOut(t *testing.T) {
	rs, nodes := cluster(t, 2)
	a, b := nodes[0], nodes[1]
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	members := memberIDs("k", 30000)
	joinAll(t, b.URL, "big", members)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	body := groupXML("big", "", "once")
	answered := make(chan string, 1)
	go func() {
		status, resp, err := tc.Publish(ctx, a.URL, secret, "application/xml", body, "Idempotency-Key", "fanout-1")
		answered <- fmt.Sprintf("%d %s %v", status, resp, err)
	}()
	first := "cb:{" + members[0] + "}:q"
	waitFor(t, 10*time.Second, "the first copy", func() bool { return rdb.LLen(ctx, first).Val() > 0 })
	a.Kill()
	killed := time.Now()
	t.Logf("groups-suite: publisher's answer from the killed node: %s", <-answered)
	missing, twice := exactlyOnce(copies(t, rdb, "big", "once", members), members)
	if missing == 0 {
		t.Fatalf("every member had its copy when the node was killed: not mid-fan-out")
	}
	t.Logf("groups-suite: %d of %d members without a copy when the node was killed", missing, len(members))

	// Nobody retries: the other node finds the job and completes it.
	waitFor(t, 15*time.Second, "the fan-out completed by the other node", func() bool {
		missing, _ = exactlyOnce(copies(t, rdb, "big", "once", members), members)
		return missing == 0
	})
	t.Logf("groups-suite: fan-out completed by the other node %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	if _, twice = exactlyOnce(copies(t, rdb, "big", "once", members), members); twice != 0 {
		t.Fatalf("%d members with two copies", twice)
	}

	status, resp, err := tc.Publish(ctx, b.URL, secret, "application/xml", body, "Idempotency-Key", "fanout-1")
	if err != nil || status != 200 || !strings.Contains(resp, `members="30000"`) {
		t.Fatalf("retry = %d %s %v; want 200 with 30000 members", status, resp, err)
	}
	if missing, twice := exactlyOnce(copies(t, rdb, "big", "once", members), members); missing+twice != 0 {
		t.Fatalf("after the retry: %d missing, %d twice", missing, twice)
	}
}

// TestGroupSentinelSwitchoverMidFanOut switches the Redis primary over
// while a group message is fanned out to 10,000 members: the publish is
// answered 200 (after its retries, with the idempotency key, if the
// switchover failed it) and every member has exactly one copy on the
// new primary.
func TestGroupSentinelSwitchoverMidFanOut(t *testing.T) {
	set := redisserver.StartSentinel(t, redisserver.SentinelOptions{})
	var nodes []*nodeproc.Node
	for i := range 2 {
		nodes = append(nodes, nodeproc.Start(t, fmt.Sprintf("sentinel%c", 'A'+i),
			"-redis-url", set.URL(), "-publish-secret", secret))
	}
	for _, nd := range nodes {
		nd.WaitReady()
	}
	members := memberIDs("s", 10000)
	joinAll(t, nodes[0].URL, "room:s", members)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	primary := redis.NewClient(&redis.Options{Addr: set.Primary().Addr})
	first := "cb:{" + members[0] + "}:q"
	body := groupXML("room:s", "", "switch")
	done := make(chan string, 1)
	go func() {
		for i := 0; ; i++ {
			status, resp, err := tc.Publish(ctx, nodes[i%2].URL, secret, "application/xml", body, "Idempotency-Key", "switch-1")
			if status == 200 || ctx.Err() != nil {
				done <- fmt.Sprintf("%d %s %v after %d attempts", status, resp, err, i+1)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	waitFor(t, 10*time.Second, "the first copy", func() bool { return primary.LLen(ctx, first).Val() > 0 })
	missing, _ := exactlyOnce(copies(t, primary, "room:s", "switch", members), members)
	_ = primary.Close()
	old, promoted := set.Switchover(15 * time.Second)
	ans := strings.ReplaceAll(<-done, "\n", " ")
	t.Logf("groups-suite: switchover %s -> %s with %d of %d members without their copy; publish: %s",
		old.Addr, promoted.Addr, missing, len(members), ans)
	if !strings.HasPrefix(ans, "200 ") || !strings.Contains(ans, `members="10000"`) {
		t.Fatalf("publish = %s", ans)
	}
	rdb := redis.NewClient(&redis.Options{Addr: set.Primary().Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if missing, twice := exactlyOnce(copies(t, rdb, "room:s", "switch", members), members); missing+twice != 0 {
		t.Fatalf("on the new primary: %d members without a copy, %d with two", missing, twice)
	}
}

// TestGroupsOnClusterNodes: members spread over every shard of a Redis
// Cluster, held on two nodes, get a group message published through
// either.
func TestGroupsOnClusterNodes(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{Replicas: -1})
	members := memberIDs("c", 600)
	w := clusterWorld(t, c, 2, nil)
	joinAll(t, w.nodes[0].URL, "room:c", members)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := map[string]<-chan tc.Answer{}
	for i, m := range members {
		held[m] = pollAsync(ctx, w.nodes[i%2], m, "")
	}
	waitFor(t, 5*time.Second, "600 polls held", func() bool {
		return w.nodes[0].Metric("cometbox_polls_waiting")+w.nodes[1].Metric("cometbox_polls_waiting") == 600
	})
	status, body, err := tc.Publish(ctx, w.nodes[1].URL, secret, "application/xml", groupXML("room:c", "", "hi"))
	if err != nil || status != 200 || !strings.Contains(body, `members="600"`) {
		t.Fatalf("group publish = %d %s %v", status, body, err)
	}
	for m, ch := range held {
		select {
		case ans := <-ch:
			if got := groupTexts(t, ans); ans.Status != 200 || !slices.Equal(got, []string{"room:c/hi"}) {
				t.Fatalf("%s's held poll = %d %v", m, ans.Status, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s's held poll not answered", m)
		}
	}
}
