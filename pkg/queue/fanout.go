package queue

// Fanning a group message out: a copy in each member's own queue.
//
// A group message is recorded as a job in its group's list of jobs
// (group.lua, job), with a seq that only grows. The jobs of one group
// are fanned out one after the other, in order, by whichever node holds
// the group's lease: page by page of the group's members (in order of
// their ids), each page in script calls of at most memberChunk members
// (fanout.lua), after each page a note in the group's hash of how far
// the job got. A member's hash keeps the seq of the last job it has a
// copy of, so a job fanned out again from an earlier point (its node
// died after a page's copies, before its note) or by two nodes at once
// (a lease that ran out) makes no second copy; and since every job is
// done before the next begins, a member that has job N's copy has had
// every earlier one.
//
// The node that accepted a group message fans it out itself (and the
// jobs of the group before it, if their nodes are gone) and answers the
// publish once every member has its copy: a 200 means every copy is
// written. When another node holds the lease, it waits for that node.
// A node that dies leaves the job in Redis; the publisher's retry with
// its idempotency key, the next group message, or any node's RunGroups
// (within pendingAfter plus resumeEvery) takes it up where it stopped.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/message"
)

var (
	//go:embed pending.lua
	pendingSrc    string
	pendingScript = redis.NewScript(pendingSrc)
)

const (
	// fanoutPage is how many members one page of a fan-out reads.
	fanoutPage = 1000
	// leaseTTL is how long a node holds a group's lease without a page
	// done; a node that died is taken over this long after its last
	// page.
	leaseTTL = 2 * time.Second
	// pendingAfter is how old a group's oldest job must be before
	// RunGroups looks at it: the node that accepted it is on it until
	// then, or its lease says so.
	pendingAfter = 3 * time.Second
	// resumeEvery is how often RunGroups looks.
	resumeEvery = time.Second
	// awaitMax is the longest pause between two looks of a publish
	// waiting for another node to fan its job out.
	awaitMax = 50 * time.Millisecond
)

// errLeaseLost: another node took the group's lease over (this one was
// too slow); it goes on with the job.
var errLeaseLost = errors.New("queue: the group's lease went to another node")

// GroupMaxLag is how far behind a group's fan-outs may be, from its
// oldest message waiting, before it refuses new ones with ErrGroupBusy.
const GroupMaxLag = 3 * time.Second

// ErrGroupBusy: the group's fan-outs are more than GroupMaxLag behind
// (more is published to it than its members take in, or a node died
// holding one until another takes it over); the message was not
// recorded. Retry after a moment.
var ErrGroupBusy = errors.New("the group's earlier messages are still being fanned out")

// errJobLost: Redis no longer has a group message that was recorded
// (it lost its data); nothing says it reached every member.
var errJobLost = errors.New("queue: the group message was lost by Redis before it reached every member")

func (q *Queue) pendingKey() string { return q.opts.Prefix + "{#gq}:p" }

func (q *Queue) pendingCall(args ...any) scriptCall {
	return scriptCall{script: pendingScript, keys: []string{q.pendingKey()}, args: args}
}

// noExcept stands for no except in a job: no client id has a ~.
const noExcept = "~"

// job is a group message in its group's list of jobs.
type job struct {
	seq     int64
	ms      string // when it was accepted, unix ms
	except  string // "" when none
	payload string
}

func parseJob(s string) (job, error) {
	f := strings.SplitN(s, " ", 4)
	if len(f) != 4 {
		return job{}, fmt.Errorf("corrupt job %q", truncate(s))
	}
	seq, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return job{}, fmt.Errorf("corrupt job %q", truncate(s))
	}
	j := job{seq: seq, ms: f[1], except: f[2], payload: f[3]}
	if j.except == noExcept {
		j.except = ""
	}
	return j, nil
}

// fanned is what a job's fan-out did.
type fanned struct {
	copies  int // members with a copy
	dropped int // older entries the queue cap pushed out
}

// publishGroups records and fans out the group messages of batch, in
// order, and fills in their receipts. digest is the whole batch's.
func (q *Queue) publishGroups(ctx context.Context, batch message.Batch, digest string, out *message.Published) error {
	idemTTL := 0
	if batch.IdempotencyKey != "" {
		idemTTL = seconds(q.opts.IdempotencyTTL)
	}
	for i, m := range batch.Messages {
		if m.Group == "" {
			continue
		}
		seq, replayed, members, err := q.recordJob(ctx, m, batch.IdempotencyKey, digest, idemTTL)
		if err != nil {
			return err
		}
		if !replayed {
			out.Replayed = false
		}
		var f fanned
		if seq > 0 {
			if f, err = q.awaitJob(ctx, m.Group, seq, members); err != nil {
				return fmt.Errorf("queue: group %s: %w", m.Group, err)
			}
		}
		out.Receipts[i] = message.Receipt{Group: m.Group, Members: f.copies}
		if !replayed {
			out.Copies += f.copies
			out.Dropped += f.dropped
		}
	}
	return nil
}

// recordJob records m as a job of its group, or finds the job a first
// attempt with the same idempotency key recorded. seq is 0 when the
// group had no member (nothing was recorded).
func (q *Queue) recordJob(ctx context.Context, m message.Message, key, digest string, idemTTL int) (seq int64, replayed bool, members int, err error) {
	now := q.now()
	except := m.Except
	if except == "" {
		except = noExcept
	}
	cmds, err := q.runAll(ctx, []scriptCall{
		q.groupCall(m.Group, key, "job", itoa(now.UnixMicro()), itoa(now.UnixMilli()), except, []byte(m.Data), digest, idemTTL,
			GroupMaxLag.Milliseconds()),
		q.pendingCall("add", m.Group, itoa(now.UnixMilli())),
	})
	if err != nil {
		return 0, false, 0, fmt.Errorf("queue: group %s: %w", m.Group, err)
	}
	res, err := cmds[0].Slice()
	if err != nil {
		if strings.HasPrefix(err.Error(), "IDEMCONFLICT") {
			return 0, false, 0, fmt.Errorf("queue: group %s: %s: %w", m.Group,
				strings.TrimPrefix(err.Error(), "IDEMCONFLICT "), message.ErrIdempotencyConflict)
		}
		if rest, ok := strings.CutPrefix(err.Error(), "GROUPBUSY "); ok {
			return 0, false, 0, fmt.Errorf("queue: group %s: %s: %w", m.Group, rest, ErrGroupBusy)
		}
		return 0, false, 0, fmt.Errorf("queue: group %s: %w", m.Group, err)
	}
	if len(res) != 3 {
		return 0, false, 0, fmt.Errorf("queue: group %s: unexpected reply %v", m.Group, res)
	}
	s, _ := res[0].(string)
	seq, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, 0, fmt.Errorf("queue: group %s: unexpected reply %v", m.Group, res)
	}
	r, _ := res[1].(int64)
	n, _ := res[2].(int64)
	return seq, r == 1, int(n), nil
}

// awaitJob returns once job seq of group is fanned out: by this node
// when the group's lease is free, else by the node holding it. members
// stands for the copies when the group no longer knows how many there
// were.
func (q *Queue) awaitJob(ctx context.Context, group string, seq int64, members int) (fanned, error) {
	pause := time.Millisecond
	for {
		state, copies, held, err := q.jobState(ctx, group, seq)
		if err != nil {
			return fanned{}, err
		}
		if state < 0 {
			return fanned{}, errJobLost
		}
		if state > 0 {
			if copies < 0 {
				copies = members
			}
			return fanned{copies: copies}, nil
		}
		if !held {
			f, mine, err := q.drain(ctx, group, seq)
			if err != nil {
				return fanned{}, err
			}
			if mine {
				return f, nil
			}
			continue
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fanned{}, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, awaitMax)
	}
}

// jobState reads whether job seq of group is fanned out (state 1), not
// yet (0) or lost (-1), with how many copies it made (-1: not known any
// more), and whether a node holds the group's lease.
func (q *Queue) jobState(ctx context.Context, group string, seq int64) (state, copies int, held bool, err error) {
	res, err := q.call(ctx, q.groupCall(group, "", "done", itoa(seq))).Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		return 0, 0, false, err
	}
	s, _ := res[0].(int64)
	c, _ := res[1].(int64)
	h, _ := res[2].(int64)
	return int(s), int(c), h == 1, nil
}

// drain takes the group's lease, when free, and fans its jobs out in
// order: up to job upTo (then mine reports that this node did it, and
// f is what it did), or every job when upTo is 0.
func (q *Queue) drain(ctx context.Context, group string, upTo int64) (f fanned, mine bool, err error) {
	token, err := newEpoch()
	if err != nil {
		return fanned{}, false, err
	}
	held, err := q.call(ctx, q.groupCall(group, "", "claim", token, leaseTTL.Milliseconds())).Int()
	if err != nil || held == 0 {
		return fanned{}, false, err
	}
	defer q.releaseGroup(group, token)
	for {
		gen, j, at, n, err := q.head(ctx, group)
		if err != nil || j == nil || upTo > 0 && j.seq > upTo {
			return fanned{}, false, err
		}
		f, err := q.fanOut(ctx, group, token, gen, *j, at, n)
		if errors.Is(err, errLeaseLost) {
			return fanned{}, false, nil
		}
		if err != nil {
			return fanned{}, false, err
		}
		if err := q.call(ctx, q.groupCall(group, "", "finish", itoa(j.seq), f.copies)).Err(); err != nil {
			return fanned{}, false, err
		}
		if j.seq == upTo {
			return f, true, nil
		}
	}
}

// releaseGroup gives the group's lease up and, when no job is left, takes the
// group off the pending set (and puts it back should a job have come in
// between).
func (q *Queue) releaseGroup(group, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	left, err := q.call(ctx, q.groupCall(group, "", "release", token)).Int()
	if err != nil || left > 0 {
		return
	}
	if q.call(ctx, q.pendingCall("remove", group)).Err() != nil {
		return
	}
	if _, j, _, _, err := q.head(ctx, group); err == nil && j != nil {
		_ = q.call(ctx, q.pendingCall("add", group, itoa(q.now().UnixMilli()))).Err()
	}
}

// head reads the group's next job (nil when none), its gen, and how far
// the job got: at is "SEQ MEMBER", n the copies so far.
func (q *Queue) head(ctx context.Context, group string) (gen string, j *job, at string, n int, err error) {
	res, err := q.call(ctx, q.groupCall(group, "", "head")).Slice()
	if err == nil && len(res) != 5 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		return "", nil, "", 0, fmt.Errorf("queue: group %s: %w", group, err)
	}
	gen, _ = res[0].(string)
	at, _ = res[2].(string)
	ns, _ := res[3].(string)
	n, _ = strconv.Atoi(ns)
	s, _ := res[4].(string)
	if s == "" {
		return gen, nil, at, n, nil
	}
	parsed, err := parseJob(s)
	if err != nil {
		return "", nil, "", 0, fmt.Errorf("queue: group %s: %w", group, err)
	}
	return gen, &parsed, at, n, nil
}

// fanOut writes job j's copies, page after page of the group's members,
// from where at says it got to.
func (q *Queue) fanOut(ctx context.Context, group, token, gen string, j job, at string, n int) (fanned, error) {
	seq := itoa(j.seq)
	var f fanned
	after, ok := strings.CutPrefix(at, seq+" ")
	if ok {
		f.copies = n
	} else {
		after = ""
	}
	for {
		v, _, names, err := q.membersPage(ctx, group, after, fanoutPage)
		if err != nil {
			return fanned{}, err
		}
		targets := names
		if j.except != "" {
			targets = make([]string, 0, len(names))
			for _, c := range names {
				if c != j.except {
					targets = append(targets, c)
				}
			}
		}
		have, dropped, gone, err := q.copyTo(ctx, group, gen, j, targets)
		if err != nil {
			return fanned{}, err
		}
		f.copies += have
		f.dropped += dropped
		if len(gone) > 0 {
			args := append([]any{"prune", v}, anys(gone)...)
			if err := q.call(ctx, q.groupCall(group, "", args...)).Err(); err != nil {
				return fanned{}, err
			}
		}
		if len(names) > 0 {
			after = names[len(names)-1]
		}
		held, err := q.call(ctx, q.groupCall(group, "", "progress", token, seq, after, have, leaseTTL.Milliseconds())).Int()
		if err != nil {
			return fanned{}, err
		}
		if held == 0 {
			return fanned{}, errLeaseLost
		}
		if len(names) < fanoutPage {
			return f, nil
		}
	}
}

// copyTo writes job j's copy to each of clients who is a member, and
// returns how many have it, how many older entries the cap dropped, and
// those that turned out not to be members.
func (q *Queue) copyTo(ctx context.Context, group, gen string, j job, clients []string) (have, dropped int, gone []string, err error) {
	if len(clients) == 0 {
		return 0, 0, nil, nil
	}
	wake := "PUBLISH"
	if q.opts.Sharded {
		wake = "SPUBLISH"
	}
	term := ""
	if p := q.opts.Primary; p != nil {
		if term, err = p.enter(ctx); err != nil {
			return 0, 0, nil, err
		}
		defer p.leave()
	}
	epochs, err := newEpoch()
	if err != nil {
		return 0, 0, nil, err
	}
	field, seq := groupField(group), itoa(j.seq)
	var calls []scriptCall
	for _, c := range q.chunks(clients) {
		args := make([]any, 0, 12+len(c))
		args = append(args, field, gen, seq, group, j.payload, j.ms, q.opts.Cap, seconds(q.opts.TTL),
			wake, term, q.opts.Prefix, epochs)
		args = append(args, anys(c)...)
		calls = append(calls, scriptCall{script: fanoutScript, keys: q.memberKeys(c), args: args})
	}
	cmds, err := q.runAll(ctx, calls)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, cmd := range cmds {
		res, err := cmd.Slice()
		if err == nil && len(res) != 4 {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if err != nil {
			return 0, 0, nil, err
		}
		h, _ := res[0].(int64)
		d, _ := res[2].(int64)
		have += int(h)
		dropped += int(d)
		left, _ := res[3].([]any)
		for _, x := range left {
			s, _ := x.(string)
			gone = append(gone, s)
		}
	}
	return have, dropped, gone, nil
}

// RunGroups completes the group messages that a node left half fanned
// out (it died, or lost Redis for longer than its publish's deadline):
// every resumeEvery it looks for groups whose oldest job is older than
// pendingAfter and fans their jobs out, unless a node holds their lease.
// Every node may run it; it blocks until ctx ends.
func (q *Queue) RunGroups(ctx context.Context) error {
	t := time.NewTicker(resumeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		q.resumeGroups(ctx)
	}
}

// resumeGroups is one look of RunGroups.
func (q *Queue) resumeGroups(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, pipelineTimeout)
	before := q.now().Add(-pendingAfter).UnixMilli()
	groups, err := q.call(lctx, q.pendingCall("due", itoa(before), 100)).StringSlice()
	cancel()
	if err != nil {
		return // Redis is away; the next look tries again
	}
	for _, g := range groups {
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _, _ = q.drain(gctx, g, 0)
		cancel()
	}
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
