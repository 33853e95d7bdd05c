package webhook_test

import (
	"fmt"
	"time"

	"github.com/cometbox/cometbox/pkg/webhook"
)

// A receiver checks a request's signature before it trusts the body.
func ExampleVerify() {
	body := []byte(`{"time_ms":1800000000123,"events":[{"id":"0.1800000000100-0","name":"client_online","client":"alice","time_ms":1800000000100}]}`)
	sent := time.Unix(1_800_000_000, 0)
	header := webhook.SignatureHeader([]string{"whsec_test"}, sent, body) // what the node sends

	fmt.Println(header)
	fmt.Println(webhook.Verify(header, body, []string{"whsec_test"}, 0, sent.Add(time.Minute)))
	fmt.Println(webhook.Verify(header, body, []string{"whsec_test"}, 0, sent.Add(time.Hour)) != nil)
	// Output:
	// t=1800000000,v1=6492c71beee13f5845452a90d867c0cd8f8b757827905b405d63e56ab83fd063
	// <nil>
	// true
}
