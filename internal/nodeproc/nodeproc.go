// Package nodeproc runs real cometbox node processes for tests: it builds
// cmd/cometbox once per test binary, starts nodes on free loopback ports,
// learns each node's address from its "listening" log line, and stops
// them when the test ends.
package nodeproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Binary returns the path of a cometbox binary: $COMETBOX_BIN if set, else
// one built from this module once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("COMETBOX_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if buildDir, buildErr = os.MkdirTemp("", "cometbox-test-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "cometbox")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/cometbox")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cometbox: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// Cleanup removes the binary Binary built; call it from TestMain.
func Cleanup() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Node is a running cometbox process.
type Node struct {
	// URL is the node's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// AdminURL is the base URL of the node's -admin-listen listener, when
	// it has one; empty otherwise.
	AdminURL string
	// Name is the node's -node-name.
	Name string

	t    testing.TB
	cmd  *exec.Cmd
	logs *testenv.Buffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// Start starts a node with args. Unless args say otherwise it listens on a
// free loopback port and logs JSON at debug level. It returns once the
// node listens; use WaitReady for readiness.
func Start(t testing.TB, name string, args ...string) *Node {
	t.Helper()
	all := []string{"-listen", "127.0.0.1:0", "-log-format", "json", "-node-name", name}
	all = append(all, args...)
	n := &Node{Name: name, t: t, logs: &testenv.Buffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(Binary(t), all...)
	n.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout = n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	type listening struct{ addr, admin string }
	addr := make(chan listening, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			n.logs.WriteString(line + "\n")
			var rec struct {
				Msg, Addr string
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				select {
				case addr <- listening{rec.Addr, rec.AdminAddr}:
				default:
				}
			}
		}
	}()
	go func() {
		n.err = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, n.Logs())
		}
	})
	select {
	case a := <-addr:
		n.URL = "http://" + a.addr
		if a.admin != "" {
			n.AdminURL = "http://" + a.admin
		}
	case <-n.done:
		t.Fatalf("node %s exited before listening: %v\n%s", name, n.err, n.Logs())
	case <-time.After(15 * time.Second):
		t.Fatalf("node %s not listening after 15s:\n%s", name, n.Logs())
	}
	return n
}

// OpsURL is the base URL of the node's /readyz and /metrics: its admin
// listener when it has one, else its public one.
func (n *Node) OpsURL() string {
	if n.AdminURL != "" {
		return n.AdminURL
	}
	return n.URL
}

// WaitReady waits until GET /readyz answers 200.
func (n *Node) WaitReady() {
	n.t.Helper()
	base := n.OpsURL()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("node %s not ready after 15s: %d %s", n.Name, resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			n.t.Fatalf("node %s not ready after 15s: %v", n.Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Metric reads one unlabelled sample from the node's /metrics.
func (n *Node) Metric(name string) float64 {
	n.t.Helper()
	resp, err := http.Get(n.OpsURL() + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				n.t.Fatal(err)
			}
			return f
		}
	}
	n.t.Fatalf("metric %s not found on %s", name, n.Name)
	return 0
}

// Signal sends sig to the process.
func (n *Node) Signal(sig syscall.Signal) { _ = n.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit code (-1 when
// it did not exit within d).
func (n *Node) Wait(d time.Duration) int {
	select {
	case <-n.done:
		if n.cmd.ProcessState == nil {
			return -1
		}
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// Kill stops the process with SIGKILL, as a crash would, and waits.
func (n *Node) Kill() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

// Pid is the process id, for memory and CPU readings.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Logs returns everything the node logged so far.
func (n *Node) Logs() string { return n.logs.String() }
