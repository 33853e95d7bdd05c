package message_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cometbox/cometbox/pkg/message"
)

func TestParseXML(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []message.Message
		key  string
	}{
		{
			name: "issue example",
			body: `<messages>
  <message to="alice">Hello &amp; welcome</message>
  <message to="bob"><![CDATA[<b>raw</b> text]]></message>
  <message to="carol" type="json">{"score": 3}</message>
</messages>`,
			want: []message.Message{
				{To: "alice", Data: []byte(`"Hello & welcome"`)},
				{To: "bob", Data: []byte(`"<b>raw</b> text"`)},
				{To: "carol", Data: []byte(`{"score":3}`)},
			},
		},
		{
			name: "lone message root",
			body: `<?xml version="1.0" encoding="UTF-8"?><message to="a.b:c@d-e_f">x</message>`,
			want: []message.Message{{To: "a.b:c@d-e_f", Data: []byte(`"x"`)}},
		},
		{
			name: "byte order mark, comments and idempotency key",
			body: "\xEF\xBB\xBF<!-- hi --><messages id=\"k-1\"><!-- c --><message to=\"a\">x<!-- y -->z</message></messages><!-- end -->\n",
			want: []message.Message{{To: "a", Data: []byte(`"xz"`)}},
			key:  "k-1",
		},
		{
			name: "declarations as XML writers write them",
			body: "\xEF\xBB\xBF<?xml version='1.0' encoding='utf-8'?>\n<messages><message to=\"a\">x</message></messages>",
			want: []message.Message{{To: "a", Data: []byte(`"x"`)}},
		},
		{
			name: "declaration with standalone and spaces",
			body: "<?xml version = \"1.0\"\tencoding=\"Utf-8\" standalone='yes' ?><message to=\"a\">x</message>",
			want: []message.Message{{To: "a", Data: []byte(`"x"`)}},
		},
		{
			name: "white space kept, unicode, explicit text type",
			body: "<message to=\"a\" type=\"text\">  h\u00e9llo \U0001F600\n\t</message>",
			want: []message.Message{{To: "a", Data: []byte("\"  h\u00e9llo \U0001F600\\n\\t\"")}},
		},
		{
			name: "empty message is an empty string",
			body: `<messages><message to="a"/></messages>`,
			want: []message.Message{{To: "a", Data: []byte(`""`)}},
		},
		{
			name: "json scalars and nesting",
			body: `<messages><message to="a" type="json"> [1, {"b": null}] </message><message to="a" type="json">"s"</message></messages>`,
			want: []message.Message{
				{To: "a", Data: []byte(`[1,{"b":null}]`)},
				{To: "a", Data: []byte(`"s"`)},
			},
		},
		{
			name: "U+FFFD, literal or referenced, and a surrogate reference in CDATA",
			body: "<messages><message to=\"a\">\uFFFD&#xFFFD;&#65533;&#xfffd;&#x0FFFD;&#0065533;</message>" +
				"<message to=\"b\"><![CDATA[&#xD800;\uFFFD]]>\uFFFD<!-- &#xD800; --></message>" +
				"<message to=\"c\"><![CDATA[" + strings.Repeat("&#xD800;\uFFFD", 1000) + "]]></message></messages>",
			want: []message.Message{
				{To: "a", Data: []byte("\"\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\"")},
				{To: "b", Data: []byte("\"&#xD800;\uFFFD\uFFFD\"")},
				{To: "c", Data: []byte("\"" + strings.Repeat("&#xD800;\uFFFD", 1000) + "\"")},
			},
		},
		{
			name: "groups, with and without except, beside direct messages",
			body: `<messages><message group="room:42" except="alice">hi</message><message to="bob">b</message>` +
				`<message type="json" group="t.7@x_y-z" >[1]</message></messages>`,
			want: []message.Message{
				{Group: "room:42", Except: "alice", Data: []byte(`"hi"`)},
				{To: "bob", Data: []byte(`"b"`)},
				{Group: "t.7@x_y-z", Data: []byte(`[1]`)},
			},
		},
		{
			name: "character references and CDATA end split",
			body: `<message to="a">&#x263A;&lt;]]&gt;<![CDATA[]]]]><![CDATA[>]]></message>`,
			want: []message.Message{{To: "a", Data: []byte("\"\u263a<]]>]]>\"")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := message.ParseXML(strings.NewReader(tt.body), message.Limits{})
			if err != nil {
				t.Fatalf("ParseXML(%q) error: %v", tt.body, err)
			}
			if got.IdempotencyKey != tt.key {
				t.Errorf("IdempotencyKey = %q; want %q", got.IdempotencyKey, tt.key)
			}
			if len(got.Messages) != len(tt.want) {
				t.Fatalf("got %d messages; want %d", len(got.Messages), len(tt.want))
			}
			for i, m := range got.Messages {
				if m.To != tt.want[i].To || m.Group != tt.want[i].Group || m.Except != tt.want[i].Except || string(m.Data) != string(tt.want[i].Data) {
					t.Errorf("message %d = %+v; want %+v", i, m, tt.want[i])
				}
			}
		})
	}
}

func TestParseXMLErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		lim     message.Limits
		want    error
		mention string // a fragment the error must name
	}{
		{"empty body", "", message.Limits{}, message.ErrMalformed, "empty"},
		{"not xml", "hello", message.Limits{}, message.ErrInvalid, "text before"},
		{"unclosed", `<messages><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "unexpected EOF"},
		{"mismatched tags", `<messages><message to="a">x</messages>`, message.Limits{}, message.ErrMalformed, "line 1"},
		{"wrong root", `<msgs><message to="a">x</message></msgs>`, message.Limits{}, message.ErrInvalid, "<msgs>"},
		{"wrong child", `<messages><message to="a">x</message><msg to="b">y</msg></messages>`, message.Limits{}, message.ErrInvalid, "message 2"},
		{"missing to", `<messages><message to="a">x</message><message>y</message></messages>`, message.Limits{}, message.ErrInvalid, `message 2 on line 1: missing attribute "to"`},
		{"empty to", `<message to="">x</message>`, message.Limits{}, message.ErrInvalidClient, `attribute "to"`},
		{"bad to", `<messages>
<message to="a b">x</message></messages>`, message.Limits{}, message.ErrInvalidClient, `message 1 on line 2: attribute "to": client "a b"`},
		{"long to", `<message to="` + strings.Repeat("a", 129) + `">x</message>`, message.Limits{}, message.ErrInvalidClient, "1 to 128"},
		{"unknown attribute", `<message to="a" ttl="5">x</message>`, message.Limits{}, message.ErrInvalid, `unknown attribute "ttl"`},
		{"repeated to", "<messages>\n<message to=\"alice\" to=\"bob\">x</message></messages>", message.Limits{}, message.ErrMalformed, `message 1 on line 2: attribute "to" repeated`},
		{"repeated type", `<message to="a" type="json" type="text">1</message>`, message.Limits{}, message.ErrMalformed, `attribute "type" repeated`},
		{"repeated id", "<messages id=\"k1\"\n id=\"k2\"><message to=\"a\">x</message></messages>", message.Limits{}, message.ErrMalformed, `line 2: <messages>: attribute "id" repeated`},
		{"unknown root attribute", `<messages key="5"><message to="a">x</message></messages>`, message.Limits{}, message.ErrInvalid, `unknown attribute "key"`},
		{"bad idempotency key", `<messages id="a b"><message to="a">x</message></messages>`, message.Limits{}, message.ErrInvalidIdempotencyKey, `"id"`},
		{"bad type", `<message to="a" type="html">x</message>`, message.Limits{}, message.ErrInvalid, `"type"`},
		{"invalid json", `<message to="a" type="json">{"a":</message>`, message.Limits{}, message.ErrInvalidJSON, `type="json"`},
		{"empty json", `<message to="a" type="json"></message>`, message.Limits{}, message.ErrInvalidJSON, `type="json"`},
		{"element inside message", `<message to="a">x<b>y</b></message>`, message.Limits{}, message.ErrInvalid, "<b> inside <message>"},
		{"deep nesting", `<messages><message to="a">` + strings.Repeat("<x>", 100000) + `</message></messages>`, message.Limits{}, message.ErrInvalid, "inside <message>"},
		{"doctype", `<!DOCTYPE messages [<!ENTITY x "y">]><message to="a">&x;</message>`, message.Limits{}, message.ErrInvalid, "DOCTYPE"},
		{"undefined entity", `<message to="a">&x;</message>`, message.Limits{}, message.ErrMalformed, "entity"},
		{"processing instruction", `<?php echo 1; ?><message to="a">x</message>`, message.Limits{}, message.ErrInvalid, "<?php?>"},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "ISO-8859-1"},
		{"declaration, encoding repeated", `<?xml version="1.0" encoding="UTF-8" encoding="ISO-8859-1"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, `line 1: XML declaration <?xml version="1.0" encoding="UTF-8" encoding="ISO-8859-1"?> is not well formed`},
		{"declaration, version repeated", `<?xml version="1.0" version="1.1"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration without version", `<?xml encoding="UTF-8"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration, unknown name", `<?xml version="1.0" charset="UTF-8"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration out of order", `<?xml version="1.0" standalone="yes" encoding="UTF-8"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration without space", `<?xml version="1.0"encoding="UTF-8"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration, standalone maybe", `<?xml version="1.0" standalone="maybe"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration"},
		{"declaration after white space", ` <?xml version="1.0"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration only at the start"},
		{"declaration after a comment", `<!-- c --><?xml version="1.0"?><message to="a">x</message>`, message.Limits{}, message.ErrMalformed, "XML declaration only at the start"},
		{"declaration inside messages", `<messages><?xml version="1.0"?><message to="a">x</message></messages>`, message.Limits{}, message.ErrMalformed, "XML declaration only at the start"},
		{"declaration inside a message", `<message to="a">x<?xml version="1.0"?></message>`, message.Limits{}, message.ErrMalformed, "XML declaration only at the start"},
		{"invalid utf-8", "<message to=\"a\">\xff\xfe</message>", message.Limits{}, message.ErrMalformed, "UTF-8"},
		{"control character", "<message to=\"a\">x\x01y</message>", message.Limits{}, message.ErrMalformed, "U+0001"},
		{"control character reference", `<message to="a">x&#1;y</message>`, message.Limits{}, message.ErrMalformed, "U+0001"},
		{"surrogate reference", `<message to="a">x&#xD800;y</message>`, message.Limits{}, message.ErrMalformed, `line 1: character reference "&#xD800;" is a surrogate`},
		{"surrogate reference, decimal", "<messages>\n<message to=\"a\">&#57343;</message></messages>", message.Limits{}, message.ErrMalformed, `line 2: character reference "&#57343;" is a surrogate`},
		{"surrogate reference, lower case", `<message to="a">&#xdbff;</message>`, message.Limits{}, message.ErrMalformed, "&#xdbff;"},
		{"surrogate reference beside U+FFFD", "<message to=\"a\">\uFFFD&#xFFFD;&#x0DC00;</message>", message.Limits{}, message.ErrMalformed, "&#x0DC00;"},
		{"surrogate reference deep in a long text", "<message to=\"a\">" + strings.Repeat("\uFFFD&#xFFFD;\n", 2000) + "&#xDFFF;</message>", message.Limits{}, message.ErrMalformed, `line 2001: character reference "&#xDFFF;"`},
		{"surrogate reference after CDATA", `<message to="a"><![CDATA[x]]>&#xD800;</message>`, message.Limits{}, message.ErrMalformed, "surrogate"},
		{"trailing element", `<message to="a">x</message><message to="b">y</message>`, message.Limits{}, message.ErrInvalid, "after the root"},
		{"trailing text", `<message to="a">x</message>junk`, message.Limits{}, message.ErrInvalid, "after the root"},
		{"text in messages", `<messages>hi<message to="a">x</message></messages>`, message.Limits{}, message.ErrInvalid, "text directly inside"},
		{"no messages", `<messages> </messages>`, message.Limits{}, message.ErrEmpty, "no <message>"},
		{"namespace", `<messages xmlns="urn:x"><message to="a">x</message></messages>`, message.Limits{}, message.ErrInvalid, "namespace"},
		{"message too large", `<message to="a">` + strings.Repeat("x", 11) + `</message>`, message.Limits{MaxMessageBytes: 10}, message.ErrMessageTooLarge, "over 10 bytes"},
		{"to and group", `<messages><message to="a" group="g">x</message></messages>`, message.Limits{}, message.ErrInvalid, `message 1 on line 1: attributes "to" and "group": give one`},
		{"except without group", `<message to="a" except="b">x</message>`, message.Limits{}, message.ErrInvalid, `attribute "except" without "group"`},
		{"group with braces", `<message group="room{42}">x</message>`, message.Limits{}, message.ErrInvalidGroup, `attribute "group": group "room{42}"`},
		{"group with a slash", `<message group="a/b">x</message>`, message.Limits{}, message.ErrInvalidGroup, `attribute "group"`},
		{"empty group", `<message group="">x</message>`, message.Limits{}, message.ErrInvalidGroup, `group name is empty`},
		{"long group", `<message group="` + strings.Repeat("g", 129) + `">x</message>`, message.Limits{}, message.ErrInvalidGroup, "1 to 128"},
		{"bad except", `<message group="g" except="a b">x</message>`, message.Limits{}, message.ErrInvalidClient, `attribute "except"`},
		{"repeated group", `<message group="g" group="h">x</message>`, message.Limits{}, message.ErrMalformed, `attribute "group" repeated`},
		{"repeated except", `<message group="g" except="a" except="b">x</message>`, message.Limits{}, message.ErrMalformed, `attribute "except" repeated`},
		{"too many messages", `<messages><message to="a">1</message><message to="a">2</message><message to="a">3</message></messages>`, message.Limits{MaxMessages: 2}, message.ErrTooManyMessages, "more than 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := message.ParseXML(strings.NewReader(tt.body), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseXML error = %v; want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("ParseXML error %q does not mention %q", err, tt.mention)
			}
			if len(got.Messages) != 0 {
				t.Errorf("ParseXML returned %d messages with an error", len(got.Messages))
			}
		})
	}
}

func FuzzParseXML(f *testing.F) {
	for _, s := range []string{
		`<messages><message to="alice">Hello &amp; welcome</message></messages>`,
		`<message to="bob"><![CDATA[<b>raw</b> text]]></message>`,
		`<messages id="k"><message to="carol" type="json">{"score": 3}</message></messages>`,
		`<!DOCTYPE x [<!ENTITY a "b">]><message to="a">&a;</message>`,
		`<messages><message group="room:42" except="alice">hi</message></messages>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		batch, err := message.ParseXML(strings.NewReader(body), message.Limits{MaxMessageBytes: 1024, MaxMessages: 50})
		if err != nil {
			if len(batch.Messages) != 0 {
				t.Fatalf("messages returned with error %v", err)
			}
			return
		}
		if len(batch.Messages) == 0 || len(batch.Messages) > 50 {
			t.Fatalf("got %d messages without error", len(batch.Messages))
		}
		for _, m := range batch.Messages {
			switch {
			case m.Group == "" && (!message.ValidClient(m.To) || m.Except != ""):
				t.Fatalf("invalid client %q (except %q) accepted", m.To, m.Except)
			case m.Group != "" && (m.To != "" || !message.ValidGroup(m.Group) || m.Except != "" && !message.ValidClient(m.Except)):
				t.Fatalf("invalid group message %+v accepted", m)
			}
			if !jsonValid(m.Data) {
				t.Fatalf("payload %q is not JSON", m.Data)
			}
		}
	})
}
