package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
)

// BenchmarkMessageCycle is the path of one message as the load tool
// drives it, on a real redis-server: a publish of one message (over
// HTTP, keep-alive), the wake-up of the browser's parked poll, its answer,
// and the browser's re-poll on the same connection, which parks again.
// One message is in flight at a time: ns/op is the whole round, client
// included.
func BenchmarkMessageCycle(b *testing.B) {
	rs := redisserver.Start(b, redisserver.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	n := nodeOn(b, rdb, queue.Options{Pipeline: true}, httpapi.Config{Park: true}, poll.Options{Timeout: time.Minute})
	srv := httptest.NewServer(n.h)
	back := &http.Server{Handler: n.h}
	go back.Serve(n.h.Returned())
	b.Cleanup(func() {
		srv.Close()
		back.Close()
		n.h.Returned().Close()
	})

	pub := dialRaw(b, srv.URL)
	browser := dialRaw(b, srv.URL)
	repoll := func(since string) {
		browser.send("GET /poll?client=bench&since=" + since + " HTTP/1.1\r\nHost: node\r\nOrigin: http://node\r\n\r\n")
	}
	repoll("")
	waitWaiting(b, n, 1)
	payload := strings.Repeat("x", 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf(`<message to="bench">%s</message>`, payload)
		pub.send(fmt.Sprintf("POST /publish HTTP/1.1\r\nHost: node\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		if resp, _ := pub.answer(); resp.StatusCode != 200 {
			b.Fatalf("publish = %d", resp.StatusCode)
		}
		resp, got := browser.answer()
		if want := fmt.Sprintf(`[{"id":%d,"data":"%s"}]`, i, payload); resp.StatusCode != 200 || got != want {
			b.Fatalf("poll = %d %s; want %s", resp.StatusCode, got, want)
		}
		repoll(resp.Header.Get("Cometbox-Cursor"))
	}
}
