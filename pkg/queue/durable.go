package queue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
)

// Confirming durability in rounds.
//
// WAIT and WAITAOF confirm the writes of the connection they are sent
// on, up to its last write: to Redis, the replication offset (or the
// fsynced offset) that write reached. Replication keeps order, so once
// an offset is confirmed every write Redis executed before it is too,
// whichever connection made it. A confirmer therefore confirms the
// writes of many publishes and reads at once: a round writes a key of
// its own and waits, on its one connection, for that write; every call
// whose writes were done before the round began is confirmed with it.
//
// One round is on its way at a time, so at most one pool connection
// waits in WAIT, however many publishes and polls wait for it. (Each
// publish and durable read used to send its own WAIT on its own
// connection: when a replica was missing, each held a connection for the
// whole -durable-timeout, the pool ran dry, and polls, probes and
// /readyz failed with "connection pool timeout".)

// confirmer runs the rounds for one Queue.
type confirmer struct {
	rdb Redis
	dur Durability
	key string

	mu      sync.Mutex
	running bool
	waiting []chan error // calls waiting for the next round
	current []chan error // calls waiting for the round on its way
}

func newConfirmer(rdb Redis, dur Durability, key string) *confirmer {
	return &confirmer{rdb: rdb, dur: dur, key: key}
}

// confirm returns nil once Redis has confirmed every write it executed
// before the call, an error wrapping message.ErrNotDurable when it could
// not (too few replicas, or no fsync, within the timeout), or ctx's
// error. When the round on its way fails, so does the call at once: the
// replicas it lacked are lacking still.
func (c *confirmer) confirm(ctx context.Context) error {
	done := make(chan error, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, done)
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run sends rounds while calls wait for one.
func (c *confirmer) run() {
	for {
		c.mu.Lock()
		if len(c.waiting) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.current, c.waiting = c.waiting, nil
		c.mu.Unlock()

		err := c.round()

		c.mu.Lock()
		done := c.current
		c.current = nil
		if err != nil { // those waiting for the next round learn it now
			done = append(done, c.waiting...)
			c.waiting = nil
		}
		c.mu.Unlock()
		for _, ch := range done {
			ch <- err
		}
	}
}

// round writes the confirmer's key and waits for that write to be
// confirmed, on one connection.
func (c *confirmer) round() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.dur.timeout()+2*time.Second)
	defer cancel()
	pipe := c.rdb.Pipeline()
	set := pipe.Set(ctx, c.key, strconv.FormatInt(time.Now().UnixMilli(), 10), time.Minute)
	wait := pipe.Do(ctx, c.dur.command()...)
	_, _ = pipe.Exec(ctx) // errors are read per command
	// The calls' writes are done whatever happens to the round: when it
	// fails they are not confirmed, which is all ErrNotDurable says (a
	// publish is retried with its idempotency key, a poll reads again).
	if err := set.Err(); err != nil { // without its write, the WAIT would confirm less
		return fmt.Errorf("queue: confirming durability: %w: %w", message.ErrNotDurable, err)
	}
	if err := wait.Err(); err != nil {
		return fmt.Errorf("queue: %v: %w: %w", c.dur.command()[0], message.ErrNotDurable, err)
	}
	return c.dur.confirmed(wait.Val())
}

// timeout is the wait for a confirmation, Durability.Timeout or its
// default.
func (d Durability) timeout() time.Duration {
	if d.Timeout <= 0 {
		return time.Second
	}
	return d.Timeout
}
