package servicedns_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/servicedns"
)

// resolver asks s alone.
func resolver(s *servicedns.Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.Addr)
	}}
}

func TestServer(t *testing.T) {
	a, b := netip.MustParseAddr("127.1.2.3"), netip.MustParseAddr("127.1.2.4")
	s, err := servicedns.Start("cometbox", a)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := resolver(s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lookup := func() ([]netip.Addr, error) {
		got, err := r.LookupNetIP(ctx, "ip4", "cometbox.")
		slices.SortFunc(got, netip.Addr.Compare)
		return got, err
	}
	for _, step := range []struct {
		change func()
		want   []netip.Addr
	}{
		{func() {}, []netip.Addr{a}},
		{func() { s.Add(b) }, []netip.Addr{a, b}},
		{func() { s.Remove(a) }, []netip.Addr{b}},
		{func() { s.Set(a, b) }, []netip.Addr{a, b}},
	} {
		step.change()
		if got, err := lookup(); err != nil || !slices.Equal(got, step.want) {
			t.Errorf("LookupNetIP(cometbox) = %v, %v; want %v", got, err, step.want)
		}
	}
	s.Set()
	var dnsErr *net.DNSError
	if got, err := lookup(); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupNetIP(cometbox) with no address = %v, %v; want not found", got, err)
	}
	if got, err := r.LookupNetIP(ctx, "ip4", "other."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupNetIP(other) = %v, %v; want not found", got, err)
	}
}

// Scaling a service from one container to two, as HAProxy's resolvers see
// it.
func Example() {
	s, err := servicedns.Start("cometbox", netip.MustParseAddr("172.18.0.4"))
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Add(netip.MustParseAddr("172.18.0.5")) // docker compose up --scale cometbox=2
	got, err := resolver(s).LookupNetIP(context.Background(), "ip4", "cometbox.")
	if err != nil {
		panic(err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	fmt.Println(got)
	// Output: [172.18.0.4 172.18.0.5]
}
