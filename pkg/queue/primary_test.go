package queue_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

// A new primary gives a sequence a new epoch with the same ids: cursors
// of the old epoch go on up to the last id this primary had; one past it
// (ids a replaced primary handed out and lost) is reset, where it used to
// be taken for a cursor of the ids the new primary hands out again, and
// the messages behind them skipped silently.
func TestNewPrimaryNewEpoch(t *testing.T) { onBothRedises(t, newPrimaryNewEpoch) }

func newPrimaryNewEpoch(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	primary := queue.NewPrimary()
	q := queue.New(rdb, queue.Options{Primary: primary})
	publish := func(data string) message.Receipt {
		t.Helper()
		pub, err := q.Publish(ctx, batchOf(text("a", data)))
		if err != nil {
			t.Fatal(err)
		}
		return pub.Receipts[0]
	}
	// read reads after since, acknowledging nothing (a stream's read).
	read := func(since message.Cursor) message.Page {
		t.Helper()
		page, err := q.ReadAfter(ctx, "a", message.Cursor{Epoch: since.Epoch}, since.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(primary.Learned("t1"))
	for i := 1; i <= 3; i++ {
		publish(fmt.Sprint(i))
	}
	e1 := read(message.Cursor{}).Next.Epoch

	// The old primary handed out 4 and 5 and was replaced before they
	// reached the new one, which has 1 to 3.
	must(primary.Learned("t2"))
	if r := publish("4 again"); r.ID != 4 {
		t.Fatalf("first id on the new primary = %d; want 4, the ids go on", r.ID)
	}
	e2 := read(message.Cursor{}).Next.Epoch
	if e2 == e1 || e2 == "" {
		t.Fatalf("epoch on the new primary = %q; want a new one (was %q)", e2, e1)
	}
	tests := []struct {
		since message.Cursor
		want  string // ids, epoch and reset
	}{
		{message.Cursor{Epoch: e1, ID: 2}, fmt.Sprintf("[3 4] %s false", e2)},
		{message.Cursor{Epoch: e1, ID: 3}, fmt.Sprintf("[4] %s false", e2)},
		{message.Cursor{Epoch: e1, ID: 5}, fmt.Sprintf("[1 2 3 4] %s true", e2)}, // saw 4 and 5 of the old primary
		{message.Cursor{Epoch: e1, ID: 4}, fmt.Sprintf("[1 2 3 4] %s true", e2)},
		{message.Cursor{Epoch: e2, ID: 3}, fmt.Sprintf("[4] %s false", e2)},
		{message.Cursor{ID: 3}, fmt.Sprintf("[4] %s false", e2)}, // a bare id cannot tell
	}
	for _, tt := range tests {
		p := read(tt.since)
		if got := fmt.Sprintf("%v %s %v", ids(p), p.Next.Epoch, p.Reset); got != tt.want {
			t.Errorf("read after %v = %s; want %s", tt.since, got, tt.want)
		}
	}

	// Another node, told the same term, goes on in the same epoch.
	other := queue.NewPrimary()
	must(other.Learned("t2"))
	if r, _ := queue.New(rdb, queue.Options{Primary: other}).Publish(ctx, batchOf(text("a", "5"))); r.Receipts[0].ID != 5 {
		t.Fatalf("publish through another node = %v; want id 5", r.Receipts)
	}
	if e := read(message.Cursor{}).Next.Epoch; e != e2 {
		t.Fatalf("epoch after a publish under the same term = %q; want %q", e, e2)
	}

	// A second failover: the first epoch's cursors still go on up to 3,
	// the second's up to 5.
	must(primary.Learned("t3"))
	publish("6")
	e3 := read(message.Cursor{}).Next.Epoch
	for _, tt := range []struct {
		since message.Cursor
		want  string
	}{
		{message.Cursor{Epoch: e1, ID: 3}, fmt.Sprintf("[4 5 6] %s false", e3)},
		{message.Cursor{Epoch: e2, ID: 5}, fmt.Sprintf("[6] %s false", e3)},
		{message.Cursor{Epoch: e2, ID: 6}, fmt.Sprintf("[1 2 3 4 5 6] %s true", e3)},
	} {
		p := read(tt.since)
		if got := fmt.Sprintf("%v %s %v", ids(p), p.Next.Epoch, p.Reset); got != tt.want {
			t.Errorf("after a second failover, read after %v = %s; want %s", tt.since, got, tt.want)
		}
	}

	// A node without terms (the embedded Redis, a Cluster) leaves them be.
	if r, _ := queue.New(rdb, queue.Options{}).Publish(ctx, batchOf(text("a", "7"))); r.Receipts[0].ID != 7 {
		t.Fatalf("publish without a term = %v; want id 7", r.Receipts)
	}
	if e := read(message.Cursor{}).Next.Epoch; e != e3 {
		t.Fatalf("epoch after a publish without a term = %q; want %q", e, e3)
	}
	publish("8")
	if e := read(message.Cursor{}).Next.Epoch; e != e3 {
		t.Fatalf("epoch after a publish under the term again = %q; want %q", e, e3)
	}

	// Only the last four epochs are remembered.
	for i, term := range []string{"t4", "t5", "t6", "t7"} {
		must(primary.Learned(term))
		publish(fmt.Sprint("f", i))
	}
	if p := read(message.Cursor{Epoch: e1, ID: 3}); !p.Reset {
		t.Errorf("a cursor of an epoch five failovers ago = %v, not reset; want reset (forgotten)", ids(p))
	}
	if p := read(message.Cursor{Epoch: e3, ID: 8}); p.Reset {
		t.Errorf("a cursor of an epoch four failovers ago reset; want it to go on")
	}
}

// A sequence written by nodes without terms takes the first term it is
// given as its own: nothing to compare, no new epoch.
func TestFirstTermKeepsTheEpoch(t *testing.T) { onBothRedises(t, firstTermKeepsTheEpoch) }

func firstTermKeepsTheEpoch(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	if _, err := queue.New(rdb, queue.Options{}).Publish(ctx, batchOf(text("a", "1"))); err != nil {
		t.Fatal(err)
	}
	primary := queue.NewPrimary()
	if err := primary.Learned("t1"); err != nil {
		t.Fatal(err)
	}
	q := queue.New(rdb, queue.Options{Primary: primary})
	before, _ := q.Read(ctx, "a", message.Cursor{}, 10)
	if _, err := q.Publish(ctx, batchOf(text("a", "2"))); err != nil {
		t.Fatal(err)
	}
	after, _ := q.Read(ctx, "a", before.Next, 10)
	if after.Reset || after.Next.Epoch != before.Next.Epoch || fmt.Sprint(ids(after)) != "[2]" {
		t.Errorf("after the first publish with a term: %v in %q, reset %v; want [2] in %q", ids(after), after.Next.Epoch, after.Reset, before.Next.Epoch)
	}
}
