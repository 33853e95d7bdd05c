package message

import (
	"encoding/json"
	"fmt"
)

// jsonReader reads a JSON text that json.Valid accepted, without
// checking its syntax again: one pass, no reflection, values handed out
// as slices of the text. It only finds its way through the text, which
// encoding/json has checked; FuzzParseJSON holds ParseJSON, and so this,
// to encoding/json's reading of the same bodies.
type jsonReader struct {
	b []byte
	i int
}

// peek skips white space and returns the next byte (0 at the end).
func (in *jsonReader) peek() byte {
	for in.i < len(in.b) {
		switch c := in.b[in.i]; c {
		case ' ', '\t', '\n', '\r':
			in.i++
		default:
			return c
		}
	}
	return 0
}

// enter moves past the opening brace or bracket open when the next value
// starts with it: nextKey or nextElement then reads what it holds.
func (in *jsonReader) enter(open byte) bool {
	if in.peek() != open {
		return false
	}
	in.i++
	return true
}

// nextKey moves to the next member of the object being read, just after
// its opening brace or a member's value, and returns its key, leaving the
// reader at the value. ok is false after the object's closing brace.
func (in *jsonReader) nextKey() (key string, ok bool) {
	if in.peek() == ',' {
		in.i++
		in.peek()
	}
	if in.b[in.i] == '}' {
		in.i++
		return "", false
	}
	key = in.decodeString()
	in.peek() // then the colon
	in.i++
	return key, true
}

// nextElement moves to the next element of the array being read, just
// after its opening bracket or an element; false after the closing
// bracket.
func (in *jsonReader) nextElement() bool {
	if in.peek() == ',' {
		in.i++
		in.peek()
	}
	if in.b[in.i] == ']' {
		in.i++
		return false
	}
	return true
}

// string reads a string value, or null (ok false), the value of key.
func (in *jsonReader) string(key string) (s string, ok bool, err error) {
	switch c := in.peek(); c {
	case '"':
		return in.decodeString(), true, nil
	case 'n':
		in.skipValue()
		return "", false, nil
	default:
		return "", false, fmt.Errorf("%s: want a string, got JSON %s: %w", key, kind(c), ErrInvalid)
	}
}

// decodeString reads the string at the reader, its escapes decoded.
func (in *jsonReader) decodeString() string {
	start := in.i
	escaped := in.skipString()
	raw := in.b[start:in.i]
	if !escaped {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // a valid string: cannot fail
	return s
}

// value reads any value and returns its text.
func (in *jsonReader) value() []byte {
	in.peek()
	start := in.i
	in.skipValue()
	return in.b[start:in.i]
}

// skipString moves past the string at the reader, reporting whether it
// holds escapes.
func (in *jsonReader) skipString() (escaped bool) {
	in.i++ // the opening quote
	for {
		switch in.b[in.i] {
		case '\\':
			escaped = true
			in.i += 2 // the escaped character, or the u of \uXXXX
		case '"':
			in.i++
			return escaped
		default:
			in.i++
		}
	}
}

// skipValue moves past the value at the reader.
func (in *jsonReader) skipValue() {
	switch in.peek() {
	case '"':
		in.skipString()
	case '{', '[':
		for depth := 0; ; {
			switch in.b[in.i] {
			case '"':
				in.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			in.i++
			if depth == 0 {
				return
			}
		}
	default: // a number, true, false or null: up to the next delimiter
		for in.i < len(in.b) {
			switch in.b[in.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			in.i++
		}
	}
}

// kind names the JSON type of the value starting with c.
func kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
