package presence

// The sweeper: one node at a time, the one holding a lease in Redis,
// counts out the clients of nodes that stopped saying they are alive,
// forgets old last-seen times, and hands the presence changes to the
// Sink in order.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event kinds.
const (
	// KindOnline: the client came online (Event.At is when).
	KindOnline = "client_online"
	// KindOffline: the client went offline (Event.At is when it was last
	// seen).
	KindOffline = "client_offline"
)

// Event is a change of a client's presence. A client's events come in the
// order they happened; online and offline alternate.
type Event struct {
	// ID names the event uniquely and stays the same when it is handed
	// over again (after a failover of the sweeper), so that a receiver
	// can drop duplicates.
	ID string
	// Kind is KindOnline or KindOffline.
	Kind   string
	Client string
	At     time.Time

	seq uint64
}

// Sink takes presence changes; *webhook.Sender is one.
type Sink interface {
	// Send hands events over, in order. It returns nil once each one is
	// settled (delivered, or dropped because it could not be within the
	// Sink's bound); an error only when ctx ended first, after which the
	// events are handed over again, by this node or the next sweeper.
	Send(ctx context.Context, events []Event) error
}

// Sweeper timing.
const (
	// deadGrace keeps sweeping a dead node's sets this long after it was
	// last heard of, beyond its dead time and the linger: a node that
	// stalled rather than died may write once more before its heartbeat
	// tells it it was taken for dead.
	deadGrace = time.Minute
	// pruneEvery is how often last-seen times older than the retention
	// are forgotten.
	pruneEvery = time.Minute
	// sweepChunk is how many of a dead node's clients one call counts
	// out.
	sweepChunk = 1000
	// eventBatch is the most events handed to the Sink at once.
	eventBatch = 100
	// idleRead is how long the deliverer waits after finding no event.
	idleRead = 200 * time.Millisecond
)

// sweeper takes and keeps the lease, and sweeps while it holds it, until
// ctx ends; then it gives the lease up.
func (p *Presence) sweeper(ctx context.Context) {
	tick := time.NewTicker(p.opts.Heartbeat)
	defer tick.Stop()
	var (
		leader    bool
		delivery  background
		lastPrune time.Time
	)
	defer delivery.stop()
	for ctx.Err() == nil {
		held, err := leaseScript.Run(ctx, p.rdb, []string{p.leaseKey()}, p.id, p.leaseTTL().Milliseconds()).Int()
		if ctx.Err() != nil {
			break // cut by the stop: whether it was kept is not known
		}
		if err != nil {
			if leader {
				p.log.Warn("presence: cannot keep the sweeper's lease", "err", err)
			}
			held = 0
		}
		if now := held == 1; now != leader {
			leader = now
			p.m.PresenceSweeper(leader)
			p.log.Info("presence: sweeper", "now", leader, "id", p.id)
			if !leader {
				delivery.stop()
			}
		}
		if leader {
			if err := p.sweep(ctx); err != nil && ctx.Err() == nil {
				p.m.RedisError("presence")
				p.log.Warn("presence: sweep", "err", err)
			}
			if time.Since(lastPrune) >= pruneEvery {
				lastPrune = time.Now()
				p.prune(ctx)
			}
			if p.opts.Sink != nil {
				delivery.start(ctx, p.deliver)
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	delivery.stop()
	// Given up whether this node thinks it holds the lease or not (a
	// keeping cut short by the stop may have taken it): lease.lua deletes
	// it only for its holder, and the next node takes over at once.
	end, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	_ = leaseScript.Run(end, p.rdb, []string{p.leaseKey()}, p.id, 0).Err()
	cancel()
	if leader {
		p.m.PresenceSweeper(false)
	}
}

// background is a goroutine the sweeper starts and stops.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs f in a goroutine, unless one runs already.
func (b *background) start(ctx context.Context, f func(context.Context)) {
	if b.cancel != nil {
		return
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	go func() { defer close(b.done); f(ctx) }()
}

// stop ends the goroutine, if one runs, and waits for it.
func (b *background) stop() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
		b.cancel = nil
	}
}

// leaseTTL is how long the lease outlives a sweeper that stopped keeping
// it.
func (p *Presence) leaseTTL() time.Duration { return p.opts.NodeTTL }

// sweep moves nodes that stopped saying they are alive, a linger past
// their dead time, to the dead set, and counts their clients out.
func (p *Presence) sweep(ctx context.Context) error {
	now := p.opts.Now()
	res, err := reapScript.Run(ctx, p.rdb, []string{p.nodesKey(), p.deadKey()},
		p.opts.Linger.Milliseconds(), p.opts.NodeTTL.Milliseconds()).StringSlice()
	if err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	for i := 0; i+1 < len(res); i += 2 {
		id := res[i]
		heard, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return fmt.Errorf("reap: %w: score %q", ErrBadReply, res[i+1])
		}
		swept := 0
		for shard := 0; shard < p.opts.Shards; shard++ {
			for {
				left, err := sweepScript.Run(ctx, p.rdb, p.shardKeys(shard, id),
					now.UnixMilli(), p.eventsOn(), p.opts.MaxEvents, int64(heard), sweepChunk).Int()
				if err != nil {
					return fmt.Errorf("sweep node %s: %w", id, err)
				}
				swept++
				if left == 0 {
					break
				}
			}
		}
		if time.UnixMilli(int64(heard)).Add(p.opts.NodeTTL + p.opts.Linger + deadGrace).Before(now) {
			if err := p.rdb.ZRem(ctx, p.deadKey(), id).Err(); err != nil {
				return fmt.Errorf("forget node %s: %w", id, err)
			}
			p.log.Info("presence: counted out the clients of a node that stopped", "node_id", id,
				"last_heard", time.UnixMilli(int64(heard)).UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// prune forgets last-seen times older than the retention.
func (p *Presence) prune(ctx context.Context) {
	before := p.opts.Now().Add(-p.opts.Retention).UnixMilli()
	for shard := 0; shard < p.opts.Shards; shard++ {
		if err := p.rdb.ZRemRangeByScore(ctx, p.key(shard, "s"), "-inf", "("+strconv.FormatInt(before, 10)).Err(); err != nil {
			p.log.Debug("presence: prune", "err", err)
			return
		}
	}
}

// deliver hands each shard's events to the Sink, in order, until ctx
// ends.
func (p *Presence) deliver(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		any := false
		for shard := 0; shard < p.opts.Shards && ctx.Err() == nil; shard++ {
			n, err := p.deliverShard(ctx, shard)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				failing = true
				p.m.RedisError("presence")
				p.log.Warn("presence: reading events", "err", err)
			case err == nil && failing:
				failing = false
			}
			any = any || n > 0
		}
		if !any {
			select {
			case <-ctx.Done():
			case <-time.After(idleRead):
			}
		}
	}
}

// cursor is how far a shard's events were handed over: the stream id of
// the last one and its sequence number.
type cursor struct {
	id  string
	seq uint64
}

// deliverShard hands one batch of a shard's events to the Sink, and
// returns how many it read.
func (p *Presence) deliverShard(ctx context.Context, shard int) (int, error) {
	cur, err := p.readCursor(ctx, shard)
	if err != nil {
		return 0, err
	}
	streams, err := p.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{p.key(shard, "e"), cur.id}, Count: eventBatch, Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read events: %w", err)
	}
	var events []Event
	for _, s := range streams {
		for _, m := range s.Messages {
			ev, err := parseEvent(shard, m)
			if err != nil {
				p.log.Warn("presence: skipping an event", "id", m.ID, "err", err)
				continue
			}
			events = append(events, ev)
		}
	}
	if len(events) == 0 {
		return 0, nil
	}
	if first := events[0].seq; first > cur.seq+1 {
		lost := first - cur.seq - 1
		p.m.WebhookDropped("trimmed", int(lost))
		p.log.Warn("presence: events were dropped before they could be handed over (the stream is capped)",
			"shard", shard, "dropped", lost)
	}
	if err := p.opts.Sink.Send(ctx, events); err != nil {
		return 0, err
	}
	last := events[len(events)-1]
	next := cursor{id: strings.TrimPrefix(last.ID, strconv.Itoa(shard)+"."), seq: last.seq}
	pipe := p.rdb.Pipeline()
	pipe.Set(ctx, p.key(shard, "w"), next.id+" "+strconv.FormatUint(next.seq, 10), 0)
	pipe.XTrimMinID(ctx, p.key(shard, "e"), afterID(next.id))
	if _, err := pipe.Exec(ctx); err != nil {
		return len(events), fmt.Errorf("store the events' cursor: %w", err)
	}
	return len(events), nil
}

// readCursor reads how far a shard's events were handed over.
func (p *Presence) readCursor(ctx context.Context, shard int) (cursor, error) {
	v, err := p.rdb.Get(ctx, p.key(shard, "w")).Result()
	if errors.Is(err, redis.Nil) {
		return cursor{id: "0-0"}, nil
	}
	if err != nil {
		return cursor{}, fmt.Errorf("read the events' cursor: %w", err)
	}
	id, seqText, _ := strings.Cut(v, " ")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return cursor{}, fmt.Errorf("%w: events' cursor %q", ErrBadReply, v)
	}
	return cursor{id: id, seq: seq}, nil
}

// parseEvent reads a stream entry written by counts.lua.
func parseEvent(shard int, m redis.XMessage) (Event, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	seq, err1 := strconv.ParseUint(str("n"), 10, 64)
	ms, err2 := strconv.ParseInt(str("t"), 10, 64)
	ev := Event{ID: strconv.Itoa(shard) + "." + m.ID, Kind: str("e"), Client: str("c"), At: time.UnixMilli(ms), seq: seq}
	if err := errors.Join(err1, err2); err != nil || (ev.Kind != KindOnline && ev.Kind != KindOffline) || ev.Client == "" {
		return Event{}, fmt.Errorf("%w: event %v", ErrBadReply, m.Values)
	}
	return ev, nil
}

// afterID returns the stream id that follows id, for XTRIM MINID (which
// keeps ids at or above it).
func afterID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return id
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}
