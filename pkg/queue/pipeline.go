package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pipelining: script calls of concurrent requests travel together.
//
// A node answering thousands of polls makes thousands of small script
// calls. One round trip each costs a write and a read system call on both
// sides and a pool connection for its duration; when a burst of polls
// reads at once, the pool runs dry and calls time out. With
// Options.Pipeline, callers hand their call to Run's workers, which send
// whatever has gathered as one pipeline: alone under light load (one hop
// between goroutines more), hundreds at a time in a burst.

const (
	pipelineWorkers = 2   // pipelines in flight at once: one in Redis, one on its way
	pipelineMax     = 256 // calls in one pipeline at most
	pipelineTimeout = 5 * time.Second
)

// pending is one call waiting for its pipeline.
type pending struct {
	call scriptCall
	done chan *redis.Cmd // buffered: the worker never waits for the caller
}

// Run sends the pipelines of Options.Pipeline until ctx ends. Without
// that option it returns at once.
func (q *Queue) Run(ctx context.Context) error {
	if q.batches == nil {
		return nil
	}
	done := make(chan struct{})
	for range pipelineWorkers {
		go func() {
			defer func() { done <- struct{}{} }()
			q.pipelines(ctx)
		}()
	}
	for range pipelineWorkers {
		<-done
	}
	return nil
}

func (q *Queue) pipelines(ctx context.Context) {
	batch := make([]*pending, 0, pipelineMax)
	calls := make([]scriptCall, 0, pipelineMax)
	for {
		batch, calls = batch[:0], calls[:0]
		select {
		case p := <-q.batches:
			batch = append(batch, p)
		case <-ctx.Done():
			return
		}
	gather:
		for len(batch) < pipelineMax {
			select {
			case p := <-q.batches:
				batch = append(batch, p)
			default:
				break gather
			}
		}
		for _, p := range batch {
			calls = append(calls, p.call)
		}
		pctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
		cmds, _ := execScripts(pctx, q.rdb, calls, Durability{}) // no durability: never an error
		cancel()
		for i, p := range batch {
			p.done <- cmds[i]
		}
	}
}

// call runs one script call, in a shared pipeline when pipelining.
func (q *Queue) call(ctx context.Context, c scriptCall) *redis.Cmd {
	if q.batches == nil {
		return c.script.Run(ctx, q.rdb, c.keys, c.args...)
	}
	p := &pending{call: c, done: make(chan *redis.Cmd, 1)}
	select {
	case q.batches <- p:
	case <-ctx.Done():
		return failed(ctx, ctx.Err())
	}
	select {
	case cmd := <-p.done:
		return cmd
	case <-ctx.Done():
		return failed(ctx, ctx.Err()) // the worker's answer is dropped
	}
}

// callAll runs calls through the pipelines and fails as runScripts does.
func (q *Queue) callAll(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	waiting := make([]*pending, len(calls))
	for i, c := range calls {
		waiting[i] = &pending{call: c, done: make(chan *redis.Cmd, 1)}
		select {
		case q.batches <- waiting[i]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cmds := make([]*redis.Cmd, len(calls))
	for i, p := range waiting {
		select {
		case cmds[i] = <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return cmds, firstError(cmds)
}

func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
