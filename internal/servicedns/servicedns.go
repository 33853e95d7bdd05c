// Package servicedns stands in for Docker's embedded DNS server
// (127.0.0.11), which answers a compose service's name with one A record
// per running container of the service, for the tests and benchmarks that
// run the docker-compose topology as processes: HAProxy's resolvers
// (deployments/haproxy/haproxy.cfg, LB_DNS_ADDR) ask it for the nodes, and
// scaling is changing its answer. A Server is safe for concurrent use.
package servicedns

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers A queries for one name, over UDP on a free loopback port,
// with the addresses it holds now.
type Server struct {
	// Addr is where it listens, host:port.
	Addr string

	name string // lower case, with the final dot
	conn *net.UDPConn
	done chan struct{}

	mu    sync.Mutex
	addrs []netip.Addr
}

// Start answers for name, with no address at first, until Close.
func Start(name string, addrs ...netip.Addr) (*Server, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr: conn.LocalAddr().String(),
		name: strings.ToLower(strings.TrimSuffix(name, ".")) + ".",
		conn: conn, done: make(chan struct{}), addrs: slices.Clone(addrs),
	}
	go s.serve()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// Set makes the answer exactly addrs, as after `docker compose up --scale`.
func (s *Server) Set(addrs ...netip.Addr) {
	s.mu.Lock()
	s.addrs = slices.Clone(addrs)
	s.mu.Unlock()
}

// Add puts addr in the answer, as Docker does when a container starts.
func (s *Server) Add(addr netip.Addr) {
	s.mu.Lock()
	if !slices.Contains(s.addrs, addr) {
		s.addrs = append(s.addrs, addr)
	}
	s.mu.Unlock()
}

// Remove takes addr out of the answer, as Docker does when a container
// stops.
func (s *Server) Remove(addr netip.Addr) {
	s.mu.Lock()
	s.addrs = slices.DeleteFunc(s.addrs, func(a netip.Addr) bool { return a == addr })
	s.mu.Unlock()
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if resp, err := s.answer(buf[:n]); err == nil {
			_, _ = s.conn.WriteToUDPAddrPort(resp, from)
		} // a query it cannot parse gets no answer, like a lost packet
	}
}

// answer builds the response to one query: the addresses for an A query
// of the name, no record (but no error) for its other types, NXDOMAIN for
// other names, or when it holds no address (no container runs).
func (s *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	addrs := slices.Clone(s.addrs)
	s.mu.Unlock()
	ours := strings.ToLower(q.Name.String()) == s.name
	rcode := dnsmessage.RCodeSuccess
	if !ours || len(addrs) == 0 {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if ours && q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		for _, a := range addrs {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 600}
			if err := b.AResource(rh, dnsmessage.AResource{A: a.As4()}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}
