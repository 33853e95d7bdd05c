// Package queue keeps each client's messages in Redis until a browser
// acknowledges them.
//
// A client has three keys, all under the hash tag {client} so that they
// live on one Redis Cluster slot: a hash with the sequence's epoch, last
// assigned id and when the keys' expiry is due; a list of the messages
// not yet acknowledged, oldest first; and, per idempotent batch, a
// short-lived record of the ids it was given and a digest of the batch.
// Every change is one Lua script (enqueue.lua, read.lua), so no
// interleaving of nodes can lose, reorder or duplicate a message.
// Enqueueing also publishes a wake-up on the client's channel (see
// package notify).
//
// A group message is fanned out on write: each member gets an ordinary
// copy in its own queue, with its own id (fanout.go); the client's meta
// hash also holds its group memberships (groups.go).
//
// A *Queue is safe for concurrent use.
package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/message"
)

var (
	//go:embed expiry.lua
	expirySrc string
	//go:embed enqueue.lua
	enqueueSrc string
	//go:embed read.lua
	readSrc string

	// Both scripts start with expiry.lua's functions: a script cannot
	// call another's.
	enqueueScript = redis.NewScript(expirySrc + enqueueSrc)
	readScript    = redis.NewScript(expirySrc + readSrc)
)

// Options tunes a Queue. The zero value is ready to use.
type Options struct {
	// Prefix starts every key and channel name, so that several
	// deployments can share one Redis. Default: "cb:".
	Prefix string
	// Cap bounds one client's queue; the oldest messages are dropped
	// beyond it, and the next poll reports them in Cometbox-Gap.
	// Default: 1000.
	Cap int
	// TTL is how long a client's keys live after their last use (a
	// publish, a read, an acknowledgement), at least: the scripts refresh
	// the expiry only when an eighth of TTL has passed since they last
	// did, to TTL plus an eighth, so keys may live up to an eighth longer
	// (expiry.lua). Default: 24h.
	TTL time.Duration
	// IdempotencyTTL is how long an idempotency key is remembered.
	// Default: 10m.
	IdempotencyTTL time.Duration
	// Sharded makes wake-ups use SPUBLISH (Redis Cluster sharded
	// pub/sub) instead of PUBLISH. Default: false.
	Sharded bool
	// Durability, when set, makes Publish wait until Redis confirms the
	// write on disk or on replicas. Default: none.
	Durability Durability
	// Primary, when set, gives every publish the term of the Redis
	// primary it writes to, so that a new primary gives a sequence a new
	// epoch (see enqueue.lua), and holds publishes while it changes
	// (see Primary). Default: none (no terms), as on the embedded Redis
	// and on a Cluster, whose shards each have their own primary.
	Primary *Primary
	// Pipeline makes the script calls of concurrent requests (reads,
	// acknowledgements, publishes) share pipelines: fewer round trips and
	// system calls for the node and for Redis, and no pile-up on the
	// connection pool when thousands of polls read at once. Default:
	// false (each call is its own round trip).
	Pipeline bool
}

// Durability is what a publish waits for before it is answered 2xx.
type Durability struct {
	// AOF waits until the primary has fsynced the write to its
	// append-only file (WAITAOF; Redis 7.2 or later, appendonly yes).
	AOF bool
	// Replicas waits until this many replicas have the write (WAIT), or,
	// with AOF, have fsynced it (WAITAOF).
	Replicas int
	// Timeout bounds the wait; past it the publish fails with
	// message.ErrNotDurable. Default: 1s.
	Timeout time.Duration
}

func (d Durability) enabled() bool { return d.AOF || d.Replicas > 0 }

// command returns the WAIT or WAITAOF command that confirms d.
func (d Durability) command() []any {
	ms := d.Timeout.Milliseconds()
	if ms <= 0 {
		ms = 1000
	}
	if d.AOF {
		return []any{"WAITAOF", 1, d.Replicas, ms}
	}
	return []any{"WAIT", d.Replicas, ms}
}

// confirmed checks the reply of command.
func (d Durability) confirmed(reply any) error {
	var local, replicas int64
	switch r := reply.(type) {
	case int64: // WAIT
		local, replicas = 1, r
	case []any: // WAITAOF: [local, replicas]
		if len(r) == 2 {
			local, _ = r[0].(int64)
			replicas, _ = r[1].(int64)
		}
	}
	if (d.AOF && local < 1) || replicas < int64(d.Replicas) {
		return fmt.Errorf("queue: %v answered local %d, replicas %d (want local %v, replicas %d): %w",
			d.command()[0], local, replicas, d.AOF, d.Replicas, message.ErrNotDurable)
	}
	return nil
}

// Redis is what a Queue needs of a go-redis client: *redis.Client,
// *redis.ClusterClient and every redis.UniversalClient have it.
type Redis interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// Queue is the Redis store of every client's messages.
type Queue struct {
	rdb     Redis
	opts    Options
	now     func() time.Time // time.Now but in tests
	batches chan *pending    // calls waiting for a pipeline; nil without Options.Pipeline
	senders chan struct{}    // a slot per pipeline on its way
	durable *confirmer       // nil without Options.Durability

	ackMu    sync.Mutex
	acks     []queuedAck // AckSoon's, oldest first, until a pipeline or flushAcks sends them
	ackTimer bool        // a flushAcks is planned
	ackDelay time.Duration
	after    func(time.Duration, func()) // plans a flushAcks: time.AfterFunc but in tests
}

// New returns a Queue over rdb.
func New(rdb Redis, opts Options) *Queue {
	if opts.Prefix == "" {
		opts.Prefix = "cb:"
	}
	if opts.Cap <= 0 {
		opts.Cap = 1000
	}
	if opts.TTL <= 0 {
		opts.TTL = 24 * time.Hour
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 10 * time.Minute
	}
	q := &Queue{rdb: rdb, opts: opts, now: time.Now, after: afterFunc, ackDelay: ackDelay}
	if opts.Pipeline {
		q.batches = make(chan *pending, 4096)
		q.senders = make(chan struct{}, pipelinesInFlight)
	}
	if opts.Durability.enabled() {
		q.durable = newConfirmer(rdb, opts.Durability, opts.Prefix+"durable")
	}
	return q
}

// WakeChannel is the pub/sub channel on which enqueueing for client
// publishes its wake-up.
func (q *Queue) WakeChannel(client string) string {
	return q.opts.Prefix + "{" + client + "}:w"
}

func (q *Queue) metaKey(client string) string { return q.opts.Prefix + "{" + client + "}:m" }
func (q *Queue) listKey(client string) string { return q.opts.Prefix + "{" + client + "}:q" }
func (q *Queue) idemKey(client, key string) string {
	return q.opts.Prefix + "{" + client + "}:i:" + key
}

// Publish enqueues a validated batch and returns a receipt per message, in
// the batch's order. Each client's share of the batch is appended
// atomically and gets consecutive ids; different clients are written in
// one pipeline. When the batch's idempotency key is already known nothing
// new is enqueued: if the first attempt had the same messages, the
// receipts are those of the first attempt; if not, Publish fails with
// message.ErrIdempotencyConflict.
//
// A group message (message.Message.Group) is fanned out to the group's
// members, after the batch's direct messages (see fanout.go); its
// receipt says how many members got a copy.
//
// On error some clients' shares may have been enqueued and others not;
// retrying with the same idempotency key completes the batch without
// duplicating anything.
func (q *Queue) Publish(ctx context.Context, batch message.Batch) (message.Published, error) {
	groups := groupByClient(batch.Messages)
	idemTTL, digest := 0, ""
	if batch.IdempotencyKey != "" {
		idemTTL = seconds(q.opts.IdempotencyTTL)
		digest = batchDigest(batch.Messages)
	}
	wake := "PUBLISH"
	if q.opts.Sharded {
		wake = "SPUBLISH"
	}
	nowMS := strconv.FormatInt(q.now().UnixMilli(), 10)
	term, leave := "", func() {}
	if p := q.opts.Primary; p != nil {
		var err error
		if term, err = p.enter(ctx); err != nil {
			return message.Published{}, err
		}
		var once sync.Once
		leave = func() { once.Do(p.leave) }
		defer leave()
	}

	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		epoch, err := newEpoch()
		if err != nil {
			return message.Published{}, err
		}
		args := make([]any, 0, 9+len(g.indexes))
		args = append(args, epoch, q.opts.Cap, seconds(q.opts.TTL), idemTTL,
			q.WakeChannel(g.client), wake, nowMS, digest, term)
		for _, idx := range g.indexes {
			args = append(args, []byte(batch.Messages[idx].Data))
		}
		calls[i] = scriptCall{
			script: enqueueScript,
			keys:   []string{q.metaKey(g.client), q.listKey(g.client), q.idemKey(g.client, batch.IdempotencyKey)},
			args:   args,
		}
	}
	var (
		results []*redis.Cmd
		err     error
	)
	switch {
	case len(calls) == 0: // group messages only
	case q.batches != nil:
		results, err = q.callAll(ctx, calls)
	default:
		results, err = runScripts(ctx, q.rdb, calls)
	}
	leave() // the scripts are done with the term; a durable publish waits on without it
	if err != nil {
		return message.Published{}, fmt.Errorf("queue: enqueue %d messages for %d clients: %w", len(batch.Messages), len(groups), err)
	}

	out := message.Published{Receipts: make([]message.Receipt, len(batch.Messages)), Replayed: true}
	for i, g := range groups {
		res, err := results[i].Slice()
		if err != nil {
			if strings.HasPrefix(err.Error(), "IDEMCONFLICT") {
				return message.Published{}, fmt.Errorf("queue: client %s: %s: %w", g.client,
					strings.TrimPrefix(err.Error(), "IDEMCONFLICT "), message.ErrIdempotencyConflict)
			}
			return message.Published{}, fmt.Errorf("queue: enqueue for %s: %w", g.client, err)
		}
		if len(res) != 4 {
			return message.Published{}, fmt.Errorf("queue: enqueue for %s: unexpected reply %v", g.client, res)
		}
		first, _ := res[1].(int64)
		if r, _ := res[2].(int64); r == 0 {
			out.Replayed = false
		}
		dropped, _ := res[3].(int64)
		out.Dropped += int(dropped)
		for j, idx := range g.indexes {
			out.Receipts[idx] = message.Receipt{To: g.client, ID: uint64(first) + uint64(j)}
		}
	}
	if hasGroup(batch.Messages) {
		if err := q.publishGroups(ctx, batch, digest, &out); err != nil {
			return message.Published{}, err
		}
	}
	if q.durable != nil {
		// A replay waits too: its first attempt may never have been
		// confirmed.
		if err := q.durable.confirm(ctx); err != nil {
			return message.Published{}, fmt.Errorf("queue: enqueue %d messages for %d clients: %w", len(batch.Messages), len(groups), err)
		}
	}
	return out, nil
}

// Read acknowledges every message of client up to since (removing them
// from the queue) and returns up to limit of those that follow: what a
// long-poll does. A cursor that does not belong to the client's current
// sequence acknowledges nothing and yields a Page with Reset set. Read
// never blocks; waiting is package poll's job.
func (q *Queue) Read(ctx context.Context, client string, since message.Cursor, limit int) (message.Page, error) {
	return q.ReadAfter(ctx, client, since, since.ID, limit)
}

// ReadAfter acknowledges up to ack and returns up to limit messages with
// ids after after: what a stream does, having sent messages that the
// browser has not acknowledged yet. ack's epoch is the one checked.
func (q *Queue) ReadAfter(ctx context.Context, client string, ack message.Cursor, after uint64, limit int) (message.Page, error) {
	if limit <= 0 {
		limit = 100
	}
	return q.read(ctx, client, ack, after, limit)
}

// Ack acknowledges every message of client up to ack, reading nothing.
// reset reports a cursor from another life of the sequence (nothing was
// acknowledged).
func (q *Queue) Ack(ctx context.Context, client string, ack message.Cursor) (reset bool, err error) {
	page, err := q.read(ctx, client, ack, ack.ID, 0)
	return page.Reset, err
}

// AckSoon acknowledges every message of client up to cursor, as Ack
// does, without waiting. With Options.Pipeline the acknowledgement rides
// in the next pipeline sent, if one goes within ackDelay; otherwise the
// acknowledgements that waited that long go together in a pipeline of
// their own. A poll that needs no read uses it. Nothing is lost when one
// fails: the client's next read acknowledges the same and more. onReset,
// when not nil, is called (from another goroutine) if Redis says cursor
// is not from the client's current sequence.
func (q *Queue) AckSoon(client string, cursor message.Cursor, onReset func()) {
	a := queuedAck{call: q.readCall(client, cursor, cursor.ID, 0), onReset: onReset, at: q.now()}
	q.ackMu.Lock()
	q.acks = append(q.acks, a)
	arm := !q.ackTimer
	q.ackTimer = true
	q.ackMu.Unlock()
	if arm {
		q.after(q.ackDelay, q.flushAcks)
	}
}

func afterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// ackDelay is how long an acknowledgement from AckSoon waits for a
// pipeline to ride in, or for others to share one.
const ackDelay = 5 * time.Millisecond

// queuedAck is an acknowledgement from AckSoon.
type queuedAck struct {
	call    scriptCall
	onReset func()
	at      time.Time // when AckSoon queued it
}

// done reads the reply to a's call.
func (a queuedAck) done(cmd *redis.Cmd) {
	if a.onReset == nil {
		return
	}
	if res, err := cmd.Slice(); err == nil && len(res) == 4 {
		if reset, _ := res[2].(int64); reset == 1 {
			a.onReset()
		}
	}
}

// sendAcks sends calls and acks in one pipeline, hands each ack its
// reply, and returns the calls' replies. It appends to calls.
func sendAcks(ctx context.Context, rdb Redis, calls []scriptCall, acks []queuedAck) []*redis.Cmd {
	n := len(calls)
	for _, a := range acks {
		calls = append(calls, a.call)
	}
	cmds := execScripts(ctx, rdb, calls)
	for i, a := range acks {
		a.done(cmds[n+i])
	}
	return cmds[:n]
}

// takeAcks returns up to max of the acknowledgements AckSoon gathered,
// oldest first, and forgets them. What it leaves waits for the next
// pipeline or flush.
func (q *Queue) takeAcks(max int) []queuedAck {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	n := min(max, len(q.acks))
	calls := q.acks[:n:n]
	q.acks = q.acks[n:]
	if len(q.acks) == 0 {
		q.acks = nil
	}
	return calls
}

// flushAcks runs ackDelay after AckSoon found no flush planned: it sends
// the acknowledgements no pipeline took once the oldest has waited
// ackDelay, and otherwise plans itself again for then. One flush at a
// time: while one is on its way (as long as pipelineTimeout when Redis
// does not answer), the next waits. Under steady load the pipelines take
// every acknowledgement, and it sends nothing.
func (q *Queue) flushAcks() {
	for {
		q.ackMu.Lock()
		if len(q.acks) == 0 {
			q.ackTimer = false
			q.ackMu.Unlock()
			return
		}
		if wait := q.ackDelay - q.now().Sub(q.acks[0].at); wait > 0 {
			q.ackMu.Unlock()
			q.after(wait, q.flushAcks)
			return
		}
		acks := q.acks
		q.acks = nil
		q.ackMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
		sendAcks(ctx, q.rdb, nil, acks)
		cancel()
	}
}

// readCall is a call of read.lua (see there).
func (q *Queue) readCall(client string, ack message.Cursor, after uint64, limit int) scriptCall {
	return scriptCall{
		script: readScript,
		keys:   []string{q.metaKey(client), q.listKey(client)},
		args:   []any{ack.Epoch, ack.ID, after, limit, seconds(q.opts.TTL), q.now().UnixMilli(), false},
	}
}

func (q *Queue) read(ctx context.Context, client string, ack message.Cursor, after uint64, limit int) (message.Page, error) {
	res, err := q.call(ctx, q.readCall(client, ack, after, limit)).Slice()
	if err != nil {
		return message.Page{}, fmt.Errorf("queue: read %s: %w", client, err)
	}
	page, err := parsePage(res, after)
	if err != nil {
		return message.Page{}, fmt.Errorf("queue: read %s: %w", client, err)
	}
	if q.durable != nil && len(page.Messages) > 0 {
		// Nothing less durable than an acknowledged publish is shown to a
		// browser: the messages read were written before the read, so a
		// confirmation begun after it covers them (see confirmer). After
		// a failover to a replica that confirmed, the new primary then
		// holds every message any page has seen.
		if err := q.durable.confirm(ctx); err != nil {
			return message.Page{}, fmt.Errorf("queue: read %s: %w", client, err)
		}
	}
	return page, nil
}

// parsePage turns read.lua's reply into a Page for a read after id after.
func parsePage(res []any, after uint64) (message.Page, error) {
	if len(res) != 4 {
		return message.Page{}, fmt.Errorf("unexpected reply %v", res)
	}
	epoch, _ := res[0].(string)
	start64, _ := res[1].(int64)
	reset, _ := res[2].(int64)
	entries, _ := res[3].([]any)
	start := uint64(start64)

	page := message.Page{Reset: reset == 1, Messages: make([]message.Queued, 0, len(entries))}
	for i, e := range entries {
		s, _ := e.(string)
		m, err := decodeEntry(s, start+uint64(i))
		if err != nil {
			return message.Page{}, err
		}
		page.Messages = append(page.Messages, m)
	}
	page.Next = message.Cursor{Epoch: epoch, ID: start - 1 + uint64(len(entries))}
	if !page.Reset && after > 0 && start > after+1 {
		page.Gap = message.Range{First: after + 1, Last: start - 1}
	}
	return page, nil
}

// decodeEntry reads a stored entry, "<publish ms> <message JSON>".
func decodeEntry(s string, id uint64) (message.Queued, error) {
	ms, js, ok := strings.Cut(s, " ")
	pub, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return message.Queued{}, fmt.Errorf("corrupt entry %q", truncate(s))
	}
	return message.Queued{ID: id, JSON: []byte(js), Published: time.UnixMilli(pub)}, nil
}

// DecodeWake reads a wake-up payload (see enqueue.lua) for a poll at
// since: when it carries the messages that follow since directly, it
// returns them as the page such a poll's read would (at most limit), and
// ok. Otherwise (other ids, another epoch, no entries) the poll must read
// the queue.
func (q *Queue) DecodeWake(payload string, since message.Cursor, limit int) (page message.Page, ok bool) {
	if q.opts.Durability.enabled() {
		return message.Page{}, false // a read confirms durability; the wake-up cannot
	}
	epoch, first, entries, ok := parseWake(payload)
	if !ok || first != since.ID+1 || (since.Epoch != "" && since.Epoch != epoch) {
		return message.Page{}, false
	}
	for i := 0; entries != "" && len(page.Messages) < max(limit, 1); i++ {
		var line string
		line, entries, _ = strings.Cut(entries, "\n")
		m, err := decodeEntry(line, first+uint64(i))
		if err != nil {
			return message.Page{}, false
		}
		page.Messages = append(page.Messages, m)
	}
	if len(page.Messages) == 0 {
		return message.Page{}, false
	}
	page.Next = message.Cursor{Epoch: epoch, ID: page.Messages[len(page.Messages)-1].ID}
	return page, true
}

// WakeEnd returns the cursor of the last message a wake-up's payload (see
// enqueue.lua) announces, when it carries the messages (so their number is
// known); ok is false otherwise.
func (q *Queue) WakeEnd(payload string) (end message.Cursor, ok bool) {
	epoch, first, entries, ok := parseWake(payload)
	if !ok || epoch == "" || entries == "" {
		return message.Cursor{}, false
	}
	// Entries hold compact JSON: a line feed only ever separates two.
	return message.Cursor{Epoch: epoch, ID: first + uint64(strings.Count(entries, "\n"))}, true
}

// parseWake splits a wake-up's payload, "EPOCH FIRST\nENTRIES" (see
// enqueue.lua); ok is false when it has no entries part or FIRST is not
// a number.
func parseWake(payload string) (epoch string, first uint64, entries string, ok bool) {
	head, entries, found := strings.Cut(payload, "\n")
	epoch, firstText, _ := strings.Cut(head, " ")
	first, err := strconv.ParseUint(firstText, 10, 64)
	return epoch, first, entries, found && err == nil
}

// batchDigest identifies a batch's messages for its idempotency record,
// which a retry must match: the first 128 bits of a SHA-256 over every
// message in order, recipient and payload each prefixed with its length,
// so that no two batches hash the same bytes. A group message has no
// recipient (length 0, which no client id has) and its group and except
// follow, each prefixed with its length: a batch without one hashes as
// before groups existed.
func batchDigest(msgs []message.Message) string {
	h := sha256.New()
	var n []byte
	for _, m := range msgs {
		n = binary.AppendUvarint(n[:0], uint64(len(m.To)))
		h.Write(n)
		io.WriteString(h, m.To)
		if m.Group != "" {
			for _, s := range []string{m.Group, m.Except} {
				n = binary.AppendUvarint(n[:0], uint64(len(s)))
				h.Write(n)
				io.WriteString(h, s)
			}
		}
		n = binary.AppendUvarint(n[:0], uint64(len(m.Data)))
		h.Write(n)
		h.Write(m.Data)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// group is one client's share of a batch: indexes into batch.Messages.
type group struct {
	client  string
	indexes []int
}

// groupByClient splits the direct messages by recipient, keeping the
// order of first appearance and, within a client, the batch's order.
// Group messages are left out.
func groupByClient(msgs []message.Message) []group {
	pos := make(map[string]int)
	var groups []group
	for i, m := range msgs {
		if m.Group != "" {
			continue
		}
		g, ok := pos[m.To]
		if !ok {
			g = len(groups)
			pos[m.To] = g
			groups = append(groups, group{client: m.To})
		}
		groups[g].indexes = append(groups[g].indexes, i)
	}
	return groups
}

// hasGroup reports whether msgs hold a group message.
func hasGroup(msgs []message.Message) bool {
	for _, m := range msgs {
		if m.Group != "" {
			return true
		}
	}
	return false
}

type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// ErrDurabilityUnsupported: Redis cannot give the configured durability.
var ErrDurabilityUnsupported = errors.New("durability not supported by this Redis")

// CheckDurability verifies at startup that Redis can give what d asks
// for: WAITAOF needs Redis 7.2 or later and appendonly yes.
func (q *Queue) CheckDurability(ctx context.Context, info func(ctx context.Context, section string) (string, error)) error {
	if !q.opts.Durability.AOF {
		return nil
	}
	server, err := info(ctx, "server")
	if err != nil {
		return fmt.Errorf("queue: reading the Redis version: %w", err)
	}
	version := infoField(server, "redis_version")
	if !atLeast(version, 7, 2) {
		return fmt.Errorf("-durable-aof needs WAITAOF, which Redis %s lacks: use Redis 7.2 or later, or -durable-replicas alone: %w",
			version, ErrDurabilityUnsupported)
	}
	persistence, err := info(ctx, "persistence")
	if err != nil {
		return fmt.Errorf("queue: reading the Redis persistence settings: %w", err)
	}
	if infoField(persistence, "aof_enabled") != "1" {
		return fmt.Errorf("-durable-aof needs Redis with appendonly yes: %w", ErrDurabilityUnsupported)
	}
	return nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// atLeast compares a dotted version with major.minor.
func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// runScripts runs calls in one pipeline (see execScripts), again those a
// Redis Cluster refused (see retryRefused), and fails if any call failed
// for a reason other than the script's own refusal (IDEMCONFLICT), which
// stays in that call's Cmd.
func runScripts(ctx context.Context, rdb Redis, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := execScripts(ctx, rdb, calls)
	retryRefused(ctx, rdb, calls, cmds, func(ctx context.Context, calls []scriptCall) []*redis.Cmd {
		return execScripts(ctx, rdb, calls)
	})
	return cmds, firstError(cmds)
}

// firstError returns the first error of cmds that is not a script's own
// refusal.
func firstError(cmds []*redis.Cmd) error {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !isScriptError(err) {
			return err
		}
	}
	return nil
}

// execScripts runs calls in one pipeline with EVALSHA, then once more with
// EVAL for those Redis did not know (after a restart or SCRIPT FLUSH), and
// returns a Cmd per call, each with its own result or error.
func execScripts(ctx context.Context, rdb Redis, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 1 {
		c := calls[0]
		cmds[0] = c.script.Run(ctx, rdb, c.keys, c.args...)
		return cmds
	}
	pipe := rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		for _, i := range again {
			c := calls[i]
			cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}

// isScriptError reports an error raised by the script itself (a reply
// error such as IDEMCONFLICT) rather than by the connection.
func isScriptError(err error) bool {
	return redis.HasErrorPrefix(err, "IDEMCONFLICT") || redis.HasErrorPrefix(err, "GROUPBUSY")
}

// newEpoch returns 8 random characters of a-z 0-9 (about 41 bits).
func newEpoch() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("queue: new epoch: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:]), nil
}

func seconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
