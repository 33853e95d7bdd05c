package notify

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
)

// clusterNotifier is a sharded Notifier, not running, with connections to
// two shards, and a channel subscribed on the second.
func clusterNotifier(t *testing.T, shardOf func(context.Context, string) (string, error)) (n *Notifier, a, b *conn, ch *channel) {
	t.Helper()
	_, rdb := redistest.New(t)
	n = New(rdb, func(c string) string { return "cb:{" + c + "}:w" }, slog.New(slog.DiscardHandler), nil,
		Options{ShardOf: shardOf})
	n.mu.Lock()
	defer n.mu.Unlock()
	a, b = n.addConnLocked("a", "probe-a"), n.addConnLocked("b", "probe-b")
	ch = &channel{name: "cb:{x}:w", conn: b, state: subscribed}
	n.chans[ch.name] = ch
	t.Cleanup(func() { _ = a.ps.Close(); _ = b.ps.Close() })
	return n, a, b, ch
}

// A wake-up still on its way from a shard a channel has left must not
// become the channel's latest: a re-poll trusting it would skip a read
// that newer messages need.
func TestLatestOnlyFromTheChannelsShard(t *testing.T) {
	n, a, b, ch := clusterNotifier(t, func(context.Context, string) (string, error) { return "b", nil })
	woken := 0
	ch.watchers = []*watcher{{wake: func(string) { woken++ }, armed: true, n: n, ch: ch}}
	n.dispatch(a, a.gen, &redis.Message{Channel: ch.name, Payload: "e 5\nold"})
	if ch.latest != "" || woken != 1 {
		t.Fatalf("after a wake-up from the old shard: latest %q, woken %d; want none, 1", ch.latest, woken)
	}
	n.dispatch(b, b.gen, &redis.Message{Channel: ch.name, Payload: "e 6\nnew"})
	if ch.latest != "e 6\nnew" {
		t.Fatalf("after a wake-up from its shard: latest %q", ch.latest)
	}
}

// A channel whose slot moved to a shard not known yet forgets its latest
// wake-up, has its watchers re-read, and waits to be subscribed again.
func TestRelocateFailureForgetsLatest(t *testing.T) {
	n, _, b, ch := clusterNotifier(t, func(context.Context, string) (string, error) {
		return "", errors.New("cluster slots unknown")
	})
	ch.latest = "e 5\nmsg"
	var got []string
	ch.watchers = []*watcher{{wake: func(p string) { got = append(got, p) }, armed: true, n: n, ch: ch}}
	n.relocate(context.Background(), b, ch.name)
	if ch.latest != "" || len(got) != 1 || got[0] != "" || ch.state != subscribing {
		t.Fatalf("latest %q, wake-ups %q, state %v; want none, one empty, subscribing", ch.latest, got, ch.state)
	}
}
