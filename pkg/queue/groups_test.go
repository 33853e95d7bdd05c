package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

func toGroup(group, except, s string) message.Message {
	return message.Message{Group: group, Except: except, Data: message.EncodeText(s)}
}

// delivered is a member's queue as a browser would read it: each
// message's group ("" for a direct one) and text.
type delivered struct {
	ID    uint64
	Group string `json:"group"`
	Data  string `json:"data"`
}

func readAll(t *testing.T, q *queue.Queue, client string) []delivered {
	t.Helper()
	page, err := q.Read(context.Background(), client, message.Cursor{}, 1000)
	if err != nil {
		t.Fatalf("Read(%s): %v", client, err)
	}
	out := make([]delivered, len(page.Messages))
	for i, m := range page.Messages {
		if err := json.Unmarshal(m.JSON, &out[i]); err != nil {
			t.Fatalf("Read(%s): %s: %v", client, m.JSON, err)
		}
		out[i].ID = m.ID
	}
	return out
}

var jsonUnmarshal = json.Unmarshal

func texts(ds []delivered) string {
	var s []string
	for _, d := range ds {
		if d.Group != "" {
			s = append(s, d.Group+"/"+d.Data)
		} else {
			s = append(s, d.Data)
		}
	}
	return strings.Join(s, " ")
}

func join(t *testing.T, q *queue.Queue, group string, clients ...string) {
	t.Helper()
	if _, _, err := q.Join(context.Background(), group, clients); err != nil {
		t.Fatalf("Join(%s, %v): %v", group, clients, err)
	}
}

func TestGroupMessage(t *testing.T) { onBothRedises(t, groupMessage) }

func groupMessage(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{})
	added, members, err := q.Join(ctx, "room:42", []string{"alice", "bob", "carol", "bob"})
	if err != nil || added != 3 || members != 3 {
		t.Fatalf("Join = %d added, %d members, %v; want 3, 3", added, members, err)
	}
	if added, members, _ := q.Join(ctx, "room:42", []string{"bob", "dave"}); added != 1 || members != 4 {
		t.Fatalf("Join again = %d added, %d members; want 1 (dave), 4", added, members)
	}
	join(t, q, "lobby", "bob")
	if p, err := q.GroupsOf(ctx, "bob", "", 10); err != nil || strings.Join(p.Names, " ") != "lobby room:42" || p.Total != 2 {
		t.Fatalf("GroupsOf(bob) = %+v, %v; want lobby room:42", p, err)
	}
	if _, err := q.Publish(ctx, batchOf(text("bob", "direct before"))); err != nil {
		t.Fatal(err)
	}

	pub, err := q.Publish(ctx, batchOf(text("carol", "direct"), toGroup("room:42", "alice", "hi room"), toGroup("nobody", "", "hello?")))
	if err != nil || pub.Replayed {
		t.Fatalf("Publish = %v, replayed %v", err, pub.Replayed)
	}
	if want := "[{carol 1} {group room:42 3} {group nobody 0}]"; fmt.Sprint(pub.Receipts) != want {
		t.Fatalf("receipts = %v; want %s", pub.Receipts, want)
	}
	if pub.Copies != 3 {
		t.Errorf("Copies = %d; want 3", pub.Copies)
	}
	for client, want := range map[string]string{
		"alice": "",
		"bob":   "direct before room:42/hi room",
		"carol": "direct room:42/hi room",
		"dave":  "room:42/hi room",
	} {
		if got := texts(readAll(t, q, client)); got != want {
			t.Errorf("%s's queue = %q; want %q", client, got, want)
		}
	}
	// Each copy is an ordinary message of its member's sequence.
	if got := readAll(t, q, "bob"); got[1].ID != 2 {
		t.Errorf("bob's copy has id %d; want 2", got[1].ID)
	}

	removed, members, err := q.Leave(ctx, "room:42", []string{"dave", "zed"})
	if err != nil || removed != 1 || members != 3 {
		t.Fatalf("Leave = %d removed, %d members, %v; want 1, 3", removed, members, err)
	}
	pub, err = q.Publish(ctx, batchOf(toGroup("room:42", "", "after dave left")))
	if err != nil || pub.Receipts[0].Members != 3 {
		t.Fatalf("Publish after a leave = %v, %v; want 3 members", pub.Receipts, err)
	}
	if got := texts(readAll(t, q, "dave")); got != "room:42/hi room" {
		t.Errorf("dave's queue after he left = %q; want only the first", got)
	}
	if got := texts(readAll(t, q, "alice")); got != "room:42/after dave left" {
		t.Errorf("alice's queue = %q", got)
	}
}

// Members and a client's groups come in pages, in order of the names.
func TestGroupPages(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	var clients []string
	for i := range 2500 {
		clients = append(clients, fmt.Sprintf("c%04d", i))
	}
	for c := range slices.Chunk(clients, queue.MaxMembersPerCall) {
		join(t, q, "big", c...)
	}
	var got []string
	after := ""
	for range 10 {
		p, err := q.Members(ctx, "big", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 2500 {
			t.Fatalf("Members total = %d; want 2500", p.Total)
		}
		got = append(got, p.Names...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if !slices.Equal(got, clients) {
		t.Fatalf("Members in pages = %d names; want the 2500 in order", len(got))
	}
	if p, _ := q.Members(ctx, "nobody", "", 10); p.Total != 0 || len(p.Names) != 0 || p.Next != "" {
		t.Errorf("Members of an unknown group = %+v; want none", p)
	}

	for i := range 30 {
		join(t, q, fmt.Sprintf("g%02d", i), "alice")
	}
	p, err := q.GroupsOf(ctx, "alice", "g09", 5)
	if err != nil || p.Total != 30 || strings.Join(p.Names, " ") != "g10 g11 g12 g13 g14" || p.Next != "g14" {
		t.Fatalf("GroupsOf(alice, after g09, 5) = %+v, %v", p, err)
	}
	if p, _ := q.GroupsOf(ctx, "alice", "g27", 5); strings.Join(p.Names, " ") != "g28 g29" || p.Next != "" {
		t.Fatalf("last page = %+v", p)
	}
}

// A client's memberships live and die with its queue: a client that
// neither polls nor is published to directly for the queue's TTL leaves
// its groups (group messages do not keep it), and the group forgets it
// at its next message.
func TestMembershipExpiresWithTheQueue(t *testing.T) {
	ctx := context.Background()
	mr, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{TTL: time.Hour})
	now := time.Now()
	queue.SetClock(q, func() time.Time { return now }, func(time.Duration, func()) {})
	join(t, q, "room", "alice", "bob")
	for range 3 {
		now = now.Add(40 * time.Minute) // the node's clock and Redis's
		mr.FastForward(40 * time.Minute)
		if _, err := q.Read(ctx, "bob", message.Cursor{}, 10); err != nil { // bob polls
			t.Fatal(err)
		}
		if _, err := q.Publish(ctx, batchOf(toGroup("room", "", "tick"))); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := q.Publish(ctx, batchOf(toGroup("room", "", "after")))
	if err != nil || pub.Receipts[0].Members != 1 {
		t.Fatalf("Publish = %v, %v; want 1 member (bob)", pub.Receipts, err)
	}
	if p, _ := q.Members(ctx, "room", "", 10); strings.Join(p.Names, " ") != "bob" {
		t.Errorf("members = %v; want [bob]", p.Names)
	}
	if got := readAll(t, q, "alice"); len(got) != 0 {
		t.Errorf("alice's queue = %v; want it expired", got)
	}
}

// A member whose queue is full loses the oldest copies, and its next
// poll is told (Cometbox-Gap), as for direct messages; every member's
// copies are acknowledged on their own.
func TestGroupCopiesCappedAndAcknowledgedPerMember(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Cap: 3})
	join(t, q, "room", "fast", "slow")
	var dropped int
	var last message.Cursor
	for i := 1; i <= 5; i++ {
		pub, err := q.Publish(ctx, batchOf(toGroup("room", "", fmt.Sprint(i))))
		if err != nil {
			t.Fatal(err)
		}
		dropped += pub.Dropped
		page, err := q.Read(ctx, "fast", last, 10) // fast acknowledges each
		if err != nil || len(page.Messages) != 1 {
			t.Fatalf("fast Read = %+v, %v", page, err)
		}
		last = page.Next
	}
	if dropped != 2 {
		t.Errorf("Dropped = %d; want 2 (slow's)", dropped)
	}
	page, err := q.Read(ctx, "slow", message.Cursor{ID: 1}, 10)
	if err != nil || fmt.Sprint(ids(page)) != "[3 4 5]" || page.Gap != (message.Range{First: 2, Last: 2}) {
		t.Fatalf("slow Read(1) = %v gap %v, %v; want [3 4 5] gap 2-2", ids(page), page.Gap, err)
	}
	if page, _ := q.Read(ctx, "fast", last, 10); len(page.Messages) != 0 {
		t.Errorf("fast has %v left after acknowledging everything", ids(page))
	}
}

// A retry with the batch's idempotency key makes no second copy; a
// reused key for another batch is refused.
func TestGroupIdempotentRetry(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	join(t, q, "room", "alice", "bob")
	batch := batchOf(text("carol", "c"), toGroup("room", "", "once"))
	batch.IdempotencyKey = "k1"
	first, err := q.Publish(ctx, batch)
	if err != nil || first.Replayed {
		t.Fatalf("Publish = %v, replayed %v", err, first.Replayed)
	}
	again, err := q.Publish(ctx, batch)
	if err != nil || !again.Replayed || fmt.Sprint(again.Receipts) != fmt.Sprint(first.Receipts) || again.Copies != 0 {
		t.Fatalf("retry = %+v, %v; want a replay of %v", again, err, first.Receipts)
	}
	if got := texts(readAll(t, q, "alice")); got != "room/once" {
		t.Errorf("alice's queue = %q; want one copy", got)
	}
	other := batchOf(text("carol", "c"), toGroup("room", "", "twice"))
	other.IdempotencyKey = "k1"
	if _, err := q.Publish(ctx, other); !errors.Is(err, message.ErrIdempotencyConflict) {
		t.Fatalf("another batch with the key = %v; want ErrIdempotencyConflict", err)
	}
	if got := texts(readAll(t, q, "alice")); got != "room/once" {
		t.Errorf("alice's queue after the conflict = %q; want one copy", got)
	}
}

// A node that dies halfway through a fan-out leaves the job in Redis:
// another node's RunGroups completes it, from where it stopped, and no
// member gets a second copy.
func TestGroupJobResumedByAnotherNode(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	dead := queue.New(rdb, queue.Options{})
	var members []string
	for i := range 2500 {
		members = append(members, fmt.Sprintf("m%04d", i))
	}
	for c := range slices.Chunk(members, queue.MaxMembersPerCall) {
		join(t, dead, "room", c...)
	}
	// The first node records the job and fans out its first page, then
	// dies (its lease is left to run out).
	if err := queue.FanOutPartly(ctx, dead, "room", message.EncodeText("hi"), 1); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dead, "m0999"); len(got) != 1 {
		t.Fatalf("m0999 (first page) has %d copies; want 1", len(got))
	}
	if got := readAll(t, dead, "m1000"); len(got) != 0 {
		t.Fatalf("m1000 (second page) has %d copies; want 0 yet", len(got))
	}

	now := time.Now()
	other := queue.New(rdb, queue.Options{})
	queue.SetClock(other, func() time.Time { return now }, func(time.Duration, func()) {})
	queue.ResumeGroups(ctx, other) // too early: the job is not overdue
	if got := readAll(t, other, "m2499"); len(got) != 0 {
		t.Fatalf("resumed before it was due")
	}
	now = now.Add(time.Minute)
	queue.ExpireLease(t, rdb, dead, "room")
	queue.ResumeGroups(ctx, other)
	for _, m := range members {
		if got := readAll(t, other, m); texts(got) != "room/hi" {
			t.Fatalf("%s's queue = %q; want one copy", m, texts(got))
		}
	}
	// The next group message goes on as usual.
	pub, err := other.Publish(ctx, batchOf(toGroup("room", "", "next")))
	if err != nil || pub.Receipts[0].Members != 2500 {
		t.Fatalf("next Publish = %v, %v", pub.Receipts, err)
	}
}

// Two nodes publishing to one group at once: every member gets every
// message once, and the group's messages in the same order everywhere.
func TestGroupPublishesRace(t *testing.T) { onBothRedises(t, groupPublishesRace) }

func groupPublishesRace(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	nodes := []*queue.Queue{queue.New(rdb, queue.Options{}), queue.New(rdb, queue.Options{Pipeline: true})}
	var members []string
	for i := range 300 {
		members = append(members, fmt.Sprintf("m%03d", i))
	}
	join(t, nodes[0], "room", members...)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for n, q := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				pub, err := q.Publish(ctx, batchOf(toGroup("room", "", fmt.Sprintf("n%d-%d", n, i))))
				if err == nil && pub.Receipts[0].Members != 300 {
					err = fmt.Errorf("receipt %v; want 300 members", pub.Receipts[0])
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	order := texts(readAll(t, nodes[0], members[0]))
	if n := len(strings.Fields(order)); n != 40 {
		t.Fatalf("%s got %d messages; want 40", members[0], n)
	}
	for _, m := range members[1:] {
		if got := texts(readAll(t, nodes[0], m)); got != order {
			t.Fatalf("%s got %q; %s got %q", m, got, members[0], order)
		}
	}
}

// A member that joins sees the group's messages from then on; one that
// leaves and joins again sees nothing of what came in between.
func TestJoinAndLeaveBetweenMessages(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	join(t, q, "room", "alice")
	publish := func(s string) {
		if _, err := q.Publish(ctx, batchOf(toGroup("room", "", s))); err != nil {
			t.Fatal(err)
		}
	}
	publish("1")
	join(t, q, "room", "bob")
	publish("2")
	if _, _, err := q.Leave(ctx, "room", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	publish("3")
	join(t, q, "room", "bob")
	publish("4")
	if got := texts(readAll(t, q, "bob")); got != "room/2 room/4" {
		t.Errorf("bob's queue = %q; want room/2 room/4", got)
	}
	// Every member gone: the group is forgotten; its name can be used
	// again.
	if _, members, err := q.Leave(ctx, "room", []string{"alice", "bob"}); err != nil || members != 0 {
		t.Fatalf("Leave everyone = %d members, %v", members, err)
	}
	publish("5")
	join(t, q, "room", "carol")
	publish("6")
	if got := texts(readAll(t, q, "carol")); got != "room/6" {
		t.Errorf("carol's queue = %q; want room/6", got)
	}
}

// Any client id may be a member or the one left out, "-" too.
func TestGroupMemberNamedDash(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	join(t, q, "g", "-", "a")
	for _, except := range []string{"", "-"} {
		if _, err := q.Publish(ctx, batchOf(toGroup("g", except, "except "+except))); err != nil {
			t.Fatal(err)
		}
	}
	if got := texts(readAll(t, q, "-")); got != "g/except " {
		t.Errorf(`"-"'s queue = %q; want only the message without except`, got)
	}
	if got := texts(readAll(t, q, "a")); got != "g/except  g/except -" {
		t.Errorf("a's queue = %q; want both", got)
	}
}

// A group whose oldest waiting message is older than queue.GroupMaxLag
// (its fan-outs fall behind, or a node died holding one) refuses new
// ones with ErrGroupBusy, recording nothing, rather than letting them
// pile up; a retry of one it has is still answered, and once it caught
// up it takes new ones again.
func TestGroupBusy(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	now := time.Now()
	q := queue.New(rdb, queue.Options{})
	queue.SetClock(q, func() time.Time { return now }, func(time.Duration, func()) {})
	join(t, q, "room", "alice")
	if err := queue.FanOutPartly(ctx, q, "room", message.EncodeText("stuck"), 0); err != nil { // recorded, not fanned out
		t.Fatal(err)
	}
	now = now.Add(queue.GroupMaxLag + time.Second)
	queue.ExpireLease(t, rdb, q, "room")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := q.Publish(short, batchOf(toGroup("room", "", "new")))
	cancel()
	if !errors.Is(err, queue.ErrGroupBusy) {
		t.Fatalf("Publish behind a stuck message = %v; want ErrGroupBusy", err)
	}
	queue.ResumeGroups(ctx, q) // catches up
	if _, err := q.Publish(ctx, batchOf(toGroup("room", "", "new"))); err != nil {
		t.Fatalf("Publish once caught up = %v", err)
	}
	if got := texts(readAll(t, q, "alice")); got != "room/stuck room/new" {
		t.Errorf("alice's queue = %q; want the stuck message, then one new one", got)
	}
}
