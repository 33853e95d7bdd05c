package message_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cometbox/cometbox/pkg/message"
)

// publishBodies are the bodies of a one-message publish (the load tool's)
// and of a batch of 100.
func publishBodies(n int) (xmlBody, jsonBody string) {
	var x, j strings.Builder
	x.WriteString("<messages>")
	j.WriteString(`{"messages":[`)
	for i := range n {
		fmt.Fprintf(&x, `<message to="client-%d">%064d</message>`, i, i)
		if i > 0 {
			j.WriteByte(',')
		}
		fmt.Fprintf(&j, `{"to":"client-%d","data":"%064d"}`, i, i)
	}
	x.WriteString("</messages>")
	j.WriteString("]}")
	return x.String(), j.String()
}

func BenchmarkParse(b *testing.B) {
	for _, n := range []int{1, 100} {
		xmlBody, jsonBody := publishBodies(n)
		b.Run(fmt.Sprintf("xml/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(xmlBody)))
			for b.Loop() {
				if _, err := message.ParseXML(strings.NewReader(xmlBody), message.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The same messages in CDATA sections, which the fast path leaves
		// to the full parser.
		fullBody := strings.NewReplacer(`">`, `"><![CDATA[`, "</message>", "]]></message>").Replace(xmlBody)
		b.Run(fmt.Sprintf("xml-full/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(fullBody)))
			for b.Loop() {
				if _, err := message.ParseXML(strings.NewReader(fullBody), message.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("json/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(jsonBody)))
			for b.Loop() {
				if _, err := message.ParseJSON(strings.NewReader(jsonBody), message.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
