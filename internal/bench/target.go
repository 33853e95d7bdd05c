package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Target adapts the generator to one server's protocol: how to hold a
// long-poll, read its answer and resume, and how to publish. Adapters
// keep no per-subscriber state of their own: it lives in SubState.
type Target interface {
	// Name is "cometbox" or "nchan".
	Name() string
	// PollHeaders names the poll answer headers HandlePoll reads.
	PollHeaders() []string
	// AppendPoll appends a complete poll request for s to b.
	AppendPoll(b []byte, host string, s *SubState) []byte
	// HandlePoll reads a poll answer, advances s's position and reports
	// how many messages the answer holds.
	HandlePoll(r *Response, s *SubState) (PollOutcome, error)
	// MaxBatch is the most messages one publish request may carry.
	MaxBatch() int
	// AppendPublish appends one publish request carrying msgs.
	AppendPublish(b []byte, host string, msgs []OutMsg) []byte
	// CheckPublish reports whether a publish of n messages succeeded.
	CheckPublish(r *Response, n int) error
	// Held asks the server at baseURL how many polls it holds now (best
	// effort, for waiting until every poll is really held).
	Held(baseURL string) (int, error)
	// Subscriber is the id a subscriber polls with when it is a member
	// of group (group mode): its own client id (cometbox: the group
	// reaches it through its membership), or the group's channel (Nchan:
	// every subscriber of a channel gets its messages).
	Subscriber(client, group string) string
}

// Joiner is a Target whose group members must be registered before
// they are published to (cometbox; Nchan has no membership).
type Joiner interface {
	// Join makes clients members of group on the server at baseURL.
	Join(baseURL, group string, clients []string) error
}

// SubState is one subscriber's identity and position.
type SubState struct {
	ID string
	// Pos is the adapter's resume position (cometbox: the cursor; nchan:
	// Last-Modified and Etag).
	Pos [2]string
}

// OutMsg is one message to publish.
type OutMsg struct {
	// To is the recipient: a client, or with Group a group.
	To      string
	Group   bool
	Payload []byte
}

// PollOutcome is what a poll answer meant.
type PollOutcome struct {
	// Messages is the number of messages the answer holds by the
	// protocol (the payloads found are checked against it).
	Messages int
	// Retry is set when the server refused the poll for now (overloaded,
	// too many polls); the subscriber waits this long and polls again.
	Retry time.Duration
	// Gap and Reset report cometbox's Cometbox-Gap and Cometbox-Reset.
	Gap, Reset bool
}

// NewTarget returns the adapter called name ("cometbox" or "nchan").
func NewTarget(name, secret string) (Target, error) {
	switch name {
	case "cometbox":
		return &Cometbox{Secret: secret}, nil
	case "nchan":
		return &Nchan{SubPath: "/sub", EventPath: "/ev", PubPath: "/pub", StatusPath: "/nchan_status"}, nil
	}
	return nil, fmt.Errorf("unknown target %q: want cometbox or nchan", name)
}

func retryOf(r *Response) time.Duration {
	d := time.Duration(r.RetryAfter) * time.Second
	return min(max(d, 100*time.Millisecond), 2*time.Second)
}

// Cometbox speaks docs/protocol.md: GET /poll (or /stream and POST
// /ack), POST /publish in XML.
type Cometbox struct {
	// Secret is sent as "Authorization: Bearer" on publishes when set.
	Secret string
	// Streams makes Held count the node's open streams, not its held
	// polls.
	Streams bool
}

func (*Cometbox) Name() string { return "cometbox" }

func (*Cometbox) PollHeaders() []string {
	return []string{"Cometbox-Cursor", "Cometbox-Gap", "Cometbox-Reset"}
}

func (*Cometbox) AppendPoll(b []byte, host string, s *SubState) []byte {
	b = append(b, "GET /poll?client="...)
	b = AppendQueryEscape(b, s.ID)
	if s.Pos[0] != "" {
		b = append(b, "&since="...)
		b = AppendQueryEscape(b, s.Pos[0])
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\n\r\n"...)
}

var idMarker = []byte(`{"id":`)

func (*Cometbox) HandlePoll(r *Response, s *SubState) (PollOutcome, error) {
	switch r.Status {
	case 200:
	case 429, 503:
		return PollOutcome{Retry: retryOf(r)}, fmt.Errorf("poll: status %d: %s", r.Status, trunc(r.Body))
	default:
		return PollOutcome{}, fmt.Errorf("poll: status %d: %s", r.Status, trunc(r.Body))
	}
	if r.Header[0] == "" {
		return PollOutcome{}, fmt.Errorf("poll: 200 without Cometbox-Cursor")
	}
	s.Pos[0] = r.Header[0]
	return PollOutcome{
		Messages: bytes.Count(r.Body, idMarker),
		Gap:      r.Header[1] != "",
		Reset:    r.Header[2] != "",
	}, nil
}

func (*Cometbox) MaxBatch() int { return 1000 }

func (c *Cometbox) AppendPublish(b []byte, host string, msgs []OutMsg) []byte {
	n := len("<messages></messages>")
	for _, m := range msgs {
		n += len(`<message to=""></message>`) + len(m.To) + len(m.Payload)
		if m.Group {
			n += len("group") - len("to")
		}
	}
	b = append(b, "POST /publish HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Type: application/xml\r\n"...)
	if c.Secret != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, c.Secret...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\n\r\n<messages>"...)
	for _, m := range msgs { // ids and payloads need no XML escaping
		if m.Group {
			b = append(b, `<message group="`...)
		} else {
			b = append(b, `<message to="`...)
		}
		b = append(b, m.To...)
		b = append(b, `">`...)
		b = append(b, m.Payload...)
		b = append(b, "</message>"...)
	}
	return append(b, "</messages>"...)
}

func (*Cometbox) CheckPublish(r *Response, n int) error {
	if r.Status != 200 {
		return fmt.Errorf("publish: status %d: %s", r.Status, trunc(r.Body))
	}
	if got := bytes.Count(r.Body, []byte(" id=")) + bytes.Count(r.Body, []byte(" members=")); got != n {
		return fmt.Errorf("publish: %d receipts in the answer for %d messages", got, n)
	}
	return nil
}

func (*Cometbox) Subscriber(client, _ string) string { return client }

// Join posts the members to POST /groups/{group}/members, a thousand at
// a time.
func (c *Cometbox) Join(baseURL, group string, clients []string) error {
	cl := http.Client{Timeout: 30 * time.Second}
	for len(clients) > 0 {
		n := min(len(clients), 1000)
		body, _ := json.Marshal(map[string][]string{"clients": clients[:n]})
		clients = clients[n:]
		req, err := http.NewRequest(http.MethodPost, baseURL+"/groups/"+url.PathEscape(group)+"/members", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.Secret != "" {
			req.Header.Set("Authorization", "Bearer "+c.Secret)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return fmt.Errorf("join group %s: %w", group, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("join group %s: status %d: %s", group, resp.StatusCode, trunc(b))
		}
	}
	return nil
}

// Held reads cometbox_polls_waiting (or cometbox_streams_open) from
// /metrics.
func (c *Cometbox) Held(baseURL string) (int, error) {
	if c.Streams {
		return scrapeNumber(baseURL+"/metrics", "cometbox_streams_open ")
	}
	return scrapeNumber(baseURL+"/metrics", "cometbox_polls_waiting ")
}

// Nchan speaks Nchan's long-poll (and EventSource) subscriber and HTTP
// publisher: one channel per subscriber, named by ?id=.
type Nchan struct {
	SubPath, EventPath, PubPath, StatusPath string
}

func (*Nchan) Name() string { return "nchan" }

func (*Nchan) PollHeaders() []string { return []string{"Last-Modified", "Etag"} }

func (n *Nchan) AppendPoll(b []byte, host string, s *SubState) []byte {
	b = append(b, "GET "...)
	b = append(b, n.SubPath...)
	b = append(b, "?id="...)
	b = AppendQueryEscape(b, s.ID)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	if s.Pos[0] != "" {
		b = append(b, "\r\nIf-Modified-Since: "...)
		b = append(b, s.Pos[0]...)
		b = append(b, "\r\nIf-None-Match: "...)
		b = append(b, s.Pos[1]...)
	}
	return append(b, "\r\n\r\n"...)
}

func (*Nchan) HandlePoll(r *Response, s *SubState) (PollOutcome, error) {
	switch r.Status {
	case 200:
	case 304, 408: // subscriber timeout: poll again from the same position
		return PollOutcome{}, nil
	case 429, 503:
		return PollOutcome{Retry: retryOf(r)}, fmt.Errorf("poll: status %d: %s", r.Status, trunc(r.Body))
	default:
		return PollOutcome{}, fmt.Errorf("poll: status %d: %s", r.Status, trunc(r.Body))
	}
	if r.Header[0] == "" {
		return PollOutcome{}, fmt.Errorf("poll: 200 without Last-Modified")
	}
	s.Pos[0], s.Pos[1] = r.Header[0], r.Header[1]
	return PollOutcome{Messages: 1}, nil
}

func (*Nchan) MaxBatch() int { return 1 }

func (*Nchan) Subscriber(_, group string) string { return group }

func (n *Nchan) AppendPublish(b []byte, host string, msgs []OutMsg) []byte {
	m := msgs[0]
	b = append(b, "POST "...)
	b = append(b, n.PubPath...)
	b = append(b, "?id="...)
	b = AppendQueryEscape(b, m.To)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(m.Payload)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, m.Payload...)
}

func (*Nchan) CheckPublish(r *Response, n int) error {
	if r.Status != 201 && r.Status != 202 {
		return fmt.Errorf("publish: status %d: %s", r.Status, trunc(r.Body))
	}
	return nil
}

// Held reads "subscribers: N" from nchan_stub_status.
func (n *Nchan) Held(baseURL string) (int, error) {
	return scrapeNumber(baseURL+n.StatusPath, "subscribers: ")
}

// scrapeNumber GETs url and returns the integer after prefix at the start
// of a line.
func scrapeNumber(url, prefix string) (int, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("GET %s: %q: %w", url, sc.Text(), err)
			}
			return int(f), nil
		}
	}
	return 0, fmt.Errorf("GET %s: no line starting %q", url, prefix)
}
