package main_test

// Nodes on a Redis Cluster: the same node code, chosen by the -redis-url
// scheme. (Sentinel: sentinel_test.go.)

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
)

// owner returns the master of a slot, asking the first master.
func owner(t *testing.T, masters []*redisserver.Server, s int) *redisserver.Server {
	t.Helper()
	for _, m := range masters {
		// CLUSTER COUNTKEYSINSLOT works anywhere; ownership is clearest
		// from the node itself: it answers its own slots in CLUSTER NODES.
		nodes, err := m.Do("CLUSTER", "NODES")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(nodes, "\n") {
			if !strings.Contains(line, "myself") {
				continue
			}
			f := strings.Fields(line)
			for _, r := range f[8:] {
				lo, hi, found := strings.Cut(r, "-")
				if !found {
					hi = lo
				}
				l, _ := strconv.Atoi(lo)
				h, _ := strconv.Atoi(hi)
				if s >= l && s <= h {
					return m
				}
			}
		}
	}
	t.Fatalf("no owner for slot %d", s)
	return nil
}

// migrateSlot moves a slot and its keys from one master to another, the
// way redis-cli --cluster reshard does.
func migrateSlot(t *testing.T, masters []*redisserver.Server, s int, from, to *redisserver.Server) {
	t.Helper()
	ss := strconv.Itoa(s)
	must := func(srv *redisserver.Server, args ...string) string {
		out, err := srv.Do(args...)
		if err != nil {
			t.Fatalf("%s %v: %v", srv.Addr, args, err)
		}
		return out
	}
	must(to, "CLUSTER", "SETSLOT", ss, "IMPORTING", from.ID(t))
	must(from, "CLUSTER", "SETSLOT", ss, "MIGRATING", to.ID(t))
	host, port, _ := strings.Cut(to.Addr, ":")
	for {
		keys := must(from, "CLUSTER", "GETKEYSINSLOT", ss, "100")
		if keys == "" {
			break
		}
		args := append([]string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}, strings.Fields(keys)...)
		must(from, args...)
	}
	for _, m := range masters {
		must(m, "CLUSTER", "SETSLOT", ss, "NODE", to.ID(t))
	}
}

// TestRedisCluster runs three nodes on a three-master cluster: clients
// spread over every master, publishes and polls through all nodes,
// wake-ups on sharded pub/sub, a slot migrated and a master restarted
// mid-traffic; nothing lost.
func TestRedisCluster(t *testing.T) {
	masters := redisserver.StartCluster(t, 3)
	url := "redis-cluster://" + masters[0].Addr + "," + masters[1].Addr
	w := &world{t: t, oracle: tc.NewOracle()}
	for i := range 3 {
		nd := nodeproc.Start(t, fmt.Sprintf("cluster%d", i), "-redis-url", url, "-publish-secret", secret,
			"-max-polls-per-client", "0", "-poll-timeout", "5s",
			"-pubsub-probe-interval", "500ms", "-pubsub-probe-timeout", "1s")
		w.nodes = append(w.nodes, nd)
	}
	for _, nd := range w.nodes {
		nd.WaitReady()
	}
	perMaster := map[string]int{}
	for i := range 300 {
		c := fmt.Sprintf("user:%d", i)
		w.pages = append(w.pages, &tc.Page{Client: c, Oracle: w.oracle})
		perMaster[owner(t, masters, redisserver.Slot(c)).Addr]++
	}
	t.Logf("clients per master: %v", perMaster)
	if len(perMaster) != 3 {
		t.Fatalf("clients on %d masters; want all 3", len(perMaster))
	}

	ctx := context.Background()
	stopPages := w.follow(ctx, 15*time.Second)
	defer stopPages()
	stopPub := w.publishLoop(ctx, 200)
	time.Sleep(1500 * time.Millisecond)

	// Wake-ups are sharded: each master carries subscriptions of ours.
	for _, m := range masters {
		list, _ := m.Do("CLIENT", "LIST", "TYPE", "pubsub")
		if !strings.Contains(list, "name=cometbox:cluster") {
			t.Errorf("master %s has no pub/sub connection of a node:\n%s", m.Addr, list)
		}
	}

	// A slot moves to another master mid-traffic.
	moving := w.pages[0].Client
	s := redisserver.Slot(moving)
	from := owner(t, masters, s)
	to := masters[0]
	if to == from {
		to = masters[1]
	}
	migrateSlot(t, masters, s, from, to)
	t.Logf("slot %d of %s moved from %s to %s", s, moving, from.Addr, to.Addr)
	for range 5 {
		w.publishTo(ctx, w.nodes[1].URL, moving)
	}
	waitFor(t, 5*time.Second, "a node to follow the moved channel", func() bool {
		moves := 0.0
		for _, nd := range w.nodes {
			moves += metric(t, nd, "cometbox_pubsub_channel_moves_total")
		}
		return moves >= 1
	})

	// A master restarts mid-traffic (its AOF keeps what it acknowledged).
	victim := masters[2]
	victim.Kill()
	time.Sleep(1500 * time.Millisecond)
	victim.Restart()
	victim.WaitClusterOK(t)
	time.Sleep(1500 * time.Millisecond)
	stopPub()
	r := w.settle(20 * time.Second)
	t.Logf("cluster: %s", r)
}
