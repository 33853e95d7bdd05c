// Package presence knows which clients are online: those with a poll held
// or a stream open on any node, or with one that ended less than a linger
// ago, so that the gap between one long-poll and the next, or a poll
// moving to another node behind the balancer, never shows as offline.
//
// Each node counts its own clients in memory, as package poll tells it of
// polls and streams beginning and ending (Begin, End), and writes to Redis
// only when a client is new to the node or has been gone from it for the
// linger: a client re-polling on the same node costs Redis nothing, and
// one moving between nodes costs a member in the next batch, which goes
// every Options.Flush in one script call per shard. In Redis, every node
// has a set of the clients it holds, per shard; a shard's counts hash
// says in how many sets each client is (flush.lua, counts.lua). A client
// comes online when its count leaves 0 and goes offline when it returns
// to 0; both are decided inside one script, so a transition happens once,
// whichever nodes race, and lands in the shard's event stream in order.
//
// A node that dies cannot take its clients out of the counts. Every node
// says it is alive every Options.Heartbeat, into a sorted set of dead-by
// times (by Redis's clock, so that nodes whose clocks disagree are judged
// alike); one node at a time, holding a lease in Redis, sweeps (sweeper.go):
// a node whose dead-by time is over a linger past has its clients counted
// out (sweep.lua), so a client whose node was killed goes offline within
// the linger plus Options.NodeTTL plus a sweep interval. The node that
// holds the lease also hands the event streams to a Sink (webhooks), in
// order, from a cursor kept in Redis.
//
// Clients are spread over Options.Shards shards by a hash of their id;
// a shard's keys share a hash tag, {#pN}, which no client id can be (ids
// have no #), so that each shard's scripts run on one Redis Cluster slot
// and the shards spread over the cluster.
//
// A *Presence is safe for concurrent use; Begin and End take a mutex and
// touch a map, nothing more.
package presence

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/metrics"
)

var (
	//go:embed counts.lua
	countsSrc string
	//go:embed flush.lua
	flushSrc string
	//go:embed sweep.lua
	sweepSrc string
	//go:embed heartbeat.lua
	heartbeatSrc string
	//go:embed reap.lua
	reapSrc string
	//go:embed lease.lua
	leaseSrc string

	flushScript     = redis.NewScript(countsSrc + flushSrc)
	sweepScript     = redis.NewScript(countsSrc + sweepSrc)
	heartbeatScript = redis.NewScript(heartbeatSrc)
	reapScript      = redis.NewScript(reapSrc)
	leaseScript     = redis.NewScript(leaseSrc)
)

// Defaults, each set once here. pkg/config, which imports no cometbox
// package, restates those a flag sets; cmd/cometbox's
// TestFlagDefaultsAreThePackages holds the two equal.
const (
	// DefaultLinger is how long a client stays online after its last
	// poll or stream ended.
	DefaultLinger = 5 * time.Second
	// DefaultNodeTTL is how long a node counts as alive after it last
	// said so; it says so every second.
	DefaultNodeTTL = 3 * time.Second
)

// Options tunes a Presence. The zero value is ready to use.
type Options struct {
	// Prefix starts every key, as package queue's. Default: "cb:".
	Prefix string
	// Node names this node in its id (the name and a random suffix, new
	// for every process). Default: "node".
	Node string
	// Linger keeps a client online this long after its last poll or
	// stream on a node ended. Default: DefaultLinger.
	Linger time.Duration
	// Shards is how many shards the clients are spread over. Every node
	// of a deployment must use the same. Default: 1.
	Shards int
	// Flush is how often the node writes its changes. Default: 250ms.
	Flush time.Duration
	// Heartbeat is how often the node says it is alive, and how often the
	// node holding the lease sweeps. Default: 1s.
	Heartbeat time.Duration
	// NodeTTL is how long a node counts as alive after it last said so.
	// Default: DefaultNodeTTL.
	NodeTTL time.Duration
	// Retention is how long a client's last-seen time is kept after it
	// went offline. Default: 24h.
	Retention time.Duration
	// Sink, when set, is handed every presence change, in order, by the
	// node that holds the sweeper's lease; changes are then kept in Redis
	// until it took them. Every node of a deployment should have one, or
	// none. Default: none (no events are written).
	Sink Sink
	// MaxEvents bounds each shard's event stream; the oldest events are
	// dropped beyond it (the Sink is told how many). Default: 100000.
	MaxEvents int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "cb:"
	}
	if o.Node == "" {
		o.Node = "node"
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.Flush <= 0 {
		o.Flush = 250 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = DefaultNodeTTL
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Redis is what a Presence needs of a go-redis client: *redis.Client,
// *redis.ClusterClient and every redis.UniversalClient have it.
type Redis interface {
	redis.Cmdable
}

// Presence tracks the clients this node holds and answers who is online.
type Presence struct {
	rdb  Redis
	log  *slog.Logger
	m    *metrics.Metrics
	opts Options

	mu      sync.Mutex
	clients map[string]*entry
	adds    []string // clients to add to this node's sets, as they began
	ended   []ending // clients whose last poll or stream ended, oldest first

	// Owned by Run's goroutine.
	id         string // this incarnation's id in the nodes set
	registered bool   // id was registered in the nodes set
	beatOK     bool   // the last heartbeat succeeded: the node may write
	failing    bool   // the last write failed (logged once)
}

// entry is one client held by this node, or lingering on it.
type entry struct {
	refs  int    // its polls and streams held here now
	gen   uint64 // bumped by every Begin
	state state
}

type state uint8

const (
	toAdd    state = iota // not in this node's set yet; in adds
	adding                // a flush is adding it
	added                 // in this node's set
	removing              // a flush is removing it
)

// ending is a client whose last poll or stream on this node ended.
type ending struct {
	client string
	at     time.Time
	gen    uint64 // the entry's gen then: it came back if that changed
}

// New returns a Presence. Run must be running for anything to reach
// Redis.
func New(rdb Redis, log *slog.Logger, m *metrics.Metrics, opts Options) *Presence {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Presence{rdb: rdb, log: log, m: m, opts: opts.withDefaults(), clients: make(map[string]*entry)}
	p.id = p.newID()
	return p
}

// newID makes a node id: the node's name and 6 random bytes, so that a
// restarted node never inherits its predecessor's sets.
func (p *Presence) newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return p.opts.Node + "-" + hex.EncodeToString(b[:])
}

// Begin counts a poll or stream of client beginning on this node.
func (p *Presence) Begin(client string) {
	p.mu.Lock()
	e := p.clients[client]
	if e == nil {
		e = &entry{state: toAdd}
		p.clients[client] = e
		p.adds = append(p.adds, client)
	}
	e.refs++
	e.gen++
	p.mu.Unlock()
}

// End counts a poll or stream of client ending on this node.
func (p *Presence) End(client string) {
	now := p.opts.Now()
	p.mu.Lock()
	if e := p.clients[client]; e != nil && e.refs > 0 {
		if e.refs--; e.refs == 0 {
			p.ended = append(p.ended, ending{client, now, e.gen})
		}
	}
	p.mu.Unlock()
}

// Clients returns how many clients this node holds or lets linger.
func (p *Presence) Clients() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Run writes this node's changes every Options.Flush, says the node is
// alive every Options.Heartbeat, and takes its turn at sweeping (see
// sweeper.go), until ctx ends. Then it writes what is left to write, and
// returns nil. The node is not taken out at once: the sweeper counts its
// clients out once it stops saying it is alive (a linger after), by when
// those that moved to other nodes are counted there, so none flaps.
func (p *Presence) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { p.sweeper(ctx) })
	defer wg.Wait()

	flush := time.NewTicker(p.opts.Flush)
	defer flush.Stop()
	beat := time.NewTicker(p.opts.Heartbeat)
	defer beat.Stop()
	p.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			p.flush(final)
			cancel()
			return nil
		case <-flush.C:
			p.flush(ctx)
		case <-beat.C:
			p.heartbeat(ctx)
		}
	}
}

// key returns the name of one of shard's keys.
func (p *Presence) key(shard int, name string) string {
	return p.opts.Prefix + "{#p" + strconv.Itoa(shard) + "}:" + name
}

// nodeKey is a node's set of clients in shard.
func (p *Presence) nodeKey(shard int, id string) string { return p.key(shard, "n:"+id) }

// shardKeys are the keys the scripts take, around a node's set.
func (p *Presence) shardKeys(shard int, node string) []string {
	return []string{p.key(shard, "c"), p.key(shard, "s"), p.nodeKey(shard, node), p.key(shard, "e"), p.key(shard, "q")}
}

// nodesKey, deadKey and leaseKey are global; they share a hash tag so
// that reap.lua may take two of them on Redis Cluster.
func (p *Presence) nodesKey() string { return p.opts.Prefix + "{#}nodes" }
func (p *Presence) deadKey() string  { return p.opts.Prefix + "{#}dead" }
func (p *Presence) leaseKey() string { return p.opts.Prefix + "{#}lease" }

// shardOf returns the shard of client.
func (p *Presence) shardOf(client string) int {
	if p.opts.Shards == 1 {
		return 0
	}
	return int(crc32.ChecksumIEEE([]byte(client)) % uint32(p.opts.Shards))
}

// chunk bounds the clients of one script call: Lua's unpack takes a few
// thousand values at most, and a long script blocks Redis.
const chunk = 500

// change is a client this flush adds or removes.
type change struct {
	client string
	gen    uint64    // the entry's gen when the flush took it
	at     time.Time // a removal: when the client was last seen here
}

// flush writes to Redis the clients new to this node and those that have
// been gone from it for the linger.
//
// It writes nothing until a heartbeat has confirmed the node's id since
// the last failure: after an outage long enough for the sweeper to take
// the node for dead, its writes go under a new id, never into the sets
// of an id already counted out.
func (p *Presence) flush(ctx context.Context) {
	adds, removes := p.take()
	if !p.beatOK {
		// Settled as a failed write, so that what waits for the next
		// write stays one change a client: every poll that ends adds
		// one, and an outage may last.
		p.settle(adds, removes, errNotConfirmed)
		return
	}
	if len(adds) == 0 && len(removes) == 0 {
		return
	}
	byShard := make(map[int]*[2][]change)
	for i, list := range [2][]change{adds, removes} {
		for _, c := range list {
			s := p.shardOf(c.client)
			if byShard[s] == nil {
				byShard[s] = new([2][]change)
			}
			byShard[s][i] = append(byShard[s][i], c)
		}
	}
	var failed error
	for shard, ch := range byShard {
		a, r := ch[0], ch[1]
		for len(a) > 0 || len(r) > 0 {
			na, nr := min(len(a), chunk), min(len(r), chunk)
			err := p.write(ctx, shard, a[:na], r[:nr])
			p.settle(a[:na], r[:nr], err)
			if err != nil {
				failed = err
			}
			a, r = a[na:], r[nr:]
		}
	}
	p.reportWrite(failed)
}

// errNotConfirmed: a flush wrote nothing, since no heartbeat has
// confirmed the node's id since the last failure.
var errNotConfirmed = errors.New("presence: the node's id is not confirmed")

// take collects, under the lock, the clients to add and those to remove.
func (p *Presence) take() (adds, removes []change) {
	now := p.opts.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.adds {
		if e := p.clients[c]; e != nil && e.state == toAdd {
			e.state = adding
			adds = append(adds, change{client: c, gen: e.gen})
		}
	}
	p.adds = p.adds[:0]
	var again []ending // added only now: removed next time
	n := 0
	for ; n < len(p.ended); n++ {
		end := p.ended[n]
		if now.Sub(end.at) < p.opts.Linger {
			break
		}
		e := p.clients[end.client]
		if e == nil || e.refs > 0 || e.gen != end.gen {
			continue // it came back since
		}
		switch e.state {
		case added:
			e.state = removing
			removes = append(removes, change{client: end.client, gen: e.gen, at: end.at})
		case toAdd: // never written (Redis failing): nothing to take back
			delete(p.clients, end.client)
		case adding:
			again = append(again, end)
		}
	}
	if len(again) == 0 {
		p.ended = append(p.ended[:0], p.ended[n:]...)
	} else {
		p.ended = append(again, p.ended[n:]...)
	}
	p.m.PresenceClients(len(p.clients))
	return adds, removes
}

// write sends one chunk of one shard's changes.
func (p *Presence) write(ctx context.Context, shard int, adds, removes []change) error {
	args := make([]any, 0, 4+len(adds)+2*len(removes))
	args = append(args, p.opts.Now().UnixMilli(), p.eventsOn(), p.opts.MaxEvents, len(adds))
	for _, c := range adds {
		args = append(args, c.client)
	}
	for _, c := range removes {
		args = append(args, c.client, c.at.UnixMilli())
	}
	res, err := flushScript.Run(ctx, p.rdb, p.shardKeys(shard, p.id), args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("presence: flush %d added and %d removed clients: %w", len(adds), len(removes), err)
	}
	if len(res) == 2 {
		p.m.PresenceChanges(res[0], res[1])
	}
	return nil
}

// settle records, under the lock, what became of a chunk's changes.
func (p *Presence) settle(adds, removes []change, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range adds {
		e := p.clients[c.client]
		switch {
		case e == nil || e.state != adding:
		case err != nil:
			e.state = toAdd
			p.adds = append(p.adds, c.client)
		default:
			e.state = added
		}
	}
	var again []ending
	for _, c := range removes {
		e := p.clients[c.client]
		switch {
		case e == nil || e.state != removing:
		case err != nil: // again next time
			e.state = added
			again = append(again, ending{c.client, c.at, c.gen})
		case e.gen != c.gen: // it came back while it was removed: add it again
			e.state = toAdd
			p.adds = append(p.adds, c.client)
		default:
			delete(p.clients, c.client)
		}
	}
	if len(again) > 0 { // older than every other ending: first in line
		p.ended = append(again, p.ended...)
	}
}

// reportWrite logs the first failure of an outage and the recovery.
func (p *Presence) reportWrite(err error) {
	switch {
	case err != nil && !p.failing:
		p.failing = true
		p.m.RedisError("presence")
		p.log.Warn("presence: cannot write to Redis; retrying", "err", err)
	case err != nil:
		p.m.RedisError("presence")
	case p.failing:
		p.failing = false
		p.log.Info("presence: writing to Redis again")
	}
}

// heartbeat says the node is alive. When the sweeper took it for dead
// meanwhile (and counted its clients out), the node takes a new id and
// adds every client it holds again.
func (p *Presence) heartbeat(ctx context.Context) {
	ok, err := heartbeatScript.Run(ctx, p.rdb, []string{p.nodesKey()}, p.id, p.opts.NodeTTL.Milliseconds(), p.registered).Int()
	if err != nil {
		p.beatOK = false
		p.reportWrite(fmt.Errorf("presence: heartbeat: %w", err))
		return
	}
	if ok == 1 {
		p.registered, p.beatOK = true, true
		p.reportWrite(nil)
		return
	}
	old := p.id
	p.id, p.registered = p.newID(), false
	p.log.Warn("presence: this node was taken for dead (Redis unreachable for too long?); adding its clients again", "old_id", old, "id", p.id)
	p.mu.Lock()
	for c, e := range p.clients {
		if e.state == added {
			e.state = toAdd
			p.adds = append(p.adds, c)
		}
	}
	p.mu.Unlock()
	p.heartbeat(ctx)
}

// eventsOn is 1 when changes are written as events.
func (p *Presence) eventsOn() int {
	if p.opts.Sink != nil {
		return 1
	}
	return 0
}

// State is what Lookup knows of a client.
type State struct {
	Client string
	// Online reports whether a node holds a poll or stream of the
	// client, or held one less than the linger ago.
	Online bool
	// Since is when the client came online, when it is.
	Since time.Time
	// LastSeen is when the client's last poll or stream ended, when it is
	// offline and that is known (it is kept for Options.Retention). For
	// a client whose node died, it is when that node was last heard of.
	LastSeen time.Time
}

// ErrBadReply: Redis answered something the package did not write.
var ErrBadReply = errors.New("presence: unexpected reply from Redis")

// Lookup returns the state of each client, in order: one round trip,
// two read commands per shard involved.
func (p *Presence) Lookup(ctx context.Context, clients []string) ([]State, error) {
	out := make([]State, len(clients))
	byShard := make(map[int][]int)
	for i, c := range clients {
		out[i].Client = c
		s := p.shardOf(c)
		byShard[s] = append(byShard[s], i)
	}
	type reads struct {
		idx          []int
		counts, seen *redis.Cmd
	}
	var all []reads
	pipe := p.rdb.Pipeline()
	for shard, idx := range byShard {
		names := make([]any, len(idx))
		for j, i := range idx {
			names[j] = clients[i]
		}
		all = append(all, reads{
			idx:    idx,
			counts: pipe.Do(ctx, append([]any{"HMGET", p.key(shard, "c")}, names...)...),
			seen:   pipe.Do(ctx, append([]any{"ZMSCORE", p.key(shard, "s")}, names...)...),
		})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("presence: lookup %d clients: %w", len(clients), err)
	}
	for _, r := range all {
		counts, err1 := r.counts.Slice()
		seen, err2 := r.seen.Slice()
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("presence: lookup: %w", err)
		}
		if len(counts) != len(r.idx) || len(seen) != len(r.idx) {
			return nil, ErrBadReply
		}
		for j, i := range r.idx {
			if v, ok := counts[j].(string); ok {
				out[i].Online, out[i].Since = true, parseSince(v)
				continue
			}
			if ms, ok := score(seen[j]); ok {
				out[i].LastSeen = time.UnixMilli(ms)
			}
		}
	}
	return out, nil
}

// parseSince reads the since part of a count, "COUNT SINCE".
func parseSince(v string) time.Time {
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			if ms, err := strconv.ParseInt(v[i+1:], 10, 64); err == nil {
				return time.UnixMilli(ms)
			}
		}
	}
	return time.Time{}
}

// score reads a sorted-set score from a raw reply (RESP2 sends it as a
// string, RESP3 as a float).
func score(v any) (int64, bool) {
	switch s := v.(type) {
	case string:
		f, err := strconv.ParseFloat(s, 64)
		return int64(f), err == nil
	case float64:
		return int64(s), true
	case int64:
		return s, true
	}
	return 0, false
}

// List returns up to limit online clients whose id starts with prefix,
// in no particular order: for the demo page. It scans the counts hashes,
// so it costs Redis in proportion to the clients online.
func (p *Presence) List(ctx context.Context, prefix string, limit int) ([]State, error) {
	var out []State
	for shard := 0; shard < p.opts.Shards && len(out) < limit; shard++ {
		iter := p.rdb.HScan(ctx, p.key(shard, "c"), 0, escapeGlob(prefix)+"*", 200).Iterator()
		for len(out) < limit && iter.Next(ctx) {
			client := iter.Val()
			if !iter.Next(ctx) {
				break
			}
			out = append(out, State{Client: client, Online: true, Since: parseSince(iter.Val())})
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("presence: list: %w", err)
		}
	}
	return out, nil
}

// escapeGlob escapes the characters of a Redis MATCH pattern.
func escapeGlob(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
