package message

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// fastBodies are bodies of the common shape, which the fast path must
// take: the load tool's, the PHP client's (by hand and through XMLWriter),
// and the variations the format allows.
var fastBodies = []string{
	`<messages><message to="client-1">0000000000000000000000000000000000000000000000000000000000000001</message></messages>`,
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages><message to=\"alice\">Hello &amp; welcome</message><message to=\"bob\" type=\"json\">{\"x\": 1}</message></messages>",
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages><message to=\"alice\">a &lt;b&gt; &quot;c&quot; &apos;d&apos;</message></messages>\n",
	"\xEF\xBB\xBF<messages id='retry-7'>\n  <message to='a' type='text'>tab\there\nnew line</message>\n  <message to=\"u@x.y:z\"></message>\n</messages>",
	`<message to="carol" type="json">{"score": [1, 2, "\u00e9"]}</message>`,
	"<message  to = \"dave\" >héllo \u2028 wörld 😀 \\ \"q\"</message>  \n",
	`<?xml version="1.0"?><message to="e">]] ></message>`,
	`<messages><message group="room:42" except="alice">hi</message><message to="bob">b</message><message type="json" group="g">1</message></messages>`,
}

func TestParseXMLFastTakesTheCommonShape(t *testing.T) {
	for _, body := range fastBodies {
		fast, ok := parseXMLFast([]byte(body), Limits{}.withDefaults())
		if !ok {
			t.Errorf("fast path declined %q", body)
			continue
		}
		full, err := parseXMLFull(strings.NewReader(body), Limits{}.withDefaults())
		if err != nil {
			t.Fatalf("full parser refused %q: %v", body, err)
		}
		if !reflect.DeepEqual(fast, full) {
			t.Errorf("%q:\nfast %+v\nfull %+v", body, fast, full)
		}
	}
}

// The fast path declines what it does not read exactly as the full
// parser does; each of these has its own reason.
func TestParseXMLFastDeclines(t *testing.T) {
	for _, body := range []string{
		`<message to="a">&#65;</message>`,                   // character reference
		`<message to="a"><![CDATA[x]]></message>`,           // CDATA
		"<message to=\"a\">x\r\ny</message>",                // carriage return
		`<message to="a"><!-- c -->x</message>`,             // comment
		`<message to="a" to="b">x</message>`,                // repeated attribute
		`<message to="a"type="json">1</message>`,            // no space between attributes
		`<message to="a&amp;b">x</message>`,                 // reference in a value
		`<message to="a"/>`,                                 // empty element
		`<messages></messages>`,                             // no message
		`<x:message to="a">x</x:message>`,                   // prefix
		` <?xml version="1.0"?><message to="a">x</message>`, // declaration not first
		`<?xml version="1.1"?><message to="a">x</message>`,  // version
		`<?xml version="1.0" encoding="latin1"?><message to="a">x</message>`,
		`<message to="a" type="json">{x}</message>`,              // bad JSON
		`<message to="a">x</message><message to="b">y</message>`, // two roots
		`<message to="a">x</messages>`,                           // wrong end tag
		"<message to=\"a\">\x01</message>",                       // forbidden character
		"<message to=\"a\">\xff</message>",                       // invalid UTF-8
		"<message to=\"a\">\uFFFE</message>",                     // forbidden character
		`<message to="a">x`,                                      // truncated
		`<message to="a" group="g">x</message>`,                  // to and group
		`<message except="a">x</message>`,                        // except alone
		`<message to="a" except="b">x</message>`,                 // except without group
		`<message group="a{b}">x</message>`,                      // braces
		`<message group="">x</message>`,                          // empty group
		`<message group="g" except="a" to="b">x</message>`,       // three names
	} {
		if b, ok := parseXMLFast([]byte(body), Limits{}.withDefaults()); ok {
			t.Errorf("fast path took %q: %+v", body, b)
		}
	}
	lim := Limits{MaxMessageBytes: 3, MaxMessages: 1}
	for _, body := range []string{
		`<message to="a">abcd</message>`,
		`<messages><message to="a">x</message><message to="b">y</message></messages>`,
	} {
		if b, ok := parseXMLFast([]byte(body), lim); ok {
			t.Errorf("fast path took %q over the limits: %+v", body, b)
		}
	}
}

// ParseXML gives the full parser what the fast path saw, then the rest of
// a long body, then the body's read error.
func TestParseXMLPastTheFastPath(t *testing.T) {
	var long strings.Builder
	long.WriteString("<messages>")
	for long.Len() <= fastBodyMax {
		long.WriteString(`<message to="a">` + strings.Repeat("x", 1000) + `</message>`)
	}
	long.WriteString("</messages>")
	batch, err := ParseXML(strings.NewReader(long.String()), Limits{})
	if err != nil || len(batch.Messages) != (long.Len()-len("<messages></messages>"))/len(`<message to="a"></message>`+strings.Repeat("x", 1000)) {
		t.Fatalf("long body: %d messages, %v", len(batch.Messages), err)
	}

	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(`<messages><message to="a">x`), iotest.ErrReader(broken))
	if _, err := ParseXML(r, Limits{}); !errors.Is(err, broken) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("read error: got %v, want it wrapped with ErrMalformed", err)
	}
}

// FuzzParseXMLFast holds the fast path to the full parser: whatever it
// takes, the full parser takes too, with the same result.
func FuzzParseXMLFast(f *testing.F) {
	for _, s := range fastBodies {
		f.Add(s)
	}
	f.Add(`<message to="a">&#65;</message>`)
	f.Add(`<message to="a" to="b">x</message>`)
	f.Add(`<?xml version="1.0" encoding="UTF-8" encoding="UTF-8"?><message to="a">x</message>`)
	f.Add(`<messages id="k"><message to="a" type="json">[1,2]</message></messages>`)
	f.Add(`<messages><message group="g" except="a">x</message><message to="a" group="g">y</message></messages>`)
	f.Fuzz(func(t *testing.T, body string) {
		lim := Limits{MaxMessageBytes: 64, MaxMessages: 5}
		fast, ok := parseXMLFast([]byte(body), lim)
		if !ok {
			return
		}
		full, err := parseXMLFull(bytes.NewReader([]byte(body)), lim)
		if err != nil {
			t.Fatalf("fast path took what the full parser refuses (%v): %+v", err, fast)
		}
		if !reflect.DeepEqual(fast, full) {
			t.Fatalf("fast %+v\nfull %+v", fast, full)
		}
	})
}
