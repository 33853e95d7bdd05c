package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cometbox/cometbox/internal/servicedns"
)

// TopologyConfig describes the docker-compose topology run as processes,
// for the rolling-restart mode: a redis-server, cometbox nodes each on a
// loopback address of its own with the same public and admin ports (as
// containers on one network), a DNS server answering the service name
// with their addresses (as Docker's does), and HAProxy on the project's
// haproxy.cfg with only the addresses and ports (and, when given, the
// check timings) from the environment, as deployments/topology_test.go
// runs it.
type TopologyConfig struct {
	// NodeBin, HAProxyBin and RedisBin are the programs to run.
	NodeBin, HAProxyBin, RedisBin string
	// HAProxyCfg is deployments/haproxy/haproxy.cfg; its
	// ${LB_MAX_NODES-n} says how many nodes it balances at most.
	HAProxyCfg string
	// RedisURL is a Redis to use; empty: start RedisBin with an
	// append-only file fsynced every second, as docker-compose.yml does.
	RedisURL string
	// Nodes is the number of nodes; at most the config's server slots.
	Nodes int
	// NodeArgs are more flags for every node (the drain settings).
	NodeArgs []string
	// Secret is the nodes' publish secret.
	Secret string
	// CheckInter, CheckFall and CheckRise set LB_CHECK_INTER,
	// LB_CHECK_FALL and LB_CHECK_RISE; empty: the config's defaults.
	CheckInter, CheckFall, CheckRise string
	// Dir receives the processes' logs.
	Dir string
}

// Topology is a running TopologyConfig.
type Topology struct {
	cfg TopologyConfig
	// LB and Stats are HAProxy's base URLs: the nodes' frontend and its
	// stats page.
	LB, Stats string
	Nodes     []*NodeProc
	redisURL  string
	redis     *exec.Cmd
	dns       *servicedns.Server
	lb        *exec.Cmd
}

// NodeProc is one cometbox node process, which can be stopped and
// started again on the same address.
type NodeProc struct {
	// Name is its -node-name; Addr its public address (-listen),
	// AdminAddr the one of /readyz and /metrics (-admin-listen).
	Name, Addr, AdminAddr string
	bin                   string
	args                  []string
	logPath               string
	cmd                   *exec.Cmd
	done                  chan struct{}
	exit                  int
}

// serviceName is the name the nodes are found by: docker-compose's node
// service, haproxy.cfg's default NODE_SERVICE.
const serviceName = "cometbox"

var maxNodesRef = regexp.MustCompile(`\$\{LB_MAX_NODES-(\d+)\}`)

// StartTopology starts Redis (unless cfg.RedisURL is set), the nodes,
// and HAProxy, and waits until HAProxy has every node UP.
func StartTopology(cfg TopologyConfig) (_ *Topology, err error) {
	b, err := os.ReadFile(cfg.HAProxyCfg)
	if err != nil {
		return nil, err
	}
	m := maxNodesRef.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("%s: no ${LB_MAX_NODES-n}: want the project's haproxy.cfg, which finds the nodes by DNS", cfg.HAProxyCfg)
	}
	slots, _ := strconv.Atoi(string(m[1]))
	if cfg.Nodes < 1 || cfg.Nodes > slots {
		return nil, fmt.Errorf("%s balances up to %d nodes (LB_MAX_NODES); asked for %d", cfg.HAProxyCfg, slots, cfg.Nodes)
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	next := func() string { p := ports[0]; ports = ports[1:]; return "127.0.0.1:" + strconv.Itoa(p) }
	// The nodes' ports, free on 127.0.0.1 so on every address, and their
	// addresses, in a /24 of 127/8 picked at random.
	nodePort, adminPort := ports[0], ports[1]
	ports = ports[2:]
	prefix := [3]byte{127, byte(100 + rand.IntN(150)), byte(rand.IntN(256))}
	t := &Topology{cfg: cfg, redisURL: cfg.RedisURL}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.redisURL == "" {
		addr := next()
		_, port, _ := net.SplitHostPort(addr)
		t.redis = exec.Command(cfg.RedisBin, "--port", port, "--bind", "127.0.0.1", "--dir", cfg.Dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
			"--loglevel", "warning", "--logfile", filepath.Join(cfg.Dir, "redis.log"))
		if err := t.redis.Start(); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
		t.redisURL = "redis://" + addr
		if err := waitDial(addr, 10*time.Second); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
	}
	var ips []netip.Addr
	for i := range cfg.Nodes {
		name := fmt.Sprintf("cometbox-%d", i+1)
		ip := netip.AddrFrom4([4]byte{prefix[0], prefix[1], prefix[2], byte(2 + i)})
		ips = append(ips, ip)
		n := &NodeProc{Name: name, bin: cfg.NodeBin, logPath: filepath.Join(cfg.Dir, name+".log"),
			Addr:      netip.AddrPortFrom(ip, uint16(nodePort)).String(),
			AdminAddr: netip.AddrPortFrom(ip, uint16(adminPort)).String()}
		n.args = append([]string{"-listen", n.Addr, "-admin-listen", n.AdminAddr, "-redis-url", t.redisURL, "-publish-secret", cfg.Secret,
			"-node-name", name, "-log-format", "json", "-max-polls-per-client", "0"}, cfg.NodeArgs...)
		t.Nodes = append(t.Nodes, n)
		if err := n.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range t.Nodes {
		if err := n.WaitReady(15 * time.Second); err != nil {
			return nil, err
		}
	}
	if t.dns, err = servicedns.Start(serviceName, ips...); err != nil {
		return nil, fmt.Errorf("DNS server: %w", err)
	}
	bind, stats := next(), next()
	t.LB, t.Stats = "http://"+bind, "http://"+stats
	env := append(os.Environ(), "LB_BIND_ADDR="+bind, "LB_STATS_ADDR="+stats, "LB_DNS_ADDR="+t.dns.Addr,
		"NODE_SERVICE="+serviceName, "NODE_PORT="+strconv.Itoa(nodePort), "NODE_ADMIN_PORT="+strconv.Itoa(adminPort))
	for k, v := range map[string]string{"LB_CHECK_INTER": cfg.CheckInter, "LB_CHECK_FALL": cfg.CheckFall, "LB_CHECK_RISE": cfg.CheckRise} {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	lbLog, err := os.Create(filepath.Join(cfg.Dir, "haproxy.log"))
	if err != nil {
		return nil, err
	}
	t.lb = exec.Command(cfg.HAProxyBin, "-db", "-f", cfg.HAProxyCfg)
	t.lb.Env, t.lb.Stdout, t.lb.Stderr = env, lbLog, lbLog
	err = t.lb.Start()
	lbLog.Close()
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range t.Nodes {
		if err := t.WaitStatus(n.Name, "UP", time.Until(deadline)); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// freePorts returns n free loopback ports below the ephemeral range, so
// that no outgoing connection takes a node's port while it restarts.
func freePorts(n int) ([]int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	var ports []int
	start := 10000 + int(time.Now().UnixNano()%int64(max(1, low-20000)))
	for p := start; len(ports) < n && p < low; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("found %d free ports below %d; want %d", len(ports), low, n)
	}
	return ports, nil
}

func waitDial(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Redis is the Redis URL the nodes use.
func (t *Topology) Redis() string { return t.redisURL }

// Status reads each node's status from HAProxy's stats page, by node
// name: "UP", "DOWN", "UP 1/2", "MAINT"... (the server slot that holds
// the node's address; a node in none is missing).
func (t *Topology) Status() (map[string]string, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(t.Stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := csv.NewReader(bufio.NewReader(resp.Body))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy stats: %v", err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "# ")] = i
	}
	if _, ok := col["addr"]; !ok {
		return nil, errors.New("haproxy stats: no addr column (stats show-legends)")
	}
	byAddr := map[string]string{}
	for _, n := range t.Nodes {
		byAddr[n.Addr] = n.Name
	}
	status := map[string]string{}
	for _, row := range rows[1:] {
		name, ok := byAddr[row[col["addr"]]]
		if ok && row[col["pxname"]] == "cometbox" && !strings.HasPrefix(row[col["status"]], "MAINT") {
			status[name] = row[col["status"]]
		}
	}
	return status, nil
}

// WaitStatus waits until HAProxy reports server name as want ("UP", or
// "DOWN" for anything but UP).
func (t *Topology) WaitStatus(name, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		st, err := t.Status()
		if err == nil {
			s := st[name]
			up := s == "UP" || strings.HasPrefix(s, "UP ")
			if (want == "UP" && s == "UP") || (want == "DOWN" && s != "" && !up) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy: %s not %s after %v (%v)", name, want, d, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops HAProxy, the nodes and Redis, the processes it started.
func (t *Topology) Close() {
	if t.lb != nil && t.lb.Process != nil {
		_ = t.lb.Process.Kill()
		_ = t.lb.Wait()
	}
	for _, n := range t.Nodes {
		n.Kill()
	}
	if t.dns != nil {
		_ = t.dns.Close()
	}
	if t.redis != nil && t.redis.Process != nil {
		_ = t.redis.Process.Kill()
		_ = t.redis.Wait()
	}
}

// Start starts the node (again), appending to its log.
func (n *NodeProc) Start() error {
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	log.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	n.cmd, n.done, n.exit = cmd, make(chan struct{}), -1
	go func(done chan struct{}) {
		_ = cmd.Wait()
		if cmd.ProcessState != nil {
			n.exit = cmd.ProcessState.ExitCode()
		}
		close(done)
	}(n.done)
	return nil
}

// WaitReady waits until the node's /readyz (on its admin address)
// answers 200.
func (n *NodeProc) WaitReady(d time.Duration) error {
	cl := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		select {
		case <-n.done:
			return fmt.Errorf("%s exited before it was ready (see %s)", n.Name, n.logPath)
		default:
		}
		if resp, err := cl.Get("http://" + n.AdminAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (see %s)", n.Name, d, n.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to the node.
func (n *NodeProc) Signal(sig syscall.Signal) error { return n.cmd.Process.Signal(sig) }

// ErrStillRunning is Wait's error for a node that did not exit in time.
var ErrStillRunning = errors.New("still running")

// Wait waits up to d for the node to exit, and returns its exit code.
func (n *NodeProc) Wait(ctx context.Context, d time.Duration) (int, error) {
	select {
	case <-n.done:
		return n.exit, nil
	case <-time.After(d):
		return -1, ErrStillRunning
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Kill stops the node with SIGKILL, if it runs, and waits.
func (n *NodeProc) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}
