package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Generator is one load-generator process, local or a child process, as
// the orchestrator drives it step by step.
type Generator interface {
	Connect(timeout time.Duration) (ConnectStats, error)
	Phase(i int) (PhaseStats, error)
	Live() Live
	Finish() (FinalStats, error)
}

// Local runs a Runner in this process.
type Local struct{ R *Runner }

func (l Local) Connect(timeout time.Duration) (ConnectStats, error) {
	if err := l.R.JoinGroups(); err != nil {
		return ConnectStats{}, err
	}
	return l.R.Connect(timeout), nil
}
func (l Local) Phase(i int) (PhaseStats, error) { return l.R.RunPhase(i, nil) }
func (l Local) Live() Live                      { return l.R.Live() }
func (l Local) Finish() (FinalStats, error)     { return l.R.Close(), nil }

// Child is a generator in a child process (this same binary started with
// ServeChild's flag), driven over its stdin and stdout with one JSON line
// per step, so that more subscribers can be held than one process's
// open-file limit allows.
type Child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	mu   sync.Mutex // one step at a time
	live struct {
		sync.Mutex
		v Live
	}
	replies chan string
	done    chan struct{}
	stderr  *strings.Builder
}

// StartChild starts path with args; the child must run ServeChild.
func StartChild(path string, args []string) (*Child, error) {
	c := &Child{replies: make(chan string, 1), done: make(chan struct{}), stderr: &strings.Builder{}}
	c.cmd = exec.Command(path, args...)
	c.cmd.Stderr = &limitedWriter{w: c.stderr, n: 64 << 10}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	c.out = bufio.NewScanner(stdout)
	c.out.Buffer(make([]byte, 64<<10), 64<<20)
	go c.read()
	return c, nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p[:min(len(p), l.n)]
		l.n -= len(q)
		_, _ = l.w.Write(q)
	}
	return len(p), nil
}

func (c *Child) read() {
	defer close(c.done)
	for c.out.Scan() {
		line := c.out.Text()
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "live":
			var v Live
			if json.Unmarshal([]byte(rest), &v) == nil {
				c.live.Lock()
				c.live.v = v
				c.live.Unlock()
			}
		case "ok", "err":
			c.replies <- line
		}
	}
}

func (c *Child) step(cmd string, timeout time.Duration, v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return fmt.Errorf("child %s: %w; stderr: %s", cmd, err, c.stderr)
	}
	select {
	case line := <-c.replies:
		kind, rest, _ := strings.Cut(line, " ")
		if kind == "err" {
			return fmt.Errorf("child %s: %s", cmd, rest)
		}
		return json.Unmarshal([]byte(rest), v)
	case <-c.done:
		return fmt.Errorf("child %s: exited; stderr: %s", cmd, c.stderr)
	case <-time.After(timeout):
		return fmt.Errorf("child %s: no answer after %s", cmd, timeout)
	}
}

func (c *Child) Connect(timeout time.Duration) (ConnectStats, error) {
	var s ConnectStats
	err := c.step(fmt.Sprintf("connect %s", timeout), timeout+30*time.Second, &s)
	return s, err
}

func (c *Child) Phase(i int) (PhaseStats, error) {
	var s PhaseStats
	err := c.step(fmt.Sprintf("phase %d", i), time.Hour, &s)
	return s, err
}

func (c *Child) Live() Live {
	c.live.Lock()
	defer c.live.Unlock()
	return c.live.v
}

func (c *Child) Finish() (FinalStats, error) {
	var s FinalStats
	err := c.step("finish", 60*time.Second, &s)
	_ = c.in.Close()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	_ = c.cmd.Wait()
	return s, err
}

// Kill stops the child at once.
func (c *Child) Kill() {
	_ = c.cmd.Process.Kill()
}

// ServeChild runs a Runner driven by commands on in ("connect NS",
// "phase I", "finish"), answering "ok JSON" or "err TEXT" on out and
// writing "live JSON" lines every second. It returns after "finish", when
// in closes, or when ctx ends.
func ServeChild(ctx context.Context, r *Runner, in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	write := func(kind string, v any) {
		b, _ := json.Marshal(v)
		mu.Lock()
		fmt.Fprintf(out, "%s %s\n", kind, b)
		mu.Unlock()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				write("live", r.Live())
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if ctx.Err() != nil {
			break
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "connect":
			d := time.Minute
			if len(f) > 1 {
				if n, err := time.ParseDuration(f[1]); err == nil {
					d = n
				}
			}
			write("ok", r.Connect(d))
		case "phase":
			var i int
			if len(f) < 2 {
				write("err", "phase needs a number")
				continue
			}
			fmt.Sscan(f[1], &i)
			s, err := r.RunPhase(i, nil)
			if err != nil {
				mu.Lock()
				fmt.Fprintf(out, "err %s\n", err)
				mu.Unlock()
				continue
			}
			write("ok", s)
		case "finish":
			write("ok", r.Close())
			return nil
		default:
			mu.Lock()
			fmt.Fprintf(out, "err unknown command %q\n", f[0])
			mu.Unlock()
		}
	}
	r.Close()
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("bench: child input closed before finish")
}

// SelfExe is the path of the running binary, to start children.
func SelfExe() (string, error) { return os.Executable() }
