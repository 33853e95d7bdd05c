package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

func TestInspect(t *testing.T) {
	ctx := context.Background()
	mr, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Cap: 3})
	info, err := q.Inspect(ctx, "alice")
	if err != nil || info != (queue.Info{}) || info.First() != 0 {
		t.Fatalf("Inspect before any publish = %+v, %v; want nothing", info, err)
	}
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		if _, err := q.Publish(ctx, batchOf(text("alice", s))); err != nil {
			t.Fatal(err)
		}
	}
	page, err := q.Read(ctx, "alice", message.Cursor{ID: 3}, 100)
	if err != nil {
		t.Fatal(err)
	}
	ttl := mr.TTL("cb:{alice}:m")
	mr.FastForward(time.Minute)
	info, err = q.Inspect(ctx, "alice")
	want := queue.Info{Epoch: page.Next.Epoch, Last: 5, Length: 2}
	if err != nil || info != want || info.First() != 4 {
		t.Fatalf("Inspect = %+v (first %d), %v; want %+v, first 4", info, info.First(), err, want)
	}
	if got := mr.TTL("cb:{alice}:m"); got != ttl-time.Minute {
		t.Errorf("TTL after Inspect = %v; want %v (untouched)", got, ttl-time.Minute)
	}
}

func TestDeleteWakesWithAReset(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	if _, err := q.Publish(ctx, batchOf(text("bob", "x"))); err != nil {
		t.Fatal(err)
	}
	before, _ := q.Read(ctx, "bob", message.Cursor{}, 100)
	ps := rdb.Subscribe(ctx, q.WakeChannel("bob"))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	existed, err := q.Delete(ctx, "bob")
	if err != nil || !existed {
		t.Fatalf("Delete = %v, %v; want true", existed, err)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "" {
		t.Fatalf("wake-up = %+v, %v; want an empty payload (read the queue)", msg, err)
	}
	page, err := q.Read(ctx, "bob", before.Next, 100)
	if err != nil || !page.Reset {
		t.Fatalf("Read at the old cursor = %+v, %v; want a reset", page, err)
	}
	if n, _ := rdb.Keys(ctx, "cb:{bob}:[mq]").Result(); len(n) != 0 {
		t.Errorf("keys left: %v", n)
	}
	again, err := q.Publish(ctx, batchOf(text("bob", "y")))
	if err != nil || again.Receipts[0].ID != 1 {
		t.Fatalf("publish after the delete = %+v, %v; want id 1 (a new sequence)", again, err)
	}
	after, _ := q.Read(ctx, "bob", message.Cursor{}, 100)
	if after.Next.Epoch == before.Next.Epoch {
		t.Errorf("the new sequence kept epoch %s", before.Next.Epoch)
	}
	if existed, err := q.Delete(ctx, "nobody"); err != nil || existed {
		t.Errorf("Delete(nobody) = %v, %v; want false", existed, err)
	}
}
