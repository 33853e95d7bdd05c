// Command cometbox-bench is cometbox's load tool: it holds N long-polls
// against a cometbox node (or Nchan, for comparison), publishes at a
// target rate or as fast as a bounded number of publisher connections
// allow, and reports delivered messages per second, publish-to-delivery
// latency, lost and duplicated messages, errors, and the servers' memory,
// CPU and Redis commands per delivered message.
//
//	cometbox-bench run -target cometbox -url http://127.0.0.1:8080 -subs 10000 \
//	    -pid node=1234 -pid redis=1200 -redis 127.0.0.1:6379 -json out.json
//	cometbox-bench compare -md table.md -svg latency.svg results/*.json
//	cometbox-bench roll -node-bin bin/cometbox -subs 2000 -rate 300 -rounds 2 -kills 1
//
// roll runs the docker-compose topology as processes (redis-server,
// nodes, HAProxy on deployments/haproxy/haproxy.cfg), restarts its nodes
// one at a time under load, and reports each restart's lost, duplicated
// and empty answers and latency (docs/guarantees.md, "Rolling restarts").
//
// It targets loopback addresses only, and every loop is bounded in count
// and time. See docs/performance.md for the method.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cometbox/cometbox/internal/bench"
)

const usage = `usage: cometbox-bench run [flags]       run one benchmark against running servers
       cometbox-bench compare [flags] FILE.json...   median table, ratios and chart from runs
       cometbox-bench roll [flags]      nodes behind HAProxy under load, restarted one at a time
Run "cometbox-bench run -h", "cometbox-bench compare -h" or "cometbox-bench roll -h" for flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:], os.Stdout, os.Stderr)
	case "compare":
		err = compareCmd(os.Args[2:], os.Stdout)
	case "roll":
		err = rollCmd(os.Args[2:], os.Stdout, os.Stderr)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "cometbox-bench:", err)
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// DefaultPhases is the suite of docs/performance.md: a rate sweep for
// the latency chart (2000/s is the latency target), then one message per
// request as fast as 16 and then 64 publisher connections go (the
// comparison takes each server's better one).
const DefaultPhases = "r1000=1000/1/6s,r2000=2000/1/10s,r4000=4000/1/6s,r6000=6000/1/6s,r8000=8000/1/6s,max1=max/1/15s/16,max1p64=max/1/15s/64"

type runFlags struct {
	target, urls, phases, label, commit, jsonOut, idPrefix, secret  string
	subs, sourceAddrs, publishers, procs, dialConc, workers, groups int
	pids, redis                                                     multiFlag
	drain, connectTimeout, maxRun, settle, heldWait                 time.Duration
	child, quiet, stream                                            bool
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.target, "target", "cometbox", "server protocol: cometbox or nchan")
	fs.StringVar(&f.urls, "url", "http://127.0.0.1:8080", "comma-separated base URLs of the servers (loopback only); subscribers and publishers are spread over them")
	fs.IntVar(&f.subs, "subs", 1000, "long-polls to hold, one client id and one TCP connection each")
	fs.BoolVar(&f.stream, "stream", false, "subscribers hold server-sent event streams instead of long-polls (cometbox: GET /stream, acknowledging through POST /ack once a second at most, on 16 connections of their own; Nchan: its EventSource subscriber at /ev)")
	fs.IntVar(&f.groups, "groups", 0, "group mode: the subscribers are members of this many groups (subscriber i of group i mod N), every publish sends one message to one group in turn and each member gets a copy; phase rates are group messages per second. cometbox: the members join by POST /groups/{group}/members; Nchan: each group is a channel its members subscribe to. 0: one message per client")
	fs.IntVar(&f.sourceAddrs, "source-addrs", 8, "spread subscriber connections over source addresses 127.0.0.1..127.0.0.K")
	fs.IntVar(&f.publishers, "publishers", 16, "publisher connections (in total, split over -procs)")
	fs.StringVar(&f.phases, "phases", DefaultPhases, "comma-separated phases NAME=RATE/BATCH/DURATION[/PUBLISHERS]; RATE is messages per second or max; PUBLISHERS overrides -publishers")
	fs.IntVar(&f.procs, "procs", 1, "generator processes; subscribers, publishers and rates are split over them (each process holds at most ~19,900 connections)")
	fs.Var(&f.pids, "pid", "server process to measure as NAME=PID, or NAME=PID+ to include its descendants (nginx workers); repeatable")
	fs.Var(&f.redis, "redis", "Redis host:port whose INFO commandstats to count per delivered message; repeatable")
	fs.StringVar(&f.secret, "secret", os.Getenv("COMETBOX_BENCH_SECRET"), "cometbox publish secret (default $COMETBOX_BENCH_SECRET)")
	fs.StringVar(&f.label, "label", "", "name of this run in reports (default: the target)")
	fs.StringVar(&f.commit, "commit", "", "commit measured, recorded in the result")
	fs.IntVar(&f.workers, "workers", 0, "nginx worker_processes, recorded in the result")
	fs.StringVar(&f.jsonOut, "json", "", "write the result as JSON to this file (- for stdout)")
	fs.StringVar(&f.idPrefix, "id-prefix", "", "client id prefix (default: random per run)")
	fs.IntVar(&f.dialConc, "dial-concurrency", 256, "connection attempts in flight")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "after each phase, most time to wait for acknowledged messages to arrive")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 2*time.Minute, "most time to connect every subscriber")
	fs.DurationVar(&f.heldWait, "held-wait", 30*time.Second, "most time to wait until the servers report every poll held")
	fs.DurationVar(&f.settle, "settle", 2*time.Second, "pause before reading the servers' memory with every poll held")
	fs.DurationVar(&f.maxRun, "max-run", 30*time.Minute, "hard bound on the whole run")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress line")
	fs.BoolVar(&f.child, "child", false, "internal: serve as a generator process driven over stdin/stdout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("run: unexpected arguments %q", fs.Args())
	}
	if f.label == "" {
		f.label = f.target
	}
	if f.idPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		f.idPrefix = "bench-" + hex.EncodeToString(b[:]) + "-"
	}
	if f.procs < 1 || f.procs > 16 {
		return nil, errors.New("run: -procs must be 1..16")
	}
	if f.groups > 0 && f.procs != 1 {
		return nil, errors.New("run: -groups needs -procs 1")
	}
	return f, nil
}

// ParsePhases parses NAME=RATE/BATCH/DURATION,...
func ParsePhases(s string) ([]bench.Phase, error) {
	var out []bench.Phase
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, spec, ok := strings.Cut(item, "=")
		parts := strings.Split(spec, "/")
		if !ok || name == "" || len(parts) < 3 || len(parts) > 4 {
			return nil, fmt.Errorf("phase %q: want NAME=RATE/BATCH/DURATION[/PUBLISHERS], e.g. r2000=2000/1/10s or max1=max/1/15s/64", item)
		}
		p := bench.Phase{Name: name}
		if parts[0] != "max" {
			r, err := strconv.ParseFloat(parts[0], 64)
			if err != nil || r <= 0 {
				return nil, fmt.Errorf("phase %q: rate %q: want a positive number or max", item, parts[0])
			}
			p.Rate = r
		}
		b, err := strconv.Atoi(parts[1])
		if err != nil || b < 1 {
			return nil, fmt.Errorf("phase %q: batch %q: want a positive integer", item, parts[1])
		}
		p.Batch = b
		if p.Duration, err = time.ParseDuration(parts[2]); err != nil || p.Duration <= 0 {
			return nil, fmt.Errorf("phase %q: duration %q", item, parts[2])
		}
		if len(parts) == 4 {
			if p.Publishers, err = strconv.Atoi(parts[3]); err != nil || p.Publishers < 1 {
				return nil, fmt.Errorf("phase %q: publishers %q: want a positive integer", item, parts[3])
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no phases")
	}
	return out, nil
}

func formatPhases(ps []bench.Phase) string {
	var parts []string
	for _, p := range ps {
		rate := "max"
		if p.Rate > 0 {
			rate = strconv.FormatFloat(p.Rate, 'f', -1, 64)
		}
		s := fmt.Sprintf("%s=%s/%d/%s", p.Name, rate, p.Batch, p.Duration)
		if p.Publishers > 0 {
			s += "/" + strconv.Itoa(p.Publishers)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func runCmd(args []string, stdout, stderr io.Writer) error {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	phases, err := ParsePhases(f.phases)
	if err != nil {
		return err
	}
	target, err := bench.NewTarget(f.target, f.secret)
	if err != nil {
		return err
	}
	if cb, ok := target.(*bench.Cometbox); ok {
		cb.Streams = f.stream
	}
	urls := strings.Split(f.urls, ",")
	limit, err := bench.RaiseNofile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	newRunner := func(subs, publishers int, prefix string, ph []bench.Phase) (*bench.Runner, error) {
		if need := uint64(subs + publishers + 64); need > limit {
			return nil, fmt.Errorf("%d subscribers and %d publishers need about %d open files; this process may have %d: use -procs",
				subs, publishers, need, limit)
		}
		return bench.NewRunner(bench.GenConfig{
			Target: target, URLs: urls, Subscribers: subs, SourceAddrs: f.sourceAddrs,
			IDPrefix: prefix, Publishers: publishers, DialConcurrency: f.dialConc,
			Phases: ph, Drain: f.drain, MaxRun: f.maxRun, Groups: f.groups, Stream: f.stream,
		})
	}

	if f.child {
		r, err := newRunner(f.subs, f.publishers, f.idPrefix, phases)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return bench.ServeChild(ctx, r, os.Stdin, stdout)
	}

	var gens []bench.Generator
	var children []*bench.Child
	defer func() {
		for _, c := range children {
			c.Kill()
		}
	}()
	if f.procs == 1 {
		r, err := newRunner(f.subs, f.publishers, f.idPrefix, phases)
		if err != nil {
			return err
		}
		gens = append(gens, bench.Local{R: r})
	} else {
		exe, err := bench.SelfExe()
		if err != nil {
			return err
		}
		// The secret reaches the children through the environment, not
		// their command lines.
		if err := os.Setenv("COMETBOX_BENCH_SECRET", f.secret); err != nil {
			return err
		}
		split := make([]bench.Phase, len(phases))
		for i, p := range phases {
			p.Rate /= float64(f.procs)
			if p.Publishers > 0 {
				p.Publishers = max(1, p.Publishers/f.procs)
			}
			split[i] = p
		}
		for g := range f.procs {
			subs := f.subs / f.procs
			if g < f.subs%f.procs {
				subs++
			}
			pubs := max(1, f.publishers/f.procs)
			cargs := []string{"run", "-child", "-target", f.target, "-url", f.urls, "-stream=" + strconv.FormatBool(f.stream),
				"-subs", strconv.Itoa(subs), "-source-addrs", strconv.Itoa(f.sourceAddrs),
				"-publishers", strconv.Itoa(pubs), "-phases", formatPhases(split),
				"-id-prefix", fmt.Sprintf("%sg%d-", f.idPrefix, g), "-dial-concurrency", strconv.Itoa(max(1, f.dialConc/f.procs)),
				"-drain", f.drain.String(), "-max-run", f.maxRun.String()}
			c, err := bench.StartChild(exe, cargs)
			if err != nil {
				return fmt.Errorf("start generator %d: %w", g, err)
			}
			children = append(children, c)
			gens = append(gens, c)
		}
	}

	var procs []bench.ProcGroup
	for _, p := range f.pids {
		g, err := bench.ParseProcGroup(p)
		if err != nil {
			return err
		}
		procs = append(procs, g)
	}
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	var progressW io.Writer = stderr
	if f.quiet {
		progressW = nil
	}
	res, err := bench.Run(bench.RunOptions{
		Label: f.label, Target: f.target, Commit: f.commit, URLs: urls, Phases: phases,
		Procs: procs, RedisAddrs: f.redis, Adapter: target,
		ConnectTimeout: f.connectTimeout, HeldWait: f.heldWait, Settle: f.settle,
		Progress: progressW, TTY: tty,
		Config: bench.ResultConfig{URLs: urls, Subscribers: f.subs, Generators: f.procs, Publishers: f.publishers,
			SourceAddrs: f.sourceAddrs, PayloadBytes: bench.PayloadSize, Workers: f.workers, Groups: f.groups, Stream: f.stream},
	}, gens)
	if err != nil {
		return err
	}
	bench.WriteTable(stdout, res)
	if f.jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if f.jsonOut == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(f.jsonOut, b, 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
