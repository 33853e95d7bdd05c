package poll_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
)

// epochStore is a fakeStore whose sequence changes epoch (as after a
// failover to a new Redis primary) without losing anything: a cursor of
// the epoch just before stays valid up to where it ended, older ones are
// reset, as read.lua does.
type epochStore struct {
	*fakeStore
	mu          sync.Mutex
	epoch, prev string
	prevEnd     uint64
	acks        []string
}

func (e *epochStore) newEpoch(epoch string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fakeStore.mu.Lock()
	end := uint64(len(e.fakeStore.msgs["s"]))
	e.fakeStore.mu.Unlock()
	e.prev, e.prevEnd, e.epoch = e.epoch, end, epoch
}

func (e *epochStore) ReadAfter(ctx context.Context, client string, ack message.Cursor, after uint64, limit int) (message.Page, error) {
	e.mu.Lock()
	epoch, prev, prevEnd := e.epoch, e.prev, e.prevEnd
	e.acks = append(e.acks, fmt.Sprintf("%s:%d", ack.Epoch, ack.ID))
	e.mu.Unlock()
	page, err := e.fakeStore.ReadAfter(ctx, client, ack, after, limit)
	page.Next.Epoch = epoch
	valid := ack.Epoch == "" || ack.Epoch == epoch || ack.Epoch == prev && ack.ID <= prevEnd && after <= prevEnd
	if !valid {
		page.Reset = true
	}
	return page, err
}

// A stream follows its sequence into a new epoch that lost nothing (a
// failover to a primary that had every message): it acknowledges in the
// new epoch from then on, so that a second failover, after which the
// first epoch is no longer known, is no reset either.
func TestStreamFollowsANewEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &epochStore{fakeStore: newFake(), epoch: "e1"}
		e.publish("s")
		p := poll.New(e, e.subscribe, nil, poll.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		var got []string
		go func() {
			time.Sleep(time.Second)
			e.newEpoch("e2")
			e.publish("s")
			time.Sleep(time.Second)
			e.newEpoch("e3")
			e.publish("s")
			time.Sleep(time.Second)
			cancel()
		}()
		err := p.Stream(ctx, "s", message.Cursor{Epoch: "e1"}, time.Minute, func(page message.Page) error {
			got = append(got, fmt.Sprintf("%v@%s:%d reset=%v", ids(page), page.Next.Epoch, page.Next.ID, page.Reset))
			return nil
		})
		if err != nil {
			t.Fatalf("Stream = %v", err)
		}
		want := "[[1]@e1:1 reset=false [2]@e2:2 reset=false [3]@e3:3 reset=false]"
		if fmt.Sprint(got) != want {
			t.Errorf("emitted %v; want %s (acknowledged with %s)", got, want, strings.Join(e.acks, " "))
		}
	})
}
