package poll_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
)

// send hands payload to every watcher of client, as a wake-up would.
func (f *fakeStore) send(client, payload string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers[client] {
		w.wake(payload)
	}
}

const kick = "!disconnect"

func isKick(payload string) bool { return payload == kick }

// presenceLog records what a Poller tells its Presence.
type presenceLog struct {
	mu  sync.Mutex
	log []string
}

func (p *presenceLog) Begin(client string) { p.add("begin " + client) }
func (p *presenceLog) End(client string)   { p.add("end " + client) }
func (p *presenceLog) add(s string) {
	p.mu.Lock()
	p.log = append(p.log, s)
	p.mu.Unlock()
}
func (p *presenceLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprint(p.log)
}

func TestPresenceToldOfPollsAndStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		pr := &presenceLog{}
		p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: time.Second, Presence: pr})
		if _, err := p.Poll(context.Background(), "a", message.Cursor{}); err != nil {
			t.Fatal(err)
		}
		if got := pr.String(); got != "[begin a end a]" {
			t.Fatalf("after a poll that timed out: %s", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- p.Stream(ctx, "b", message.Cursor{}, time.Minute, func(message.Page) error { return nil })
		}()
		synctest.Wait()
		if got := pr.String(); got != "[begin a end a begin b]" {
			t.Fatalf("with a stream open: %s", got)
		}
		cancel()
		<-done
		if got := pr.String(); got != "[begin a end a begin b end b]" {
			t.Fatalf("after the stream: %s", got)
		}
		// A poll refused by a limit never began.
		p2 := poll.New(f, f.subscribe, nil, poll.Options{MaxHeld: -1, MaxPerClient: 1, Presence: pr, Timeout: time.Second})
		go func() { _, _ = p2.Poll(context.Background(), "c", message.Cursor{}) }()
		synctest.Wait()
		if _, err := p2.Poll(context.Background(), "c", message.Cursor{}); !errors.Is(err, poll.ErrTooManyPolls) {
			t.Fatalf("second poll = %v; want ErrTooManyPolls", err)
		}
		time.Sleep(2 * time.Second)
		if got := pr.String(); got != "[begin a end a begin b end b begin c end c]" {
			t.Errorf("with a refused poll: %s", got)
		}
	})
}

func TestDisconnectAnswersHeldPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.carry = true
		p := poll.New(f, f.subscribe, nil, poll.Options{Disconnects: isKick})
		f.publish("a")
		type answer struct {
			res poll.Result
			err error
			at  time.Duration
		}
		start := time.Now()
		answers := make(chan answer, 2)
		for range 2 { // two tabs
			go func() {
				res, err := p.Poll(context.Background(), "a", message.Cursor{ID: 1})
				answers <- answer{res, err, time.Since(start)}
			}()
		}
		time.Sleep(3 * time.Second)
		f.send("a", kick)
		for range 2 {
			a := <-answers
			if a.err != nil || len(a.res.Messages) != 0 || a.res.Next.ID != 1 || a.res.Outcome != metrics.OutcomeDisconnected {
				t.Errorf("Poll = %+v, %v; want its empty page at 1, disconnected", a.res, a.err)
			}
			if a.at != 3*time.Second {
				t.Errorf("answered after %v; want at once (3s)", a.at)
			}
		}
		if f.watching() != 0 {
			t.Errorf("%d watchers left", f.watching())
		}
	})
}

func TestDisconnectWithoutTheOptionIsAWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{Timeout: 10 * time.Second})
		go func() {
			time.Sleep(time.Second)
			f.send("a", kick)
		}()
		start := time.Now()
		res, err := p.Poll(context.Background(), "a", message.Cursor{})
		if err != nil || res.Outcome != metrics.OutcomeTimeout || time.Since(start) < 9*time.Second {
			t.Errorf("Poll = %+v, %v after %v; want a timeout (the payload only makes it read)", res, err, time.Since(start))
		}
	})
}

func TestDisconnectEndsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := poll.New(f, f.subscribe, nil, poll.Options{Disconnects: isKick})
		done := make(chan error)
		go func() {
			done <- p.Stream(context.Background(), "a", message.Cursor{}, time.Minute, func(message.Page) error { return nil })
		}()
		time.Sleep(time.Second)
		f.send("a", kick)
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Stream = %v; want nil", err)
			}
		default:
			t.Fatal("the stream is still open after its client was disconnected")
		}
	})
}

func TestCheckRunsOnceSubscribed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.publish("a")
		p := poll.New(f, f.subscribe, nil, poll.Options{})
		refused := errors.New("refused")
		var watchingAtCheck, readsAtCheck int
		ctx := poll.WithCheck(context.Background(), func(context.Context) error {
			watchingAtCheck, readsAtCheck = f.watching(), f.reads
			return refused
		})
		res, err := p.Poll(ctx, "a", message.Cursor{})
		if !errors.Is(err, refused) || res.Outcome != metrics.OutcomeRefused || len(res.Messages) != 0 {
			t.Fatalf("Poll = %+v, %v; want the check's error, refused, nothing read", res, err)
		}
		if watchingAtCheck != 1 || readsAtCheck != 0 {
			t.Errorf("at the check: %d watchers, %d reads; want subscribed, not read", watchingAtCheck, readsAtCheck)
		}
		if f.watching() != 0 {
			t.Errorf("%d watchers left", f.watching())
		}

		down := fmt.Errorf("%w: no redis", poll.ErrUnavailable)
		res, err = p.Poll(poll.WithCheck(context.Background(), func(context.Context) error { return down }), "a", message.Cursor{})
		if !errors.Is(err, poll.ErrUnavailable) || res.Outcome != metrics.OutcomeError {
			t.Errorf("Poll with a failing check = %+v, %v; want an error outcome", res, err)
		}

		err = p.Stream(ctx, "a", message.Cursor{}, time.Minute, func(message.Page) error {
			t.Error("a refused stream emitted")
			return nil
		})
		if !errors.Is(err, refused) {
			t.Errorf("Stream = %v; want the check's error", err)
		}
		res, err = p.Poll(poll.WithCheck(context.Background(), func(context.Context) error { return nil }), "a", message.Cursor{})
		if err != nil || ids(res.Page) != "[1]" {
			t.Errorf("Poll with a passing check = %v, %v; want [1]", ids(res.Page), err)
		}
	})
}
