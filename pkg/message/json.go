package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ParseJSON reads a publish body in the JSON format:
//
//	{"id": "optional-idempotency-key",
//	 "messages": [{"to": "alice", "data": <any JSON value>}]}
//
// Like ParseXML it validates everything before it returns, and its errors
// name the offending member, e.g. `messages[2].to`.
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
	var doc struct {
		ID       *string `json:"id"`
		Messages []struct {
			To   *string         `json:"to"`
			Data json.RawMessage `json:"data"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Batch{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Batch{}, fmt.Errorf("data after the JSON object: %w", ErrMalformed)
	}

	var batch Batch
	if doc.ID != nil {
		if err := CheckIdempotencyKey(*doc.ID); err != nil {
			return Batch{}, fmt.Errorf("id: %w", err)
		}
		batch.IdempotencyKey = *doc.ID
	}
	if len(doc.Messages) == 0 {
		return Batch{}, fmt.Errorf("messages: empty or missing: %w", ErrEmpty)
	}
	if len(doc.Messages) > lim.MaxMessages {
		return Batch{}, fmt.Errorf("messages: more than %d: %w", lim.MaxMessages, ErrTooManyMessages)
	}
	batch.Messages = make([]Message, len(doc.Messages))
	for i, m := range doc.Messages {
		if m.To == nil {
			return Batch{}, fmt.Errorf("messages[%d]: missing \"to\": %w", i, ErrInvalid)
		}
		if err := CheckClient(*m.To); err != nil {
			return Batch{}, fmt.Errorf("messages[%d].to: %w", i, err)
		}
		if m.Data == nil {
			return Batch{}, fmt.Errorf("messages[%d]: missing \"data\": %w", i, ErrInvalid)
		}
		var data bytes.Buffer
		if err := json.Compact(&data, m.Data); err != nil {
			return Batch{}, fmt.Errorf("messages[%d].data: %v: %w", i, err, ErrMalformed)
		}
		if data.Len() > lim.MaxMessageBytes {
			return Batch{}, fmt.Errorf("messages[%d].data: over %d bytes: %w", i, lim.MaxMessageBytes, ErrMessageTooLarge)
		}
		batch.Messages[i] = Message{To: *m.To, Data: data.Bytes()}
	}
	return batch, nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("offset %d: %v: %w", syn.Offset, err, ErrMalformed)
	case errors.As(err, &typ):
		return fmt.Errorf("%s: want %s, got JSON %s: %w", typ.Field, typ.Type, typ.Value, ErrInvalid)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("body is empty or cut short: %w", ErrMalformed)
	}
	// Unknown fields and the like come as plain errors from encoding/json.
	return fmt.Errorf("%v: %w", err, ErrInvalid)
}
