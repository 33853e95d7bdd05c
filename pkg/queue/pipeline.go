package queue

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pipelining: script calls of concurrent requests travel together.
//
// A node answering thousands of polls makes thousands of small script
// calls. One round trip each costs a write and a read system call on both
// sides and a pool connection for its duration; when a burst of polls
// reads at once, the pool runs dry and calls time out. With
// Options.Pipeline, a caller queues its calls and, when fewer than
// pipelinesInFlight pipelines are on their way, sends whatever is queued
// as one pipeline itself: alone under light load, with no hand-over
// between goroutines; hundreds at a time in a burst, while the callers
// that found no free slot wait for theirs to come back. A sender that
// finds more queued when it is done hands them to a goroutine of their
// own rather than keeping its caller waiting. Acknowledgements from
// AckSoon ride along in whatever pipeline goes next.

const (
	pipelinesInFlight = 2   // one in Redis, one on its way
	pipelineMax       = 256 // calls in one pipeline at most
	pipelineTimeout   = 5 * time.Second
)

// pending is one call waiting for its pipeline.
type pending struct {
	call  scriptCall
	done  chan *redis.Cmd // buffered: the sender never waits for the caller
	state atomic.Int32    // queued, taken by a sender, or abandoned by its caller
}

// The states of a pending call. A call is sent only if a sender takes it
// before its caller gives up; once taken, its caller waits for the
// answer (pipelineTimeout bounds it), so that no call is ever sent, or
// answered, after its caller returned: a publish that failed is not
// written later, under a Primary's term that may have changed by then.
const (
	queued int32 = iota
	taken
	abandoned
)

func newPending(c scriptCall) *pending {
	return &pending{call: c, done: make(chan *redis.Cmd, 1)}
}

// giveUp is called when p's caller's context ended: it reports whether p
// will not be sent; if it was taken already, it waits for its answer.
func (p *pending) giveUp() (notSent bool) {
	if p.state.CompareAndSwap(queued, abandoned) {
		return true
	}
	if p.state.Load() == taken {
		<-p.done
	}
	return false
}

// enqueue queues p for the next pipeline. Callers queue all their calls,
// then send: a batch for many clients goes as one pipeline. When the
// queue is full it sends first, so that callers holding queued calls
// never all wait for room.
func (q *Queue) enqueue(ctx context.Context, p *pending) error {
	select {
	case q.batches <- p:
		return nil
	default:
	}
	q.send()
	select {
	case q.batches <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends what is queued, unless enough pipelines are on their way
// already (then the sender that finishes first goes on with it).
func (q *Queue) send() {
	if q.acquire() {
		q.sendPipeline()
		q.release()
	}
}

// acquire takes a sending slot if one is free.
func (q *Queue) acquire() bool {
	select {
	case q.senders <- struct{}{}:
		return true
	default:
		return false // a sender on its way looks at the queue when done
	}
}

// release frees a sending slot. Whoever found no slot while it was taken
// queued a call this sender may not have seen: if calls are queued, a new
// sender goes on with them.
func (q *Queue) release() {
	<-q.senders
	if len(q.batches) > 0 && q.acquire() {
		go func() {
			q.sendPipeline()
			q.release()
		}()
	}
}

// sendPipeline sends up to pipelineMax queued calls as one pipeline and
// hands each its result. The caller holds a sending slot.
func (q *Queue) sendPipeline() {
	batch := make([]*pending, 0, 8)
	calls := make([]scriptCall, 0, 8)
gather:
	for len(batch) < pipelineMax {
		select {
		case p := <-q.batches:
			if !p.state.CompareAndSwap(queued, taken) {
				continue // its caller gave up
			}
			batch = append(batch, p)
			calls = append(calls, p.call)
		default:
			break gather
		}
	}
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	cmds := sendAcks(ctx, q.rdb, calls, q.takeAcks(pipelineMax-len(calls)))
	for i, p := range batch {
		p.done <- cmds[i]
	}
}

// call runs one script call, in a shared pipeline when pipelining; a
// call a Redis Cluster refused goes again (see retryRefused).
func (q *Queue) call(ctx context.Context, c scriptCall) *redis.Cmd {
	cmds := []*redis.Cmd{q.callOnce(ctx, c)}
	if refused(c, cmds[0].Err()) {
		retryRefused(ctx, q.rdb, []scriptCall{c}, cmds, q.callEach)
	}
	return cmds[0]
}

func (q *Queue) callOnce(ctx context.Context, c scriptCall) *redis.Cmd {
	if q.batches == nil {
		return execScripts(ctx, q.rdb, []scriptCall{c})[0]
	}
	p := newPending(c)
	if err := q.enqueue(ctx, p); err != nil {
		return failed(ctx, err)
	}
	q.send()
	select {
	case cmd := <-p.done:
		return cmd
	case <-ctx.Done():
		p.giveUp()
		return failed(ctx, ctx.Err()) // the sender's answer, if any, is dropped
	}
}

// callAll runs calls through the pipelines, goes again with those a Redis
// Cluster refused, and fails as runScripts does.
func (q *Queue) callAll(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds, err := q.callAllOnce(ctx, calls)
	if err != nil {
		return nil, err
	}
	retryRefused(ctx, q.rdb, calls, cmds, q.callEach)
	return cmds, firstError(cmds)
}

// callEach runs calls, in shared pipelines when pipelining, and returns a
// Cmd for each, whatever happens.
func (q *Queue) callEach(ctx context.Context, calls []scriptCall) []*redis.Cmd {
	if q.batches == nil {
		return execScripts(ctx, q.rdb, calls)
	}
	cmds, err := q.callAllOnce(ctx, calls)
	if err != nil {
		cmds = make([]*redis.Cmd, len(calls))
		for i := range cmds {
			cmds[i] = failed(ctx, err)
		}
	}
	return cmds
}

// callAllOnce queues calls for the pipelines and waits for their
// answers; it fails only when ctx ends first (see giveUp).
func (q *Queue) callAllOnce(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	waiting := make([]*pending, 0, len(calls))
	giveUp := func(from int) { // the calls whose answer was not taken yet
		for _, p := range waiting[from:] {
			p.giveUp()
		}
	}
	for _, c := range calls {
		p := newPending(c)
		if err := q.enqueue(ctx, p); err != nil {
			giveUp(0)
			return nil, err
		}
		waiting = append(waiting, p)
	}
	q.send()
	cmds := make([]*redis.Cmd, len(calls))
	for i, p := range waiting {
		select {
		case cmds[i] = <-p.done:
		case <-ctx.Done():
			giveUp(i)
			return nil, ctx.Err()
		}
	}
	return cmds, nil
}

func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
