package main

// Following the sentinels of a Sentinel-managed primary.
//
// go-redis's failover client finds the primary through one sentinel and
// learns of a switch from that one sentinel's +switch-master, which may
// come a second or more after the first (the leader's comes last). In a
// planned switchover (SENTINEL FAILOVER) the old primary keeps accepting
// writes all that time, and for some ten seconds more until the
// sentinels demote it: writes that the node sends it after the replica
// was promoted are acknowledged and then discarded. So the node follows
// every sentinel itself:
//
//   - from the first sign of a failover (+try-failover, which the leader
//     publishes some 200 ms before it promotes a replica, and the states
//     that follow) publishes are held (queue.Primary.Fence);
//   - on the first +switch-master from any sentinel, the node closes its
//     connections to the old primary, sends new ones to the new primary
//     whatever its go-redis sentinel still says, moves its wake-up
//     subscriptions (notify.Reconnect), and lets publishes go once a
//     connection to the new primary works;
//   - every new connection must reach a server that says it is a master,
//     and tells queue.Primary the server's term (its master_replid), so
//     that a write that reached a replaced primary anyway shows as a new
//     epoch on its successor, never as ids handed out twice.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/queue"
)

const (
	// fenceFor bounds how long a failover holds publishes when no
	// +switch-master or abort ends it (the sentinels' messages were
	// lost): the publishes that waited that long have had their own
	// deadline.
	fenceFor = 5 * time.Second
	// redirectFor is how long, after a +switch-master, dials for the old
	// primary go to the new one instead: long enough for go-redis's own
	// sentinel to catch up, short enough that a missed later switch
	// back cannot pin the node to a stale primary.
	redirectFor = time.Minute
)

// failoverEvents are the sentinel channels that show a failover under
// way (published by the leader before and while it promotes a replica).
var failoverEvents = []string{
	"+try-failover", "+elected-leader", "+failover-state-select-slave", "+selected-slave",
	"+failover-state-send-slaveof-noone", "+failover-state-wait-promotion", "+promoted-slave",
	"+failover-state-reconf-slaves",
}

// failoverAborts end a sentinel's failover attempt without a switch.
var failoverAborts = []string{
	"-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout",
}

// sentinelFollower follows the sentinels of one master name. Its dial and
// onConnect are the failover client's Dialer and OnConnect.
type sentinelFollower struct {
	opts    *redis.FailoverOptions
	primary *queue.Primary
	log     *slog.Logger
	// ping runs a command through the node's client, so that it dials the
	// new primary after a switch. Set before Run.
	ping func(ctx context.Context) error
	// moved is called on a switch, before the old primary's connections
	// are closed: it moves the wake-up subscriptions. Set before Run.
	moved func()

	mu        sync.Mutex
	following map[string]bool      // sentinel addresses followed
	replaced  map[string]time.Time // old primaries, redirected to master until then
	master    string               // the primary the last +switch-master named
	conns     map[*trackedConn]struct{}
	trying    map[string]bool // sentinels with a failover under way (several may try at once)
	fencedAt  time.Time       // when the current fence began, zero when none
}

func newSentinelFollower(opts *redis.FailoverOptions, primary *queue.Primary, log *slog.Logger) *sentinelFollower {
	return &sentinelFollower{
		opts: opts, primary: primary, log: log,
		following: map[string]bool{},
		replaced:  map[string]time.Time{},
		conns:     map[*trackedConn]struct{}{},
		trying:    map[string]bool{},
		ping:      func(context.Context) error { return nil },
		moved:     func() {},
	}
}

// trackedConn is a connection the follower can close when its server is
// replaced. *net.TCPConn is embedded so that go-redis's health check
// (syscall.Conn) still sees the socket.
type trackedConn struct {
	*net.TCPConn
	addr string
	f    *sentinelFollower
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.TCPConn.Close()
}

// dial is the failover client's Dialer (go-redis uses it for its
// sentinels too): it dials addr, or the new primary when addr is one a
// +switch-master replaced a moment ago, and remembers the connection.
func (f *sentinelFollower) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	if until, ok := f.replaced[addr]; ok && time.Now().Before(until) && f.master != "" {
		addr = f.master
	}
	f.mu.Unlock()
	d := net.Dialer{Timeout: f.opts.DialTimeout, KeepAlive: 5 * time.Minute}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = c
	if tcp, ok := c.(*net.TCPConn); ok {
		tc := &trackedConn{TCPConn: tcp, addr: addr, f: f}
		f.mu.Lock()
		f.conns[tc] = struct{}{}
		f.mu.Unlock()
		conn = tc
	}
	if f.opts.TLSConfig != nil {
		cfg := f.opts.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	return conn, nil
}

// onConnect is the failover client's OnConnect: a connection must reach
// a master, whose term the queue learns (see queue.Primary). A sentinel
// (go-redis connects to them with the same options) has no role in its
// INFO replication, and passes.
func (f *sentinelFollower) onConnect(ctx context.Context, cn *redis.Conn) error {
	return learnTerm(ctx, cn, f.primary, true)
}

// learnTerm reads the role and master_replid of the server cn reached and
// tells primary; with mustBeMaster a server that is not a master is
// refused.
func learnTerm(ctx context.Context, cn *redis.Conn, primary *queue.Primary, mustBeMaster bool) error {
	info, err := cn.Info(ctx, "replication").Result()
	var refused redis.Error
	switch {
	case errors.As(err, &refused):
		return nil // INFO not allowed (ACL): no term, as on a Cluster
	case err != nil:
		return fmt.Errorf("INFO replication: %w", err)
	}
	role, replid := infoValue(info, "role"), infoValue(info, "master_replid")
	switch {
	case role == "": // a sentinel
		return nil
	case mustBeMaster && role != "master":
		return fmt.Errorf("reached a Redis %s, not the primary: the sentinels are switching it", role)
	case role != "master" || replid == "":
		return nil
	}
	return primary.Learned(replid)
}

func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// Run follows every configured sentinel, and those they know of, until
// ctx ends.
func (f *sentinelFollower) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	follow := func(addr string) {
		f.mu.Lock()
		if f.following[addr] {
			f.mu.Unlock()
			return
		}
		f.following[addr] = true
		f.mu.Unlock()
		wg.Go(func() { f.followOne(ctx, addr) })
	}
	for _, addr := range f.opts.SentinelAddrs {
		follow(addr)
	}
	// Sentinels added later are found through the others: a leader not
	// followed would start a failover unseen.
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		for _, addr := range f.discover(ctx) {
			follow(addr)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
	}
}

// sentinelClient is a client of one sentinel, with the URL's sentinel
// credentials.
func (f *sentinelFollower) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: addr, Username: f.opts.SentinelUsername, Password: f.opts.SentinelPassword,
		TLSConfig: f.opts.TLSConfig, ClientName: f.opts.ClientName,
		DialTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
		MaxRetries: -1, PoolSize: 1,
	})
}

// discover asks the followed sentinels for the others they know.
func (f *sentinelFollower) discover(ctx context.Context) []string {
	f.mu.Lock()
	var known []string
	for addr := range f.following {
		known = append(known, addr)
	}
	f.mu.Unlock()
	var found []string
	for _, addr := range known {
		sc := f.sentinelClient(addr)
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		others, err := sc.Sentinels(qctx, f.opts.MasterName).Result()
		cancel()
		_ = sc.Close()
		if err != nil {
			continue
		}
		for _, o := range others {
			if o["ip"] != "" && o["port"] != "" {
				found = append(found, net.JoinHostPort(o["ip"], o["port"]))
			}
		}
		break
	}
	return found
}

// followOne subscribes to one sentinel's failover events until ctx ends;
// go-redis resubscribes after a broken connection.
func (f *sentinelFollower) followOne(ctx context.Context, addr string) {
	sc := f.sentinelClient(addr)
	defer sc.Close()
	channels := append(append([]string{"+switch-master"}, failoverEvents...), failoverAborts...)
	ps := sc.Subscribe(ctx, channels...)
	defer ps.Close()
	msgs := ps.Channel(redis.WithChannelHealthCheckInterval(3 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			f.event(ctx, addr, m.Channel, m.Payload)
		}
	}
}

// event handles one sentinel event.
func (f *sentinelFollower) event(ctx context.Context, from, channel, payload string) {
	fields := strings.Fields(payload)
	if channel == "+switch-master" {
		// "<master name> <old ip> <old port> <new ip> <new port>"
		if len(fields) == 5 && fields[0] == f.opts.MasterName {
			f.switched(ctx, from, net.JoinHostPort(fields[1], fields[2]), net.JoinHostPort(fields[3], fields[4]))
		}
		return
	}
	// "master <name> <ip> <port>", or "<type> <name> <ip> <port> @ <master name> <ip> <port>"
	name, addr := "", ""
	if len(fields) >= 4 && fields[0] == "master" {
		name, addr = fields[1], net.JoinHostPort(fields[2], fields[3])
	}
	for i, w := range fields {
		if w == "@" && i+3 < len(fields) {
			name, addr = fields[i+1], net.JoinHostPort(fields[i+2], fields[i+3])
		}
	}
	if name != f.opts.MasterName {
		return
	}
	f.mu.Lock()
	_, done := f.replaced[addr]
	f.mu.Unlock()
	if done {
		return // late news of a failover already switched
	}
	if strings.HasPrefix(channel, "-failover-abort") {
		// Only this sentinel's attempt ended: another may be the leader.
		f.mu.Lock()
		delete(f.trying, from)
		others := len(f.trying)
		f.mu.Unlock()
		if others == 0 {
			f.log.Warn("failover aborted; publishes go on to the same primary", "sentinel", from, "event", channel)
			f.unfence()
		}
		return
	}
	f.mu.Lock()
	f.trying[from] = true
	f.mu.Unlock()
	f.fence(from, channel)
}

// fence holds publishes for fenceFor from now (see queue.Primary.Fence).
func (f *sentinelFollower) fence(from, event string) {
	f.mu.Lock()
	first := f.fencedAt.IsZero()
	if first {
		f.fencedAt = time.Now()
	}
	f.mu.Unlock()
	f.primary.Fence(time.Now().Add(fenceFor))
	if first {
		f.log.Info("failover under way: publishes wait until the new primary is reached", "sentinel", from, "event", event)
	}
}

// switched completes a switch from old to master: once, whichever
// sentinel tells it first.
func (f *sentinelFollower) switched(ctx context.Context, from, old, master string) {
	f.mu.Lock()
	if f.master == master {
		f.mu.Unlock()
		return // told by another sentinel already
	}
	f.master = master
	delete(f.replaced, master)
	f.replaced[old] = time.Now().Add(redirectFor)
	f.mu.Unlock()
	// Publishes wait from now until the new primary is reached, even when
	// no +try-failover was seen (its leader not followed).
	f.fence(from, "+switch-master")
	f.moved()
	closed := f.closeConns(old)
	f.log.Info("primary switched; connections moved", "from", old, "to", master, "closed", closed)
	go func() {
		deadline := time.Now().Add(fenceFor)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := f.ping(pctx)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, queue.ErrNewPrimary) {
				f.log.Debug("new primary not reached yet", "to", master, "err", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A dial to the old primary begun before the switch may have
		// ended since.
		f.closeConns(old)
		f.unfence()
	}()
}

// closeConns closes every connection to addr and returns how many.
func (f *sentinelFollower) closeConns(addr string) int {
	f.mu.Lock()
	var stale []*trackedConn
	for c := range f.conns {
		if c.addr == addr {
			stale = append(stale, c)
		}
	}
	f.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
	return len(stale)
}

// unfence lets publishes go on and logs how long they waited.
func (f *sentinelFollower) unfence() {
	f.mu.Lock()
	began := f.fencedAt
	f.fencedAt = time.Time{}
	clear(f.trying)
	f.mu.Unlock()
	f.primary.Unfence()
	if !began.IsZero() {
		f.log.Info("publishes go on", "held_for", time.Since(began).Round(time.Millisecond))
	}
}
