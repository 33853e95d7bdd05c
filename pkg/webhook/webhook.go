// Package webhook tells the back end of presence changes: it POSTs them
// as JSON, several events a request, signed, retried with backoff until
// the receiver takes them or they are too old.
//
// A request's body is
//
//	{"time_ms":1800000000123,"events":[
//	  {"id":"0.1800000000100-0","name":"client_online","client":"alice","time_ms":1800000000100}]}
//
// and its Cometbox-Signature header is "t=UNIX,v1=HEX": HEX is the
// HMAC-SHA256, under the webhook secret, of UNIX, a dot, and the body,
// as Stripe signs its webhooks; while a secret is rotated there is one v1
// per secret. A receiver checks that one v1 matches and that UNIX is
// recent (Verify; the PHP client's Webhook::verify), which makes a
// captured request useless for replay once it is old.
//
// Delivery is at least once: a request whose answer is lost is sent
// again, with the same event ids, for the receiver to drop duplicates.
// Events are sent in the order they are given and a batch is never
// overtaken by the next, so each client's events arrive in order.
//
// A Sender is safe for concurrent use, though presence calls it from one
// goroutine.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/presence"
)

// Header is the name of the signature header.
const Header = "Cometbox-Signature"

// Defaults, each set once here. pkg/config, which imports no cometbox
// package, restates those a flag sets; cmd/cometbox's
// TestFlagDefaultsAreThePackages holds the two equal.
const (
	// DefaultMaxAge is how long an event may wait for delivery before it
	// is dropped.
	DefaultMaxAge = 10 * time.Minute
	// DefaultTimeout bounds one request.
	DefaultTimeout = 10 * time.Second
	// DefaultTolerance is how old a signature's timestamp Verify accepts.
	DefaultTolerance = 5 * time.Minute
)

// Options tunes a Sender.
type Options struct {
	// URL receives the POSTs. Required.
	URL string
	// Secrets sign every request, one v1 each; the first is the current
	// one. Required.
	Secrets []string
	// Timeout bounds one request. Default: DefaultTimeout.
	Timeout time.Duration
	// MaxAge drops events not delivered this long after they happened.
	// Default: DefaultMaxAge.
	MaxAge time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed request:
	// random (full jitter) up to MinBackoff, doubled after each failure,
	// at most MaxBackoff. Defaults: 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Client sends the requests. Default: a client of its own.
	Client *http.Client
	// Log receives a line when delivery starts failing, when it works
	// again, and for every event dropped. Default: discard.
	Log *slog.Logger
	// M counts requests, deliveries and drops. May be nil.
	M *metrics.Metrics
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Sender posts presence events to a webhook; it is a presence.Sink.
type Sender struct {
	opts    Options
	logURL  string // the URL as logged: without user info or query
	failing bool   // owned by the caller's goroutine (presence's deliverer)
}

var _ presence.Sink = (*Sender)(nil)

// New returns a Sender.
func New(opts Options) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sender{opts: opts, logURL: logURL(opts.URL)}
}

// logURL is raw without what may be a credential (a receiver often takes
// one in the user info or the query): scheme, host and path.
func logURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}

// Body is a webhook request's body.
type Body struct {
	TimeMS int64   `json:"time_ms"`
	Events []Event `json:"events"`
}

// Event is one presence change in a Body.
type Event struct {
	// ID stays the same when an event is sent again: drop duplicates by
	// it.
	ID string `json:"id"`
	// Name is client_online or client_offline.
	Name   string `json:"name"`
	Client string `json:"client"`
	// TimeMS is when the client came online, or when it was last seen.
	TimeMS int64 `json:"time_ms"`
}

// Send posts events, in as many attempts as it takes, until the receiver
// answers 2xx or they are older than Options.MaxAge (then they are
// dropped, counted and logged). It returns nil then, or ctx's error when
// ctx ends first.
func (s *Sender) Send(ctx context.Context, events []presence.Event) error {
	for attempt := 0; ; attempt++ {
		events = s.dropOld(events)
		if len(events) == 0 {
			return nil
		}
		err := s.post(ctx, events)
		if err == nil {
			now := s.opts.Now()
			for _, e := range events {
				s.opts.M.WebhookDelivered(e.At, now)
			}
			if s.failing {
				s.failing = false
				s.opts.Log.Info("webhook: delivering again", "url", s.logURL)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := s.backoff(attempt)
		if !s.failing {
			s.failing = true
			s.opts.Log.Warn("webhook: delivery failing; retrying", "url", s.logURL, "err", err, "retry_in", wait)
		} else if s.opts.Log.Enabled(ctx, slog.LevelDebug) {
			s.opts.Log.Debug("webhook: delivery failed", "err", err, "retry_in", wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// dropOld drops the events older than the bound; the others keep their
// order.
func (s *Sender) dropOld(events []presence.Event) []presence.Event {
	oldest := s.opts.Now().Add(-s.opts.MaxAge)
	kept := events[:0:0]
	var dropped []string
	for _, e := range events {
		if e.At.Before(oldest) {
			dropped = append(dropped, e.ID)
		} else {
			kept = append(kept, e)
		}
	}
	if len(dropped) > 0 {
		s.opts.M.WebhookDropped("too_old", len(dropped))
		s.opts.Log.Warn("webhook: dropped events not delivered in time", "dropped", len(dropped),
			"max_age", s.opts.MaxAge, "first_id", dropped[0], "last_id", dropped[len(dropped)-1])
		return kept
	}
	return events
}

// backoff is the wait after the attempt-th failure: full jitter.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.opts.MinBackoff << min(attempt, 20)
	if d <= 0 || d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// errRefused: the receiver answered with a status other than 2xx.
var errRefused = errors.New("webhook: receiver refused the request")

// post sends events in one request.
func (s *Sender) post(ctx context.Context, events []presence.Event) error {
	now := s.opts.Now()
	body := Body{TimeMS: now.UnixMilli(), Events: make([]Event, len(events))}
	for i, e := range events {
		body.Events[i] = Event{ID: e.ID, Name: e.Kind, Client: e.Client, TimeMS: e.At.UnixMilli()}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cometbox-webhook")
	req.Header.Set(Header, SignatureHeader(s.opts.Secrets, now, raw))
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		s.opts.M.WebhookRequest("failed")
		var ue *url.Error // it names the whole URL: the log names logURL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %d events: %w", len(events), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.opts.M.WebhookRequest("refused")
		return fmt.Errorf("%w: status %d", errRefused, resp.StatusCode)
	}
	s.opts.M.WebhookRequest("ok")
	return nil
}

// SignatureHeader is the Cometbox-Signature header of body, sent at t,
// with one v1 per secret.
func SignatureHeader(secrets []string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, secret := range secrets {
		b.WriteString(",v1=" + sign(secret, ts, body))
	}
	return b.String()
}

// sign is the hex HMAC-SHA256 of "ts.body".
func sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Errors returned by Verify.
var (
	// ErrBadSignature: the header is missing or malformed, or no v1 in
	// it matches the body under any of the secrets.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrTooOld: the signature is older (or newer) than the tolerance.
	ErrTooOld = errors.New("webhook: signature timestamp outside the tolerance")
)

// Verify checks a request's Cometbox-Signature header against its body
// under any of secrets, and that it was signed within tolerance of now
// (DefaultTolerance when 0). A Go receiver calls it before it trusts the
// body.
func Verify(header string, body []byte, secrets []string, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	ok := false
	for _, secret := range secrets {
		want := sign(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal([]byte(sig), []byte(want)) {
				ok = true
			}
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %v ago", ErrTooOld, d.Round(time.Second))
	}
	return nil
}
