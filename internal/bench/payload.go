package bench

import (
	"bytes"
	"errors"
)

// A payload is PayloadSize bytes of plain ASCII that survives XML, JSON and
// raw bodies unchanged:
//
//	~B<sub:8>:<seq:10>:<unixnano:19>~xxxxxxxxxxxxxxxxxxxxx
//
// so a subscriber learns which subscriber it was meant for, its sequence
// number for that subscriber, and when it was sent.
const (
	PayloadSize   = 64
	payloadMarker = "~B"
	payloadFixed  = 2 + 8 + 1 + 10 + 1 + 19 + 1 // 42
)

// ErrBadPayload is returned for a marker not followed by a valid payload.
var ErrBadPayload = errors.New("bad payload")

// AppendPayload appends a payload for (sub, seq) sent at sentNanos.
func AppendPayload(b []byte, sub int, seq uint64, sentNanos int64) []byte {
	b = append(b, payloadMarker...)
	b = appendFixed(b, uint64(sub), 8)
	b = append(b, ':')
	b = appendFixed(b, seq, 10)
	b = append(b, ':')
	b = appendFixed(b, uint64(sentNanos), 19)
	b = append(b, '~')
	for range PayloadSize - payloadFixed {
		b = append(b, 'x')
	}
	return b
}

func appendFixed(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	for i := width - 1; i >= 0; i-- {
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[:width]...)
}

func parseFixed(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// Payload is one decoded payload.
type Payload struct {
	Sub       int
	Seq       uint64
	SentNanos int64
}

// ScanPayloads calls fn for each payload found in body, in order, and
// returns how many it found; a marker followed by garbage is an error.
func ScanPayloads(body []byte, fn func(Payload)) (int, error) {
	n := 0
	for {
		i := bytes.Index(body, []byte(payloadMarker))
		if i < 0 {
			return n, nil
		}
		body = body[i:]
		if len(body) < payloadFixed || body[10] != ':' || body[21] != ':' || body[41] != '~' {
			return n, ErrBadPayload
		}
		sub, ok1 := parseFixed(body[2:10])
		seq, ok2 := parseFixed(body[11:21])
		ts, ok3 := parseFixed(body[22:41])
		if !ok1 || !ok2 || !ok3 {
			return n, ErrBadPayload
		}
		fn(Payload{Sub: int(sub), Seq: seq, SentNanos: int64(ts)})
		n++
		body = body[payloadFixed:]
	}
}
