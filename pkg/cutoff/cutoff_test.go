package cutoff_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/cutoff"
)

func wakeChannel(client string) string { return "cb:{" + client + "}:w" }

func TestDisconnectWakesEveryWatcher(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	c := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel})
	var subs []<-chan string
	for range 2 { // two nodes
		ps := rdb.Subscribe(ctx, wakeChannel("alice"))
		t.Cleanup(func() { _ = ps.Close() })
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		ch := make(chan string, 1)
		go func() {
			if m, err := ps.ReceiveMessage(ctx); err == nil {
				ch <- m.Payload
			}
		}()
		subs = append(subs, ch)
	}
	res, err := c.Disconnect(ctx, "alice", time.Time{})
	if err != nil || res.Nodes != 2 || !res.RefusedUntil.IsZero() {
		t.Fatalf("Disconnect = %+v, %v; want 2 nodes, nothing refused", res, err)
	}
	for i, ch := range subs {
		select {
		case p := <-ch:
			if !cutoff.IsDisconnect(p) {
				t.Errorf("node %d got %q; IsDisconnect says no", i, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("node %d got no wake-up", i)
		}
	}
	for _, p := range []string{"", "k3x9q2ab 1\n{}", "disconnect"} {
		if cutoff.IsDisconnect(p) {
			t.Errorf("IsDisconnect(%q) = true", p)
		}
	}
	if n, _ := rdb.Exists(ctx, "cb:{alice}:nb").Result(); n != 0 {
		t.Error("a disconnect that refuses no token wrote a record")
	}
}

func TestRefusedTokens(t *testing.T) {
	ctx := context.Background()
	mr, rdb := redistest.New(t)
	now := time.Unix(1_800_000_000, 0)
	c := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel, Leeway: time.Minute, Now: func() time.Time { return now }})
	if err := c.Check(ctx, "bob", now.Add(time.Hour)); err != nil {
		t.Fatalf("Check before any disconnect = %v", err)
	}
	until := now.Add(time.Hour) // the back end mints tokens for an hour
	res, err := c.Disconnect(ctx, "bob", until)
	if err != nil || !res.RefusedUntil.Equal(until) {
		t.Fatalf("Disconnect = %+v, %v; want refused until %v", res, err, until)
	}
	for _, tt := range []struct {
		exp  time.Time
		want error
	}{
		{now.Add(time.Minute), cutoff.ErrRevoked},       // minted 59 minutes ago
		{until, cutoff.ErrRevoked},                      // minted this second
		{until.Add(time.Second), nil},                   // minted after
		{now.Add(2 * time.Hour), nil},                   // longer-lived, minted after
		{now.Add(-30 * time.Second), cutoff.ErrRevoked}, // expired, within the leeway
	} {
		if err := c.Check(ctx, "bob", tt.exp); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Check(exp %v) = %v; want %v", tt.exp.Sub(now), err, tt.want)
		}
	}
	if err := c.Check(ctx, "carol", now); err != nil {
		t.Errorf("Check of another client = %v", err)
	}
	if ttl := mr.TTL("cb:{bob}:nb"); ttl != time.Hour+time.Minute {
		t.Errorf("record TTL = %v; want the tokens' hour and the leeway", ttl)
	}
	// A later disconnect refusing less, or nothing, leaves the record.
	for _, less := range []time.Time{{}, now.Add(time.Minute)} {
		res, err := c.Disconnect(ctx, "bob", less)
		if err != nil || !res.RefusedUntil.Equal(until) {
			t.Errorf("Disconnect(%v) = %+v, %v; want the record kept at %v", less, res, err, until)
		}
	}
	if err := c.Check(ctx, "bob", now.Add(30*time.Minute)); !errors.Is(err, cutoff.ErrRevoked) {
		t.Errorf("after a lesser disconnect, Check = %v; want still refused", err)
	}
	mr.FastForward(time.Hour + time.Minute)
	if err := c.Check(ctx, "bob", now.Add(30*time.Minute)); err != nil {
		t.Errorf("after the record expired, Check = %v", err)
	}
}

func TestCheckReportsRedisFailures(t *testing.T) {
	mr, rdb := redistest.New(t)
	c := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel})
	mr.SetError("LOADING")
	err := c.Check(context.Background(), "dave", time.Now())
	if err == nil || errors.Is(err, cutoff.ErrRevoked) {
		t.Errorf("Check with Redis failing = %v; want a Redis error", err)
	}
}

// Concurrent checks share their reads: many checks, few commands, each
// with its own answer.
func TestConcurrentChecksShareReads(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		ctx := context.Background()
		mr, rdb := redistest.New(t)
		now := time.Now()
		// miniredis has no SPUBLISH: disconnect as on one Redis, check
		// as on a cluster.
		if _, err := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel}).Disconnect(ctx, "banned", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		c := cutoff.New(rdb, cutoff.Options{WakeChannel: wakeChannel, Sharded: sharded})
		before := mr.CommandCount()
		const n = 200
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				client := "ok"
				if i%10 == 0 {
					client = "banned"
				}
				err := c.Check(ctx, client, now.Add(30*time.Minute))
				if (client == "banned") != errors.Is(err, cutoff.ErrRevoked) || (client == "ok" && err != nil) {
					err = fmt.Errorf("Check(%s) = %v", client, err)
				} else {
					err = nil
				}
				errs <- err
			}()
		}
		close(start)
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		cmds := mr.CommandCount() - before
		t.Logf("sharded %v: %d checks, %d commands", sharded, n, cmds)
		if !sharded && cmds >= n/2 {
			t.Errorf("%d concurrent checks took %d commands; want them to share reads", n, cmds)
		}
	}
}
