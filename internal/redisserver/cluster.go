package redisserver

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/testenv"
)

// Cluster is a Redis Cluster of masters with replicas, every instance a
// real redis-server owned by the test, changed the way an operator changes
// one: slots resharded with redis-cli, a replica promoted with CLUSTER
// FAILOVER, a master killed for the cluster to replace.
type Cluster struct {
	// Nodes are every instance, masters and replicas, in start order.
	Nodes []*Server

	t   testing.TB
	cli string
}

// ClusterOptions tunes StartReplicated.
type ClusterOptions struct {
	// Masters is the number of masters. Default: 3.
	Masters int
	// Replicas is the number of replicas of each master. Default: 1;
	// negative: none.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before its replica takes over. Default: 1s.
	NodeTimeout time.Duration
	// FullCoverage sets cluster-require-full-coverage: with it, the whole
	// cluster refuses commands while any slot has no master (Redis's
	// default). Default: false.
	FullCoverage bool
}

// StartReplicated starts a cluster of opts.Masters masters with
// opts.Replicas replicas each, joined by redis-cli --cluster create, and
// waits until every node reports cluster_state:ok, every replica is in
// sync, and all nodes agree on who serves which slots. Every instance
// keeps an AOF (fsync always).
func StartReplicated(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Masters <= 0 {
		opts.Masters = 3
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 1
	case opts.Replicas < 0:
		opts.Replicas = 0
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = time.Second
	}
	coverage := "no"
	if opts.FullCoverage {
		coverage = "yes"
	}
	c := &Cluster{t: t, cli: testenv.LookPath(t, "redis-cli", "apt-get install redis-tools")}
	var addrs []string
	for range opts.Masters * (1 + opts.Replicas) {
		s := Start(t, Options{AOF: true, Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(t)), // not port+10000, which may be taken or past 65535
			"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
			"--cluster-require-full-coverage", coverage,
			// A master that loses its last slot keeps its replica.
			"--cluster-allow-replica-migration", "no",
			"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
		}})
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := exec.Command(c.cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitAgreed()
	testenv.WaitFor(t, 30*time.Second, "every replica in sync", func() bool {
		for _, s := range c.Nodes {
			if info, err := s.Do("INFO", "replication"); err != nil ||
				(strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up")) {
				return false
			}
		}
		return true
	})
	if got := len(c.Masters()); got != opts.Masters {
		t.Fatalf("cluster has %d masters; want %d", got, opts.Masters)
	}
	return c
}

// Seeds lists the addresses of every instance, comma-separated, for a
// redis-cluster:// URL.
func (c *Cluster) Seeds() string {
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, s.Addr)
	}
	return strings.Join(addrs, ",")
}

// Running reports whether the server's process is up (not killed).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	flags    []string
	master   string   // the id of its master, for a replica
	slots    [][2]int // for a master
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

// nodes parses s's CLUSTER NODES.
func (s *Server) nodes() ([]clusterNode, error) {
	out, err := s.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{l, h})
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// self returns s's own line of CLUSTER NODES.
func (s *Server) self() (clusterNode, error) {
	nodes, err := s.nodes()
	if err != nil {
		return clusterNode{}, err
	}
	for _, n := range nodes {
		if n.has("myself") {
			return n, nil
		}
	}
	return clusterNode{}, fmt.Errorf("%s: no myself line in CLUSTER NODES", s.Addr)
}

// live returns the running instances.
func (c *Cluster) live() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// Masters returns the running instances that are masters serving slots,
// by their own account.
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	var out []*Server
	for _, s := range c.live() {
		me, err := s.self()
		if err != nil {
			c.t.Fatal(err)
		}
		if me.has("master") && len(me.slots) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// ReplicaOf returns a running replica of master m.
func (c *Cluster) ReplicaOf(m *Server) *Server {
	c.t.Helper()
	id := m.ID(c.t)
	for _, s := range c.live() {
		me, err := s.self()
		if err != nil {
			c.t.Fatal(err)
		}
		if me.has("slave") && me.master == id {
			return s
		}
	}
	c.t.Fatalf("master %s has no running replica", m.Addr)
	return nil
}

// Owner returns the master that serves slot, by its own account.
func (c *Cluster) Owner(slot int) *Server {
	c.t.Helper()
	for _, s := range c.Masters() {
		me, err := s.self()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, r := range me.slots {
			if slot >= r[0] && slot <= r[1] {
				return s
			}
		}
	}
	c.t.Fatalf("no master serves slot %d", slot)
	return nil
}

// Owners returns, for each of the 16384 slots, the master serving it, by
// the masters' own account.
func (c *Cluster) Owners() []*Server {
	c.t.Helper()
	owners := make([]*Server, 16384)
	for _, m := range c.Masters() {
		me, err := m.self()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, r := range me.slots {
			for s := r[0]; s <= r[1]; s++ {
				owners[s] = m
			}
		}
	}
	return owners
}

// slotMap is a node's view of which master serves which slots, as text
// that two nodes agreeing produce alike.
func (s *Server) slotMap() (string, error) {
	nodes, err := s.nodes()
	if err != nil {
		return "", err
	}
	var parts []string
	for _, n := range nodes {
		if n.has("master") && !n.has("fail") && len(n.slots) > 0 {
			parts = append(parts, fmt.Sprintf("%s=%v", n.addr, n.slots))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " "), nil
}

// WaitAgreed waits until every running instance reports cluster_state:ok
// and the same masters serving the same slots, covering all 16384.
func (c *Cluster) WaitAgreed() {
	c.t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := c.agreed()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not agreed after 30s: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) agreed() (bool, string) {
	first := ""
	for i, s := range c.live() {
		info, err := s.Do("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return false, fmt.Sprintf("%s: %v %.80q", s.Addr, err, info)
		}
		m, err := s.slotMap()
		if err != nil {
			return false, err.Error()
		}
		if i == 0 {
			first = m
		} else if m != first {
			return false, fmt.Sprintf("%s sees %s, another %s", s.Addr, m, first)
		}
	}
	return true, ""
}

// Reshard moves n slots from one master to another with redis-cli
// --cluster reshard, as an operator would (its lowest slots first, keys
// and all), and waits until every node agrees.
func (c *Cluster) Reshard(from, to *Server, n int) {
	c.t.Helper()
	out, err := exec.Command(c.cli, "--cluster", "reshard", from.Addr,
		"--cluster-from", from.ID(c.t), "--cluster-to", to.ID(c.t),
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes").CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, out)
	}
	c.WaitAgreed()
}

// BeginMigration opens the migration of slot from one master to another
// (IMPORTING on to, MIGRATING on from), the first step of what redis-cli
// --cluster reshard does for each slot; until EndMigration, commands on
// the slot's keys meet ASK and TRYAGAIN.
func (c *Cluster) BeginMigration(slot int, from, to *Server) {
	c.t.Helper()
	s := strconv.Itoa(slot)
	c.must(to, "CLUSTER", "SETSLOT", s, "IMPORTING", from.ID(c.t))
	c.must(from, "CLUSTER", "SETSLOT", s, "MIGRATING", to.ID(c.t))
}

// MoveKeys moves every key of slot from one master to another with
// MIGRATE, as a reshard does between BeginMigration and EndMigration.
func (c *Cluster) MoveKeys(slot int, from, to *Server) {
	c.t.Helper()
	host, port, _ := strings.Cut(to.Addr, ":")
	for {
		keys := c.must(from, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(slot), "100")
		if keys == "" {
			return
		}
		c.must(from, append([]string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}, strings.Fields(keys)...)...)
	}
}

// EndMigration gives slot to master to (its remaining keys moved first)
// on every master, the new owner first as redis-cli does, and waits until
// every node agrees.
func (c *Cluster) EndMigration(slot int, from, to *Server) {
	c.t.Helper()
	c.MoveKeys(slot, from, to)
	id := to.ID(c.t)
	c.must(to, "CLUSTER", "SETSLOT", strconv.Itoa(slot), "NODE", id)
	for _, s := range c.live() {
		if me, err := s.self(); err == nil && me.has("master") && s != to {
			c.must(s, "CLUSTER", "SETSLOT", strconv.Itoa(slot), "NODE", id)
		}
	}
	c.WaitAgreed()
}

func (c *Cluster) must(s *Server, args ...string) string {
	c.t.Helper()
	out, err := s.Do(args...)
	if err != nil {
		c.t.Fatalf("%s %v: %v", s.Addr, args, err)
	}
	return out
}

// Failover promotes replica to master with CLUSTER FAILOVER (its master
// hands over, nothing lost) and waits until every node agrees.
func (c *Cluster) Failover(replica *Server) {
	c.t.Helper()
	if _, err := replica.Do("CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("CLUSTER FAILOVER on %s: %v", replica.Addr, err)
	}
	c.waitMaster(replica)
}

// KillMaster kills master m with SIGKILL and waits until the cluster has
// promoted one of its replicas, which it returns, and every node still
// running agrees. The cluster notices after cluster-node-timeout.
func (c *Cluster) KillMaster(m *Server) *Server {
	c.t.Helper()
	replica := c.ReplicaOf(m)
	m.Kill()
	c.waitMaster(replica)
	return replica
}

func (c *Cluster) waitMaster(s *Server) {
	c.t.Helper()
	testenv.WaitFor(c.t, 30*time.Second, s.Addr+" to become a master", func() bool {
		info, err := s.Do("INFO", "replication")
		return err == nil && strings.Contains(info, "role:master")
	})
	c.WaitAgreed()
}

// Slot is Redis Cluster's hash slot of key: CRC16 of its hash tag (the
// part between the first { and the next }, when not empty) or of the
// whole key, modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
