package deployments_test

import (
	"testing"

	"github.com/cometbox/cometbox/internal/servicedns"
)

// startDNS runs a stand-in for Docker's embedded DNS server, answering
// name with the addresses it is given, until the test ends: haproxy.cfg's
// resolvers ask it (LB_DNS_ADDR), and scaling is changing its answer.
func startDNS(t *testing.T, name string) *servicedns.Server {
	t.Helper()
	s, err := servicedns.Start(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
