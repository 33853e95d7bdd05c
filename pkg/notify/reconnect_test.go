package notify_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/notify"
)

// After a Sentinel switched the primary, the old one goes on answering:
// no error and, for seconds, no failed probe moves the subscription.
// Reconnect moves it at once; the watchers re-read (an empty wake-up),
// then the new primary's wake-ups reach them.
func TestReconnect(t *testing.T) {
	oldMR, oldRDB := redistest.New(t)
	newMR, newRDB := redistest.New(t)
	var addr atomic.Value
	addr.Store(oldMR.Addr())
	rdb := redis.NewClient(&redis.Options{
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr.Load().(string))
		},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	n := notify.New(rdb, channelOf, slog.New(slog.NewTextHandler(io.Discard, nil)), nil,
		notify.Options{ProbeInterval: time.Minute, ProbeTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	w, err := watchOn(wctx, n, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	publishOn := func(c *redis.Client) {
		if err := c.Publish(ctx, channelOf("alice"), "1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	publishOn(oldRDB)
	waitWake(t, w, 2*time.Second)

	addr.Store(newMR.Addr()) // the switch: new connections go to the new primary
	publishOn(newRDB)
	noWake(t, w, 200*time.Millisecond) // the subscription is still on the old one

	start := time.Now()
	n.Reconnect()
	waitWake(t, w, 2*time.Second) // subscribed on the new one: re-read
	t.Logf("resubscribed %v after Reconnect", time.Since(start).Round(time.Microsecond))
	publishOn(newRDB)
	waitWake(t, w, 2*time.Second)
	if err := n.Ready(); err != nil {
		t.Errorf("Ready after Reconnect = %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); len(oldMR.PubSubChannels("")) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the old primary still has channels subscribed: %v", oldMR.PubSubChannels(""))
		}
	}
}
