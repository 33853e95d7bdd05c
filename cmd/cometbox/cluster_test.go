package main_test

// Nodes on a Redis Cluster that changes under them, as an operator
// changes one.

import (
	"context"
	"fmt"
	"strconv"
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
