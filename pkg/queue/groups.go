package queue

// Groups: who is in which group. A group message is fanned out to the
// members' own queues (fanout.go); this file keeps the memberships.
//
// A membership is written twice: in the client's meta hash, field
// "g:NAME" (member.lua), which fanout.lua reads and which expires with
// the client's queue; and in the group's sorted set of members
// (group.lua), which the fan-out pages through. The client's field is
// what counts: a join writes it first and a leave removes it first, so
// that a group message accepted after either call returned finds it as
// the call left it; the set lists every member and perhaps some that
// have gone, which the fan-out finds and forgets.
//
// On a Redis Cluster the group's keys live on the slot of its hash tag
// {#g:NAME} (no client id has a #), and each member's on its own: the
// member side of a call is split by slot, one script call per slot
// (pipelined to each shard), and on one Redis by chunks of
// memberChunk clients.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed group.lua
	groupSrc string
	//go:embed member.lua
	memberSrc string
	//go:embed fanout.lua
	fanoutSrc string

	groupScript  = redis.NewScript(groupSrc)
	memberScript = redis.NewScript(expirySrc + memberSrc)
	fanoutScript = redis.NewScript(expirySrc + fanoutSrc)
)

const (
	// memberChunk is the most members one script call handles: a copy
	// costs Redis 7 to 15 µs (docs/performance.md, "Groups"), so a call
	// stays within about 1.5 ms, and never holds Redis for long whatever
	// the group's size.
	memberChunk = 100
	// MaxMembersPerCall is the most clients one Join or Leave takes.
	MaxMembersPerCall = 1000
	// MaxPage is the most names one page of Members or GroupsOf holds.
	MaxPage = 1000
)

// errGroupChanged: the group was made anew (its last member left) while
// a join was under way; the join goes again.
var errGroupChanged = errors.New("queue: the group was made anew during the join")

func (q *Queue) groupTag(group string) string { return q.opts.Prefix + "{#g:" + group + "}" }

// groupKeys are group.lua's KEYS; idem is the publish's idempotency key
// ("" when none).
func (q *Queue) groupKeys(group, idem string) []string {
	t := q.groupTag(group)
	return []string{t + ":h", t + ":m", t + ":j", t + ":r", t + ":l", t + ":i:" + idem}
}

func groupField(group string) string { return "g:" + group }

func (q *Queue) groupCall(group, idem string, args ...any) scriptCall {
	return scriptCall{script: groupScript, keys: q.groupKeys(group, idem), args: args}
}

// runAll runs calls, pipelined when the queue pipelines, and again those
// a Redis Cluster refused; see runScripts.
func (q *Queue) runAll(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	if q.batches != nil {
		return q.callAll(ctx, calls)
	}
	return runScripts(ctx, q.rdb, calls)
}

// chunks splits clients into the sets one member-side script call may
// take: on one Redis, runs of memberChunk in order; on a Cluster, the
// clients of one slot (in order), memberChunk at most.
func (q *Queue) chunks(clients []string) [][]string {
	var out [][]string
	if !q.opts.Sharded {
		for c := range slices.Chunk(clients, memberChunk) {
			out = append(out, c)
		}
		return out
	}
	bySlot := map[int]int{} // slot → index in out of its open chunk
	for _, c := range clients {
		s := slot(c)
		i, ok := bySlot[s]
		if !ok || len(out[i]) == memberChunk {
			i = len(out)
			bySlot[s] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], c)
	}
	return out
}

// memberKeys are the meta hash and list of each client, in pairs.
func (q *Queue) memberKeys(clients []string) []string {
	keys := make([]string, 0, 2*len(clients))
	for _, c := range clients {
		keys = append(keys, q.metaKey(c), q.listKey(c))
	}
	return keys
}

// Join adds clients to group: group messages accepted from when it
// returns reach them (one accepted while it runs may or may not). A
// client already in the group stays as it is. Joining refreshes the
// expiry of each client's keys, as a poll does, and gives a client
// without a sequence an empty one. It returns how many clients were not
// members before, and how many members the group has.
func (q *Queue) Join(ctx context.Context, group string, clients []string) (added, members int, err error) {
	clients = distinct(clients)
	for range 3 {
		added, members, err = q.join(ctx, group, clients)
		if !errors.Is(err, errGroupChanged) {
			break
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("queue: join %d clients to group %s: %w", len(clients), group, err)
	}
	return added, members, nil
}

func (q *Queue) join(ctx context.Context, group string, clients []string) (added, members int, err error) {
	gen, err := newEpoch()
	if err != nil {
		return 0, 0, err
	}
	res, err := q.call(ctx, q.groupCall(group, "", "open", gen)).Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	gen, _ = res[0].(string)
	seq, _ := res[1].(string)

	epochs, err := newEpoch()
	if err != nil {
		return 0, 0, err
	}
	field, ttl, now := groupField(group), seconds(q.opts.TTL), q.now().UnixMilli()
	var calls []scriptCall
	for _, c := range q.chunks(clients) {
		calls = append(calls, scriptCall{script: memberScript, keys: q.memberKeys(c),
			args: []any{"join", field, gen, seq, ttl, now, epochs}})
	}
	cmds, err := q.runAll(ctx, calls)
	if err != nil {
		return 0, 0, err
	}
	for _, cmd := range cmds {
		flags, err := cmd.Int64Slice()
		if err != nil {
			return 0, 0, err
		}
		for _, f := range flags {
			added += int(f)
		}
	}

	args := make([]any, 0, 2+len(clients))
	args = append(args, "add", gen)
	for _, c := range clients {
		args = append(args, c)
	}
	n, err := q.call(ctx, q.groupCall(group, "", args...)).Int()
	if err != nil {
		return 0, 0, err
	}
	if n < 0 {
		return 0, 0, errGroupChanged
	}
	return added, n, nil
}

// Leave removes clients from group: group messages accepted from when it
// returns do not reach them. It returns how many were members, and how
// many members the group has left.
func (q *Queue) Leave(ctx context.Context, group string, clients []string) (removed, members int, err error) {
	clients = distinct(clients)
	field := groupField(group)
	var calls []scriptCall
	for _, c := range q.chunks(clients) {
		calls = append(calls, scriptCall{script: memberScript, keys: q.memberKeys(c), args: []any{"leave", field}})
	}
	cmds, err := q.runAll(ctx, calls)
	if err == nil {
		for _, cmd := range cmds {
			flags, e := cmd.Int64Slice()
			if e != nil {
				err = e
				break
			}
			for _, f := range flags {
				removed += int(f)
			}
		}
	}
	if err == nil {
		args := make([]any, 0, 1+len(clients))
		args = append(args, "remove")
		for _, c := range clients {
			args = append(args, c)
		}
		members, err = q.call(ctx, q.groupCall(group, "", args...)).Int()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("queue: %d clients leave group %s: %w", len(clients), group, err)
	}
	return removed, members, nil
}

// Page is one page of a group's members or of a client's groups, in
// byte order of the names.
type Page struct {
	// Names on this page, at most the limit asked for.
	Names []string
	// Total counts them all (a group's members may include some whose
	// membership expired and that the next group message forgets).
	Total int
	// Next, when not empty, is the name to ask for the next page after;
	// empty on the last page.
	Next string
}

// Members returns up to limit (at most MaxPage) of group's members whose
// ids sort after after ("" for the first page).
func (q *Queue) Members(ctx context.Context, group, after string, limit int) (Page, error) {
	limit = min(max(limit, 1), MaxPage)
	_, total, names, err := q.membersPage(ctx, group, after, limit)
	if err != nil {
		return Page{}, fmt.Errorf("queue: members of group %s: %w", group, err)
	}
	return page(names, total, limit), nil
}

// membersPage reads a page of the group's member set, and the group's
// join counter v as it was then (see group.lua, prune).
func (q *Queue) membersPage(ctx context.Context, group, after string, limit int) (v string, total int, names []string, err error) {
	res, err := q.call(ctx, q.groupCall(group, "", "page", after, limit)).Slice()
	if err != nil {
		return "", 0, nil, err
	}
	if len(res) != 3 {
		return "", 0, nil, fmt.Errorf("unexpected reply %v", res)
	}
	v, _ = res[0].(string)
	n, _ := res[1].(int64)
	list, _ := res[2].([]any)
	names = make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		names = append(names, s)
	}
	return v, int(n), names, nil
}

// GroupsOf returns up to limit (at most MaxPage) of client's groups whose
// names sort after after ("" for the first page). Redis holds a client's
// memberships unsorted, in its hash: GroupsOf reads them all, a thousand
// at a time (HSCAN), so that no call holds Redis long however many
// groups the client is in, and sorts them here.
func (q *Queue) GroupsOf(ctx context.Context, client, after string, limit int) (Page, error) {
	limit = min(max(limit, 1), MaxPage)
	seen := map[string]bool{} // HSCAN may return a field twice
	var all []string
	for cursor, more := uint64(0), true; more; more = cursor != 0 {
		pipe := q.rdb.Pipeline()
		scan := pipe.HScan(ctx, q.metaKey(client), cursor, "g:*", 1000)
		if _, err := pipe.Exec(ctx); err != nil {
			return Page{}, fmt.Errorf("queue: groups of %s: %w", client, err)
		}
		var fields []string
		fields, cursor = scan.Val()
		for i := 0; i+1 < len(fields); i += 2 { // field, value
			if g, ok := strings.CutPrefix(fields[i], "g:"); ok && !seen[g] {
				seen[g] = true
				all = append(all, g)
			}
		}
	}
	slices.Sort(all)
	start, _ := slices.BinarySearch(all, after)
	if start < len(all) && all[start] == after {
		start++
	}
	names := all[start:min(start+limit, len(all))]
	return page(names, len(all), limit), nil
}

func page(names []string, total, limit int) Page {
	p := Page{Names: names, Total: total}
	if len(names) == limit {
		p.Next = names[len(names)-1]
	}
	return p
}

// distinct returns clients without repeats, in order of first appearance.
func distinct(clients []string) []string {
	seen := make(map[string]bool, len(clients))
	out := clients[:0:0]
	for _, c := range clients {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// slot is Redis Cluster's hash slot of a key whose hash tag is tag:
// CRC16 (XMODEM) modulo 16384.
func slot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// itoa formats a seq for a script argument.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
