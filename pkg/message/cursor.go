package message

import (
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a browser's position in its client's sequence: the id of the
// last message it has, and the epoch that id belongs to.
//
// An epoch names one life of a client's sequence. When the sequence is
// created anew (first message, after it expired, after Redis lost its
// data) it gets a new epoch and ids start again at 1, so an id from the
// old life must not be trusted. A cursor without an epoch (a plain "57")
// is accepted for simple clients; it is checked only against the
// sequence's last id.
//
// The text form is "ID" or "EPOCH:ID", e.g. "57" or "k3x9q2ab:57".
type Cursor struct {
	Epoch string
	ID    uint64
}

// MaxEpochLen is the longest epoch accepted in a cursor.
const MaxEpochLen = 32

// ParseCursor reads the text form of a Cursor. The empty string is the
// zero Cursor: "everything not yet acknowledged".
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	var c Cursor
	idText := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		c.Epoch, idText = s[:i], s[i+1:]
		if !validEpoch(c.Epoch) {
			return Cursor{}, fmt.Errorf("since %s: epoch must be 1 to %d characters of a-z 0-9: %w",
				quoteShort(s), MaxEpochLen, ErrInvalidCursor)
		}
	}
	id, err := strconv.ParseUint(idText, 10, 63)
	if err != nil || (len(idText) > 1 && idText[0] == '0') {
		return Cursor{}, fmt.Errorf("since %s: want a message id (0, 1, 2, ...), optionally after \"epoch:\": %w",
			quoteShort(s), ErrInvalidCursor)
	}
	c.ID = id
	return c, nil
}

// String returns the text form that ParseCursor reads.
func (c Cursor) String() string {
	if c.Epoch == "" {
		return strconv.FormatUint(c.ID, 10)
	}
	return c.Epoch + ":" + strconv.FormatUint(c.ID, 10)
}

func validEpoch(s string) bool {
	if len(s) == 0 || len(s) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Range is an inclusive span of message ids, First <= Last.
type Range struct {
	First, Last uint64
}

// String returns "First-Last", the form of the Cometbox-Gap header.
func (r Range) String() string {
	return strconv.FormatUint(r.First, 10) + "-" + strconv.FormatUint(r.Last, 10)
}
