// Package testclient speaks the cometbox protocol for tests: publish a
// batch, poll once, and follow a client's messages like a browser page
// would, keeping its cursor and checking ids.
package testclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// HTTP is the client tests use: no connection limit per host, no global
// timeout (polls are long; callers pass contexts).
var HTTP = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 1000,
	MaxConnsPerHost:     0,
	IdleConnTimeout:     30 * time.Second,
}}

// Message is one delivered message.
type Message struct {
	ID   uint64          `json:"id"`
	Data json.RawMessage `json:"data"`
}

// Text returns the message's data as a string, when it is one.
func (m Message) Text() string {
	var s string
	if json.Unmarshal(m.Data, &s) != nil {
		return string(m.Data)
	}
	return s
}

// Answer is one poll's answer.
type Answer struct {
	Status   int
	Messages []Message
	Cursor   string // Cometbox-Cursor
	Gap      string // Cometbox-Gap
	Reset    bool   // Cometbox-Reset
	Header   http.Header
	Body     string    // for errors
	At       time.Time // when the answer was read, if the caller sets it
}

// Poll polls once.
func Poll(ctx context.Context, base, client, since, token string) (Answer, error) {
	q := url.Values{"client": {client}}
	if since != "" {
		q.Set("since", since)
	}
	if token != "" {
		q.Set("token", token)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/poll?"+q.Encode(), nil)
	if err != nil {
		return Answer{}, err
	}
	resp, err := HTTP.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("poll %s: reading body: %w", client, err)
	}
	a := Answer{
		Status: resp.StatusCode, Header: resp.Header, Body: string(body),
		Cursor: resp.Header.Get("Cometbox-Cursor"), Gap: resp.Header.Get("Cometbox-Gap"),
		Reset: resp.Header.Get("Cometbox-Reset") != "",
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a.Messages); err != nil {
			return a, fmt.Errorf("poll %s: answer %q is not a message array: %w", client, body, err)
		}
	}
	return a, nil
}

// Publish posts body with contentType and returns the status and body.
func Publish(ctx context.Context, base, secret, contentType, body string, header ...string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/publish", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := HTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// XML builds a <messages> body from (to, text) pairs; the texts must not
// need escaping beyond what xmlEscape does.
func XML(pairs ...string) string {
	var b strings.Builder
	b.WriteString("<messages>")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, `<message to="%s">%s</message>`, pairs[i], xmlEscape(pairs[i+1]))
	}
	b.WriteString("</messages>")
	return b.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// Page follows one client like a browser page: it keeps the cursor,
// remembers every id it was handed, and reports duplicates and
// out-of-order ids.
type Page struct {
	Base, Client, Token string
	Cursor              string
	Seen                []Message
	// Oracle, when set, is told of every message the page takes in.
	Oracle *Oracle

	mu     sync.Mutex // guards resets, for readers outside the polling goroutine
	resets int
	seen   map[uint64]bool
	last   uint64
}

// Resets counts the answers that carried Cometbox-Reset; safe to call
// while another goroutine polls.
func (p *Page) Resets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets
}

// PollOnce polls with the page's cursor and takes in the answer. It
// returns the new messages (after deduplication) and the answer.
func (p *Page) PollOnce(ctx context.Context) ([]Message, Answer, error) {
	a, err := Poll(ctx, p.Base, p.Client, p.Cursor, p.Token)
	if err != nil || a.Status != http.StatusOK {
		return nil, a, err
	}
	if p.seen == nil {
		p.seen = map[uint64]bool{}
	}
	if a.Reset {
		p.mu.Lock()
		p.resets++
		p.mu.Unlock()
		p.seen, p.last = map[uint64]bool{}, 0
		if p.Oracle != nil {
			p.Oracle.reset(p)
		}
	}
	epoch, _, _ := strings.Cut(a.Cursor, ":")
	var fresh []Message
	for _, m := range a.Messages {
		if p.seen[m.ID] {
			continue // a repeated answer after a lost response
		}
		if m.ID <= p.last {
			err := fmt.Errorf("client %s: id %d after %d: out of order", p.Client, m.ID, p.last)
			if p.Oracle != nil {
				p.Oracle.problem("%v", err)
			}
			return nil, a, err
		}
		p.seen[m.ID], p.last = true, m.ID
		fresh = append(fresh, m)
		if p.Oracle != nil {
			p.Oracle.delivery(p, epoch, m)
		}
	}
	p.Seen = append(p.Seen, fresh...)
	if a.Cursor != "" {
		p.Cursor = a.Cursor
	}
	return fresh, a, nil
}
