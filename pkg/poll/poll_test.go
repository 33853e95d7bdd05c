package poll_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
)

// fakeStore is a Queue and a Notifier in memory: ids only, no acks.
type fakeStore struct {
	mu       sync.Mutex
	msgs     map[string][]uint64
	watchers map[string]map[*fakeWatch]struct{}
	readErr  error
	watchErr error
	reads    int
	carry    bool              // wake-ups carry the message
	latest   map[string]string // what subscribe reports as the latest wake-up, once
	acks     []string          // AckSoon's calls, "client:id"
	onReset  func()            // the last AckSoon's
}

type fakeWatch struct {
	wake func(string)
}

func newFake() *fakeStore {
	return &fakeStore{msgs: map[string][]uint64{}, watchers: map[string]map[*fakeWatch]struct{}{}}
}

func (f *fakeStore) Read(ctx context.Context, client string, since message.Cursor, limit int) (message.Page, error) {
	return f.ReadAfter(ctx, client, since, since.ID, limit)
}

func (f *fakeStore) ReadAfter(ctx context.Context, client string, ack message.Cursor, after uint64, limit int) (message.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.readErr != nil {
		return message.Page{}, f.readErr
	}
	page := message.Page{Next: message.Cursor{Epoch: ack.Epoch, ID: after}}
	for _, id := range f.msgs[client] {
		if id > after && len(page.Messages) < limit {
			page.Messages = append(page.Messages, message.Queued{ID: id})
			page.Next.ID = id
		}
	}
	return page, nil
}

// DecodeWake understands the fake's payloads: the id just published.
func (f *fakeStore) DecodeWake(payload string, since message.Cursor, limit int) (message.Page, bool) {
	id, err := strconv.ParseUint(payload, 10, 64)
	if err != nil || id != since.ID+1 {
		return message.Page{}, false
	}
	return message.Page{Messages: []message.Queued{{ID: id}}, Next: message.Cursor{ID: id}}, true
}

// WakeEnd understands the fake's payloads too.
func (f *fakeStore) WakeEnd(payload string) (message.Cursor, bool) {
	id, err := strconv.ParseUint(payload, 10, 64)
	return message.Cursor{ID: id}, err == nil
}

func (f *fakeStore) AckSoon(client string, ack message.Cursor, onReset func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks = append(f.acks, fmt.Sprintf("%s:%d", client, ack.ID))
	f.onReset = onReset
}

func (f *fakeStore) subscribe(ctx context.Context, client string, wait time.Duration, wake func(string)) (func(), string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watchErr != nil {
		return nil, "", f.watchErr
	}
	latest := f.latest[client]
	delete(f.latest, client)
	w := &fakeWatch{wake: wake}
	if f.watchers[client] == nil {
		f.watchers[client] = map[*fakeWatch]struct{}{}
	}
	f.watchers[client][w] = struct{}{}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.watchers[client], w)
	}, latest, nil
}

func (f *fakeStore) publish(client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs[client] = append(f.msgs[client], uint64(len(f.msgs[client])+1))
	payload := ""
	if f.carry {
		payload = strconv.Itoa(len(f.msgs[client]))
	}
	for w := range f.watchers[client] {
		w.wake(payload)
	}
}

func (f *fakeStore) watching() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ws := range f.watchers {
		n += len(ws)
	}
	return n
}

func ids(p message.Page) string {
	var out []uint64
	for _, m := range p.Messages {
		out = append(out, m.ID)
	}
	return fmt.Sprint(out)
}

func TestPendingAnsweredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("a")
		f.publish("a")
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		start := time.Now()
		res, err := p.Poll(context.Background(), "a", message.Cursor{})
		if err != nil || ids(res.Page) != "[1 2]" || res.Outcome != metrics.OutcomeMessages {
			t.Fatalf("Poll = %v %+v, %v; want [1 2] messages", ids(res.Page), res.Outcome, err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Poll took %v; want no wait", time.Since(start))
		}
		if f.watching() != 0 {
			t.Errorf("%d watchers left", f.watching())
		}
	})
}

// caughtUpFake holds message 1 of client a, announced by the latest
// wake-up on a subscription that stayed.
func caughtUpFake() *fakeStore {
	f := newFake()
	f.carry = true
	f.publish("a")
	f.latest = map[string]string{"a": "1"}
	return f
}

// A poll at the last message the latest wake-up announced waits without
// reading the queue and acknowledges in the background; at any other
// cursor it reads.
func TestCaughtUpWaitsWithoutReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := caughtUpFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		woken := poll.NewWakeups()
		_, h, err := p.Hold(context.Background(), "a", message.Cursor{ID: 1}, woken.Send)
		if err != nil || h == nil {
			t.Fatalf("Hold = %v, %v; want a held poll", h, err)
		}
		if f.reads != 0 || fmt.Sprint(f.acks) != "[a:1]" {
			t.Fatalf("reads %d, acks %v; want 0 and [a:1]", f.reads, f.acks)
		}
		f.publish("a")
		res, err := h.Wait(context.Background(), woken)
		if err != nil || ids(res.Page) != "[2]" {
			t.Fatalf("Wait = %v, %v; want [2]", ids(res.Page), err)
		}

		// Behind the latest wake-up: a read finds message 2.
		f.latest = map[string]string{"a": "2"}
		res, err = p.Poll(context.Background(), "a", message.Cursor{ID: 1})
		if err != nil || ids(res.Page) != "[2]" || f.reads != 1 {
			t.Fatalf("Poll = %v, %v after %d reads; want [2] after 1", ids(res.Page), err, f.reads)
		}
	})
}

// A caught-up poll that times out answers with its own cursor.
func TestCaughtUpTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := caughtUpFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: time.Second})
		res, err := p.Poll(context.Background(), "a", message.Cursor{Epoch: "", ID: 1})
		if err != nil || len(res.Messages) != 0 || res.Next.ID != 1 || res.Outcome != metrics.OutcomeTimeout {
			t.Fatalf("Poll = %+v, %v; want an empty timeout page at 1", res, err)
		}
	})
}

func TestWokenByPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		go func() {
			time.Sleep(7 * time.Second)
			f.publish("a")
		}()
		start := time.Now()
		res, err := p.Poll(context.Background(), "a", message.Cursor{})
		if err != nil || ids(res.Page) != "[1]" || res.Outcome != metrics.OutcomeMessages {
			t.Fatalf("Poll = %v %s, %v; want [1] messages", ids(res.Page), res.Outcome, err)
		}
		if d := time.Since(start); d != 7*time.Second {
			t.Errorf("Poll answered after %v; want 7s", d)
		}
	})
}

func TestTwoPollsOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("a")
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		var wg sync.WaitGroup
		results := make([]string, 2)
		for i, since := range []uint64{0, 1} {
			wg.Go(func() {
				res, _ := p.Poll(context.Background(), "a", message.Cursor{ID: since})
				results[i] = ids(res.Page)
			})
		}
		synctest.Wait()
		f.publish("a")
		wg.Wait()
		if results[0] != "[1]" || results[1] != "[2]" {
			t.Errorf("tabs got %v; want [[1] [2]]", results)
		}
	})
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: 25 * time.Second})
		start := time.Now()
		res, err := p.Poll(context.Background(), "a", message.Cursor{Epoch: "e", ID: 5})
		d := time.Since(start)
		if err != nil || len(res.Messages) != 0 || res.Outcome != metrics.OutcomeTimeout {
			t.Fatalf("Poll = %+v, %v; want empty timeout", res, err)
		}
		if res.Next != (message.Cursor{Epoch: "e", ID: 5}) {
			t.Errorf("Next = %v; want the poll's own cursor", res.Next)
		}
		if d < 22500*time.Millisecond || d > 25*time.Second {
			t.Errorf("timed out after %v; want 22.5s to 25s", d)
		}
	})
}

func TestBrowserLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(3 * time.Second)
			cancel()
		}()
		res, err := p.Poll(ctx, "a", message.Cursor{})
		if !errors.Is(err, context.Canceled) || res.Outcome != metrics.OutcomeGone {
			t.Fatalf("Poll = %+v, %v; want gone, context.Canceled", res, err)
		}
		if f.watching() != 0 || p.Held() != 0 {
			t.Errorf("after leaving: %d watchers, %d held; want 0, 0", f.watching(), p.Held())
		}
	})
}

func TestDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{DrainSpread: 3 * time.Second})
		const n = 50
		var wg sync.WaitGroup
		answered := make([]time.Duration, n)
		start := time.Now()
		for i := range n {
			wg.Go(func() {
				res, err := p.Poll(context.Background(), fmt.Sprint("c", i), message.Cursor{})
				if err != nil || res.Outcome != metrics.OutcomeDrained {
					t.Errorf("Poll = %+v, %v; want drained", res, err)
				}
				answered[i] = time.Since(start)
			})
		}
		synctest.Wait()
		p.Drain()
		p.Drain() // twice is fine
		// A poll that comes while the node drains waits, as on any node,
		// and is answered within what is left of the spread: never at
		// once, which would invite an instant re-poll to this node.
		var late time.Duration
		wg.Go(func() {
			time.Sleep(time.Second)
			res, err := p.Poll(context.Background(), "late", message.Cursor{})
			if err != nil || res.Outcome != metrics.OutcomeDrained {
				t.Errorf("late Poll = %+v, %v; want drained", res, err)
			}
			late = time.Since(start)
		})
		wg.Wait()
		if late <= time.Second || late >= 3*time.Second {
			t.Errorf("a poll begun 1s into the 3s drain was answered after %v; want within the rest of the spread, not at once", late)
		}
		distinct := map[time.Duration]bool{}
		for _, d := range answered {
			if d >= 3*time.Second {
				t.Errorf("answered after %v; want within the 3s spread", d)
			}
			distinct[d] = true
		}
		if len(distinct) < n/2 {
			t.Errorf("answers at only %d distinct moments; want them spread", len(distinct))
		}
		// Once the spread is over, there is nothing left to spread over.
		time.Sleep(3*time.Second - time.Since(start))
		before := time.Now()
		res, err := p.Poll(context.Background(), "later", message.Cursor{})
		if err != nil || res.Outcome != metrics.OutcomeDrained || time.Since(before) != 0 {
			t.Errorf("Poll after the spread = %+v, %v after %v; want drained at once", res, err, time.Since(before))
		}
	})
}

func TestLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{MaxPerClient: 2, MaxHeld: 3})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, c := range []string{"a", "a", "b"} {
			wg.Go(func() { p.Poll(ctx, c, message.Cursor{}) })
		}
		synctest.Wait()
		if _, err := p.Poll(ctx, "b", message.Cursor{}); !errors.Is(err, poll.ErrOverloaded) {
			t.Errorf("4th poll on the node = %v; want ErrOverloaded", err)
		}
		cancel()
		wg.Wait()

		p = poll.New(f, f.subscribe, nil, poll.Options{MaxPerClient: 2})
		ctx, cancel = context.WithCancel(context.Background())
		for range 2 {
			wg.Go(func() { p.Poll(ctx, "a", message.Cursor{}) })
		}
		synctest.Wait()
		if _, err := p.Poll(ctx, "a", message.Cursor{}); !errors.Is(err, poll.ErrTooManyPolls) {
			t.Errorf("3rd poll of a client = %v; want ErrTooManyPolls", err)
		}
		cancel()
		wg.Wait()
	})
}

func TestBackendErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.readErr = errors.New("connection refused")
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		if res, err := p.Poll(context.Background(), "a", message.Cursor{}); !errors.Is(err, poll.ErrUnavailable) || res.Outcome != metrics.OutcomeError {
			t.Errorf("Poll with failing reads = %+v, %v; want ErrUnavailable", res, err)
		}
		f.readErr, f.watchErr = nil, errors.New("subscribe timed out")
		if _, err := p.Poll(context.Background(), "a", message.Cursor{}); !errors.Is(err, poll.ErrUnavailable) {
			t.Errorf("Poll with failing subscribe = %v; want ErrUnavailable", err)
		}
		if f.watching() != 0 {
			t.Errorf("%d watchers left", f.watching())
		}
	})
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("s")
		p := poll.New(f, f.subscribe, nil, poll.Options{Limit: 2})
		ctx, cancel := context.WithCancel(context.Background())
		var got []string
		start := time.Now()
		go func() {
			time.Sleep(time.Second)
			f.publish("s")
			f.publish("s")
			f.publish("s")
			time.Sleep(40 * time.Second) // two heartbeats
			cancel()
		}()
		err := p.Stream(ctx, "s", message.Cursor{}, 15*time.Second, func(page message.Page) error {
			got = append(got, fmt.Sprintf("%v@%v", ids(page), time.Since(start)))
			return nil
		})
		if err != nil {
			t.Fatalf("Stream = %v", err)
		}
		want := "[[1]@0s [2 3]@1s [4]@1s []@15s []@30s]"
		if fmt.Sprint(got) != want {
			t.Errorf("emitted %v; want %s", got, want)
		}
		if f.watching() != 0 || p.Held() != 0 {
			t.Errorf("after the stream: %d watchers, %d held", f.watching(), p.Held())
		}
	})
}

// A stream with nothing to send reads its queue every Refresh all the
// same (a read refreshes the expiry of the client's keys), however far
// apart its heartbeats, and sends only heartbeats meanwhile.
func TestStreamRefreshesItsQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{Refresh: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute+10*time.Second)
		defer cancel()
		var pages int
		err := p.Stream(ctx, "s", message.Cursor{}, 2*time.Minute, func(page message.Page) error {
			if len(page.Messages) != 0 {
				t.Errorf("a quiet stream sent %s", ids(page))
			}
			pages++
			return nil
		})
		if err != nil {
			t.Fatalf("Stream = %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.reads != 5 || pages != 3 {
			t.Errorf("in 4 min 10 s: %d reads, %d pages; want 5 (the first, then one every 54 to 60 s) and 3 (the opening one, a heartbeat every 2 min)", f.reads, pages)
		}
	})
}

// By default a quiet stream reads its queue every 3 hours or a little
// less: an eighth of the queue's default TTL.
func TestStreamRefreshesByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour+time.Minute)
		defer cancel()
		if err := p.Stream(ctx, "s", message.Cursor{}, time.Hour, func(message.Page) error { return nil }); err != nil {
			t.Fatalf("Stream = %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.reads != 2 {
			t.Errorf("in 3 h 1 min: %d reads; want 2 (the first, one after 2 h 42 min to 3 h)", f.reads)
		}
	})
}

func TestStreamDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{DrainSpread: 2 * time.Second})
		go func() {
			time.Sleep(time.Second)
			p.Drain()
		}()
		start := time.Now()
		if err := p.Stream(context.Background(), "s", message.Cursor{}, time.Hour, func(message.Page) error { return nil }); err != nil {
			t.Fatalf("Stream = %v", err)
		}
		if d := time.Since(start); d < time.Second || d >= 3*time.Second {
			t.Errorf("stream ended %v after start; want within the drain spread after 1s", d)
		}
	})
}

func TestStreamEmitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		gone := errors.New("write: broken pipe")
		go func() {
			time.Sleep(time.Minute)
			f.publish("s")
		}()
		err := p.Stream(context.Background(), "s", message.Cursor{}, time.Hour, func(page message.Page) error {
			if len(page.Messages) == 0 {
				return nil // the opening
			}
			return gone
		})
		if !errors.Is(err, gone) {
			t.Errorf("Stream = %v; want the emit error", err)
		}
	})
}

// A wake-up that carries the message after the poll's cursor answers
// the poll without reading the queue again.
func TestAnsweredFromTheWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.carry = true
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		go func() {
			time.Sleep(time.Second)
			f.publish("a")
		}()
		res, err := p.Poll(context.Background(), "a", message.Cursor{})
		if err != nil || ids(res.Page) != "[1]" {
			t.Fatalf("Poll = %v, %v; want [1]", ids(res.Page), err)
		}
		if f.reads != 1 {
			t.Errorf("%d reads; want 1 (before waiting), none after the wake-up", f.reads)
		}
		// A wake-up whose messages do not follow the poll's cursor (here:
		// it names id 7) is only a wake-up: the poll reads.
		go func() {
			time.Sleep(time.Second)
			f.mu.Lock()
			f.msgs["b"] = []uint64{1}
			for w := range f.watchers["b"] {
				w.wake("7")
			}
			f.mu.Unlock()
		}()
		before := f.reads
		res, _ = p.Poll(context.Background(), "b", message.Cursor{})
		if ids(res.Page) != "[1]" || f.reads != before+2 {
			t.Errorf("Poll(b) = %v after %d reads; want [1] after 2", ids(res.Page), f.reads-before)
		}
	})
}

// No poll is told of the drain once its Finish has returned: by then its
// holder may have handed its connection to another request. (Drain used to
// call the callbacks after letting go of its lock, racing Finish.)
func TestDrainNeverAfterFinish(t *testing.T) {
	f := newFake()
	p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: time.Minute})
	const polls = 2000
	helds := make([]*poll.Held, polls)
	finished := make([]atomic.Bool, polls)
	var late atomic.Int64
	for i := range helds {
		_, h, err := p.Hold(context.Background(), fmt.Sprint("c", i), message.Cursor{}, func(string) {})
		if err != nil || h == nil {
			t.Fatalf("hold %d: %v, held %v", i, err, h != nil)
		}
		h.OnDrain(func(time.Time) {
			if finished[i].Load() {
				late.Add(1)
			}
		})
		helds[i] = h
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range polls { // while Drain goes through them
			helds[i].Finish(metrics.OutcomeTimeout)
			finished[i].Store(true)
		}
	}()
	p.Drain()
	<-done
	if n := late.Load(); n > 0 {
		t.Errorf("%d polls were told of the drain after their Finish returned", n)
	}
}

// A poll whose context has ended is not held, whatever the store would
// answer. (It used to depend on the Redis client noticing the context.)
func TestHoldAfterContextEnded(t *testing.T) {
	f := newFake()
	p := poll.New(f, f.subscribe, nil, poll.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, h, err := p.Hold(ctx, "c", message.Cursor{}, func(string) {}); h != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Hold after cancel: held %v, err %v; want nothing held and context.Canceled", h != nil, err)
	}
	if p.Held() != 0 || f.reads != 0 {
		t.Errorf("held %d, reads %d; want 0 and 0", p.Held(), f.reads)
	}
}
