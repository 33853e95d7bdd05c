package redisserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/testenv"
)

// MasterName is the name the sentinels know the primary by.
const MasterName = "mymaster"

// SentinelOptions tunes StartSentinel. The zero value is the topology of
// an ordinary deployment: a primary, two replicas and three sentinels
// with a quorum of two, no persistence.
type SentinelOptions struct {
	// Replicas is the number of replicas. Default: 2.
	Replicas int
	// Sentinels is the number of sentinels. Default: 3.
	Sentinels int
	// Quorum is how many sentinels must agree that the primary is down.
	// Default: a majority of Sentinels.
	Quorum int
	// DownAfter is how long the primary may be silent before a sentinel
	// thinks it down (down-after-milliseconds). Default: 1s.
	DownAfter time.Duration
	// FailoverTimeout is the sentinels' failover-timeout. Default: 10s.
	FailoverTimeout time.Duration
	// AOF gives every redis-server an append-only file (fsync always).
	AOF bool
	// Args are extra arguments for every redis-server, e.g.
	// "--min-replicas-to-write", "1".
	Args []string
}

// SentinelSet is a primary, its replicas and the sentinels watching
// them under the master name MasterName, every one a real process owned
// by the test. Which server is the primary changes with failovers: ask
// Primary.
type SentinelSet struct {
	// Servers are the redis-servers; the first was the primary at start.
	Servers []*Server
	// Sentinels are the redis-sentinel processes.
	Sentinels []*Server

	t testing.TB
}

// StartSentinel starts the servers, waits until every replica is in
// sync, starts the sentinels and waits until each of them knows every
// replica and the other sentinels, so that a failover can begin at once.
// Sentinels run the redis-sentinel program (Debian's redis-sentinel
// package); the test skips, or fails in strict mode, without it.
func StartSentinel(t testing.TB, opts SentinelOptions) *SentinelSet {
	t.Helper()
	sentinelBin := testenv.LookPath(t, "redis-sentinel", "apt-get install redis-sentinel")
	if opts.Replicas <= 0 {
		opts.Replicas = 2
	}
	if opts.Sentinels <= 0 {
		opts.Sentinels = 3
	}
	if opts.Quorum <= 0 {
		opts.Quorum = opts.Sentinels/2 + 1
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 10 * time.Second
	}
	common := append([]string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}, opts.Args...)
	set := &SentinelSet{t: t}
	primary := Start(t, Options{AOF: opts.AOF, Args: common})
	set.Servers = append(set.Servers, primary)
	host, port, _ := strings.Cut(primary.Addr, ":")
	for range opts.Replicas {
		r := Start(t, Options{AOF: opts.AOF, Args: append([]string{"--replicaof", host, port}, common...)})
		set.Servers = append(set.Servers, r)
	}
	set.waitReplicas(primary, opts.Replicas, 20*time.Second)

	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	for range opts.Sentinels {
		sport := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := "port " + strconv.Itoa(sport) + "\nbind 127.0.0.1\ndir " + dir + "\n" +
			"sentinel monitor " + MasterName + " " + host + " " + port + " " + strconv.Itoa(opts.Quorum) + "\n" +
			"sentinel down-after-milliseconds " + MasterName + " " + ms(opts.DownAfter) + "\n" +
			"sentinel failover-timeout " + MasterName + " " + ms(opts.FailoverTimeout) + "\n" +
			"sentinel parallel-syncs " + MasterName + " 1\n"
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, bin: sentinelBin, dir: dir, Addr: "127.0.0.1:" + strconv.Itoa(sport), args: []string{conf}}
		s.start()
		t.Cleanup(s.Kill)
		set.Sentinels = append(set.Sentinels, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !set.settled(opts.Replicas) {
		if time.Now().After(deadline) {
			t.Fatalf("sentinels never learned every replica and each other")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return set
}

// settled reports whether every sentinel names the same primary, knows
// replicas of it and the other sentinels.
func (s *SentinelSet) settled(replicas int) bool {
	want := ""
	for _, sn := range s.Sentinels {
		master, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err != nil || master == "" || (want != "" && master != want) {
			return false
		}
		want = master
		info, err := sn.Do("SENTINEL", "MASTER", MasterName)
		if err != nil {
			return false
		}
		fields := strings.Fields(info)
		got := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			got[fields[i]] = fields[i+1]
		}
		if got["num-slaves"] != strconv.Itoa(replicas) || got["num-other-sentinels"] != strconv.Itoa(len(s.Sentinels)-1) {
			return false
		}
	}
	return true
}

// waitReplicas waits until primary has n replicas online.
func (s *SentinelSet) waitReplicas(primary *Server, n int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, _ := primary.Do("INFO", "replication")
		if strings.Contains(info, "connected_slaves:"+strconv.Itoa(n)) && strings.Count(info, "state=online") == n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d replicas never synced with %s: %s", n, primary.Addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the node's -redis-url for the set.
func (s *SentinelSet) URL() string {
	var addrs []string
	for _, sn := range s.Sentinels {
		addrs = append(addrs, sn.Addr)
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + MasterName
}

// MasterAddr is the address the first answering sentinel names as the
// primary.
func (s *SentinelSet) MasterAddr() string {
	for _, sn := range s.Sentinels {
		if out, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName); err == nil && out != "" {
			host, port, _ := strings.Cut(out, " ")
			return host + ":" + port
		}
	}
	return ""
}

// Primary is the server the sentinels name as the primary.
func (s *SentinelSet) Primary() *Server {
	s.t.Helper()
	addr := s.MasterAddr()
	for _, srv := range s.Servers {
		if srv.Addr == addr {
			return srv
		}
	}
	s.t.Fatalf("the sentinels name %q, which is none of the servers", addr)
	return nil
}

// Role is what a server says of itself: "master", "slave", or "" when it
// does not answer.
func Role(s *Server) string {
	out, err := s.Do("ROLE")
	if err != nil {
		return ""
	}
	role, _, _ := strings.Cut(out, " ")
	return role
}

// KillPrimary kills the primary with SIGKILL (it stays dead), waits until
// every sentinel names another server that says it is a master, and
// returns the old and the new primary.
func (s *SentinelSet) KillPrimary(within time.Duration) (old, promoted *Server) {
	s.t.Helper()
	old = s.Primary()
	old.Kill()
	return old, s.WaitNewPrimary(old, within)
}

// Switchover asks a sentinel for a planned failover (SENTINEL FAILOVER),
// waits until every sentinel names another server that says it is a
// master, and returns the old and the new primary. The old primary is
// demoted to a replica later, when the sentinels get to it.
func (s *SentinelSet) Switchover(within time.Duration) (old, promoted *Server) {
	s.t.Helper()
	old = s.Primary()
	if _, err := s.Sentinels[0].Do("SENTINEL", "FAILOVER", MasterName); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	return old, s.WaitNewPrimary(old, within)
}

// WaitNewPrimary waits until every sentinel names a server other than
// old and that server says it is a master.
func (s *SentinelSet) WaitNewPrimary(old *Server, within time.Duration) *Server {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if p := s.agreedPrimary(); p != nil && p != old && Role(p) == "master" {
			return p
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no new primary after %v: sentinels name %s", within, s.MasterAddr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agreedPrimary is the server every sentinel names, or nil while they
// disagree.
func (s *SentinelSet) agreedPrimary() *Server {
	want := ""
	for _, sn := range s.Sentinels {
		out, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err != nil || out == "" {
			return nil
		}
		host, port, _ := strings.Cut(out, " ")
		if want != "" && want != host+":"+port {
			return nil
		}
		want = host + ":" + port
	}
	for _, srv := range s.Servers {
		if srv.Addr == want {
			return srv
		}
	}
	return nil
}

// WaitDemoted waits until old says it is a replica of the current
// primary and is in sync with it.
func (s *SentinelSet) WaitDemoted(old *Server, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, _ := old.Do("INFO", "replication")
		if strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not a replica in sync after %v: %s", old.Addr, within, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// String names the servers and their roles, for logs.
func (s *SentinelSet) String() string {
	var parts []string
	for _, srv := range s.Servers {
		parts = append(parts, fmt.Sprintf("%s=%s", srv.Addr, Role(srv)))
	}
	return strings.Join(parts, " ")
}
