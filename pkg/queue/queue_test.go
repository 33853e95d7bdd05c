package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/redis/go-redis/v9"
)

func text(to string, s string) message.Message {
	return message.Message{To: to, Data: message.EncodeText(s)}
}

func batchOf(msgs ...message.Message) message.Batch { return message.Batch{Messages: msgs} }

// ids lists the ids of a page's messages.
func ids(p message.Page) []uint64 {
	out := make([]uint64, len(p.Messages))
	for i, m := range p.Messages {
		out[i] = m.ID
	}
	return out
}

func TestPublishAndRead(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})

	pub, err := q.Publish(ctx, batchOf(
		text("alice", "one"), text("bob", "b1"), text("alice", `two "quoted"`),
		message.Message{To: "alice", Data: []byte(`{"score":3}`)}))
	if err != nil || pub.Replayed {
		t.Fatalf("Publish = %v, replayed %v", err, pub.Replayed)
	}
	receipts := pub.Receipts
	want := []message.Receipt{{To: "alice", ID: 1}, {To: "bob", ID: 1}, {To: "alice", ID: 2}, {To: "alice", ID: 3}}
	if fmt.Sprint(receipts) != fmt.Sprint(want) {
		t.Fatalf("receipts = %v; want %v", receipts, want)
	}

	page, err := q.Read(ctx, "alice", message.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range page.Messages {
		got = append(got, string(m.JSON))
	}
	wantJSON := `{"id":1,"data":"one"} {"id":2,"data":"two \"quoted\""} {"id":3,"data":{"score":3}}`
	if strings.Join(got, " ") != wantJSON {
		t.Errorf("Read = %s; want %s", strings.Join(got, " "), wantJSON)
	}
	if page.Next.ID != 3 || page.Next.Epoch == "" || page.Reset || page.Gap != (message.Range{}) {
		t.Errorf("page = %+v; want Next 3 in an epoch, no reset, no gap", page)
	}
	if d := time.Since(page.Messages[0].Published); d < 0 || d > time.Minute {
		t.Errorf("Published = %v; want about now", page.Messages[0].Published)
	}
}

func TestReadAcknowledges(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	for i := 0; i < 5; i++ {
		if _, err := q.Publish(ctx, batchOf(text("a", fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := q.Read(ctx, "a", message.Cursor{}, 2)
	if fmt.Sprint(ids(first)) != "[1 2]" || first.Next.ID != 2 {
		t.Fatalf("Read(limit 2) = %v next %v; want [1 2] next 2", ids(first), first.Next)
	}
	// The answer was lost: the same cursor gets the same messages again.
	again, _ := q.Read(ctx, "a", message.Cursor{}, 2)
	if fmt.Sprint(ids(again)) != "[1 2]" {
		t.Fatalf("re-Read = %v; want [1 2]", ids(again))
	}
	next, _ := q.Read(ctx, "a", first.Next, 100)
	if fmt.Sprint(ids(next)) != "[3 4 5]" {
		t.Fatalf("Read(%v) = %v; want [3 4 5]", first.Next, ids(next))
	}
	// A fresh page (no cursor) gets exactly what is not yet acknowledged.
	fresh, _ := q.Read(ctx, "a", message.Cursor{}, 100)
	if fmt.Sprint(ids(fresh)) != "[3 4 5]" {
		t.Fatalf("fresh Read = %v; want [3 4 5]", ids(fresh))
	}
	done, _ := q.Read(ctx, "a", next.Next, 100)
	if len(done.Messages) != 0 || done.Next.ID != 5 || done.Settled() {
		t.Fatalf("Read(%v) = %+v; want empty at 5", next.Next, done)
	}
	if n, _ := rdb.LLen(ctx, "cb:{a}:q").Result(); n != 0 {
		t.Errorf("queue length after full ack = %d; want 0", n)
	}
}

func TestGapAfterCap(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Cap: 3})
	var dropped int
	for i := 1; i <= 6; i++ {
		pub, _ := q.Publish(ctx, batchOf(text("a", fmt.Sprint(i))))
		dropped += pub.Dropped
	}
	if dropped != 3 {
		t.Errorf("Dropped = %d; want 3", dropped)
	}
	page, err := q.Read(ctx, "a", message.Cursor{ID: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(page)) != "[4 5 6]" || page.Gap != (message.Range{First: 2, Last: 3}) {
		t.Fatalf("Read(1) = %v gap %v; want [4 5 6] gap 2-3", ids(page), page.Gap)
	}
	// No cursor: nothing to report, the page starts where the queue does.
	fresh, _ := q.Read(ctx, "a", message.Cursor{}, 10)
	if fresh.Gap != (message.Range{}) {
		t.Errorf("fresh Read gap = %v; want none", fresh.Gap)
	}
}

// Acknowledgements remove only what they name, whatever order they come
// in: one arriving late (a pipeline that waited, a tab behind the other)
// leaves what later ones left, and one naming messages the cap dropped
// removes the rest of what it names.
func TestAcknowledgementsInAnyOrder(t *testing.T) { onBothRedises(t, acknowledgementsInAnyOrder) }

func acknowledgementsInAnyOrder(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{Cap: 3})
	for i := 1; i <= 6; i++ { // the cap keeps 4 5 6
		if _, err := q.Publish(ctx, batchOf(text("a", fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		ack  uint64
		want string
	}{
		{4, "[5 6]"}, // 1 to 3 dropped by the cap, 4 acknowledged
		{2, "[5 6]"}, // late
		{6, "[]"},
		{5, "[]"}, // late, after everything was acknowledged
	}
	for _, s := range steps {
		if _, err := q.Ack(ctx, "a", message.Cursor{ID: s.ack}); err != nil {
			t.Fatal(err)
		}
		if left, _ := q.Read(ctx, "a", message.Cursor{}, 10); fmt.Sprint(ids(left)) != s.want {
			t.Fatalf("after Ack(%d) the queue holds %v; want %s", s.ack, ids(left), s.want)
		}
	}
	if _, err := q.Publish(ctx, batchOf(text("a", "7"))); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Ack(ctx, "a", message.Cursor{ID: 6}); err != nil { // late again
		t.Fatal(err)
	}
	if left, _ := q.Read(ctx, "a", message.Cursor{}, 10); fmt.Sprint(ids(left)) != "[7]" {
		t.Fatalf("a late Ack(6) left %v; want [7]", ids(left))
	}
}

func TestGapAcknowledgedByAnotherPoll(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	q.Publish(ctx, batchOf(text("a", "1"), text("a", "2"), text("a", "3")))
	q.Read(ctx, "a", message.Cursor{ID: 3}, 10) // tab 1 has all three
	page, _ := q.Read(ctx, "a", message.Cursor{ID: 1}, 10)
	if len(page.Messages) != 0 || page.Gap != (message.Range{First: 2, Last: 3}) || page.Next.ID != 3 {
		t.Fatalf("tab 2 Read(1) = %+v; want empty, gap 2-3, next 3", page)
	}
}

func TestResets(t *testing.T) {
	ctx := context.Background()
	mr, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{TTL: time.Hour})
	q.Publish(ctx, batchOf(text("a", "1"), text("a", "2")))
	p, _ := q.Read(ctx, "a", message.Cursor{}, 10)
	epoch := p.Next.Epoch

	tests := []struct {
		name  string
		since message.Cursor
		reset bool
	}{
		{"current", message.Cursor{Epoch: epoch, ID: 1}, false},
		{"plain id", message.Cursor{ID: 1}, false},
		{"other epoch", message.Cursor{Epoch: "zzzz", ID: 1}, true},
		{"from the future", message.Cursor{Epoch: epoch, ID: 57}, true},
		{"plain id from the future", message.Cursor{ID: 57}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := q.Read(ctx, "a", tt.since, 10)
			if err != nil {
				t.Fatal(err)
			}
			if page.Reset != tt.reset {
				t.Fatalf("Read(%v).Reset = %v; want %v", tt.since, page.Reset, tt.reset)
			}
			if tt.reset && (page.Next.Epoch != epoch || fmt.Sprint(ids(page)) != "[2]") {
				t.Errorf("reset page = %v next %v; want [2] in epoch %s", ids(page), page.Next, epoch)
			}
		})
	}

	// Expiry ends this life of the sequence: the old cursor is reset and
	// a new epoch starts at id 1.
	mr.FastForward(2 * time.Hour)
	gone, _ := q.Read(ctx, "a", message.Cursor{Epoch: epoch, ID: 2}, 10)
	if !gone.Reset || len(gone.Messages) != 0 || gone.Next != (message.Cursor{}) {
		t.Fatalf("after expiry Read = %+v; want reset, empty, zero cursor", gone)
	}
	pub, _ := q.Publish(ctx, batchOf(text("a", "new")))
	page, _ := q.Read(ctx, "a", gone.Next, 10)
	if pub.Receipts[0].ID != 1 || page.Reset || page.Next.Epoch == epoch || fmt.Sprint(ids(page)) != "[1]" {
		t.Fatalf("new life: receipts %v, page %+v; want id 1 in a new epoch", pub.Receipts, page)
	}
	// An unknown client reads as an empty queue.
	empty, _ := q.Read(ctx, "nobody", message.Cursor{}, 10)
	if empty.Settled() || empty.Next != (message.Cursor{}) {
		t.Errorf("unknown client Read = %+v; want empty and unsettled", empty)
	}
}

func TestIdempotentPublish(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	b := batchOf(text("a", "x"), text("b", "y"), text("a", "z"))
	b.IdempotencyKey = "req-1"
	first, err := q.Publish(ctx, b)
	if err != nil || first.Replayed {
		t.Fatalf("first Publish = %v, %v", err, first.Replayed)
	}
	second, err := q.Publish(ctx, b)
	if err != nil || !second.Replayed || fmt.Sprint(first.Receipts) != fmt.Sprint(second.Receipts) {
		t.Fatalf("retried Publish = %v, %v; want %v replayed", second, err, first.Receipts)
	}
	page, _ := q.Read(ctx, "a", message.Cursor{}, 10)
	if fmt.Sprint(ids(page)) != "[1 2]" {
		t.Errorf("queue after retry = %v; want [1 2]", ids(page))
	}
	b.Messages = b.Messages[:2] // one message fewer for "a"
	if _, err := q.Publish(ctx, b); !errors.Is(err, message.ErrIdempotencyConflict) {
		t.Errorf("Publish with reused key = %v; want ErrIdempotencyConflict", err)
	}
}

// A key reused for another batch with as many messages per client is a
// conflict too, not a replay that drops the new messages: the record
// keeps a digest of the whole batch.
func TestIdempotentPublishOtherBatch(t *testing.T) { onBothRedises(t, idempotentPublishOtherBatch) }

func idempotentPublishOtherBatch(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{})
	first := batchOf(text("a", "x"), text("b", "y"), text("a", "z"))
	first.IdempotencyKey = "req-1"
	if _, err := q.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	for name, msgs := range map[string][]message.Message{
		"another payload":                  {text("a", "x"), text("b", "y"), text("a", "Z")},
		"the same, in other order":         {text("a", "z"), text("b", "y"), text("a", "x")},
		"payloads swapped between clients": {text("a", "y"), text("b", "x"), text("a", "z")},
		"a json payload for a text one":    {text("a", "x"), {To: "b", Data: []byte(`["y"]`)}, text("a", "z")},
	} {
		retry := batchOf(msgs...)
		retry.IdempotencyKey = "req-1"
		if pub, err := q.Publish(ctx, retry); !errors.Is(err, message.ErrIdempotencyConflict) {
			t.Errorf("%s: Publish with a reused key = %+v, %v; want ErrIdempotencyConflict", name, pub, err)
		}
	}
	page, _ := q.Read(ctx, "a", message.Cursor{}, 10)
	if fmt.Sprint(ids(page)) != "[1 2]" {
		t.Errorf("queue of a after the conflicts = %v; want [1 2]", ids(page))
	}
	again, err := q.Publish(ctx, first)
	want := []message.Receipt{{To: "a", ID: 1}, {To: "b", ID: 1}, {To: "a", ID: 2}}
	if err != nil || !again.Replayed || !slices.Equal(again.Receipts, want) {
		t.Errorf("retry of the first batch = %+v, %v; want its receipts, replayed", again, err)
	}
}

// No two batches give the digest the same bytes: recipients and payloads
// are length-prefixed.
func TestBatchDigest(t *testing.T) {
	m := func(to, data string) message.Message { return message.Message{To: to, Data: []byte(data)} }
	batches := [][]message.Message{
		{m("ab", "1")},
		{m("a", "b1")},
		{m("a", "1"), m("a", "2")},
		{m("a", "12")},
		{m("a", "1a2")},
		{m("a", "2"), m("a", "1")},
		{m("a", "\x01a\x012")},
	}
	seen := map[string]int{}
	for i, b := range batches {
		d := queue.BatchDigest(b)
		if j, ok := seen[d]; ok {
			t.Errorf("batches %d and %d have the same digest %s", j, i, d)
		}
		seen[d] = i
		if again := queue.BatchDigest(b); again != d {
			t.Errorf("digest of batch %d changed: %s, %s", i, d, again)
		}
	}
}

func TestWakeUp(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	sub := rdb.Subscribe(ctx, q.WakeChannel("alice"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	pub, _ := q.Publish(ctx, batchOf(text("alice", "hi"), text("alice", "ho")))
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The wake-up carries the batch, so that a poll at cursor 0 can
	// answer from it without reading the queue...
	page, ok := q.DecodeWake(msg.Payload, message.Cursor{}, 100)
	if !ok || fmt.Sprint(ids(page)) != "[1 2]" || string(page.Messages[1].JSON) != `{"id":2,"data":"ho"}` || page.Next.ID != 2 {
		t.Fatalf("DecodeWake(%q) = %+v, %v; want messages 1 and 2", msg.Payload, page, ok)
	}
	// ...exactly what its read would return.
	read, _ := q.Read(ctx, "alice", message.Cursor{}, 100)
	if fmt.Sprint(read.Messages) != fmt.Sprint(page.Messages) || read.Next != page.Next {
		t.Errorf("DecodeWake = %+v; Read = %+v", page, read)
	}
	_ = pub
}

func TestDecodeWake(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	sub := rdb.Subscribe(ctx, q.WakeChannel("w"))
	defer sub.Close()
	sub.Receive(ctx)
	q.Publish(ctx, batchOf(text("w", "1"), text("w", "2"), text("w", "3")))
	msg, _ := sub.ReceiveMessage(ctx)
	epoch, _, _ := strings.Cut(msg.Payload, " ")

	tests := []struct {
		name  string
		since message.Cursor
		limit int
		want  string // ids, or "" for not ok
	}{
		{"cursor right before", message.Cursor{Epoch: epoch}, 100, "[1 2 3]"},
		{"plain cursor", message.Cursor{}, 100, "[1 2 3]"},
		{"limited", message.Cursor{}, 2, "[1 2]"},
		{"cursor inside the batch", message.Cursor{Epoch: epoch, ID: 1}, 100, ""},
		{"other epoch", message.Cursor{Epoch: "other"}, 100, ""},
	}
	for _, tt := range tests {
		page, ok := q.DecodeWake(msg.Payload, tt.since, tt.limit)
		got := ""
		if ok {
			got = fmt.Sprint(ids(page))
		}
		if got != tt.want {
			t.Errorf("%s: DecodeWake(since %v) = %q; want %q", tt.name, tt.since, got, tt.want)
		}
	}
	for _, bad := range []string{"", "7", "e 1", "e x\n1 {}", "e 1\nnot an entry"} {
		if _, ok := q.DecodeWake(bad, message.Cursor{}, 10); ok {
			t.Errorf("DecodeWake(%q) = ok", bad)
		}
	}
	if end, ok := q.WakeEnd(msg.Payload); !ok || end != (message.Cursor{Epoch: epoch, ID: 3}) {
		t.Errorf("WakeEnd = %v, %v; want %s:3", end, ok, epoch)
	}
	for _, bad := range []string{"", "7", "e 1", "e x\n1 {}", " 1\n1 {}"} {
		if end, ok := q.WakeEnd(bad); ok {
			t.Errorf("WakeEnd(%q) = %v, ok", bad, end)
		}
	}

	// A batch too large to carry still wakes, without entries.
	big := make([]message.Message, 40)
	for i := range big {
		big[i] = text("w", strings.Repeat("x", 1000))
	}
	q.Publish(ctx, batchOf(big...))
	msg, _ = sub.ReceiveMessage(ctx)
	if strings.Contains(msg.Payload, "\n") || len(msg.Payload) > 64 {
		t.Errorf("wake-up of a 40 kB batch = %d bytes; want just the epoch and first id", len(msg.Payload))
	}
	if end, ok := q.WakeEnd(msg.Payload); ok { // how many it announces is unknown
		t.Errorf("WakeEnd of a wake-up without entries = %v, ok", end)
	}
}

// AckSoon acknowledges in the background, the acknowledgements of many
// polls in one round trip, and never in another life of the sequence,
// which it reports.
func TestAckSoon(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	var b message.Batch
	for c := range 10 {
		b.Messages = append(b.Messages, text(fmt.Sprint("c", c), "1"), text(fmt.Sprint("c", c), "2"))
	}
	if _, err := q.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	epochs := make([]string, 10)
	for c := range epochs {
		page, _ := q.Read(ctx, fmt.Sprint("c", c), message.Cursor{}, 1)
		epochs[c] = page.Next.Epoch
	}
	var trips roundTrips
	rdb.AddHook(&trips)

	var resets atomic.Int64
	reset := func() { resets.Add(1) }
	q.AckSoon("c0", message.Cursor{Epoch: "other", ID: 2}, reset) // would empty the queue
	for c, epoch := range epochs {
		q.AckSoon(fmt.Sprint("c", c), message.Cursor{Epoch: epoch, ID: 1}, reset)
	}
	for c := range 10 {
		list := fmt.Sprintf("cb:{c%d}:q", c)
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			n, _ := rdb.LLen(ctx, list).Result()
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d; want 1", list, n)
			}
		}
	}
	if got := trips.n.Load(); got != 1 {
		t.Errorf("11 acknowledgements took %d round trips; want 1", got)
	}
	for deadline := time.Now().Add(2 * time.Second); resets.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the reply is read after Redis has run the calls
	}
	if got := resets.Load(); got != 1 {
		t.Errorf("%d acknowledgements reported a reset; want 1, the one from another epoch", got)
	}
}

// A flush goes once the oldest acknowledgement still queued has waited
// the whole delay: one that came after the flush was planned waits on,
// rides in a pipeline if one goes before its own delay is over, and
// otherwise goes in the flush planned again for that moment. The flush
// used to send whatever it found (half the acknowledgements at 2,000
// msg/s went in flushes of their own).
func TestAckSoonFlushesOnlyWhatWaited(t *testing.T) {
	const delay = time.Second
	for _, tc := range []struct {
		name          string
		read          bool  // a read goes at 7/6 delay and takes b's acknowledgement
		before, after int64 // round trips just before 1.5 delay, and after
	}{
		{"a pipeline takes what waits", true, 2, 2},
		{"the flush planned again sends it", false, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb, q, clock := clockedQueue(t, delay)
			if _, err := q.Publish(ctx, batchOf(text("a", "1"), text("b", "1"))); err != nil { // loads the script
				t.Fatal(err)
			}
			pa, _ := q.Read(ctx, "a", message.Cursor{}, 1)
			pb, _ := q.Read(ctx, "b", message.Cursor{}, 1)
			var trips roundTrips
			rdb.AddHook(&trips)

			start := clock.now()
			at := func(d time.Duration) { clock.advance(start.Add(d).Sub(clock.now())) }
			q.AckSoon("a", pa.Next, nil) // plans a flush for delay
			q.Read(ctx, "c", message.Cursor{}, 1)
			at(delay / 2)
			q.AckSoon("b", pb.Next, nil) // too young to flush at delay: its flush is due at 1.5 delay
			at(delay)
			if got := trips.n.Load(); got != 1 {
				t.Errorf("at the first flush: %d round trips; want 1, the read that took a's acknowledgement", got)
			}
			at(delay * 7 / 6)
			if tc.read {
				q.Read(ctx, "c", message.Cursor{}, 1)
			}
			at(delay*3/2 - time.Nanosecond)
			if got := trips.n.Load(); got != tc.before {
				t.Errorf("just before 1.5 delay: %d round trips; want %d", got, tc.before)
			}
			at(delay * 3 / 2)
			if got := trips.n.Load(); got != tc.after {
				t.Errorf("at 1.5 delay: %d round trips; want %d", got, tc.after)
			}
			at(delay * 3)
			if got := trips.n.Load(); got != tc.after {
				t.Errorf("%d round trips in all; want %d", got, tc.after)
			}
			for _, c := range []string{"a", "b"} {
				if n, _ := rdb.LLen(ctx, "cb:{"+c+"}:q").Result(); n != 0 {
					t.Errorf("%s's queue holds %d; want it acknowledged", c, n)
				}
			}
		})
	}
}

// clockedQueue is a pipelined queue whose acknowledgements wait delay by
// the clock it returns.
func clockedQueue(t *testing.T, delay time.Duration) (*redis.Client, *queue.Queue, *fakeClock) {
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Pipeline: true})
	queue.SetAckDelay(q, delay)
	clock := newFakeClock()
	queue.SetClock(q, clock.now, clock.after)
	return rdb, q, clock
}

// ackSoonMany acknowledges message 1 of n clients c<first>, c<first+1>, ...
func ackSoonMany(q *queue.Queue, first, n int) {
	for c := first; c < first+n; c++ {
		q.AckSoon(fmt.Sprint("c", c), message.Cursor{Epoch: "e", ID: 1}, nil)
	}
}

// fakeClock is a clock that moves only when told, and runs what was
// planned on it as it passes.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	planned []plannedFunc
}

type plannedFunc struct {
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// set puts the clock at t, running nothing.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) after(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.planned = append(c.planned, plannedFunc{c.t.Add(d), f})
}

// advance moves the clock on by d, running (in this goroutine, in order)
// what falls due, including what those plan within d.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.t.Add(d)
	for {
		next := -1
		for i, p := range c.planned {
			if !p.at.After(end) && (next < 0 || p.at.Before(c.planned[next].at)) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		p := c.planned[next]
		c.planned = append(c.planned[:next], c.planned[next+1:]...)
		c.t = p.at
		c.mu.Unlock()
		p.f()
		c.mu.Lock()
	}
	c.t = end
	c.mu.Unlock()
}

// inFlight counts the script calls and pipelines of them a client has on
// their way, and the most at once (not the handshake of a new connection
// inside one), and the script calls sent in all.
type inFlight struct{ now, most, sent atomic.Int64 }

func (f *inFlight) track(calls int, next func() error) error {
	f.sent.Add(int64(calls))
	n := f.now.Add(1)
	for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
	}
	defer f.now.Add(-1)
	return next()
}

func (f *inFlight) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *inFlight) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScript(cmd) {
			return next(ctx, cmd)
		}
		return f.track(1, func() error { return next(ctx, cmd) })
	}
}
func (f *inFlight) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || !isScript(cmds[0]) {
			return next(ctx, cmds)
		}
		return f.track(len(cmds), func() error { return next(ctx, cmds) })
	}
}

// While Redis does not answer, one flush of acknowledgements waits for it
// and the others queue behind; they used to start a flush every delay,
// each waiting as long.
func TestAckSoonOneFlushAtATime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a Redis that reads and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	var calls inFlight
	rdb.AddHook(&calls)
	q := queue.New(rdb, queue.Options{})
	queue.SetAckDelay(q, time.Millisecond)
	for c := range 10 {
		q.AckSoon(fmt.Sprint("c", c), message.Cursor{Epoch: "e", ID: 1}, nil)
		time.Sleep(5 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); calls.sent.Load() < 10 || calls.now.Load() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, %d of 10 acknowledgements sent, %d flushes on their way", calls.sent.Load(), calls.now.Load())
		}
	}
	if got := calls.most.Load(); got != 1 {
		t.Errorf("%d flushes on their way at once; want 1", got)
	}
}

// pipelineSizes records the length of each pipeline of scripts a client
// sends (not a new connection's handshake).
type pipelineSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (p *pipelineSizes) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelineSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && isScript(cmds[0]) {
			p.mu.Lock()
			p.sizes = append(p.sizes, len(cmds))
			p.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// A pipeline takes acknowledgements only up to its size bound: after a
// broadcast, thousands of them must not pile onto one request's pipeline.
func TestAckSoonFillsPipelinesUpToTheirBound(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Pipeline: true})
	queue.SetAckDelay(q, time.Hour)
	q.Read(ctx, "warm", message.Cursor{}, 1) // loads the script
	var sizes pipelineSizes
	rdb.AddHook(&sizes)
	ackSoonMany(q, 0, 300)
	q.Read(ctx, "a", message.Cursor{}, 1)
	q.Read(ctx, "b", message.Cursor{}, 1)
	if fmt.Sprint(sizes.sizes) != "[256 46]" {
		t.Errorf("pipelines of %v calls; want [256 46]: the first read with 255 acknowledgements, the second with the rest", sizes.sizes)
	}
}

// What a pipeline leaves of the queued acknowledgements waits its own
// delay: the flush used to time them from the oldest one taken, and send
// them as soon as that one's delay was over.
func TestAckSoonLeftByAPipelineWaitsItsOwnDelay(t *testing.T) {
	ctx := context.Background()
	const delay = time.Second
	rdb, q, clock := clockedQueue(t, delay)
	q.Read(ctx, "warm", message.Cursor{}, 1) // loads the script
	var sizes pipelineSizes
	rdb.AddHook(&sizes)

	q.AckSoon("c0", message.Cursor{Epoch: "e", ID: 1}, nil) // plans a flush for delay
	clock.advance(delay / 2)
	ackSoonMany(q, 1, 300)
	q.Read(ctx, "a", message.Cursor{}, 1) // takes c0 and 254 more; 46 are left, half a delay old
	clock.advance(delay / 2)
	if fmt.Sprint(sizes.sizes) != "[256]" {
		t.Errorf("at delay: pipelines of %v calls; want [256], the read's", sizes.sizes)
	}
	clock.advance(delay / 2)
	if fmt.Sprint(sizes.sizes) != "[256 46]" {
		t.Errorf("at 1.5 delay: pipelines of %v calls; want [256 46], the read's and a flush of what it left", sizes.sizes)
	}
}

// Pipelined, acknowledgements ride in the next pipeline that goes.
func TestAckSoonRidesInAPipeline(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Pipeline: true})
	queue.SetAckDelay(q, time.Hour)
	if _, err := q.Publish(ctx, batchOf(text("a", "1"), text("a", "2"))); err != nil { // loads the script
		t.Fatal(err)
	}
	page, _ := q.Read(ctx, "a", message.Cursor{}, 1)
	var trips roundTrips
	rdb.AddHook(&trips)
	q.AckSoon("a", page.Next, nil)
	if _, err := q.Read(ctx, "b", message.Cursor{}, 1); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.LLen(ctx, "cb:{a}:q").Result(); n != 1 || trips.n.Load() != 1 {
		t.Errorf("after one read, the queue holds %d and %d round trips went; want 1 and 1", n, trips.n.Load())
	}
}

func TestScriptsReloaded(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	q.Publish(ctx, batchOf(text("a", "1"), text("b", "1")))
	rdb.ScriptFlush(ctx)
	pub, err := q.Publish(ctx, batchOf(text("a", "2"), text("b", "2")))
	if err != nil || pub.Receipts[0].ID != 2 || pub.Receipts[1].ID != 2 {
		t.Fatalf("Publish after SCRIPT FLUSH = %v, %v", pub, err)
	}
}

func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	mr, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	mr.SetError("LOADING Redis is loading the dataset in memory")
	if _, err := q.Publish(ctx, batchOf(text("a", "1"), text("b", "2"))); err == nil {
		t.Error("Publish with Redis failing = nil error")
	}
	if _, err := q.Read(ctx, "a", message.Cursor{}, 10); err == nil {
		t.Error("Read with Redis failing = nil error")
	}
	mr.SetError("")
	mr.Close()
	if _, err := q.Publish(ctx, batchOf(text("a", "1"))); err == nil {
		t.Error("Publish with Redis gone = nil error")
	}
}

// A stream reads past what it has sent without acknowledging it; only
// Ack (or the next connection's cursor) removes messages.
func TestReadAfterAndAck(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	q.Publish(ctx, batchOf(text("s", "1"), text("s", "2"), text("s", "3")))
	first, _ := q.ReadAfter(ctx, "s", message.Cursor{}, 0, 2)
	if fmt.Sprint(ids(first)) != "[1 2]" {
		t.Fatalf("ReadAfter(0) = %v; want [1 2]", ids(first))
	}
	next, _ := q.ReadAfter(ctx, "s", message.Cursor{}, first.Next.ID, 10)
	if fmt.Sprint(ids(next)) != "[3]" || next.Gap != (message.Range{}) {
		t.Fatalf("ReadAfter(2) = %v gap %v; want [3], no gap", ids(next), next.Gap)
	}
	// Nothing was acknowledged: a fresh read still sees all three.
	if all, _ := q.Read(ctx, "s", message.Cursor{}, 10); fmt.Sprint(ids(all)) != "[1 2 3]" {
		t.Fatalf("after ReadAfter, Read = %v; want [1 2 3]", ids(all))
	}
	reset, err := q.Ack(ctx, "s", message.Cursor{Epoch: first.Next.Epoch, ID: 2})
	if err != nil || reset {
		t.Fatalf("Ack = %v, %v", reset, err)
	}
	if rest, _ := q.Read(ctx, "s", message.Cursor{}, 10); fmt.Sprint(ids(rest)) != "[3]" {
		t.Fatalf("after Ack(2), Read = %v; want [3]", ids(rest))
	}
	if reset, _ := q.Ack(ctx, "s", message.Cursor{Epoch: "other", ID: 3}); !reset {
		t.Error("Ack with a foreign epoch: reset = false")
	}
	if rest, _ := q.Read(ctx, "s", message.Cursor{}, 10); fmt.Sprint(ids(rest)) != "[3]" {
		t.Errorf("a foreign Ack removed messages: %v", ids(rest))
	}
}

// The queue is what the poller and the HTTP handler need.
var (
	_ poll.Queue    = (*queue.Queue)(nil)
	_ httpapi.Store = (*queue.Queue)(nil)
)

// With Options.Pipeline, concurrent calls share pipelines and each gets
// exactly its own result: ids, pages, a script's refusal, and the
// reloading of scripts Redis forgot.
func TestPipelined(t *testing.T) {
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Pipeline: true})
	ctx := context.Background()

	const clients, each = 60, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		for range each {
			wg.Go(func() {
				if _, err := q.Publish(ctx, batchOf(text(fmt.Sprint("p", c), "x"))); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	rdb.ScriptFlush(ctx) // the reads must reload their script
	for c := range clients {
		wg.Go(func() {
			page, err := q.Read(ctx, fmt.Sprint("p", c), message.Cursor{}, 100)
			if err != nil || fmt.Sprint(ids(page)) != "[1 2 3 4 5]" {
				errs <- fmt.Errorf("client p%d: %v, %v", c, ids(page), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	b := batchOf(text("k", "1"), text("k", "2"))
	b.IdempotencyKey = "once"
	if _, err := q.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Messages = b.Messages[:1]
	if _, err := q.Publish(ctx, b); !errors.Is(err, message.ErrIdempotencyConflict) {
		t.Errorf("pipelined Publish with a reused key = %v; want ErrIdempotencyConflict", err)
	}
}

// roundTrips counts the round trips a client makes to run scripts: a
// script call on its own, or a pipeline of them, one each. (A new
// connection's handshake is not counted.)
type roundTrips struct{ n atomic.Int64 }

func isScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && isScript(cmds[0]) {
			r.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// A batch for many clients, pipelined, goes to Redis as one pipeline, not
// one round trip per client. (Each queued call used to be sent before the
// next was queued: 100 round trips for 100 clients.)
func TestPipelinedBatchIsOneRoundTrip(t *testing.T) {
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{Pipeline: true})
	ctx := context.Background()
	if _, err := q.Publish(ctx, batchOf(text("warm", "x"))); err != nil { // loads the script
		t.Fatal(err)
	}
	var trips roundTrips
	rdb.AddHook(&trips)
	var b message.Batch
	for c := range 100 {
		b.Messages = append(b.Messages, text(fmt.Sprint("c", c), "x"))
	}
	if _, err := q.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := trips.n.Load(); got != 1 {
		t.Errorf("a batch for 100 clients took %d round trips to Redis; want 1", got)
	}
}

// onBothRedises runs test against miniredis (whose Lua is gopher-lua)
// and against a real redis-server.
func onBothRedises(t *testing.T, test func(t *testing.T, rdb *redis.Client)) {
	t.Run("miniredis", func(t *testing.T) {
		_, rdb := redistest.New(t)
		test(t, rdb)
	})
	t.Run("redis-server", func(t *testing.T) {
		rs := redisserver.Start(t, redisserver.Options{})
		rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
		t.Cleanup(func() { _ = rdb.Close() })
		test(t, rdb)
	})
}

// During a rolling update (or a rollback) nodes of the version before
// the expiry refresh (testdata/*-2026-11-25.lua) share clients' keys with
// this one: each reads and acknowledges what the other wrote. (The older
// read script failed on a hash without the acknowledged id "a".)
func TestScriptsOfThePreviousVersion(t *testing.T) { onBothRedises(t, scriptsOfThePreviousVersion) }

func scriptsOfThePreviousVersion(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	q := queue.New(rdb, queue.Options{})
	script := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	oldRead, oldEnqueue := script("read-2026-11-25.lua"), script("enqueue-2026-11-25.lua")

	if _, err := q.Publish(ctx, batchOf(text("a", "1"), text("a", "2"), text("a", "3"))); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.Eval(ctx, oldRead, []string{"cb:{a}:m", "cb:{a}:q"}, "", 2, 2, 10, 3600).Slice()
	if err != nil {
		t.Fatalf("the previous read.lua on a queue of this version: %v", err)
	}
	if entries := fmt.Sprint(res[3]); !strings.Contains(entries, `"id":3`) || strings.Contains(entries, `"id":2`) {
		t.Fatalf("the previous read.lua after acknowledging 2 read %v; want message 3 alone", entries)
	}

	if err := rdb.Eval(ctx, oldEnqueue, []string{"cb:{b}:m", "cb:{b}:q", "cb:{b}:i:"}, "olde", 1000, 3600, 0,
		q.WakeChannel("b"), "PUBLISH", 1764158400000, `"old"`).Err(); err != nil {
		t.Fatal(err)
	}
	page, err := q.Read(ctx, "b", message.Cursor{}, 10)
	if err != nil || fmt.Sprint(ids(page)) != "[1]" || page.Next.Epoch != "olde" {
		t.Fatalf("reading a queue of the previous version = %v in epoch %q, %v; want [1] in olde", ids(page), page.Next.Epoch, err)
	}
	if _, err := q.Ack(ctx, "b", page.Next); err != nil {
		t.Fatal(err)
	}
	if page, _ := q.Read(ctx, "b", message.Cursor{}, 10); len(page.Messages) != 0 {
		t.Fatalf("after acknowledging: %v; want nothing", ids(page))
	}

	// Idempotency records cross versions too. The previous enqueue.lua,
	// under an idempotency key, for client:
	oldIdempotent := func(client, key string, payloads ...any) *redis.Cmd {
		args := append([]any{"olde", 1000, 3600, 600, q.WakeChannel(client), "PUBLISH", 1764158400000}, payloads...)
		return rdb.Eval(ctx, oldEnqueue, []string{"cb:{" + client + "}:m", "cb:{" + client + "}:q", "cb:{" + client + "}:i:" + key}, args...)
	}
	// A record of the previous version has no digest of the batch: this
	// version replays it by count, as the previous one did.
	if err := oldIdempotent("c", "k1", `"old"`).Err(); err != nil {
		t.Fatal(err)
	}
	retry := batchOf(text("c", "other"))
	retry.IdempotencyKey = "k1"
	if pub, err := q.Publish(ctx, retry); err != nil || !pub.Replayed || pub.Receipts[0].ID != 1 {
		t.Fatalf("retry of a batch the previous version wrote = %+v, %v; want a replay of id 1", pub, err)
	}
	retry = batchOf(text("c", "1"), text("c", "2"))
	retry.IdempotencyKey = "k1"
	if _, err := q.Publish(ctx, retry); !errors.Is(err, message.ErrIdempotencyConflict) {
		t.Fatalf("retry with another count of a batch the previous version wrote = %v; want ErrIdempotencyConflict", err)
	}
	// A record of this version keeps its digest where the previous
	// version reads the epoch, which it does not use: the previous
	// version replays it by count and refuses another count, as it did.
	first := batchOf(text("d", "new"))
	first.IdempotencyKey = "k2"
	pub, err := q.Publish(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	res, err = oldIdempotent("d", "k2", `"new"`).Slice()
	if err != nil || len(res) != 4 || res[1] != int64(pub.Receipts[0].ID) || res[2] != int64(1) {
		t.Fatalf("the previous enqueue.lua retrying a batch of this version = %v, %v; want a replay of id %d", res, err, pub.Receipts[0].ID)
	}
	if err := oldIdempotent("d", "k2", `"1"`, `"2"`).Err(); !redis.HasErrorPrefix(err, "IDEMCONFLICT") {
		t.Fatalf("the previous enqueue.lua retrying with another count = %v; want IDEMCONFLICT", err)
	}
	if page, _ := q.Read(ctx, "d", message.Cursor{}, 10); fmt.Sprint(ids(page)) != "[1]" {
		t.Fatalf("queue after the retries of the previous version = %v; want [1]", ids(page))
	}
}

// A client's keys live at least TTL after its last publish or poll. The
// scripts refresh their expiry only once an eighth of TTL has passed
// since they last did (by the node's clock), to TTL plus an eighth: two
// commands fewer per message than refreshing on every call.
func TestExpiry(t *testing.T) {
	r := newExpiryRig(t)
	q := r.queue(queue.Options{})
	pub := r.publish(t, q, 1)
	r.expect(t, "publish", expiryKeep, expiryKeep)
	cursor := func(id uint64) message.Cursor { return message.Cursor{Epoch: pub.epoch, ID: id} }

	r.step(5 * time.Minute)
	r.ack(t, q, cursor(1))
	r.expect(t, "ack after 5 min (the list is gone)", expiryKeep-5*time.Minute, 0)
	r.publish(t, q, 1)
	r.expect(t, "publish making a new list", expiryKeep-5*time.Minute, expiryKeep)

	r.step(5 * time.Minute) // exactly an eighth of TTL since the refresh
	r.read(t, q, cursor(1))
	r.expect(t, "read after 10 min", expiryTTL, expiryKeep-5*time.Minute)
	r.step(time.Second) // more than an eighth
	r.read(t, q, cursor(1))
	r.expect(t, "read after 10 min 1 s", expiryKeep, expiryKeep)

	r.step(4 * time.Minute) // the last poll refreshes nothing
	r.ack(t, q, cursor(2))
	r.expect(t, "ack 4 min later", expiryKeep-4*time.Minute, 0)
	r.step(expiryTTL - time.Second)
	if !r.mr.Exists(metaA) {
		t.Fatal("keys gone before TTL had passed since the last poll")
	}
	r.step(6*time.Minute + 2*time.Second)
	if r.mr.Exists(metaA) {
		t.Fatal("keys still there TTL plus an eighth after their last refresh")
	}
}

// Publishes alone keep a client's keys, refreshing as reads do; a batch
// long enough to be pushed in several parts that makes a new list gives
// it an expiry too.
func TestExpiryKeptByPublishes(t *testing.T) {
	r := newExpiryRig(t)
	q := r.queue(queue.Options{})
	first := r.publish(t, q, 1)
	r.step(5 * time.Minute)
	r.publish(t, q, 1)
	r.expect(t, "publish after 5 min", expiryKeep-5*time.Minute, expiryKeep-5*time.Minute)
	r.step(6 * time.Minute)
	r.publish(t, q, 1)
	r.expect(t, "publish after 11 min", expiryKeep, expiryKeep)
	r.step(5 * time.Minute)
	r.publish(t, q, 1)
	r.expect(t, "publish after 16 min", expiryKeep-5*time.Minute, expiryKeep-5*time.Minute)

	if _, err := q.Ack(context.Background(), "a", message.Cursor{Epoch: first.epoch, ID: 4}); err != nil {
		t.Fatal(err)
	}
	r.publish(t, q, 450)
	r.expect(t, "a batch of 450 making a new list", expiryKeep-5*time.Minute, expiryKeep)
}

// The expiry is TTL plus an eighth rounded up to the second.
func TestExpiryRoundsUp(t *testing.T) {
	r := newExpiryRig(t)
	r.publish(t, r.queue(queue.Options{TTL: 100 * time.Second}), 1)
	r.expect(t, "publish with a TTL of 100 s", 113*time.Second, 113*time.Second)
}

// Nodes configured with another TTL (a raised or lowered -queue-ttl
// rolling out) refresh to their own: a raise never leaves an active
// client's keys to the old, shorter expiry.
func TestExpiryAcrossTTLs(t *testing.T) {
	r := newExpiryRig(t)
	short := r.queue(queue.Options{TTL: 10 * time.Minute})
	long := r.queue(queue.Options{TTL: 24 * time.Hour})
	shortKeep, longKeep := 11*time.Minute+15*time.Second, 27*time.Hour

	r.publish(t, short, 1)
	r.step(time.Minute)
	r.read(t, long, message.Cursor{})
	r.expect(t, "a read with the longer TTL", longKeep, longKeep)
	r.step(time.Minute)
	r.read(t, short, message.Cursor{})
	r.expect(t, "a read with the shorter TTL", shortKeep, shortKeep)
}

// Keys due further off than TTL plus an eighth (set by a node whose
// clock is ahead of this one's) are refreshed, not trusted.
func TestExpiryFromAClockAhead(t *testing.T) {
	r := newExpiryRig(t)
	q := r.queue(queue.Options{})
	r.publish(t, q, 1)
	r.clock.set(r.clock.now().Add(-time.Hour)) // this node's clock is behind
	r.mr.FastForward(time.Minute)
	r.read(t, q, message.Cursor{})
	r.expect(t, "read", expiryKeep, expiryKeep)
}

// Under durability a read refreshes the expiry no more than any other:
// what confirms it is a round of the confirmer, which writes a key of
// its own (durable.go). Background acknowledgements are not confirmed.
func TestExpiryDurableRead(t *testing.T) {
	ctx := context.Background()
	r := newExpiryRig(t)
	durable := r.queue(queue.Options{Durability: queue.Durability{Replicas: 1}})
	r.publish(t, r.queue(queue.Options{}), 1)
	r.step(time.Minute)
	durable.AckSoon("a", message.Cursor{ID: 0}, nil)
	r.step(time.Second) // the acknowledgement's flush
	r.expect(t, "a background acknowledgement", expiryKeep-61*time.Second, expiryKeep-61*time.Second)
	// miniredis has no replicas: the confirmation fails after the script ran.
	if _, err := durable.Read(ctx, "a", message.Cursor{}, 10); !errors.Is(err, message.ErrNotDurable) {
		t.Fatalf("durable Read without replicas = %v; want ErrNotDurable", err)
	}
	r.expect(t, "a durable read", expiryKeep-61*time.Second, expiryKeep-61*time.Second)
}

const (
	metaA, listA          = "cb:{a}:m", "cb:{a}:q"
	expiryTTL, expiryKeep = 80 * time.Minute, 90 * time.Minute // keep: TTL plus an eighth
)

// expiryRig is a miniredis whose clock moves with the clock of the
// queues it makes.
type expiryRig struct {
	mr    *miniredis.Miniredis
	rdb   *redis.Client
	clock *fakeClock
}

func newExpiryRig(t *testing.T) *expiryRig {
	mr, rdb := redistest.New(t)
	return &expiryRig{mr: mr, rdb: rdb, clock: newFakeClock()}
}

// queue makes a queue on the rig, with TTL expiryTTL unless opts says.
func (r *expiryRig) queue(opts queue.Options) *queue.Queue {
	if opts.TTL == 0 {
		opts.TTL = expiryTTL
	}
	q := queue.New(r.rdb, opts)
	queue.SetClock(q, r.clock.now, r.clock.after)
	return q
}

// step moves both clocks on by d.
func (r *expiryRig) step(d time.Duration) {
	r.clock.advance(d)
	r.mr.FastForward(d)
}

// published is what a publish to client a told.
type published struct {
	epoch string
	last  uint64
}

// publish publishes n messages to client a in one batch.
func (r *expiryRig) publish(t *testing.T, q *queue.Queue, n int) published {
	t.Helper()
	var b message.Batch
	for i := range n {
		b.Messages = append(b.Messages, text("a", fmt.Sprint(i)))
	}
	pub, err := q.Publish(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return published{epoch: r.mr.HGet(metaA, "e"), last: pub.Receipts[n-1].ID} // no read: it could refresh
}

// read reads client a's queue at since, as a poll does.
func (r *expiryRig) read(t *testing.T, q *queue.Queue, since message.Cursor) {
	t.Helper()
	if _, err := q.Read(context.Background(), "a", since, 10); err != nil {
		t.Fatal(err)
	}
}

// ack acknowledges client a's messages up to cursor.
func (r *expiryRig) ack(t *testing.T, q *queue.Queue, cursor message.Cursor) {
	t.Helper()
	if _, err := q.Ack(context.Background(), "a", cursor); err != nil {
		t.Fatal(err)
	}
}

// expect checks how long client a's keys have to live (0: no such key).
func (r *expiryRig) expect(t *testing.T, after string, meta, list time.Duration) {
	t.Helper()
	if got := r.mr.TTL(metaA); got != meta {
		t.Errorf("after %s: meta expires in %v; want %v", after, got, meta)
	}
	if got := r.mr.TTL(listA); got != list {
		t.Errorf("after %s: list expires in %v; want %v", after, got, list)
	}
}
