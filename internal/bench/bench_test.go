package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ { // 1 ms .. 1000 ms
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Snapshot()
	if got := s.Total(); got != 1000 {
		t.Fatalf("Total() = %d; want 1000", got)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, 1000 * time.Millisecond}} {
		got := s.Quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 1.0/64 {
			t.Errorf("Quantile(%v) = %v; want %v within 1/64", tc.q, got, tc.want)
		}
	}
	if s.Max != int64(time.Second) {
		t.Errorf("Max = %d; want %d", s.Max, time.Second)
	}
	if got := (&HistSnapshot{Counts: make([]uint64, histBuckets)}).Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile(0.5) = %v; want 0", got)
	}
}

func TestHistogramBucketsMonotonic(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<41; v = v*9/8 + 1 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf of a smaller value (%d)", v, b, prev)
		}
		prev = b
		if v < 1<<40 {
			if mid := bucketValue(b); math.Abs(float64(mid-v)) > float64(v)/64+1 {
				t.Fatalf("bucketValue(bucketOf(%d)) = %d; want within 1/64", v, mid)
			}
		}
	}
}

func TestHistogramSparseRoundTripMergeSub(t *testing.T) {
	var a, b Histogram
	a.Record(time.Millisecond)
	a.Record(2 * time.Millisecond)
	b.Record(40 * time.Millisecond)
	sa := a.Snapshot()
	m := sa.Sparse().Snapshot()
	m.Merge(b.Snapshot().Sparse().Snapshot())
	if m.Total() != 3 || m.Max != int64(40*time.Millisecond) {
		t.Fatalf("merged: total %d max %d; want 3 and 40ms", m.Total(), m.Max)
	}
	if d := m.Sub(sa); d.Total() != 1 {
		t.Fatalf("Sub: total %d; want 1", d.Total())
	}
	p := m.Percentiles()
	if p.Count != 3 || p.P50 < 1.9 || p.P50 > 2.1 || p.Max != 40 {
		t.Fatalf("Percentiles() = %+v", p)
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	for seq := uint64(1); seq <= 200; seq++ {
		tr.Acked(seq)
	}
	for seq := uint64(1); seq <= 200; seq++ {
		if seq == 7 || seq == 130 { // lost
			continue
		}
		if tr.Received(seq) {
			t.Fatalf("Received(%d) = dup on first delivery", seq)
		}
	}
	if !tr.Received(5) {
		t.Fatal("Received(5) again: want dup")
	}
	tr.Received(300) // never acknowledged: extra
	lost, extra, dups := tr.Counts()
	if lost != 2 || extra != 1 || dups != 1 {
		t.Fatalf("Counts() = lost %d, extra %d, dups %d; want 2, 1, 1", lost, extra, dups)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	var b []byte
	b = AppendPayload(b, 12345, 42, 1_700_000_000_123_456_789)
	if len(b) != PayloadSize {
		t.Fatalf("payload is %d bytes; want %d", len(b), PayloadSize)
	}
	body := []byte(`[{"id":1,"data":"` + string(b) + `"},{"id":2,"data":"` + string(AppendPayload(nil, 3, 9, 5)) + `"}]`)
	var got []Payload
	n, err := ScanPayloads(body, func(p Payload) { got = append(got, p) })
	if err != nil || n != 2 {
		t.Fatalf("ScanPayloads = %d, %v; want 2, nil", n, err)
	}
	want := []Payload{{12345, 42, 1_700_000_000_123_456_789}, {3, 9, 5}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("payload %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	if _, err := ScanPayloads([]byte("~B12x"), func(Payload) {}); err == nil {
		t.Error("ScanPayloads(garbage) = nil error; want ErrBadPayload")
	}
}

func TestConnAgainstHTTPTest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/len":
			w.Header().Set("Cometbox-Cursor", "e1:"+r.URL.Query().Get("n"))
			fmt.Fprint(w, `[{"id":1,"data":"x"}]`)
		case "/chunked":
			w.Header().Set("Etag", "7")
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		case "/busy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(503)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s", r.Header.Get("Content-Type"), b)
		}
	}))
	defer srv.Close()
	c, err := Dial(strings.TrimPrefix(srv.URL, "http://"), nil, time.Second, "Cometbox-Cursor", "Etag")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(path string) *Response {
		t.Helper()
		req := append(c.Buf(), "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"...)
		r, err := c.Do(req, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return r
	}
	// several requests on one keep-alive connection
	for i := range 3 {
		r := get(fmt.Sprintf("/len?n=%d", i))
		if r.Status != 200 || string(r.Body) != `[{"id":1,"data":"x"}]` || r.Header[0] != fmt.Sprintf("e1:%d", i) || r.Close {
			t.Fatalf("GET /len: %d %q %q close=%v", r.Status, r.Body, r.Header, r.Close)
		}
	}
	if r := get("/chunked"); string(r.Body) != "part0;part1;part2;" || r.Header[1] != "7" {
		t.Fatalf("GET /chunked: %q %q", r.Body, r.Header)
	}
	if r := get("/busy"); r.Status != 503 || r.RetryAfter != 3 {
		t.Fatalf("GET /busy: %d retry %d", r.Status, r.RetryAfter)
	}
	body := "<messages/>"
	req := append(c.Buf(), fmt.Sprintf("POST /post HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s", len(body), body)...)
	if r, err := c.Do(req, time.Now().Add(5*time.Second)); err != nil || string(r.Body) != "application/xml <messages/>" {
		t.Fatalf("POST: %v %q", err, r.Body)
	}
	if r := get("/close"); !r.Close || string(r.Body) != "bye" {
		t.Fatalf("GET /close: close=%v %q", r.Close, r.Body)
	}
}

func TestConnMalformed(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"SMTP 220 hello\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	} {
		a, b := net.Pipe()
		go func() {
			_, _ = bufio.NewReader(b).ReadString('\n')
			_, _ = io.WriteString(b, raw)
			b.Close()
		}()
		c := NewConn(a)
		if _, err := c.Do([]byte("GET / HTTP/1.1\r\n\r\n"), time.Now().Add(2*time.Second)); err == nil {
			t.Errorf("Do() on %q: nil error; want one", raw)
		}
		a.Close()
	}
}

func TestProcGroupSelf(t *testing.T) {
	g, err := ParseProcGroup(fmt.Sprintf("me=%d+", os.Getpid()))
	if err != nil || !g.Children {
		t.Fatalf("ParseProcGroup: %+v %v", g, err)
	}
	s := g.Sample()
	if len(s.Pids) == 0 || s.RSS <= 0 || s.Pss <= 0 {
		t.Fatalf("Sample() = %+v; want this process with memory", s)
	}
	for _, bad := range []string{"x", "=1", "a=b", "a=-1"} {
		if _, err := ParseProcGroup(bad); err == nil {
			t.Errorf("ParseProcGroup(%q) = nil error", bad)
		}
	}
}

func TestCommandCalls(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=17,usec=2106,usec_per_call=123.88,rejected_calls=0,failed_calls=1\r\n" +
		"cmdstat_script|load:calls=13,usec=1763\r\ncmdstat_info:calls=4,usec=1\r\n"
	got := CommandCalls(info)
	if got["evalsha"] != 17 || got["script|load"] != 13 || got["info"] != 4 {
		t.Fatalf("CommandCalls() = %v", got)
	}
	d := CallsDelta(map[string]int64{"evalsha": 10, "info": 1}, got)
	if d["evalsha"] != 7 || d["script|load"] != 13 || d["info"] != 0 {
		t.Fatalf("CallsDelta() = %v", d)
	}
}

func TestTargetsBuildRequests(t *testing.T) {
	cb := &Cometbox{Secret: "s3"}
	s := &SubState{ID: "bench-1:x", Pos: [2]string{"ab:3"}}
	if got := string(cb.AppendPoll(nil, "h:1", s)); got != "GET /poll?client=bench-1:x&since=ab:3 HTTP/1.1\r\nHost: h:1\r\n\r\n" {
		t.Errorf("cometbox poll = %q", got)
	}
	pub := string(cb.AppendPublish(nil, "h:1", []OutMsg{{To: "a", Payload: []byte("p1")}, {To: "b", Payload: []byte("p2")}}))
	head, body, _ := strings.Cut(pub, "\r\n\r\n")
	if body != `<messages><message to="a">p1</message><message to="b">p2</message></messages>` ||
		!strings.Contains(head, fmt.Sprintf("Content-Length: %d", len(body))) || !strings.Contains(head, "Authorization: Bearer s3") {
		t.Errorf("cometbox publish = %q", pub)
	}
	n := &Nchan{SubPath: "/sub", PubPath: "/pub"}
	s = &SubState{ID: "c1", Pos: [2]string{"Wed, 25 Nov 2026 23:39:35 GMT", "2"}}
	if got := string(n.AppendPoll(nil, "h", s)); got != "GET /sub?id=c1 HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Wed, 25 Nov 2026 23:39:35 GMT\r\nIf-None-Match: 2\r\n\r\n" {
		t.Errorf("nchan poll = %q", got)
	}
	out, err := n.HandlePoll(&Response{Status: 200, Header: []string{"Thu, 26 Nov 2026 00:00:00 GMT", "0"}, Body: []byte("x")}, s)
	if err != nil || out.Messages != 1 || s.Pos[1] != "0" {
		t.Errorf("nchan HandlePoll: %+v %v %v", out, err, s.Pos)
	}
	if _, err := n.HandlePoll(&Response{Status: 304, Header: []string{"", ""}}, s); err != nil {
		t.Errorf("nchan HandlePoll(304) = %v; want a quiet re-poll", err)
	}
}

func TestTrackerLossy(t *testing.T) {
	var tr Tracker
	for seq := uint64(1); seq <= 100; seq++ {
		tr.Acked(seq)
	}
	if first, _ := tr.Lossy(); first != 1 {
		t.Fatalf("Lossy() first = %d before any delivery; want 1", first)
	}
	for seq := uint64(1); seq <= 70; seq++ {
		tr.Received(seq)
	}
	if first, maxRecv := tr.Lossy(); first != 71 || maxRecv != 70 { // stalled
		t.Fatalf("Lossy() = %d, %d; want 71, 70", first, maxRecv)
	}
	tr.Received(90)
	if first, maxRecv := tr.Lossy(); first != 71 || maxRecv != 90 { // skipping
		t.Fatalf("Lossy() = %d, %d; want 71, 90", first, maxRecv)
	}
}

func TestTrackerForEach(t *testing.T) {
	var tr Tracker
	for _, seq := range []uint64{1, 2, 64, 65, 130} {
		tr.Acked(seq)
	}
	for _, seq := range []uint64{2, 65, 200} {
		tr.Received(seq)
	}
	var got []string
	tr.ForEach(func(seq uint64, acked, received bool) {
		got = append(got, fmt.Sprintf("%d:%v:%v", seq, acked, received))
	})
	want := "[1:true:false 2:true:true 64:true:false 65:true:true 130:true:false 200:false:true]"
	if fmt.Sprint(got) != want {
		t.Errorf("ForEach = %v; want %v", got, want)
	}
}

// TestWindows feeds a Runner's Timeline and trackers by hand: two
// subscribers, four messages in two windows, one lost, one duplicated,
// and three empty answers (a timeout, an instant one, a drained one).
func TestWindows(t *testing.T) {
	tl := &Timeline{}
	r, err := NewRunner(GenConfig{Target: &Cometbox{}, URLs: []string{"http://127.0.0.1:1"}, Subscribers: 2, Timeline: tl})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	at := func(ms int) int64 { return t0.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	// Message g goes to subscriber g%2 with sequence g/2+1.
	for g, ms := range []int{100, 200, 1100, 1200} {
		tl.noteSent(uint64(g), 1, at(ms))
		r.subs[g%2].tr.Acked(uint64(g/2 + 1))
	}
	for _, g := range []int{0, 1, 2} { // message 3 (sub 1, seq 2) lost
		r.subs[g%2].tr.Received(uint64(g/2 + 1))
		tl.noteDelivered(tl.sentAt(uint64(g)), tl.sentAt(uint64(g))+int64(time.Duration(g+1)*time.Millisecond))
	}
	tl.noteDup(at(1100)) // message 2 again
	tl.noteEmpty(at(500), int64(25*time.Second))
	tl.noteEmpty(at(1500), int64(10*time.Millisecond))
	tl.noteEmpty(at(1600), int64(3*time.Second))
	ws := r.Windows([][2]time.Time{{t0, t0.Add(time.Second)}, {t0.Add(time.Second), t0.Add(2 * time.Second)}},
		WindowOptions{TimeoutAfter: 19 * time.Second})
	type sums struct{ pub, dlv, lost, dup, empty, timeouts, instant uint64 }
	for i, want := range []sums{{2, 2, 0, 0, 1, 1, 0}, {2, 1, 1, 1, 2, 0, 1}} {
		w := ws[i]
		if got := (sums{w.Published, w.Delivered, w.Lost, w.Duplicated, w.Empty, w.Timeouts, w.Instant}); got != want {
			t.Errorf("window %d = %+v; want %+v", i, got, want)
		}
	}
	if p := ws[0].Latency; p.Count != 2 || p.P50 != 2 || p.Max != 2 {
		t.Errorf("window 0 latency %+v; want 2 samples, 1 and 2 ms", p)
	}
}

// A stream's events are read as they come, each as soon as its blank
// line arrives, across chunk boundaries, with comments, multi-line data
// and CRLF line ends.
func TestEventsAsTheyCome(t *testing.T) {
	next := make(chan string)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for part := range next {
			fmt.Fprint(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c, err := Dial(strings.TrimPrefix(srv.URL, "http://"), nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(append(c.Buf(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"...), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { next <- "retry: 2000\n\n: hi\n\nevent: hello\ndata: {}\n\n" }()
	r, _, chunked, err := c.ReadHead()
	if err != nil || r.Status != 200 || !chunked {
		t.Fatalf("ReadHead = %v, chunked %v, %v", r, chunked, err)
	}
	events := newEventReader(c.Body(chunked))
	want := func(typ, id, data string) {
		t.Helper()
		ev, err := events.next()
		if err != nil || ev.Type != typ || ev.ID != id || string(ev.Data) != data {
			t.Fatalf("event = %+v %q, %v; want %q %q %q", ev, ev.Data, err, typ, id, data)
		}
	}
	want("hello", "", "{}")
	go func() {
		next <- "id: e:1\r\ndata: {\"id\":1,"
		next <- "\"data\":\"x\"}\r\n\r\nid: e:2\ndata: a\ndata: b\n\n"
		close(next)
	}()
	want("", "e:1", `{"id":1,"data":"x"}`)
	want("", "e:2", "a\nb")
	if _, err := events.next(); err != io.EOF {
		t.Fatalf("after the end: %v; want EOF", err)
	}
}
