package notify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func channelOf(client string) string { return "cb:{" + client + "}:w" }

// start runs a Notifier for the test's duration.
func start(t *testing.T, opts notify.Options) (*notify.Notifier, func(client string)) {
	t.Helper()
	n, _, rdb := startOn(t, opts)
	publish := func(client string) {
		if err := rdb.Publish(context.Background(), channelOf(client), "1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	return n, publish
}

// startOn runs a Notifier over a new miniredis for the test's duration.
func startOn(t *testing.T, opts notify.Options) (*notify.Notifier, *miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr, rdb := redistest.New(t)
	n := notify.New(rdb, channelOf, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n, mr, rdb
}

// watch is a Watch whose wake-ups land on a channel, coalesced.
type watch struct {
	C      chan struct{}
	Stop   func()
	Latest string
}

func watchOn(ctx context.Context, n *notify.Notifier, client string) (*watch, error) {
	w := &watch{C: make(chan struct{}, 1)}
	stop, latest, err := n.Watch(ctx, client, 0, func(string) {
		select {
		case w.C <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	w.Stop, w.Latest = stop, latest
	return w, nil
}

func waitWake(t *testing.T, w *watch, within time.Duration) {
	t.Helper()
	select {
	case <-w.C:
	case <-time.After(within):
		t.Fatalf("no wake-up within %v", within)
	}
}

func noWake(t *testing.T, w *watch, during time.Duration) {
	t.Helper()
	select {
	case <-w.C:
		t.Fatal("unexpected wake-up")
	case <-time.After(during):
	}
}

func TestWatchWakes(t *testing.T) {
	n, publish := start(t, notify.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a1, err := watchOn(ctx, n, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Stop()
	a2, err := watchOn(ctx, n, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Stop()
	b, err := watchOn(ctx, n, "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()

	publish("alice")
	waitWake(t, a1, 2*time.Second)
	waitWake(t, a2, 2*time.Second)
	noWake(t, b, 100*time.Millisecond)

	// Wake-ups coalesce: two publishes, at least one wake, never blocking.
	publish("bob")
	publish("bob")
	waitWake(t, b, 2*time.Second)
}

func TestLingerThenUnsubscribe(t *testing.T) {
	mr, rdb := redistest.New(t)
	n := notify.New(rdb, channelOf, slog.New(slog.NewTextHandler(io.Discard, nil)), nil,
		notify.Options{Linger: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	w, err := watchOn(ctx, n, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if got := mr.PubSubNumSub(channelOf("carol"))[channelOf("carol")]; got != 1 {
		t.Fatalf("subscribers after Watch = %d; want 1", got)
	}
	w.Stop()
	w.Stop() // twice is fine
	deadline := time.Now().Add(3 * time.Second)
	for mr.PubSubNumSub(channelOf("carol"))[channelOf("carol")] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("channel still subscribed after the linger")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A new watcher subscribes again.
	w2, err := watchOn(ctx, n, "carol")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	rdb.Publish(ctx, channelOf("carol"), "x")
	waitWake(t, w2, 2*time.Second)
}

func TestReconnectWakesWatchers(t *testing.T) {
	n, mr, rdb := startOn(t, notify.Options{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond})
	ctx := context.Background()

	w, err := watchOn(ctx, n, "dave")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	deadline := time.Now().Add(3 * time.Second)
	for n.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v", n.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Redis restarts: what was published meanwhile is gone from pub/sub,
	// so the watcher must be told to re-read once resubscribed.
	mr.Close()
	time.Sleep(100 * time.Millisecond)
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	waitWake(t, w, 5*time.Second)
	rdb.Publish(ctx, channelOf("dave"), "x")
	waitWake(t, w, 5*time.Second)
}

// A Watch on a channel that stayed subscribed is handed the newest
// wake-up that came meanwhile, once; a channel subscribed anew hands none,
// since wake-ups may have been lost while it was not.
func TestWatchLatest(t *testing.T) {
	n, mr, rdb := startOn(t, notify.Options{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	watchLatest := func(want string) *watch {
		t.Helper()
		w, err := watchOn(ctx, n, "erin")
		if err != nil {
			t.Fatal(err)
		}
		if w.Latest != want {
			t.Fatalf("latest = %q; want %q", w.Latest, want)
		}
		return w
	}
	publishWait := func(w *watch, payload string) {
		t.Helper()
		if err := rdb.Publish(ctx, channelOf("erin"), payload).Err(); err != nil {
			t.Fatal(err)
		}
		waitWake(t, w, 2*time.Second)
	}

	w := watchLatest("") // a new subscription
	publishWait(w, "p1")
	w.Stop()
	w = watchLatest("p1") // it lingered
	w2 := watchLatest("") // taken by the first
	publishWait(w, "p2")
	publishWait(w, "p3")
	w.Stop()
	w2.Stop()
	w = watchLatest("p3")
	publishWait(w, "p4")

	// Redis restarts: the new subscription forgets p4.
	mr.Close()
	time.Sleep(100 * time.Millisecond)
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	waitWake(t, w, 5*time.Second) // the re-read after the new subscription
	w.Stop()
	watchLatest("").Stop()
}

func TestWatchHonoursContext(t *testing.T) {
	_, rdb := redistest.New(t)
	n := notify.New(rdb, channelOf, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, notify.Options{})
	// Run is not running: no subscription can be confirmed.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := watchOn(ctx, n, "erin"); err == nil {
		t.Fatal("Watch without Run = nil error")
	}
	// Its wait bounds it too.
	start := time.Now()
	if _, _, err := n.Watch(context.Background(), "erin", 50*time.Millisecond, func(string) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch without Run, wait 50ms = %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Watch gave up after %v; want about 50ms", d)
	}
}

func TestClosed(t *testing.T) {
	_, rdb := redistest.New(t)
	n2 := notify.New(rdb, channelOf, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n2.Run(ctx) }()
	cancel()
	<-done
	if _, _, err := n2.Watch(context.Background(), "x", 0, func(string) {}); err != notify.ErrClosed {
		t.Fatalf("Watch after Run = %v; want ErrClosed", err)
	}
}

// The first self-probe must wait for the probe channel's subscription:
// sent before it, it is lost and the node stays unready until the probe
// times out and the connection is needlessly replaced.
func TestReadySoonAfterStart(t *testing.T) {
	n, _ := start(t, notify.Options{ProbeTimeout: 3 * time.Second})
	deadline := time.Now().Add(time.Second)
	for n.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 1s after start: %v", n.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With Redis gone, Watch must fail at once so that a poll answers 503
// fast, instead of holding the browser for the whole subscribe timeout.
func TestWatchFailsFastWhenDown(t *testing.T) {
	mr, rdb := redistest.New(t)
	n := notify.New(rdb, channelOf, slog.New(slog.DiscardHandler), nil, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w, err := watchOn(ctx, n, "a")
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()

	mr.Close()
	for i := range 3 {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		_, err := watchOn(wctx, n, fmt.Sprint("b", i))
		wcancel()
		if !errors.Is(err, notify.ErrDown) {
			t.Fatalf("Watch %d with Redis gone = %v; want ErrDown", i, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Watch %d failed after %v; want well before its 10s timeout", i, d)
		}
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w, err := watchOn(ctx, n, "c")
		if err == nil {
			w.Stop()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch after Redis came back = %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Watches racing the end of a channel's subscription: a channel seen at
// the start of Watch may be gone by the time Watch takes its lock again
// (its linger ended). This panicked with a nil connection.
func TestWatchWhileUnsubscribing(t *testing.T) {
	_, rdb := redistest.New(t)
	n := notify.New(rdb, channelOf, slog.New(slog.DiscardHandler), nil, notify.Options{Linger: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				stop, _, err := n.Watch(wctx, fmt.Sprint("racy", i%3), 0, func(string) {})
				wcancel()
				if err != nil {
					t.Errorf("goroutine %d, watch %d: %v", g, i, err)
					return
				}
				stop()
			}
		})
	}
	wg.Wait()
}
