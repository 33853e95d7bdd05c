package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

// TestClusterRefusalsGoAgain runs publishes and reads on a slot that a
// real Redis Cluster is migrating, with the node's cluster client
// settings (no redirects or retries by go-redis): what Redis refuses
// (TRYAGAIN, ASK, MOVED) goes again until the slot has moved, inside the
// caller's deadline, and is stored once.
func TestClusterRefusalsGoAgain(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{Replicas: -1})
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{c.Nodes[0].Addr}, MaxRedirects: -1, MaxRetries: -1,
	})
	t.Cleanup(func() { _ = cc.Close() })
	from, to := c.Masters()[0], c.Masters()[1]
	owners := c.Owners()
	n := 0
	// client returns a new client id on from's slots, none sharing a slot.
	used := map[int]bool{}
	client := func() string {
		for {
			n++
			id := fmt.Sprintf("q%d", n)
			if s := redisserver.Slot(id); owners[s] == from && !used[s] {
				used[s] = true
				return id
			}
		}
	}

	for _, pipeline := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			q := queue.New(cc, queue.Options{Sharded: true, Pipeline: pipeline})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			publish := func(ctx context.Context, msgs ...message.Message) error {
				_, err := q.Publish(ctx, batchOf(msgs...))
				return err
			}

			// TRYAGAIN until the end of the migration: the publish waits.
			a, b := client(), client()
			if err := publish(ctx, text(a, "1")); err != nil {
				t.Fatal(err)
			}
			c.BeginMigration(redisserver.Slot(a), from, to)
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(200 * time.Millisecond)
				c.EndMigration(redisserver.Slot(a), from, to)
			}()
			err := publish(ctx, text(a, "2"), text(b, "once"))
			<-done
			if err != nil {
				t.Fatalf("Publish during the migration = %v; want success once it ended", err)
			}
			for client, want := range map[string]int{a: 2, b: 1} {
				page, err := q.Read(ctx, client, message.Cursor{}, 10)
				if err != nil || len(page.Messages) != want {
					t.Fatalf("Read(%s) = %d messages, %v; want %d", client, len(page.Messages), err, want)
				}
			}

			// The deadline bounds the waiting: the refusal is the answer.
			d := client()
			if err := publish(ctx, text(d, "1")); err != nil {
				t.Fatal(err)
			}
			c.BeginMigration(redisserver.Slot(d), from, to)
			short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			start := time.Now()
			err = publish(short, text(d, "2"))
			cancel()
			if took := time.Since(start); !redis.HasErrorPrefix(err, "TRYAGAIN") || took > time.Second {
				t.Fatalf("Publish with 150ms left = %v after %v; want TRYAGAIN within the deadline", err, took)
			}

			// ASK to a master that refuses in turn: an enqueue whose keys
			// have moved, but whose idempotency key exists on neither
			// master, is sent to the importing master, which answers
			// TRYAGAIN until the migration ends; the publish waits for it.
			e := client()
			if err := publish(ctx, text(e, "1")); err != nil {
				t.Fatal(err)
			}
			c.BeginMigration(redisserver.Slot(e), from, to)
			c.MoveKeys(redisserver.Slot(e), from, to)
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				time.Sleep(200 * time.Millisecond)
				c.EndMigration(redisserver.Slot(e), from, to)
			}()
			err = publish(ctx, text(e, "2"))
			<-ended
			if err != nil {
				t.Fatalf("Publish after an ASK refused again = %v; want success once the migration ended", err)
			}
			if page, err := q.Read(ctx, e, message.Cursor{}, 10); err != nil || len(page.Messages) != 2 {
				t.Fatalf("Read(%s) = %d messages, %v; want 2", e, len(page.Messages), err)
			}

			// ASK: a read whose keys are on the importing master goes
			// there while the slot still migrates.
			c.MoveKeys(redisserver.Slot(d), from, to)
			page, err := q.Read(ctx, d, message.Cursor{}, 10)
			if err != nil || len(page.Messages) != 1 {
				t.Fatalf("Read during the migration = %d messages, %v; want 1", len(page.Messages), err)
			}
			c.EndMigration(redisserver.Slot(d), from, to)

			// MOVED: the cluster client's slot map is stale until it
			// reloads; the read goes again meanwhile.
			page, err = q.Read(ctx, d, message.Cursor{}, 10)
			if err != nil || len(page.Messages) != 1 {
				t.Fatalf("Read after the move = %d messages, %v; want 1", len(page.Messages), err)
			}
		})
	}
}
