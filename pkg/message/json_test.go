package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/cometbox/cometbox/pkg/message"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

func TestParseJSON(t *testing.T) {
	body := `{"id":"retry-7","messages":[
		{"to":"alice","data":"Hello <b>"},
		{"to":"carol","data":{ "score" : 3 }},
		{"to":"dave","data":null},
		{"group":"room:42","except":"alice","data":"hi"},
		{"data":1,"group":"g","except":null,"to":null}]}`
	got, err := message.ParseJSON(strings.NewReader(body), message.Limits{})
	if err != nil {
		t.Fatalf("ParseJSON: %v", err)
	}
	want := []message.Message{
		{To: "alice", Data: []byte(`"Hello <b>"`)},
		{To: "carol", Data: []byte(`{"score":3}`)},
		{To: "dave", Data: []byte(`null`)},
		{Group: "room:42", Except: "alice", Data: []byte(`"hi"`)},
		{Group: "g", Data: []byte(`1`)},
	}
	if len(got.Messages) != len(want) {
		t.Fatalf("ParseJSON = %d messages; want %d", len(got.Messages), len(want))
	}
	if got.IdempotencyKey != "retry-7" {
		t.Errorf("IdempotencyKey = %q; want retry-7", got.IdempotencyKey)
	}
	for i, m := range got.Messages {
		if m.To != want[i].To || m.Group != want[i].Group || m.Except != want[i].Except || string(m.Data) != string(want[i].Data) {
			t.Errorf("message %d = %+v; want %+v", i, m, want[i])
		}
	}
}

// Keys are matched exactly, after JSON unescaping like any parser does;
// data is the publisher's own: its keys are delivered as they are.
func TestParseJSONKeys(t *testing.T) {
	body := `{"m\u0065ssages":[{"data":{"k":1,"k":2,"K":3},"to":"alice"}],"id":null}`
	got, err := message.ParseJSON(strings.NewReader(body), message.Limits{})
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", body, err)
	}
	if len(got.Messages) != 1 || got.Messages[0].To != "alice" || string(got.Messages[0].Data) != `{"k":1,"k":2,"K":3}` || got.IdempotencyKey != "" {
		t.Errorf("ParseJSON(%s) = %+v; want data {\"k\":1,\"k\":2,\"K\":3} for alice, no key", body, got)
	}
}

func TestParseJSONErrors(t *testing.T) {
	tests := []struct {
		name, body string
		lim        message.Limits
		want       error
		mention    string
	}{
		{"empty", ``, message.Limits{}, message.ErrMalformed, "empty"},
		{"syntax", `{"messages":[}`, message.Limits{}, message.ErrMalformed, "offset"},
		{"trailing", `{"messages":[{"to":"a","data":1}]} {}`, message.Limits{}, message.ErrMalformed, "after the JSON"},
		{"unknown field", `{"messages":[{"to":"a","data":1,"ttl":3}]}`, message.Limits{}, message.ErrInvalid, "ttl"},
		{"wrong type", `{"messages":{"to":"a"}}`, message.Limits{}, message.ErrInvalid, "messages"},
		{"no messages", `{"messages":[]}`, message.Limits{}, message.ErrEmpty, "messages"},
		{"missing to", `{"messages":[{"to":"a","data":1},{"data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[1]: missing "to"`},
		{"bad to", `{"messages":[{"to":"a/b","data":1}]}`, message.Limits{}, message.ErrInvalidClient, `messages[0].to`},
		{"missing data", `{"messages":[{"to":"a"}]}`, message.Limits{}, message.ErrInvalid, `missing "data"`},
		{"invalid utf-8", "{\"messages\":[{\"to\":\"a\",\"data\":\"\xff\"}]}", message.Limits{}, message.ErrMalformed, "UTF-8"},
		{"bad key", `{"id":"","messages":[{"to":"a","data":1}]}`, message.Limits{}, message.ErrInvalidIdempotencyKey, "id"},
		{"too large", `{"messages":[{"to":"a","data":"12345678901"}]}`, message.Limits{MaxMessageBytes: 10}, message.ErrMessageTooLarge, "messages[0].data"},
		{"too many", `{"messages":[{"to":"a","data":1},{"to":"a","data":2}]}`, message.Limits{MaxMessages: 1}, message.ErrTooManyMessages, "more than 1"},
		{"key case", `{"Messages":[{"to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `unknown key "Messages" (keys are case-sensitive: want "messages")`},
		{"message key case", `{"messages":[{"TO":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0]: unknown key "TO"`},
		{"key folded", `{"meſſages":[{"to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `unknown key "meſſages"`},
		{"id case", `{"ID":"k","messages":[{"to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `unknown key "ID"`},
		{"repeated to", `{"messages":[{"to":"bob","data":1},{"to":"alice","to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[1]: key "to" repeated`},
		{"repeated data", `{"messages":[{"to":"bob","data":1,"data":2}]}`, message.Limits{}, message.ErrInvalid, `messages[0]: key "data" repeated`},
		{"repeated messages", `{"messages":[{"to":"alice","data":1}],"messages":[{"to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `key "messages" repeated`},
		{"repeated id", `{"id":"k1","messages":[{"to":"bob","data":1}],"id":"k2"}`, message.Limits{}, message.ErrInvalid, `key "id" repeated`},
		{"id not a string", `{"id":7,"messages":[{"to":"bob","data":1}]}`, message.Limits{}, message.ErrInvalid, `id: want a string, got JSON number`},
		{"to not a string", `{"messages":[{"to":["bob"],"data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0].to: want a string, got JSON array`},
		{"not an object", `[{"to":"bob","data":1}]`, message.Limits{}, message.ErrInvalid, `want a JSON object, got JSON array`},
		{"message not an object", `{"messages":[null]}`, message.Limits{}, message.ErrInvalid, `messages[0]: want a JSON object, got JSON null`},
		{"syntax in a message", `{"messages":[{"to":"a","data":{"x":}}]}`, message.Limits{}, message.ErrMalformed, "offset"},
		{"cut short", `{"messages":[{"to":"a","data":1}`, message.Limits{}, message.ErrMalformed, "cut short"},
		{"to and group", `{"messages":[{"to":"a","group":"g","data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0]: "to" and "group": give one`},
		{"except without group", `{"messages":[{"to":"a","except":"b","data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0]: "except" without "group"`},
		{"group with braces", `{"messages":[{"group":"room{42}","data":1}]}`, message.Limits{}, message.ErrInvalidGroup, `messages[0].group: group "room{42}"`},
		{"empty group", `{"messages":[{"group":"","data":1}]}`, message.Limits{}, message.ErrInvalidGroup, `messages[0].group: group name is empty`},
		{"bad except", `{"messages":[{"group":"g","except":"a b","data":1}]}`, message.Limits{}, message.ErrInvalidClient, `messages[0].except`},
		{"group not a string", `{"messages":[{"group":7,"data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0].group: want a string, got JSON number`},
		{"repeated group", `{"messages":[{"group":"a","group":"b","data":1}]}`, message.Limits{}, message.ErrInvalid, `messages[0]: key "group" repeated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := message.ParseJSON(strings.NewReader(tt.body), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseJSON error = %v; want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("ParseJSON error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// A body that breaks while it is read (bad chunk framing, cut short) is
// malformed, the reader's error kept inside: an oversized body's
// *http.MaxBytesError must stay visible to errors.As.
func TestParseJSONReadError(t *testing.T) {
	broken := errors.New("invalid byte in chunk length")
	r := io.MultiReader(strings.NewReader(`{"messages":[{"to":"a","data":`), iotest.ErrReader(broken))
	if _, err := message.ParseJSON(r, message.Limits{}); !errors.Is(err, message.ErrMalformed) || !errors.Is(err, broken) {
		t.Errorf("ParseJSON of a broken body = %v; want it wrapped with ErrMalformed", err)
	}

	body := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(`{"messages":[]}`)), 5)
	_, err := message.ParseJSON(body, message.Limits{})
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		t.Errorf("ParseJSON of an oversized body = %v; want a *http.MaxBytesError inside", err)
	}
}

// FuzzParseJSON holds ParseJSON to a reference built on encoding/json:
// the struct decoding ParseJSON did before it read the envelope itself,
// plus a check, token by token, that the keys of the envelope and of
// each message are exact and unique. Both accept the same bodies and
// read them the same way.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"k","messages":[{"to":"alice","data":"Hello"},{"to":"carol","data":{"score":3}}]}`,
		`{"messages":[{"to":"a","data":null}],"id":null}`,
		`{"Messages":[{"TO":"bob","data":1}]}`,
		`{"messages":[{"to":"alice","to":"bob","data":1}]}`,
		` {"messages" : [ {"data":[1,{"a":"\u00e9\"}"}] , "t\u006f":"a"} ] } `,
		`{"messages":[{"to":"a","data":"x"}]} {}`,
		`{"messages":[{"group":"room:42","except":"alice","data":"hi"},{"to":"bob","data":1}]}`,
		`{"messages":[{"group":"room:42","to":"bob","data":1},{"except":"alice","to":"bob","data":1}]}`,
		`{"messages":[{"group":"a{b}","data":1},{"group":null,"to":"a","except":null,"data":1}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		lim := message.Limits{MaxMessageBytes: 64, MaxMessages: 5}
		got, err := message.ParseJSON(strings.NewReader(body), lim)
		want, ok := referenceJSON(body, lim)
		if err != nil {
			if ok {
				t.Fatalf("ParseJSON(%q) = %v; the reference reads %+v", body, err, want)
			}
			for _, s := range []error{message.ErrMalformed, message.ErrInvalid, message.ErrInvalidClient, message.ErrInvalidGroup,
				message.ErrInvalidIdempotencyKey, message.ErrMessageTooLarge, message.ErrTooManyMessages, message.ErrEmpty} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("ParseJSON(%q) error %v wraps no sentinel", body, err)
		}
		if !ok {
			t.Fatalf("ParseJSON(%q) = %+v; the reference refuses it", body, got)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("ParseJSON(%q) = %q; the reference reads %q", body, got, want)
		}
	})
}

// referenceJSON reads body as FuzzParseJSON's reference does.
func referenceJSON(body string, lim message.Limits) (message.Batch, bool) {
	if !utf8.ValidString(body) || !json.Valid([]byte(body)) || !exactKeys(body) { // encoding/json takes invalid UTF-8 for U+FFFD
		return message.Batch{}, false
	}
	var doc struct {
		ID       *string `json:"id"`
		Messages []struct {
			To     *string         `json:"to"`
			Group  *string         `json:"group"`
			Except *string         `json:"except"`
			Data   json.RawMessage `json:"data"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || len(doc.Messages) == 0 || len(doc.Messages) > lim.MaxMessages {
		return message.Batch{}, false
	}
	var b message.Batch
	if doc.ID != nil {
		if message.CheckIdempotencyKey(*doc.ID) != nil {
			return message.Batch{}, false
		}
		b.IdempotencyKey = *doc.ID
	}
	for _, m := range doc.Messages {
		var data bytes.Buffer
		var out message.Message
		switch {
		case m.To != nil && m.Group == nil && m.Except == nil && message.ValidClient(*m.To):
			out.To = *m.To
		case m.To == nil && m.Group != nil && message.ValidGroup(*m.Group) && (m.Except == nil || message.ValidClient(*m.Except)):
			out.Group = *m.Group
			if m.Except != nil {
				out.Except = *m.Except
			}
		default:
			return message.Batch{}, false
		}
		if m.Data == nil || json.Compact(&data, m.Data) != nil || data.Len() > lim.MaxMessageBytes {
			return message.Batch{}, false
		}
		out.Data = data.Bytes()
		b.Messages = append(b.Messages, out)
	}
	return b, true
}

// exactKeys reports whether the envelope of a valid JSON body and its
// messages have only their own keys, exactly and once each.
func exactKeys(body string) bool {
	dec := json.NewDecoder(strings.NewReader(body))
	object := func(keys ...string) (inner []string, ok bool) {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, tok == nil && err == nil // null: checked by the struct decoding
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, _ := dec.Token()
			key := tok.(string)
			if seen[key] || !slices.Contains(keys, key) {
				return nil, false
			}
			seen[key] = true
			if key == "messages" {
				if tok, _ := dec.Token(); tok != json.Delim('[') {
					return nil, tok == nil // null
				}
				for dec.More() {
					var raw json.RawMessage
					_ = dec.Decode(&raw)
					inner = append(inner, string(raw))
				}
				_, _ = dec.Token()
				continue
			}
			var raw json.RawMessage
			_ = dec.Decode(&raw)
		}
		return inner, true
	}
	msgs, ok := object("id", "messages")
	for _, m := range msgs {
		dec = json.NewDecoder(strings.NewReader(m))
		_, okm := object("to", "data", "group", "except")
		ok = ok && okm
	}
	return ok
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want message.Cursor
		err  bool
	}{
		{"", message.Cursor{}, false},
		{"0", message.Cursor{}, false},
		{"57", message.Cursor{ID: 57}, false},
		{"k3x9q2ab:57", message.Cursor{Epoch: "k3x9q2ab", ID: 57}, false},
		{"k3x9q2ab:0", message.Cursor{Epoch: "k3x9q2ab"}, false},
		{"-1", message.Cursor{}, true},
		{"057", message.Cursor{}, true},
		{"1e3", message.Cursor{}, true},
		{":5", message.Cursor{}, true},
		{"ABC:5", message.Cursor{}, true},
		{"abc:", message.Cursor{}, true},
		{"99999999999999999999", message.Cursor{}, true},
	}
	for _, tt := range tests {
		got, err := message.ParseCursor(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, message.ErrInvalidCursor) {
			t.Errorf("ParseCursor(%q) error %v does not wrap ErrInvalidCursor", tt.in, err)
		}
		if err == nil && tt.in != "" {
			if back, _ := message.ParseCursor(got.String()); back != got {
				t.Errorf("ParseCursor(%q).String() does not round-trip: %q", tt.in, got.String())
			}
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "57", "abc:12", "x:-1", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := message.ParseCursor(s)
		if err != nil {
			return
		}
		back, err := message.ParseCursor(c.String())
		if err != nil || back != c {
			t.Fatalf("ParseCursor(%q) = %+v does not round-trip: %+v, %v", s, c, back, err)
		}
	})
}

func TestValidClient(t *testing.T) {
	for _, ok := range []string{"a", "alice", "A-Z_a.z:0@9", strings.Repeat("x", 128)} {
		if !message.ValidClient(ok) {
			t.Errorf("ValidClient(%q) = false; want true", ok)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a/b", "a{b}", "é", strings.Repeat("x", 129), "a\x00"} {
		if message.ValidClient(bad) {
			t.Errorf("ValidClient(%q) = true; want false", bad)
		}
	}
}

func ExampleParseXML() {
	batch, err := message.ParseXML(strings.NewReader(
		`<messages><message to="alice">Hi &amp; bye</message></messages>`), message.Limits{})
	if err != nil {
		panic(err)
	}
	m := batch.Messages[0]
	fmt.Println(m.To, string(m.Data))
	// Output: alice "Hi & bye"
}
