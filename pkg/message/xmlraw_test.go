package message

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// The full parser reads the same through any reader: one byte at a time,
// with the last bytes and io.EOF together, in tokens longer than the
// tokenReader's buffer.
func TestParseXMLFullReaders(t *testing.T) {
	long := strings.Repeat("\uFFFD&#xFFFD;<![CDATA[&#xD800;]]>\n", 1000)
	bodies := append([]string{
		"<message to=\"a\">" + long + "</message>",
		"<message to=\"a\">" + long + "&#xD800;</message>",
		"\xEF\xBB\xBF<message to=\"a\">x</message>",
		"\xEF\xBB",
	}, fastBodies...)
	for _, body := range bodies {
		want, wantErr := parseXMLFull(strings.NewReader(body), Limits{}.withDefaults())
		for name, r := range map[string]io.Reader{
			"one byte":   iotest.OneByteReader(strings.NewReader(body)),
			"data + EOF": iotest.DataErrReader(strings.NewReader(body)),
			"half":       iotest.HalfReader(strings.NewReader(body)),
		} {
			got, err := parseXMLFull(r, Limits{}.withDefaults())
			if !reflect.DeepEqual(got, want) || (err == nil) != (wantErr == nil) ||
				err != nil && err.Error() != wantErr.Error() {
				t.Errorf("%.40q read %s: %+v, %v; want %+v, %v", body, name, got, err, want, wantErr)
			}
		}
	}
	if _, err := parseXMLFull(strings.NewReader("<message to=\"a\">"+long+"&#xD800;</message>"), Limits{}.withDefaults()); !errors.Is(err, ErrMalformed) {
		t.Errorf("a surrogate reference after a long text: %v; want ErrMalformed", err)
	}
}

func TestCharRef(t *testing.T) {
	for _, tt := range []struct {
		in string
		n  int
		r  rune
	}{
		{"&#65;", 5, 'A'},
		{"&#x41;x", 6, 'A'},
		{"&#xd800;", 8, 0xD800},
		{"&#0000055296;", 13, 0xD800},
		{"&#x110000;", 10, 0x110000},
		{"&#x" + strings.Repeat("F", 40) + ";", 44, 0x110000},
		{"&#;", 0, 0},
		{"&#x;", 0, 0},
		{"&#X41;", 0, 0},
		{"&#65", 0, 0},
		{"&#6a;", 0, 0},
		{"&#", 0, 0},
	} {
		if n, r := charRef([]byte(tt.in)); n != tt.n || n != 0 && r != tt.r {
			t.Errorf("charRef(%q) = %d, %U; want %d, %U", tt.in, n, r, tt.n, tt.r)
		}
	}
}
