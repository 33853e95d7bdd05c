package redisserver

import (
	"os/exec"
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
