package redisserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/testenv"
)

// StartCluster starts n redis-servers in cluster mode, joins them into a
// cluster of n masters with redis-cli --cluster create, and waits until
// every node reports cluster_state:ok. Each keeps its data in an AOF, so
// a master killed and restarted comes back with it.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	cli := testenv.LookPath(t, "redis-cli", "apt-get install redis-tools")
	var nodes []*Server
	var addrs []string
	for range n {
		s := Start(t, Options{AOF: true, Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(t)), // not port+10000, which may be taken or past 65535
			"--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
		}})
		nodes = append(nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range nodes {
		s.WaitClusterOK(t)
	}
	return nodes
}

// WaitClusterOK waits until the node reports cluster_state:ok.
func (s *Server) WaitClusterOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := s.Do("CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster node %s not ok after 20s: %v %s", s.Addr, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ID is the node's cluster id.
func (s *Server) ID(t testing.TB) string {
	t.Helper()
	id, err := s.Do("CLUSTER", "MYID")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Sentinels is a primary, its replica and three sentinels watching them
// under the master name "mymaster".
type Sentinels struct {
	Primary, Replica *Server
	Sentinels        []*Server
}

// MasterName is the name the sentinels know the primary by.
const MasterName = "mymaster"

// StartSentinels starts a primary (AOF on), a replica of it and three
// sentinels that fail over after 1s of silence.
func StartSentinels(t testing.TB) *Sentinels {
	t.Helper()
	primary := Start(t, Options{AOF: true, Args: []string{"--repl-diskless-sync-delay", "0"}})
	_, pport, _ := strings.Cut(primary.Addr, ":")
	replica := Start(t, Options{AOF: true, Args: []string{"--replicaof", "127.0.0.1", pport, "--repl-diskless-sync-delay", "0"}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := primary.Do("INFO", "replication")
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never synced: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	set := &Sentinels{Primary: primary, Replica: replica}
	for range 3 {
		port := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := "port " + strconv.Itoa(port) + "\nbind 127.0.0.1\ndir " + dir + "\n" +
			"sentinel monitor " + MasterName + " 127.0.0.1 " + pport + " 2\n" +
			"sentinel down-after-milliseconds " + MasterName + " 1000\n" +
			"sentinel failover-timeout " + MasterName + " 5000\n" +
			"sentinel parallel-syncs " + MasterName + " 1\n"
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, bin: testenv.LookPath(t, "redis-server", "apt-get install redis-server"), dir: dir,
			Addr: "127.0.0.1:" + strconv.Itoa(port), args: []string{conf, "--sentinel"}}
		s.start()
		t.Cleanup(s.Kill)
		set.Sentinels = append(set.Sentinels, s)
	}
	return set
}

// Addrs lists the sentinels' addresses.
func (s *Sentinels) Addrs() []string {
	var out []string
	for _, sn := range s.Sentinels {
		out = append(out, sn.Addr)
	}
	return out
}

// Master asks a sentinel which address it believes is the primary now.
func (s *Sentinels) Master(t testing.TB) string {
	t.Helper()
	for _, sn := range s.Sentinels {
		if out, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName); err == nil && out != "" {
			return out
		}
	}
	return ""
}
