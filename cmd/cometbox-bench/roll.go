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
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/cometbox/cometbox/internal/bench"
)

// rollCmd runs the docker-compose topology as processes (redis-server,
// nodes, HAProxy on the project's haproxy.cfg) under load and restarts
// its nodes one at a time, reporting each restart's lost, duplicated and
// empty answers and latency (docs/guarantees.md, "Rolling restarts").
func rollCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		nodeBin     = fs.String("node-bin", "bin/cometbox", "cometbox binary to run as the nodes (make build)")
		haproxyCfg  = fs.String("haproxy-cfg", "deployments/haproxy/haproxy.cfg", "HAProxy configuration, given only addresses (and -check-*) through its environment")
		haproxyBin  = fs.String("haproxy", "haproxy", "haproxy program")
		redisBin    = fs.String("redis-server", "redis-server", "redis-server program, started on a free loopback port with an append-only file")
		redisURL    = fs.String("redis-url", "", "use this Redis instead of starting one")
		nodes       = fs.Int("nodes", 3, "nodes behind HAProxy (at most the config's LB_MAX_NODES)")
		subs        = fs.Int("subs", 2000, "long-polls through HAProxy, one client id each")
		idle        = fs.Int("idle", 0, "of -subs, how many get no message: their polls are held until they time out")
		rate        = fs.Float64("rate", 300, "messages a second, one per publish, through HAProxy")
		publishers  = fs.Int("publishers", 8, "publisher connections")
		sourceAddrs = fs.Int("source-addrs", 8, "spread subscriber connections over source addresses 127.0.0.1..127.0.0.K")
		rounds      = fs.Int("rounds", 2, "rounds of rolling restarts; each sends every node SIGTERM, waits for its exit and starts it again")
		kills       = fs.Int("kills", 1, "then kill this many nodes with SIGKILL, and start them again once HAProxy noticed")
		baseline    = fs.Duration("baseline", 20*time.Second, "load before the first restart")
		slot        = fs.Duration("slot", 20*time.Second, "time from one restart to the next: the window each is measured over")
		pollTimeout = fs.Duration("poll-timeout", 25*time.Second, "the nodes' -poll-timeout (docker-compose.yml's)")
		drainDelay  = fs.Duration("drain-delay", 5*time.Second, "the nodes' -drain-delay (docker-compose.yml's)")
		drainSpread = fs.Duration("drain-spread", 3*time.Second, "the nodes' -drain-spread (docker-compose.yml's)")
		shutdown    = fs.Duration("shutdown-timeout", 20*time.Second, "the nodes' -shutdown-timeout (docker-compose.yml's)")
		checkInter  = fs.String("check-inter", "", "HAProxy's LB_CHECK_INTER (default: the config's)")
		checkFall   = fs.String("check-fall", "", "HAProxy's LB_CHECK_FALL (default: the config's)")
		checkRise   = fs.String("check-rise", "", "HAProxy's LB_CHECK_RISE (default: the config's)")
		dir         = fs.String("dir", "", "directory for the processes' logs (default: a new one under $TMPDIR)")
		jsonOut     = fs.String("json", "", "write the result as JSON to this file (- for stdout)")
		quiet       = fs.Bool("quiet", false, "no line per event")
		nodeArgs    multiFlag
	)
	fs.Var(&nodeArgs, "node-arg", "one more flag for every node, e.g. -node-arg=-gc-percent=100; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("roll: unexpected arguments %q", fs.Args())
	}
	programs := []*string{haproxyBin}
	if *redisURL == "" {
		programs = append(programs, redisBin)
	}
	for _, p := range programs {
		path, err := exec.LookPath(*p)
		if err != nil {
			return fmt.Errorf("roll: %w", err)
		}
		*p = path
	}
	if _, err := os.Stat(*nodeBin); err != nil {
		return fmt.Errorf("roll: node binary: %w (make build, or -node-bin)", err)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "cometbox-roll-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if _, err := bench.RaiseNofile(); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	progress := stderr
	if *quiet {
		progress = nil
	}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	say("logs in %s", *dir)
	top, err := bench.StartTopology(bench.TopologyConfig{
		NodeBin: *nodeBin, HAProxyBin: *haproxyBin, RedisBin: *redisBin, HAProxyCfg: *haproxyCfg, RedisURL: *redisURL,
		Nodes: *nodes, Secret: secret, CheckInter: *checkInter, CheckFall: *checkFall, CheckRise: *checkRise, Dir: *dir,
		NodeArgs: append([]string{"-poll-timeout", pollTimeout.String(), "-drain-delay", drainDelay.String(),
			"-drain-spread", drainSpread.String(), "-shutdown-timeout", shutdown.String()}, nodeArgs...),
	})
	if err != nil {
		return err
	}
	defer top.Close()
	say("%d nodes UP behind HAProxy at %s (Redis %s)", len(top.Nodes), top.LB, top.Redis())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var b4 [4]byte
	_, _ = rand.Read(b4[:])
	res, err := bench.Roll(ctx, bench.RollOptions{
		Topology: top, Target: &bench.Cometbox{Secret: secret},
		Subscribers: *subs, Idle: *idle, SourceAddrs: *sourceAddrs, Publishers: *publishers, IDPrefix: "roll-" + hex.EncodeToString(b4[:]) + "-",
		Rate: *rate, Rounds: *rounds, Kills: *kills, Baseline: *baseline, Slot: *slot,
		PollTimeout: *pollTimeout, StopWait: *drainDelay + *shutdown + 10*time.Second, Progress: progress,
	})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("roll: interrupted")
	}
	bench.WriteRollTable(stdout, res)
	if *jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *jsonOut == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(*jsonOut, b, 0o644)
		}
		return err
	}
	return nil
}
