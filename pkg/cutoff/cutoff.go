// Package cutoff cuts a client off on every node at once: Disconnect ends
// its held polls and open streams wherever they are and, when asked,
// refuses from then on the tokens it was given before; Check is what a
// node asks before it lets a token in.
//
// A disconnect is a wake-up with a payload of its own on the client's
// wake-up channel (package queue's), which every node holding a poll or
// stream of the client is subscribed to; package poll ends them when it
// sees one (IsDisconnect).
//
// Tokens ("EXP.SIG", package token) carry their expiry, not when they
// were minted, so "given before now" is told by the expiry: a back end
// that mints tokens for a lifetime L gives, before now, only tokens that
// expire by now + L, and from now on only tokens that expire later. A
// not-before record per client, "refuse tokens expiring at or before T",
// kept in Redis until T plus the token leeway (after which those tokens
// are refused as expired anyway), is the whole state; a later
// disconnect may move T forward, never back. Check reads it for each
// poll, stream and acknowledgement of a node with tokens: the checks of
// concurrent requests share one MGET (one pipeline of GETs on a
// cluster), so that under load a check costs Redis a small part of a
// command.
//
// A *Cutoff is safe for concurrent use.
package cutoff

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed disconnect.lua
var disconnectSrc string

var disconnectScript = redis.NewScript(disconnectSrc)

// ErrRevoked: the token expires no later than a disconnect said to
// refuse.
var ErrRevoked = errors.New("token revoked by a disconnect")

// payload is the wake-up that ends a client's polls and streams. A
// message's wake-up starts with its epoch, and an empty one asks for a
// read: nothing else can be this. Nodes of versions that do not know it
// read the queue, and go on holding.
const payload = "!disconnect"

// IsDisconnect reports whether a wake-up's payload is a disconnect's.
func IsDisconnect(p string) bool { return p == payload }

// Options tunes a Cutoff.
type Options struct {
	// Prefix starts every key, as package queue's. Default: "cb:".
	Prefix string
	// WakeChannel names a client's wake-up channel (package queue's
	// WakeChannel). Required.
	WakeChannel func(client string) string
	// Sharded publishes with SPUBLISH (Redis Cluster) rather than
	// PUBLISH. Default: false.
	Sharded bool
	// Leeway is how long after its expiry a token is still accepted (the
	// node's -token-leeway): a record lives that much longer. Default: 0.
	Leeway time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Redis is what a Cutoff needs of a go-redis client.
type Redis interface {
	redis.Scripter
	MGet(ctx context.Context, keys ...string) *redis.SliceCmd
	Pipeline() redis.Pipeliner
}

// Cutoff disconnects clients and checks their tokens.
type Cutoff struct {
	rdb  Redis
	opts Options

	mu      sync.Mutex
	reading bool     // a round of reads is on its way
	waiting []*check // checks that came meanwhile, for the next round
}

// check is one Check waiting for its record.
type check struct {
	key  string
	val  string // the record; "" when none
	err  error
	done chan struct{}
}

// readTimeout bounds one round of reads.
const readTimeout = 5 * time.Second

// New returns a Cutoff.
func New(rdb Redis, opts Options) *Cutoff {
	if opts.Prefix == "" {
		opts.Prefix = "cb:"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cutoff{rdb: rdb, opts: opts}
}

// key is client's not-before record, under its hash tag.
func (c *Cutoff) key(client string) string { return c.opts.Prefix + "{" + client + "}:nb" }

// Result is what a disconnect did.
type Result struct {
	// Nodes is how many nodes were subscribed to the client's wake-ups,
	// and so held (or had held a moment ago) a poll or stream of it. On
	// Redis Cluster, the nodes that reached the client's shard.
	Nodes int
	// RefusedUntil: the client's tokens expiring at or before it are
	// refused; zero when none are.
	RefusedUntil time.Time
}

// Disconnect ends every held poll and open stream of client, on every
// node. When refuseUntil is not zero, tokens of client that expire at or
// before it are refused from now on, until they have all expired.
func (c *Cutoff) Disconnect(ctx context.Context, client string, refuseUntil time.Time) (Result, error) {
	sec, keep := int64(0), int64(1)
	if !refuseUntil.IsZero() {
		sec = refuseUntil.Unix()
		keep = max(refuseUntil.Add(c.opts.Leeway).Sub(c.opts.Now()).Milliseconds(), 1)
	}
	publish := "PUBLISH"
	if c.opts.Sharded {
		publish = "SPUBLISH"
	}
	res, err := disconnectScript.Run(ctx, c.rdb, []string{c.key(client)},
		sec, keep, c.opts.WakeChannel(client), publish, payload).Slice()
	if err != nil {
		return Result{}, fmt.Errorf("cutoff: disconnect %s: %w", client, err)
	}
	if len(res) != 2 {
		return Result{}, fmt.Errorf("cutoff: disconnect %s: unexpected reply %v", client, res)
	}
	nodes, _ := res[0].(int64)
	out := Result{Nodes: int(nodes)}
	if s, _ := res[1].(string); s != "0" {
		until, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Result{}, fmt.Errorf("cutoff: disconnect %s: unexpected record %q", client, s)
		}
		out.RefusedUntil = time.Unix(until, 0)
	}
	return out, nil
}

// Check returns an error wrapping ErrRevoked when a disconnect refused
// client's tokens expiring at exp; other errors are Redis's. A Check
// that comes while another's read is on its way waits for the next
// round, which reads every record asked for meanwhile at once.
func (c *Cutoff) Check(ctx context.Context, client string, exp time.Time) error {
	ch := &check{key: c.key(client), done: make(chan struct{})}
	c.mu.Lock()
	if c.reading {
		c.waiting = append(c.waiting, ch)
		c.mu.Unlock()
	} else {
		c.reading = true
		c.mu.Unlock()
		go c.round([]*check{ch})
	}
	select {
	case <-ch.done:
	case <-ctx.Done():
		return fmt.Errorf("cutoff: check %s: %w", client, ctx.Err())
	}
	if ch.err != nil {
		return fmt.Errorf("cutoff: check %s: %w", client, ch.err)
	}
	if ch.val == "" {
		return nil
	}
	until, err := strconv.ParseInt(ch.val, 10, 64)
	if err != nil {
		return fmt.Errorf("cutoff: check %s: unexpected record %q", client, ch.val)
	}
	if exp.Unix() <= until {
		return fmt.Errorf("tokens of %s expiring by %s: %w", client,
			time.Unix(until, 0).UTC().Format(time.RFC3339), ErrRevoked)
	}
	return nil
}

// round reads the records of checks in one command (one pipeline on a
// cluster, whose keys span slots), answers them, and goes on with the
// checks that came meanwhile, until there are none.
func (c *Cutoff) round(checks []*check) {
	for len(checks) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		c.read(ctx, checks)
		cancel()
		for _, ch := range checks {
			close(ch.done)
		}
		c.mu.Lock()
		checks, c.waiting = c.waiting, nil
		if len(checks) == 0 {
			c.reading = false
		}
		c.mu.Unlock()
	}
}

// read fills in each check's record, or its error.
func (c *Cutoff) read(ctx context.Context, checks []*check) {
	fail := func(err error) {
		for _, ch := range checks {
			ch.err = err
		}
	}
	if c.opts.Sharded {
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(checks))
		for i, ch := range checks {
			cmds[i] = pipe.Get(ctx, ch.key)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		for i, ch := range checks {
			v, err := cmds[i].Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				ch.err = err
			}
			ch.val = v
		}
		return
	}
	keys := make([]string, len(checks))
	for i, ch := range checks {
		keys[i] = ch.key
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		fail(err)
		return
	}
	if len(vals) != len(checks) {
		fail(fmt.Errorf("MGET of %d keys answered %d values", len(keys), len(vals)))
		return
	}
	for i, ch := range checks {
		ch.val, _ = vals[i].(string)
	}
}
