package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// Server-sent event streams: a subscriber may hold one long-lived stream
// (GET /stream on cometbox, an EventSource location on Nchan) instead of
// long-polling. Its messages come as events on the one response; a
// cometbox subscriber acknowledges what it has every ackEvery, as the
// browser client does, through a pool of connections of its own
// (POST /ack), so that the streams' sockets stay one per subscriber.

// Streamer is a Target that serves server-sent event streams.
type Streamer interface {
	// AppendStream appends the request that opens s's stream.
	AppendStream(b []byte, host string, s *SubState) []byte
	// HandleEvent reads one event of s's stream, advances s and reports
	// how many messages the event holds.
	HandleEvent(ev *Event, s *SubState) (PollOutcome, error)
	// AppendAck appends the request acknowledging everything up to s's
	// position, or returns nil when the server takes no acknowledgement.
	AppendAck(b []byte, host string, s *SubState) []byte
	// CheckAck reports whether an acknowledgement succeeded.
	CheckAck(r *Response) error
}

// ackEvery is how often a stream's subscriber acknowledges, at most.
const ackEvery = time.Second

// ackConns is how many connections carry the acknowledgements.
const ackConns = 16

// Event is one server-sent event.
type Event struct {
	Type string // "" for a message
	ID   string
	Data []byte // the data lines joined by line feeds; valid until the next event
}

// eventReader reads server-sent events from a stream's body.
type eventReader struct {
	br   *bufio.Reader
	ev   Event
	data []byte
}

func newEventReader(body io.Reader) *eventReader {
	return &eventReader{br: bufio.NewReaderSize(body, 4096)}
}

// next reads the next event, skipping comments and, as EventSource
// does, events without data (such as a lone retry).
func (e *eventReader) next() (*Event, error) {
	e.ev, e.data = Event{}, e.data[:0]
	have := false       // a data line
	for range 1 << 16 { // lines of one event, at most
		line, err := e.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: event line longer than %d bytes", ErrMalformed, e.br.Size())
		}
		if err != nil {
			return nil, err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if have {
				e.ev.Data = e.data
				return &e.ev, nil
			}
			e.ev = Event{}
			continue
		}
		if line[0] == ':' { // a comment
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			e.ev.Type = string(value)
		case "id":
			e.ev.ID = string(value)
		case "data":
			if have {
				e.data = append(e.data, '\n')
			}
			e.data = append(e.data, value...)
			have = true
		}
	}
	return nil, fmt.Errorf("%w: an event of more than 65,536 lines", ErrMalformed)
}

// errStream is a stream answered with another status than 200.
var errStream = errors.New("stream refused")

// AppendStream is GET /stream?client=ID&since=CURSOR.
func (*Cometbox) AppendStream(b []byte, host string, s *SubState) []byte {
	b = append(b, "GET /stream?client="...)
	b = AppendQueryEscape(b, s.ID)
	if s.Pos[0] != "" {
		b = append(b, "&since="...)
		b = AppendQueryEscape(b, s.Pos[0])
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\nAccept: text/event-stream\r\n\r\n"...)
}

// HandleEvent reads docs/protocol.md's events: a message's id is the
// cursor after it.
func (*Cometbox) HandleEvent(ev *Event, s *SubState) (PollOutcome, error) {
	switch ev.Type {
	case "":
		if ev.ID == "" {
			return PollOutcome{}, fmt.Errorf("stream: a message without an id")
		}
		s.Pos[0] = ev.ID
		return PollOutcome{Messages: 1}, nil
	case "gap":
		return PollOutcome{Gap: true}, nil
	case "reset":
		s.Pos[0] = ev.ID
		return PollOutcome{Reset: true}, nil
	case "hello", "ping":
		return PollOutcome{}, nil
	}
	return PollOutcome{}, fmt.Errorf("stream: unknown event %q", ev.Type)
}

// AppendAck is POST /ack?client=ID&since=CURSOR.
func (*Cometbox) AppendAck(b []byte, host string, s *SubState) []byte {
	if s.Pos[0] == "" {
		return nil
	}
	b = append(b, "POST /ack?client="...)
	b = AppendQueryEscape(b, s.ID)
	b = append(b, "&since="...)
	b = AppendQueryEscape(b, s.Pos[0])
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	return append(b, "\r\nContent-Length: 0\r\n\r\n"...)
}

func (*Cometbox) CheckAck(r *Response) error {
	if r.Status != 204 {
		return fmt.Errorf("ack: status %d: %s", r.Status, trunc(r.Body))
	}
	return nil
}

// AppendStream is GET EVPATH?id=CHANNEL with Last-Event-ID, Nchan's
// EventSource subscriber.
func (n *Nchan) AppendStream(b []byte, host string, s *SubState) []byte {
	b = append(b, "GET "...)
	b = append(b, n.EventPath...)
	b = append(b, "?id="...)
	b = AppendQueryEscape(b, s.ID)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	if s.Pos[0] != "" {
		b = append(b, "\r\nLast-Event-ID: "...)
		b = append(b, s.Pos[0]...)
	}
	return append(b, "\r\nAccept: text/event-stream\r\n\r\n"...)
}

// HandleEvent takes every event with data as a message (Nchan's have
// no type).
func (*Nchan) HandleEvent(ev *Event, s *SubState) (PollOutcome, error) {
	if ev.ID != "" {
		s.Pos[0] = ev.ID
	}
	if ev.Type != "" || len(ev.Data) == 0 {
		return PollOutcome{}, nil
	}
	return PollOutcome{Messages: 1}, nil
}

// AppendAck: Nchan takes none.
func (*Nchan) AppendAck([]byte, string, *SubState) []byte { return nil }

func (*Nchan) CheckAck(*Response) error { return nil }

// ackReq is an acknowledgement waiting for a connection: the subscriber
// and its position when it asked.
type ackReq struct {
	s   *subscriber
	pos SubState
}

// startAckers starts the connections that carry the streams'
// acknowledgements; they stop with the run.
func (r *Runner) startAckers(st Streamer) {
	r.acks = make(chan ackReq, len(r.subs))
	for j := range ackConns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			host := r.hosts[j%len(r.hosts)]
			var c *Conn
			defer func() {
				if c != nil {
					_ = c.Close()
				}
			}()
			for {
				var a ackReq
				select {
				case <-r.ctx.Done():
					return
				case a = <-r.acks:
				}
				if c == nil {
					var err error
					if c, err = Dial(host, nil, 5*time.Second); err != nil {
						r.noteErr("ack dial", err)
						c = nil
						continue
					}
				}
				req := st.AppendAck(c.Buf(), a.s.host, &a.pos)
				if req == nil {
					continue
				}
				resp, err := c.Do(req, time.Now().Add(10*time.Second))
				if err == nil {
					err = st.CheckAck(resp)
				}
				if err != nil || resp.Close {
					if err != nil && r.ctx.Err() == nil {
						r.pollErrors.Add(1)
						r.noteErr("ack", err)
					}
					_ = c.Close()
					c = nil
				}
			}
		}()
	}
}

// streamLoop holds s's stream until the run ends: open it, read its
// events, account for their messages, acknowledge now and then, open it
// again from where it was when it breaks.
func (r *Runner) streamLoop(s *subscriber, st Streamer, firstDone func()) {
	defer r.wg.Done()
	signal := func() {
		if firstDone != nil {
			firstDone()
			firstDone = nil
		}
	}
	defer signal()
	var lastAck time.Time
	for r.ctx.Err() == nil {
		r.dialSem <- struct{}{}
		c, err := Dial(s.addr, s.local, 5*time.Second)
		if err != nil {
			<-r.dialSem
			r.dialErrors.Add(1)
			if r.ctx.Err() == nil {
				r.noteErr("dial", err)
			}
			signal()
			if !r.sleep(time.Second) {
				return
			}
			continue
		}
		s.setConn(c)
		r.connected.Add(1)
		err = c.Send(st.AppendStream(c.Buf(), s.host, &s.st), r.deadline)
		var resp *Response
		var chunked bool
		if err == nil {
			resp, _, chunked, err = c.ReadHead()
		}
		<-r.dialSem
		if err == nil && resp.Status != 200 {
			err = fmt.Errorf("%w: status %d", errStream, resp.Status)
		}
		if err != nil {
			r.pollFailed(s, c, err)
			signal()
			continue
		}
		if firstDone != nil {
			r.connectedEv.Add(1)
		}
		signal()
		events := newEventReader(c.Body(chunked))
		for {
			ev, err := events.next()
			if err != nil {
				if r.ctx.Err() == nil {
					r.reconnects.Add(1)
				}
				r.dropConn(s, c)
				break
			}
			now := time.Now().UnixNano()
			out, herr := st.HandleEvent(ev, &s.st)
			if out.Gap {
				r.gaps.Add(1)
			}
			if out.Reset {
				r.resets.Add(1)
			}
			if herr != nil {
				r.pollErrors.Add(1)
				r.noteErr("stream", herr)
				continue
			}
			if out.Messages == 0 {
				continue
			}
			r.answers.Add(1)
			n, perr := ScanPayloads(ev.Data, func(p Payload) { r.received(s, p, now) })
			if perr != nil || n != out.Messages {
				r.pollErrors.Add(1)
				r.noteErr("stream", fmt.Errorf("%d payloads in an event of %d messages (%v)", n, out.Messages, perr))
			}
			if r.acks != nil && time.Since(lastAck) >= ackEvery {
				select {
				case r.acks <- ackReq{s: s, pos: s.st}:
					lastAck = time.Now()
				default: // every acknowledging connection busy: the next event asks again
				}
			}
		}
	}
}
