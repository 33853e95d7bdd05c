package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cometbox/cometbox/pkg/poll"
)

// errorLog keeps the messages of the records logged at ERROR.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	msgs := l.msgs
	l.msgs = nil
	return msgs
}

// A body broken on its way (bad chunk framing, cut short, the connection
// reset) is the publisher's problem: 400 malformed, not a 503 that sends
// it back to retry and an ERROR that pages an operator.
func TestPublishBodyReadError(t *testing.T) {
	var log errorLog
	cfg := secured()
	cfg.Log = slog.New(&log)
	n := newNode(t, cfg, poll.Options{})
	for _, tt := range []struct {
		name, contentType, start string
		err                      error
	}{
		{"json, bad chunk", "application/json", `{"messages":[{"to":"a","data":`, errors.New("invalid byte in chunk length")},
		{"json, cut short", "application/json", `{"messages":[{"to":"a","da`, io.ErrUnexpectedEOF},
		{"json, nothing read", "application/json", ``, errors.New("connection reset by peer")},
		{"xml, bad chunk", "application/xml", `<messages><message to="a">x`, errors.New("invalid byte in chunk length")},
		{"xml, cut short", "application/xml", `<messages><message to="a">x</message></mess`, io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := publishReq("", tt.contentType)
			req.Body = io.NopCloser(io.MultiReader(strings.NewReader(tt.start), iotest.ErrReader(tt.err)))
			rec := n.do(req)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Retry-After") != "" {
				t.Errorf("status = %d, Retry-After %q; want 400 without Retry-After (body %s)",
					rec.Code, rec.Header().Get("Retry-After"), rec.Body)
			}
			if code := errorCode(t, rec); code != "malformed" {
				t.Errorf("code = %q; want malformed", code)
			}
			if msgs := log.take(); len(msgs) != 0 {
				t.Errorf("logged at ERROR: %q; want nothing", msgs)
			}
		})
	}
}

// An oversized JSON body stays a 413, however the parser wraps the
// reader's error.
func TestPublishJSONBodyTooLarge(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	rec := n.do(publishReq(`{"messages":[{"to":"a","data":"`+strings.Repeat("x", 5000)+`"}]}`, "application/json"))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d; want 413 (body %s)", rec.Code, rec.Body)
	}
	if code := errorCode(t, rec); code != "body_too_large" {
		t.Errorf("code = %q; want body_too_large", code)
	}
}

// The same through a real server and a connection sending invalid chunk
// framing, as the security review did.
func TestPublishBadChunkFraming(t *testing.T) {
	var log errorLog
	cfg := secured()
	cfg.Log = slog.New(&log)
	n := newNode(t, cfg, poll.Options{})
	srv := httptest.NewServer(n.h)
	defer srv.Close()

	for _, contentType := range []string{"application/json", "application/xml"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.WriteString(conn, "POST /publish HTTP/1.1\r\nHost: cometbox\r\n"+
			"Authorization: Bearer "+publishSecret+"\r\nContent-Type: "+contentType+"\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n"+
			"5\r\n{\"mes\r\nzz\r\nsages\r\n0\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		_ = conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s publish with invalid chunk framing = %d; want 400", contentType, resp.StatusCode)
		}
		if msgs := log.take(); len(msgs) != 0 {
			t.Errorf("%s publish with invalid chunk framing logged at ERROR: %q; want nothing", contentType, msgs)
		}
	}
}

// Bodies that parsers read differently are refused whole, so that a back
// end that checked a body with another parser never disagrees with the
// node about who receives what.
func TestPublishRefusesAmbiguousBodies(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	for _, tt := range []struct {
		name, body, contentType, code string
	}{
		{"repeated to", `<messages><message to="alice" to="bob">x</message></messages>`, "application/xml", "malformed"},
		{"repeated id", `<messages id="k1" id="k2"><message to="alice">x</message></messages>`, "application/xml", "malformed"},
		{"surrogate reference", `<messages><message to="alice">&#xD800;</message></messages>`, "application/xml", "malformed"},
		{"json keys in another case", `{"Messages":[{"TO":"bob","data":1}]}`, "application/json", "invalid_message"},
		{"json key repeated", `{"messages":[{"to":"alice","to":"bob","data":1}]}`, "application/json", "invalid_message"},
		{"json messages repeated", `{"messages":[{"to":"alice","data":1}],"messages":[{"to":"bob","data":1}]}`, "application/json", "invalid_message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := n.do(publishReq(tt.body, tt.contentType))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status = %d; want 400 (body %s)", rec.Code, rec.Body)
			}
			if code := errorCode(t, rec); code != tt.code {
				t.Errorf("code = %q; want %q (body %s)", code, tt.code, rec.Body)
			}
			if keys := n.mr.Keys(); len(keys) != 0 {
				t.Errorf("Redis holds %v after a refused publish", keys)
			}
		})
	}
}

// An idempotency key reused for another batch is a 409, however alike
// the two batches are; the same batch again is a replay, in either
// format.
func TestIdempotencyKeyReusedForAnotherBatch(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	send := func(body, contentType string) *httptest.ResponseRecorder {
		req := publishReq(body, contentType)
		req.Header.Set("Idempotency-Key", "retry-1")
		return n.do(req)
	}
	if rec := send(`<messages><message to="a">x</message><message to="b">y</message></messages>`, "application/xml"); rec.Code != 200 {
		t.Fatalf("first publish = %d %s", rec.Code, rec.Body)
	}
	rec := send(`<messages><message to="a">x</message><message to="b">z</message></messages>`, "application/xml")
	if rec.Code != http.StatusConflict || errorCode(t, rec) != "idempotency_conflict" {
		t.Errorf("the key with another batch = %d %s; want 409 idempotency_conflict", rec.Code, rec.Body)
	}
	rec = send(`{"messages":[{"to":"a","data":"x"},{"to":"b","data":"y"}]}`, "application/json")
	if rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same batch again, in JSON = %d %s, Idempotent-Replayed %q; want a 200 replay",
			rec.Code, rec.Body, rec.Header().Get("Idempotent-Replayed"))
	}
	if rec := n.do(pollReq("b", "")); rec.Body.String() != `[{"id":1,"data":"y"}]` {
		t.Errorf("b's queue = %s; want the first batch's message alone", rec.Body)
	}
}
