// Package message owns what a back end publishes and what a browser polls
// for: the Message type, the client-id rules, the XML and JSON publish
// formats, and the Cursor a browser sends back to say what it already has.
//
// Everything here is pure: no I/O beyond the io.Reader it is handed, no
// globals that change, safe for concurrent use.
//
// # Example
//
//	batch, err := message.ParseXML(r.Body, message.Limits{})
//	if err != nil {
//		// err wraps one of the Err* sentinels and names the message index
//	}
package message

import (
	"encoding/json"
	"fmt"
)

// Message is one payload for one client, or for every member of a group.
type Message struct {
	// To is the recipient's client id; see ValidClient. Empty for a group
	// message.
	To string
	// Group, when not empty, names the group whose members each get a
	// copy of the message in their own queue; see ValidGroup. To is then
	// empty.
	Group string
	// Except, only with Group, names a member that gets no copy (the
	// sender's own client, usually).
	Except string
	// Data is the payload as compact JSON: a JSON string for a text message,
	// any JSON value for a type="json" message.
	Data json.RawMessage
}

// Batch is the parsed body of one publish request.
type Batch struct {
	// Messages in the order they were given.
	Messages []Message
	// IdempotencyKey, when not empty, makes a retried batch enqueue once.
	// It comes from the id attribute of <messages> or the "id" member of a
	// JSON body; the HTTP layer may also set it from a header.
	IdempotencyKey string
}

// Receipt tells the publisher which id a message was given, or, for a
// group message, how many members got a copy.
type Receipt struct {
	To string
	ID uint64
	// Group is the group of a group message; To and ID are then empty.
	Group string
	// Members counts the members whose queue got a copy of a group
	// message (0: the group has no member, or only the excepted one).
	Members int
}

// String returns "{alice 7}" for a message to a client and
// "{group room:42 3}" for a group message to 3 members.
func (r Receipt) String() string {
	if r.Group != "" {
		return fmt.Sprintf("{group %s %d}", r.Group, r.Members)
	}
	return fmt.Sprintf("{%s %d}", r.To, r.ID)
}

// Limits bounds what a parser accepts. The zero value applies the defaults.
type Limits struct {
	// MaxMessageBytes bounds one message's payload (the text, or the JSON
	// value). Default: 64 KiB.
	MaxMessageBytes int
	// MaxMessages bounds the messages in one batch. Default: 1000.
	MaxMessages int
}

// Default limits, applied where a Limits field is zero.
const (
	DefaultMaxMessageBytes = 64 << 10
	DefaultMaxMessages     = 1000
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultMaxMessages
	}
	return l
}

// MaxClientLen is the longest client id accepted.
const MaxClientLen = 128

// ValidClient reports whether id is a client id: 1 to 128 characters of
// A-Z a-z 0-9 _ . : @ -.
func ValidClient(id string) bool {
	return validToken(id, MaxClientLen)
}

// CheckClient returns nil for a valid client id and an error wrapping
// ErrInvalidClient that quotes the bad value otherwise.
func CheckClient(id string) error {
	if ValidClient(id) {
		return nil
	}
	if id == "" {
		return fmt.Errorf("client id is empty: %w", ErrInvalidClient)
	}
	return fmt.Errorf("client %s: want 1 to %d characters of A-Z a-z 0-9 _ . : @ -: %w",
		quoteShort(id), MaxClientLen, ErrInvalidClient)
}

// MaxGroupLen is the longest group name accepted.
const MaxGroupLen = 128

// ValidGroup reports whether name is a group name: 1 to 128 characters
// of the client-id alphabet, A-Z a-z 0-9 _ . : @ - (so "room:42" and
// "tenant.7:admins" are valid; braces, slashes and spaces are not).
func ValidGroup(name string) bool {
	return validToken(name, MaxGroupLen)
}

// CheckGroup returns nil for a valid group name and an error wrapping
// ErrInvalidGroup that quotes the bad value otherwise.
func CheckGroup(name string) error {
	if ValidGroup(name) {
		return nil
	}
	if name == "" {
		return fmt.Errorf("group name is empty: %w", ErrInvalidGroup)
	}
	return fmt.Errorf("group %s: want 1 to %d characters of A-Z a-z 0-9 _ . : @ -: %w",
		quoteShort(name), MaxGroupLen, ErrInvalidGroup)
}

// MaxIdempotencyKeyLen is the longest idempotency key accepted.
const MaxIdempotencyKeyLen = 128

// CheckIdempotencyKey accepts keys of the same alphabet as client ids, 1 to
// 128 characters.
func CheckIdempotencyKey(key string) error {
	if validToken(key, MaxIdempotencyKeyLen) {
		return nil
	}
	return fmt.Errorf("idempotency key %s: want 1 to %d characters of A-Z a-z 0-9 _ . : @ -: %w",
		quoteShort(key), MaxIdempotencyKeyLen, ErrInvalidIdempotencyKey)
}

func validToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '.', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// quoteShort quotes s for an error message, cut to a readable length so a
// hostile value cannot blow up logs or answers.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
