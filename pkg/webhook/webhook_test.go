package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/webhook"
)

// receiver is a webhook endpoint that answers status, and records the
// requests it verified.
type receiver struct {
	t       *testing.T
	secrets []string
	status  atomic.Int32
	mu      sync.Mutex
	bodies  []webhook.Body
	tries   int
}

func newReceiver(t *testing.T, secrets ...string) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secrets: secrets}
	r.status.Store(200)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if err := webhook.Verify(req.Header.Get(webhook.Header), raw, r.secrets, 0, time.Now()); err != nil {
		r.t.Errorf("request with %s %q: %v", webhook.Header, req.Header.Get(webhook.Header), err)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type = %q", ct)
	}
	status := int(r.status.Load())
	if status == 200 {
		var b webhook.Body
		if err := json.Unmarshal(raw, &b); err != nil {
			r.t.Errorf("body %s: %v", raw, err)
		}
		r.bodies = append(r.bodies, b)
	}
	w.WriteHeader(status)
}

func (r *receiver) got() []webhook.Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Body(nil), r.bodies...)
}

func events(at time.Time, kinds ...string) []presence.Event {
	var out []presence.Event
	for i, k := range kinds {
		kind, client, _ := strings.Cut(k, " ")
		out = append(out, presence.Event{ID: "0.1-" + string(rune('0'+i)), Kind: "client_" + kind, Client: client, At: at})
	}
	return out
}

func TestSendPostsSignedBatches(t *testing.T) {
	r, srv := newReceiver(t, "whsec")
	s := webhook.New(webhook.Options{URL: srv.URL, Secrets: []string{"whsec"}})
	at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	if err := s.Send(context.Background(), events(at, "online alice", "offline bob")); err != nil {
		t.Fatal(err)
	}
	got := r.got()
	if len(got) != 1 || len(got[0].Events) != 2 {
		t.Fatalf("bodies = %+v; want one with two events", got)
	}
	want := webhook.Event{ID: "0.1-0", Name: "client_online", Client: "alice", TimeMS: at.UnixMilli()}
	if got[0].Events[0] != want || got[0].Events[1].Name != "client_offline" || got[0].Events[1].Client != "bob" {
		t.Errorf("events = %+v; want %+v first", got[0].Events, want)
	}
	if d := time.Since(time.UnixMilli(got[0].TimeMS)); d < 0 || d > 5*time.Second {
		t.Errorf("time_ms = %d, %v ago", got[0].TimeMS, d)
	}
}

func TestSendRetriesUntilTheReceiverTakesThem(t *testing.T) {
	r, srv := newReceiver(t, "whsec")
	r.status.Store(503)
	s := webhook.New(webhook.Options{URL: srv.URL, Secrets: []string{"whsec"}, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	go func() {
		time.Sleep(100 * time.Millisecond)
		r.status.Store(200)
	}()
	if err := s.Send(context.Background(), events(time.Now(), "online carol")); err != nil {
		t.Fatal(err)
	}
	got := r.got()
	if len(got) != 1 || got[0].Events[0].ID != "0.1-0" {
		t.Fatalf("bodies = %+v; want the event once, when the receiver took it", got)
	}
	if r.tries < 2 {
		t.Errorf("%d requests; want retries", r.tries)
	}
}

func TestSendDropsWhatIsTooOld(t *testing.T) {
	r, srv := newReceiver(t, "whsec")
	r.status.Store(500)
	s := webhook.New(webhook.Options{URL: srv.URL, Secrets: []string{"whsec"}, MaxAge: 200 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	start := time.Now()
	if err := s.Send(context.Background(), events(time.Now(), "online dave")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v; want once the event was 200ms old", d)
	}
	tries := r.tries
	if err := s.Send(context.Background(), events(time.Now().Add(-time.Second), "online erin")); err != nil {
		t.Fatal(err)
	}
	if r.tries != tries {
		t.Errorf("an event too old already was sent")
	}
}

// The log names the receiver without what may be its credentials: a
// password in the URL, a token in its query.
func TestLogHidesTheURLsCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every request fails
	var logged bytes.Buffer
	s := webhook.New(webhook.Options{
		URL: "http://hook:pa55word@" + addr + "/hooks/cometbox?token=s3cret", Secrets: []string{"whsec"},
		MaxAge: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err := s.Send(context.Background(), events(time.Now(), "online gus")); err != nil {
		t.Fatal(err)
	}
	out := logged.String()
	if !strings.Contains(out, "delivery failing") || !strings.Contains(out, addr+"/hooks/cometbox") {
		t.Errorf("log = %s; want the failure, naming the receiver", out)
	}
	for _, secret := range []string{"pa55word", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log = %s; want no %q", out, secret)
		}
	}
}

func TestSendStopsWithItsContext(t *testing.T) {
	r, srv := newReceiver(t, "whsec")
	r.status.Store(500)
	s := webhook.New(webhook.Options{URL: srv.URL, Secrets: []string{"whsec"}, MinBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Send(ctx, events(time.Now(), "online fay")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v; want the context's error", err)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"time_ms":1,"events":[]}`)
	now := time.Unix(1_800_000_000, 0)
	h := webhook.SignatureHeader([]string{"new", "old"}, now, body)
	for _, tt := range []struct {
		name    string
		header  string
		body    []byte
		secrets []string
		at      time.Time
		want    error
	}{
		{"current secret", h, body, []string{"new"}, now, nil},
		{"old secret, while rotating", h, body, []string{"old"}, now, nil},
		{"wrong secret", h, body, []string{"other"}, now, webhook.ErrBadSignature},
		{"body changed", h, []byte(`{"time_ms":2,"events":[]}`), []string{"new"}, now, webhook.ErrBadSignature},
		{"timestamp changed", strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, []string{"new"}, now, webhook.ErrBadSignature},
		{"no header", "", body, []string{"new"}, now, webhook.ErrBadSignature},
		{"no v1", "t=1800000000", body, []string{"new"}, now, webhook.ErrBadSignature},
		{"old", h, body, []string{"new"}, now.Add(6 * time.Minute), webhook.ErrTooOld},
		{"from the future", h, body, []string{"new"}, now.Add(-6 * time.Minute), webhook.ErrTooOld},
		{"within the tolerance", h, body, []string{"new"}, now.Add(4 * time.Minute), nil},
	} {
		err := webhook.Verify(tt.header, tt.body, tt.secrets, 0, tt.at)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: Verify = %v; want %v", tt.name, err, tt.want)
		}
	}
}

// The vectors in testdata/vectors.json are what every verifier (the PHP
// client's Webhook::verify) must reproduce.
func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Secrets []string `json:"secrets"`
		Time    int64    `json:"time"`
		Body    string   `json:"body"`
		Header  string   `json:"header"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	for _, v := range vectors {
		if got := webhook.SignatureHeader(v.Secrets, time.Unix(v.Time, 0), []byte(v.Body)); got != v.Header {
			t.Errorf("SignatureHeader(%v, %d, %q) = %q; want %q", v.Secrets, v.Time, v.Body, got, v.Header)
		}
	}
}
