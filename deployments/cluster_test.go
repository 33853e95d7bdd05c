package deployments_test

// The docker-compose topology as processes. In compose every replica of
// the cometbox service is a container with an address of its own on the
// project's network, all listening on the same ports (8080 public, 8081
// admin), and Docker's DNS answers the service name with one A record
// per running container. Here every node is a process on a loopback
// address of its own (all of 127.0.0.0/8 is local on Linux), on ports
// shared by all, and a servicedns.Server answers the service name; haproxy.cfg
// runs unchanged but for addresses, ports and timings.

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/servicedns"
	"github.com/cometbox/cometbox/internal/testenv"
)

// serviceName is the name the test's DNS answers: docker-compose's node
// service, so the config's default NODE_SERVICE is the one exercised.
const serviceName = "cometbox"

// cluster is a set of nodes that one DNS name finds.
type cluster struct {
	t *testing.T
	// DNS answers serviceName with the addresses of the nodes in the
	// service, as Docker's would.
	DNS *servicedns.Server
	// Port and AdminPort are every node's public and admin ports.
	Port, AdminPort int

	prefix [3]byte // 127.x.y.*: the nodes' addresses
	last   byte    // the last address handed out
	args   []string
}

// newCluster prepares a cluster whose nodes all run with args; it starts
// none. The nodes' addresses come from a /24 of 127/8 picked at random,
// so that two runs of the suite on one machine do not meet.
func newCluster(t *testing.T, args ...string) *cluster {
	t.Helper()
	c := &cluster{
		t: t, DNS: startDNS(t, serviceName), args: args,
		prefix: [3]byte{127, byte(100 + rand.IntN(150)), byte(rand.IntN(256))}, last: 1,
	}
	// Free on 127.0.0.1, so nothing listens on them on every address;
	// only a process of this test binds the cluster's own addresses.
	ports := freePorts(t, 2)
	c.Port, c.AdminPort = ports[0], ports[1]
	return c
}

// freePorts returns n distinct ports free on 127.0.0.1: held open all at
// once while they are picked, so that the kernel cannot hand out one
// twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// nextAddr is the address the next new node gets.
func (c *cluster) nextAddr() netip.Addr {
	c.last++
	if c.last == 255 {
		c.t.Fatal("cluster: out of addresses")
	}
	return netip.AddrFrom4([4]byte{c.prefix[0], c.prefix[1], c.prefix[2], c.last})
}

// Add starts a node on a new address, as `docker compose up --scale`
// starts a container: it joins the DNS answer first, then its process
// starts. It returns once the node listens; use WaitReady for readiness.
func (c *cluster) Add() *nodeproc.Node {
	c.t.Helper()
	addr := c.nextAddr()
	c.DNS.Add(addr)
	return c.Start(addr)
}

// Start starts a node on addr, which the DNS answer may or may not hold.
func (c *cluster) Start(addr netip.Addr) *nodeproc.Node {
	c.t.Helper()
	args := append([]string{
		"-listen", netip.AddrPortFrom(addr, uint16(c.Port)).String(),
		"-admin-listen", netip.AddrPortFrom(addr, uint16(c.AdminPort)).String(),
	}, c.args...)
	return nodeproc.Start(c.t, "cometbox-"+strconv.Itoa(int(addr.As4()[3])), args...)
}

// addrOf is the address a node listens on, the one the DNS answer holds
// for it.
func addrOf(t *testing.T, n *nodeproc.Node) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatalf("node %s: URL %q: %v", n.Name, n.URL, err)
	}
	return ap.Addr()
}

// lbEnv is the environment the test gives haproxy.cfg: its addresses,
// the nodes' ports, and, with fast, checks every 100ms and DNS answers
// held 200ms; without, the config's own timings, docker-compose's.
func lbEnv(bind, stats, dns string, port, adminPort int, fast bool) []string {
	env := []string{
		"LB_BIND_ADDR=" + bind, "LB_STATS_ADDR=" + stats, "LB_DNS_ADDR=" + dns,
		"NODE_SERVICE=" + serviceName, "NODE_PORT=" + strconv.Itoa(port), "NODE_ADMIN_PORT=" + strconv.Itoa(adminPort),
	}
	if fast {
		env = append(env, "LB_CHECK_INTER=100ms", "LB_CHECK_FALL=2", "LB_CHECK_RISE=1", "LB_DNS_HOLD=200ms")
	}
	return env
}

// balancer is a running haproxy.
type balancer struct {
	URL, Stats string
	log        *lockedBuffer
}

// startBalancer runs haproxy.cfg in front of c with fast checks.
func startBalancer(t *testing.T, c *cluster) *balancer {
	t.Helper()
	return startBalancerWith(t, c, true)
}

// startBalancerWith runs haproxy.cfg in front of c, with fast checks and
// DNS (fast) or the config's own timings.
func startBalancerWith(t *testing.T, c *cluster, fast bool) *balancer {
	t.Helper()
	bin := testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	ports := freePorts(t, 2)
	bind, stats := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	lb := &balancer{URL: "http://" + bind, Stats: "http://" + stats, log: &lockedBuffer{}}
	cmd := exec.Command(bin, "-db", "-f", loadHAProxy(t).path)
	cmd.Env = append(os.Environ(), lbEnv(bind, stats, c.DNS.Addr, c.Port, c.AdminPort, fast)...)
	cmd.Stdout, cmd.Stderr = lb.log, lb.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log := lb.log.String()
			lines := strings.SplitAfter(log, "\n")
			if len(lines) > 200 { // a test under load logs every request
				log = "[…]\n" + strings.Join(lines[len(lines)-200:], "")
			}
			t.Logf("haproxy log:\n%s", log)
		}
	})
	return lb
}

// lbServer is one server slot of backend cometbox on the stats page.
type lbServer struct {
	name   string     // node1 … nodeN
	addr   netip.Addr // from DNS; invalid while the slot is empty
	status string     // "UP", "DOWN", "MAINT (resolution)", ...
}

func (s lbServer) up() bool { return s.status == "UP" }

// servers reads the server slots of backend cometbox from the stats page.
func (lb *balancer) servers(t *testing.T) []lbServer {
	t.Helper()
	resp, err := http.Get(lb.Stats + "/stats;csv")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	r := csv.NewReader(bufio.NewReader(resp.Body))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "# ")] = i
	}
	if _, ok := col["addr"]; !ok {
		t.Fatalf("haproxy's stats CSV has no addr column: %q", rows[0])
	}
	var out []lbServer
	for _, row := range rows[1:] {
		if row[col["pxname"]] != "cometbox" || row[col["svname"]] == "BACKEND" || row[col["svname"]] == "FRONTEND" {
			continue
		}
		s := lbServer{name: row[col["svname"]], status: row[col["status"]]}
		if ap, err := netip.ParseAddrPort(row[col["addr"]]); err == nil && !strings.HasPrefix(s.status, "MAINT") {
			s.addr = ap.Addr()
		}
		out = append(out, s)
	}
	return out
}

// status is the status of the slot holding addr; "" when none does (it
// left the DNS answer, or HAProxy has not seen it there yet).
func (lb *balancer) status(t *testing.T, addr netip.Addr) string {
	t.Helper()
	for _, s := range lb.servers(t) {
		if s.addr == addr {
			return s.status
		}
	}
	return ""
}

// inRotation is the addresses of the slots that are UP.
func (lb *balancer) inRotation(t *testing.T) map[netip.Addr]bool {
	t.Helper()
	up := map[netip.Addr]bool{}
	for _, s := range lb.servers(t) {
		if s.up() && s.addr.IsValid() {
			up[s.addr] = true
		}
	}
	return up
}

// waitRotation waits until exactly nodes are in the rotation.
func (lb *balancer) waitRotation(t *testing.T, what string, nodes ...*nodeproc.Node) {
	t.Helper()
	want := map[netip.Addr]bool{}
	for _, n := range nodes {
		want[addrOf(t, n)] = true
	}
	waitFor(t, 15*time.Second, what, func() bool {
		up := lb.inRotation(t)
		if len(up) != len(want) {
			return false
		}
		for a := range want {
			if !up[a] {
				return false
			}
		}
		return true
	})
}

func (s lbServer) String() string {
	if !s.addr.IsValid() {
		return fmt.Sprintf("%s %s", s.name, s.status)
	}
	return fmt.Sprintf("%s %v %s", s.name, s.addr, s.status)
}
