package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ParseJSON reads a publish body in the JSON format:
//
//	{"id": "optional-idempotency-key",
//	 "messages": [{"to": "alice", "data": <any JSON value>},
//	              {"group": "room:42", "except": "alice", "data": <any JSON value>}]}
//
// A message names one client (to) or one group (group, optionally with
// except), as in ParseXML.
//
// Like ParseXML it validates everything before it returns, and its errors
// name the offending member, e.g. `messages[2].to`.
//
// Keys are matched exactly and may appear once per object. encoding/json
// alone would take "Messages" or "TO" for their lower-case selves and keep
// the last of two "to", where a parser the back end checks the body with
// may not, and the two would disagree about who receives what. So
// encoding/json only checks the syntax (json.Valid), and the envelope is
// then read by jsonReader; data is the publisher's own JSON value, kept
// as it is (compacted), its keys unexamined.
func ParseJSON(r io.Reader, lim Limits) (Batch, error) {
	lim = lim.withDefaults()
	body, err := io.ReadAll(r)
	if err != nil {
		// The body broke on its way (bad chunk framing, cut short, too
		// large): the publisher's fault, not the node's. The reader's error
		// stays inside, so that a *http.MaxBytesError still reads as one.
		return Batch{}, fmt.Errorf("reading the body: %w: %w", err, ErrMalformed)
	}
	if !utf8.Valid(body) {
		return Batch{}, fmt.Errorf("body is not valid UTF-8: %w", ErrMalformed)
	}
	if !json.Valid(body) {
		return Batch{}, syntaxError(body)
	}

	in := &jsonReader{b: body}
	if !in.enter('{') {
		return Batch{}, fmt.Errorf("want a JSON object, got JSON %s: %w", kind(in.peek()), ErrInvalid)
	}
	var (
		batch Batch
		seen  keySet
	)
	for {
		key, ok := in.nextKey()
		if !ok {
			break
		}
		if err := seen.add(key, envelopeKeys); err != nil {
			return Batch{}, err
		}
		if key == "messages" {
			if batch.Messages, err = readMessages(in, lim); err != nil {
				return Batch{}, err
			}
			continue
		}
		id, ok, err := in.string("id")
		if err != nil {
			return Batch{}, err
		}
		if ok { // null: as if missing
			if err := CheckIdempotencyKey(id); err != nil {
				return Batch{}, fmt.Errorf("id: %w", err)
			}
			batch.IdempotencyKey = id
		}
	}
	if len(batch.Messages) == 0 {
		return Batch{}, fmt.Errorf("messages: empty or missing: %w", ErrEmpty)
	}
	return batch, nil
}

// The keys of the envelope and of a message, exactly.
var (
	envelopeKeys = []string{"id", "messages"}
	messageKeys  = []string{"to", "data", "group", "except"}
)

// readMessages reads the value of "messages": an array of messages, or null.
func readMessages(in *jsonReader, lim Limits) ([]Message, error) {
	if c := in.peek(); c == 'n' {
		in.skipValue()
		return nil, nil // null: as if missing
	}
	if !in.enter('[') {
		return nil, fmt.Errorf("messages: want a JSON array, got JSON %s: %w", kind(in.peek()), ErrInvalid)
	}
	var msgs []Message
	for in.nextElement() {
		if len(msgs) == lim.MaxMessages {
			return nil, fmt.Errorf("messages: more than %d: %w", lim.MaxMessages, ErrTooManyMessages)
		}
		m, err := readMessage(in, len(msgs), lim)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// readMessage reads messages[i].
func readMessage(in *jsonReader, i int, lim Limits) (Message, error) {
	where := func() string { return fmt.Sprintf("messages[%d]", i) } // only for errors
	if !in.enter('{') {
		return Message{}, fmt.Errorf("%s: want a JSON object, got JSON %s: %w", where(), kind(in.peek()), ErrInvalid)
	}
	var (
		m                                       Message
		seen                                    keySet
		haveTo, haveGroup, haveExcept, haveData bool
	)
	for {
		key, ok := in.nextKey()
		if !ok {
			break
		}
		if err := seen.add(key, messageKeys); err != nil {
			return Message{}, fmt.Errorf("%s: %w", where(), err)
		}
		if key != "data" {
			v, ok, err := in.string(key)
			switch {
			case err != nil:
				return Message{}, fmt.Errorf("%s.%w", where(), err)
			case !ok: // null: as if missing
				continue
			}
			check, have, field := CheckClient, &haveTo, &m.To
			switch key {
			case "group":
				check, have, field = CheckGroup, &haveGroup, &m.Group
			case "except":
				have, field = &haveExcept, &m.Except
			}
			if err := check(v); err != nil {
				return Message{}, fmt.Errorf("%s.%s: %w", where(), key, err)
			}
			*field, *have = v, true
			continue
		}
		raw := in.value()
		data := bytes.NewBuffer(make([]byte, 0, len(raw)))
		if err := json.Compact(data, raw); err != nil {
			return Message{}, fmt.Errorf("%s.data: %v: %w", where(), err, ErrMalformed) // cannot be: the body is valid
		}
		if data.Len() > lim.MaxMessageBytes {
			return Message{}, fmt.Errorf("%s.data: over %d bytes: %w", where(), lim.MaxMessageBytes, ErrMessageTooLarge)
		}
		m.Data, haveData = data.Bytes(), true
	}
	switch {
	case haveTo && haveGroup:
		return Message{}, fmt.Errorf("%s: \"to\" and \"group\": give one, not both: %w", where(), ErrInvalid)
	case !haveTo && !haveGroup:
		return Message{}, fmt.Errorf("%s: missing \"to\" (or \"group\"): %w", where(), ErrInvalid)
	case haveExcept && !haveGroup:
		return Message{}, fmt.Errorf("%s: \"except\" without \"group\": %w", where(), ErrInvalid)
	case !haveData:
		return Message{}, fmt.Errorf("%s: missing \"data\": %w", where(), ErrInvalid)
	}
	return m, nil
}

// keySet records the keys of one object read so far, among the keys it
// may have (at most 64).
type keySet uint64

// add refuses key unless it is one of keys, not seen before in the
// object.
func (s *keySet) add(key string, keys []string) error {
	i := indexOf(keys, key)
	switch {
	case i < 0:
		if j := indexFold(keys, key); j >= 0 {
			return fmt.Errorf("unknown key %s (keys are case-sensitive: want %q): %w", quoteShort(key), keys[j], ErrInvalid)
		}
		return fmt.Errorf("unknown key %s: %w", quoteShort(key), ErrInvalid)
	case *s&(1<<i) != 0:
		return fmt.Errorf("key %q repeated: %w", key, ErrInvalid)
	}
	*s |= 1 << i
	return nil
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}

// indexFold finds key among keys as encoding/json would match it,
// ignoring case, for an error that says what was meant.
func indexFold(keys []string, key string) int {
	for i, k := range keys {
		if strings.EqualFold(k, key) {
			return i
		}
	}
	return -1
}

// syntaxError says what is wrong with a body json.Valid refused.
func syntaxError(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	err := dec.Decode(&v)
	var syn *json.SyntaxError
	switch {
	case err == nil:
		return fmt.Errorf("data after the JSON object: %w", ErrMalformed)
	case errors.As(err, &syn):
		return fmt.Errorf("offset %d: %v: %w", syn.Offset, err, ErrMalformed)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("body is empty or cut short: %w", ErrMalformed)
	}
	return fmt.Errorf("%v: %w", err, ErrMalformed)
}
