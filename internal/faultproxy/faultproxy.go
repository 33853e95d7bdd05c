// Package faultproxy is a TCP proxy for fault tests: it sits between a
// client and a server on loopback and, on command, cuts connections,
// swallows traffic (a blackhole), delays it, truncates answers or cuts
// idle connections, the way networks, load balancers and dying peers do.
//
// Connections are told apart by what their clients send: a connection
// that has sent a Redis SUBSCRIBE is a pub/sub connection, so a test can
// blackhole the wake-ups of a node while its commands still flow.
package faultproxy

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards a loopback port to a target address.
type Proxy struct {
	// Addr is where clients connect: 127.0.0.1:port.
	Addr   string
	target string
	ln     net.Listener

	mu          sync.Mutex
	conns       map[*Conn]struct{}
	blackhole   func(*Conn) bool // nil: none
	delayUp     time.Duration    // client -> server
	delayUpFor  func(*Conn) bool
	cutAnswerAt int64 // close a connection after this many server -> client bytes; 0: never
	idle        time.Duration
	accepted    atomic.Int64
	wg          sync.WaitGroup
}

// Conn is one proxied connection.
type Conn struct {
	client, server net.Conn
	pubsub         atomic.Bool
	lastActive     atomic.Int64 // unix nanos
	down           atomic.Int64 // server -> client bytes
	closeOnce      sync.Once
}

// PubSub reports whether the client has sent a SUBSCRIBE on this
// connection.
func (c *Conn) PubSub() bool { return c.pubsub.Load() }

func (c *Conn) close() {
	c.closeOnce.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// Start starts a proxy to target for the duration of t.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*Conn]struct{}{}}
	p.wg.Add(2)
	go p.accept()
	go p.reapIdle()
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy and every connection.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut(nil)
	p.mu.Lock()
	p.idle = -1 // stops reapIdle
	p.mu.Unlock()
	p.wg.Wait()
}

// Accepted counts the connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cut closes the open connections that match (all when match is nil), as
// a crashed peer or a load balancer restart would. New connections are
// still accepted.
func (p *Proxy) Cut(match func(*Conn) bool) int {
	p.mu.Lock()
	var victims []*Conn
	for c := range p.conns {
		if match == nil || match(c) {
			victims = append(victims, c)
		}
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.close()
	}
	return len(victims)
}

// Blackhole swallows, from now on, every byte in both directions of the
// connections that match (all when match is nil), existing and new,
// without closing them: a network partition, or a peer that froze. Heal
// ends it.
func (p *Proxy) Blackhole(match func(*Conn) bool) {
	if match == nil {
		match = func(*Conn) bool { return true }
	}
	p.mu.Lock()
	p.blackhole = match
	p.mu.Unlock()
}

// DelayUp holds client-to-server data of the matching connections for d
// before forwarding it (order is kept).
func (p *Proxy) DelayUp(d time.Duration, match func(*Conn) bool) {
	p.mu.Lock()
	p.delayUp, p.delayUpFor = d, match
	p.mu.Unlock()
}

// CutAnswersAfter makes every connection close after n bytes have gone
// from the server to the client: a response cut after its headers, or
// halfway through its body. 0 turns it off.
func (p *Proxy) CutAnswersAfter(n int64) {
	p.mu.Lock()
	p.cutAnswerAt = n
	p.mu.Unlock()
}

// IdleTimeout closes connections with no traffic for d, as load balancers
// do. 0 turns it off.
func (p *Proxy) IdleTimeout(d time.Duration) {
	p.mu.Lock()
	p.idle = d
	p.mu.Unlock()
}

// Heal ends every fault: no blackhole, no delay, no truncation, no idle
// cut. Connections already cut stay cut.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.blackhole, p.delayUp, p.delayUpFor, p.cutAnswerAt, p.idle = nil, 0, nil, 0, 0
	p.mu.Unlock()
}

// PubSubOnly matches pub/sub connections.
func PubSubOnly(c *Conn) bool { return c.PubSub() }

// Existing returns a matcher for the connections open now that match
// (all when match is nil), so that a fault hits them and not the
// connections opened later to replace them.
func (p *Proxy) Existing(match func(*Conn) bool) func(*Conn) bool {
	p.mu.Lock()
	set := map[*Conn]bool{}
	for c := range p.conns {
		if match == nil || match(c) {
			set[c] = true
		}
	}
	p.mu.Unlock()
	return func(c *Conn) bool { return set[c] }
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.accepted.Add(1)
		c := &Conn{client: client, server: server}
		c.lastActive.Store(time.Now().UnixNano())
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		var done sync.WaitGroup
		done.Add(2)
		go func() { defer done.Done(); p.pump(c, client, server, true) }()
		go func() { defer done.Done(); p.pump(c, server, client, false) }()
		go func() {
			done.Wait()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

var subscribe = []byte("subscribe")

// pump copies one direction of c; up is client -> server.
func (p *Proxy) pump(c *Conn, from, to net.Conn, up bool) {
	defer c.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			c.lastActive.Store(time.Now().UnixNano())
			if up && !c.pubsub.Load() && bytes.Contains(bytes.ToLower(chunk), subscribe) {
				c.pubsub.Store(true)
			}
			p.mu.Lock()
			hole := p.blackhole != nil && p.blackhole(c)
			delay := time.Duration(0)
			if up && p.delayUpFor != nil && p.delayUpFor(c) {
				delay = p.delayUp
			}
			cutAt := p.cutAnswerAt
			p.mu.Unlock()
			if hole {
				continue // swallowed
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			if !up && cutAt > 0 {
				sent := c.down.Load()
				if sent+int64(n) >= cutAt {
					_, _ = to.Write(chunk[:max(cutAt-sent, 0)])
					return // and close: the answer is cut short
				}
				c.down.Add(int64(n))
			}
			if _, werr := to.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or the other side closed: close both
		}
	}
}

func (p *Proxy) reapIdle() {
	defer p.wg.Done()
	for {
		time.Sleep(50 * time.Millisecond)
		p.mu.Lock()
		idle := p.idle
		var victims []*Conn
		if idle > 0 {
			cutoff := time.Now().Add(-idle).UnixNano()
			for c := range p.conns {
				if c.lastActive.Load() < cutoff {
					victims = append(victims, c)
				}
			}
		}
		p.mu.Unlock()
		if idle < 0 {
			return
		}
		for _, c := range victims {
			c.close()
		}
	}
}
