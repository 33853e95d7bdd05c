package message

import "errors"

// Sentinel errors. Parsers wrap them with where the problem is (message
// index, attribute) and the bad value; test with errors.Is.
var (
	// ErrMalformed: the body is not well-formed XML or JSON.
	ErrMalformed = errors.New("malformed body")
	// ErrInvalid: well-formed, but not a publish body (wrong root, missing
	// or unknown attribute, an element inside <message>, DOCTYPE, ...).
	ErrInvalid = errors.New("invalid message")
	// ErrInvalidClient: a client id outside the allowed alphabet or length.
	ErrInvalidClient = errors.New("invalid client id")
	// ErrInvalidGroup: a group name outside the allowed alphabet or
	// length.
	ErrInvalidGroup = errors.New("invalid group name")
	// ErrInvalidJSON: a type="json" message whose content is not JSON.
	ErrInvalidJSON = errors.New("invalid json payload")
	// ErrInvalidCursor: a since value that is not a cursor.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrInvalidIdempotencyKey: an idempotency key outside the alphabet.
	ErrInvalidIdempotencyKey = errors.New("invalid idempotency key")
	// ErrMessageTooLarge: one payload is over Limits.MaxMessageBytes.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrTooManyMessages: the batch is over Limits.MaxMessages.
	ErrTooManyMessages = errors.New("too many messages")
	// ErrEmpty: the batch holds no message.
	ErrEmpty = errors.New("no messages")
)
