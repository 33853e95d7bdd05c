package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// RollOptions drive a rolling-restart run: subscribers long-poll through
// the Topology's balancer while a back end publishes through it at a
// steady rate; after a baseline, the nodes are restarted one at a time
// (SIGTERM, wait for the exit, start again, wait until the balancer has
// the node UP), Rounds times over, then Kills nodes are killed with
// SIGKILL and started again. Restart k is sent at Baseline + k x Slot
// into the run (later if the one before is not done), so each restart's
// window is one Slot long.
type RollOptions struct {
	Topology *Topology
	// Target speaks to the nodes (its secret is the topology's).
	Target      Target
	Subscribers int
	// Idle subscribers (of Subscribers) get no message: their polls are
	// held until they time out, as most browsers' are most of the time.
	Idle        int
	SourceAddrs int
	Publishers  int
	IDPrefix    string
	// Rate is messages a second, one per publish request.
	Rate float64
	// Rounds of rolling restarts: each restarts every node once.
	Rounds int
	// Kills is how many nodes are then killed -9 and started again.
	Kills int
	// Baseline is the time before the first restart. Default 20s.
	Baseline time.Duration
	// Slot is the time from one restart to the next. Default 20s.
	Slot time.Duration
	// PollTimeout is the nodes' -poll-timeout: an empty answer held at
	// least its 80 % (its jitter) less a second is counted a timeout.
	PollTimeout time.Duration
	// StopWait bounds the wait for a node's exit after SIGTERM, after
	// which it is killed. Default 60s.
	StopWait time.Duration
	// Progress, when set, receives a line per event.
	Progress io.Writer
}

// RollResult is what a rolling-restart run measured.
type RollResult struct {
	Tool     string      `json:"tool"`
	Date     string      `json:"date"`
	Machine  MachineInfo `json:"machine"`
	Nodes    int         `json:"nodes"`
	Subs     int         `json:"subscribers"`
	Idle     int         `json:"idle_subscribers"`
	Rate     float64     `json:"rate"`
	Baseline Window      `json:"baseline"`
	Restarts []Restart   `json:"restarts"`
	Final    FinalStats  `json:"final"`
	Notes    []string    `json:"notes,omitempty"`
}

// Restart is one node's stop and start, and the window that follows it.
type Restart struct {
	Node   string `json:"node"`
	Signal string `json:"signal"`
	// DownAfter, ExitAfter and UpAfter are seconds from the signal until
	// HAProxy took the node out of its rotation, the process exited, and
	// HAProxy had it UP again (-1: not seen).
	DownAfter float64 `json:"down_after_s"`
	ExitAfter float64 `json:"exit_after_s"`
	UpAfter   float64 `json:"up_after_s"`
	ExitCode  int     `json:"exit_code"`
	Window    Window  `json:"window"`
}

// Roll runs the rolling restarts of opts.
func Roll(ctx context.Context, opts RollOptions) (*RollResult, error) {
	if opts.Baseline <= 0 {
		opts.Baseline = 20 * time.Second
	}
	if opts.Slot <= 0 {
		opts.Slot = 20 * time.Second
	}
	if opts.StopWait <= 0 {
		opts.StopWait = time.Minute
	}
	top := opts.Topology
	var plan []*NodeProc
	var signals []syscall.Signal
	for range opts.Rounds {
		for _, n := range top.Nodes {
			plan, signals = append(plan, n), append(signals, syscall.SIGTERM)
		}
	}
	for k := range opts.Kills {
		plan, signals = append(plan, top.Nodes[k%len(top.Nodes)]), append(signals, syscall.SIGKILL)
	}
	total := opts.Baseline + time.Duration(len(plan))*opts.Slot
	tl := &Timeline{}
	r, err := NewRunner(GenConfig{
		Target: opts.Target, URLs: []string{top.LB}, Subscribers: opts.Subscribers, SourceAddrs: opts.SourceAddrs,
		IDPrefix: opts.IDPrefix, Publishers: opts.Publishers, Idle: opts.Idle,
		Phases: []Phase{{Name: "roll", Rate: opts.Rate, Batch: 1, Duration: total}},
		Drain:  30 * time.Second, MaxRun: total + 10*time.Minute, Timeline: tl,
	})
	if err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		}
	}
	res := &RollResult{Tool: "cometbox-bench roll", Date: time.Now().UTC().Format(time.RFC3339), Machine: Machine(),
		Nodes: len(top.Nodes), Subs: opts.Subscribers, Idle: opts.Idle, Rate: opts.Rate}

	cs := r.Connect(2 * time.Minute)
	say("%d of %d subscribers connected in %.1fs", cs.Connected, cs.Subscribers, cs.Seconds)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		held := 0
		for _, n := range top.Nodes {
			h, _ := opts.Target.Held("http://" + n.AdminAddr)
			held += h
		}
		if int64(held) >= cs.Connected {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	start := time.Now()
	phaseDone := make(chan error, 1)
	go func() {
		_, err := r.RunPhase(0, nil)
		phaseDone <- err
	}()
	sleepUntil := func(at time.Time) bool {
		select {
		case <-time.After(time.Until(at)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	var signalled []time.Time
	for k, n := range plan {
		if !sleepUntil(start.Add(opts.Baseline + time.Duration(k)*opts.Slot)) {
			break
		}
		rs := Restart{Node: n.Name, Signal: signalName(signals[k]), DownAfter: -1, ExitAfter: -1, UpAfter: -1, ExitCode: -1}
		at := time.Now()
		signalled = append(signalled, at)
		down := make(chan float64, 1)
		go func() {
			if top.WaitStatus(n.Name, "DOWN", opts.StopWait) == nil {
				down <- time.Since(at).Seconds()
			}
			close(down)
		}()
		say("%s %s", rs.Signal, n.Name)
		if err := n.Signal(signals[k]); err != nil {
			return nil, fmt.Errorf("signal %s: %w", n.Name, err)
		}
		code, err := n.Wait(ctx, opts.StopWait)
		if err == ErrStillRunning {
			res.Notes = append(res.Notes, fmt.Sprintf("%s still running %v after %s: killed", n.Name, opts.StopWait, rs.Signal))
			n.Kill()
			code, err = n.Wait(ctx, time.Second)
		}
		if err != nil {
			return nil, err
		}
		rs.ExitCode, rs.ExitAfter = code, time.Since(at).Seconds()
		say("%s exited %d after %.2fs", n.Name, code, rs.ExitAfter)
		if signals[k] == syscall.SIGKILL {
			// A crashed node comes back once its supervisor notices; by
			// then the balancer has noticed too.
			select {
			case d, ok := <-down:
				if ok {
					rs.DownAfter = d
				}
			case <-time.After(15 * time.Second):
			}
		}
		if err := n.Start(); err != nil {
			return nil, err
		}
		if err := n.WaitReady(30 * time.Second); err != nil {
			return nil, err
		}
		if err := top.WaitStatus(n.Name, "UP", 30*time.Second); err != nil {
			res.Notes = append(res.Notes, err.Error())
		} else {
			rs.UpAfter = time.Since(at).Seconds()
		}
		select {
		case d, ok := <-down:
			if ok {
				rs.DownAfter = d
			}
		default: // never seen out of the rotation
		}
		say("%s out of rotation after %.2fs, UP again after %.2fs", n.Name, rs.DownAfter, rs.UpAfter)
		if time.Since(at) > opts.Slot {
			res.Notes = append(res.Notes, fmt.Sprintf("restart %d of %s took %.1fs, more than the %v slot", k+1, n.Name, time.Since(at).Seconds(), opts.Slot))
		}
		res.Restarts = append(res.Restarts, rs)
	}
	if ctx.Err() != nil {
		r.Close() // ends the phase at once
		<-phaseDone
		return nil, ctx.Err()
	}
	if err := <-phaseDone; err != nil {
		return nil, err
	}
	res.Final = r.Close()
	end := start.Add(total)
	spans := [][2]time.Time{{start.Add(min(5*time.Second, opts.Baseline/4)), start.Add(opts.Baseline)}}
	for k, at := range signalled {
		to := end
		if k+1 < len(signalled) {
			to = signalled[k+1]
		}
		spans = append(spans, [2]time.Time{at, to})
	}
	ws := r.Windows(spans, WindowOptions{TimeoutAfter: opts.PollTimeout*8/10 - time.Second})
	res.Baseline = ws[0]
	for k := range res.Restarts {
		res.Restarts[k].Window = ws[k+1]
	}
	return res, nil
}

func signalName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "KILL"
	}
	return "TERM"
}

// WriteRollTable prints res: one line for the baseline and one per
// restart, each over its window.
func WriteRollTable(w io.Writer, res *RollResult) {
	fmt.Fprintf(w, "%s, %s, %d CPUs; %d nodes, %d subscribers (%d idle), %.0f msg/s\n",
		res.Tool, res.Date, res.Machine.CPUs, res.Nodes, res.Subs, res.Idle, res.Rate)
	fmt.Fprintf(w, "\n%-10s %-11s %4s %6s %6s %6s %6s %9s %5s %4s %6s %8s %7s %7s %7s %7s\n",
		"window", "node", "sig", "secs", "down", "exit", "up", "published", "lost", "dup", "empty", "timeouts", "instant", "p50 ms", "p99 ms", "max ms")
	line := func(name, node, sig string, down, exit, up float64, win Window) {
		f := func(v float64) string {
			if v < 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", v)
		}
		fmt.Fprintf(w, "%-10s %-11s %4s %6.1f %6s %6s %6s %9d %5d %4d %6d %8d %7d %7.2f %7.2f %7.1f\n",
			name, node, sig, win.To.Sub(win.From).Seconds(), f(down), f(exit), f(up), win.Published, win.Lost, win.Duplicated,
			win.Empty, win.Timeouts, win.Instant, win.Latency.P50, win.Latency.P99, win.Latency.Max)
	}
	line("baseline", "-", "-", -1, -1, -1, res.Baseline)
	for k, rs := range res.Restarts {
		line(fmt.Sprint(k+1), rs.Node, rs.Signal, rs.DownAfter, rs.ExitAfter, rs.UpAfter, rs.Window)
	}
	f := res.Final
	fmt.Fprintf(w, "\npublished %d, delivered %d, lost %d, duplicated %d; poll answers %d, empty %d; errors %d (poll %d, dial %d, publish %d)\n",
		f.Published, f.Delivered, f.Lost, f.Dups, f.Answers, f.Empty, f.Errors(), f.PollErrors, f.DialErrors, f.PubErrors)
	fmt.Fprintln(w, "down, exit, up: seconds from the signal until HAProxy took the node out, it exited, HAProxy had it UP again;")
	fmt.Fprintln(w, "published, lost, dup and latency: messages sent in the window; empty: answers in the window without a message,")
	fmt.Fprintln(w, "of which timeouts (held about the poll timeout) and instant (held under 500ms)")
	var codes []string
	for _, rs := range res.Restarts {
		if rs.Signal == "TERM" && rs.ExitCode != 0 {
			codes = append(codes, fmt.Sprintf("%s exited %d", rs.Node, rs.ExitCode))
		}
	}
	if len(codes) > 0 {
		fmt.Fprintf(w, "after SIGTERM: %s\n", strings.Join(codes, ", "))
	}
	writeErrorSamples(w, f.ErrorSample)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
