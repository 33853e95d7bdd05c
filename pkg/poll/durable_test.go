package poll_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
)

// Messages Redis could not confirm on the replicas a durable publish
// waits for are not shown, and the poll is not failed for it either: it
// waits as if nothing had come, reads again every second, and is
// answered once a read is confirmed. (It failed with ErrUnavailable, a
// 503, so that every poll of a client with such messages failed while a
// replica was missing.)
func TestPollWaitsForDurability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("a")
		f.readErr = fmt.Errorf("queue: read a: WAIT answered replicas 0: %w", message.ErrNotDurable)
		p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: 20 * time.Second})
		go func() {
			time.Sleep(2500 * time.Millisecond)
			f.mu.Lock()
			f.readErr = nil // the replica is back
			f.mu.Unlock()
		}()
		start := time.Now()
		res, err := p.Poll(context.Background(), "a", message.Cursor{})
		if err != nil || ids(res.Page) != "[1]" || res.Outcome != metrics.OutcomeMessages {
			t.Fatalf("Poll = %+v, %v; want message 1", res, err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("answered after %v; want 3s (the first read after the replica came back)", took)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.reads != 4 {
			t.Errorf("%d reads; want 4 (at 0, 1, 2 and 3 s)", f.reads)
		}
	})
}

// A stream likewise sends its opening page at once, without what could
// not be confirmed, and the messages once a read is.
func TestStreamWaitsForDurability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("s")
		f.readErr = fmt.Errorf("queue: read s: %w", message.ErrNotDurable)
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(1500 * time.Millisecond)
			f.mu.Lock()
			f.readErr = nil
			f.mu.Unlock()
			time.Sleep(time.Second)
			cancel()
		}()
		start := time.Now()
		var got []string
		err := p.Stream(ctx, "s", message.Cursor{}, time.Minute, func(page message.Page) error {
			got = append(got, fmt.Sprintf("%v@%v", ids(page), time.Since(start)))
			return nil
		})
		if err != nil {
			t.Fatalf("Stream = %v", err)
		}
		if want := "[[]@0s [1]@2s]"; fmt.Sprint(got) != want {
			t.Errorf("emitted %v; want %s", got, want)
		}
	})
}
