package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/message"
)

// gatedRedis holds every command until its gate opens.
type gatedRedis struct {
	Redis
	gate chan struct{}
}

func (g gatedRedis) Pipeline() redis.Pipeliner { return gatedPipe{g.Redis.Pipeline(), g.gate} }

func (g gatedRedis) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	<-g.gate
	return g.Redis.EvalSha(ctx, sha, keys, args...)
}

func (g gatedRedis) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	<-g.gate
	return g.Redis.Eval(ctx, script, keys, args...)
}

type gatedPipe struct {
	redis.Pipeliner
	gate chan struct{}
}

func (p gatedPipe) Exec(ctx context.Context) ([]redis.Cmder, error) {
	<-p.gate
	return p.Pipeliner.Exec(ctx)
}

// A call whose caller gave up before its pipeline left is never sent: a
// publish answered with an error must not be written later, under a
// term (Primary) that may no longer be the server's by then.
func TestAbandonedCallsAreNotSent(t *testing.T) {
	_, rdb := redistest.New(t)
	gate := make(chan struct{})
	q := New(gatedRedis{rdb, gate}, Options{Pipeline: true})
	ctx := context.Background()
	publish := func(ctx context.Context, to ...string) error {
		var b message.Batch
		for _, c := range to {
			b.Messages = append(b.Messages, message.Message{To: c, Data: message.EncodeText("x")})
		}
		_, err := q.Publish(ctx, b)
		return err
	}

	// Two publishes take both pipelines, and wait at the gate.
	var busy sync.WaitGroup
	for _, c := range []string{"busy1", "busy2"} {
		busy.Go(func() {
			if err := publish(ctx, c); err != nil {
				t.Errorf("publish to %s = %v", c, err)
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); len(q.senders) < pipelinesInFlight; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first publishes never took the pipelines")
		}
	}
	// These give up while queued behind them.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := publish(short, "late"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish behind busy pipelines = %v; want the deadline", err)
	}
	if err := publish(short, "late1", "late2", "late3"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish of three behind busy pipelines = %v; want the deadline", err)
	}
	close(gate)
	busy.Wait()
	if err := publish(ctx, "after"); err != nil { // the queue has moved on
		t.Fatal(err)
	}
	for _, c := range []string{"late", "late1", "late2", "late3"} {
		if page, err := q.Read(ctx, c, message.Cursor{}, 10); err != nil || len(page.Messages) != 0 {
			t.Errorf("Read(%s) = %d messages, %v; want none: its publish gave up before it was sent", c, len(page.Messages), err)
		}
	}
	for _, c := range []string{"busy1", "busy2", "after"} {
		if page, err := q.Read(ctx, c, message.Cursor{}, 10); err != nil || len(page.Messages) != 1 {
			t.Errorf("Read(%s) = %d messages, %v; want 1", c, len(page.Messages), err)
		}
	}
}
