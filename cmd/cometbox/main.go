// Command cometbox runs a cometbox node: back ends POST messages for a
// client to /publish on any node, browsers long-poll /poll on any node,
// and the messages wait in Redis in between. Run `cometbox -h` for the
// settings; README.md explains the rest.
//
// This is the only file that knows every concrete type: it reads the
// configuration, connects Redis, wires queue, notify, poll and httpapi
// together, serves, and drains on SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cometbox/cometbox/pkg/config"
	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/notify"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
	"github.com/cometbox/cometbox/web"
)

// version is stamped at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// commit may be stamped with -ldflags "-X main.commit=REVISION" (make
// does); otherwise -version reads the revision go build recorded, if any.
var commit = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, stop, os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: ctx ends on SIGTERM/SIGINT, after which
// stopSignals restores the default handling, so a second signal kills.
func run(ctx context.Context, stopSignals func(), args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stdout, stderr)
	}
	cfg, warnings, err := config.Parse(args, getenv, environ, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cometbox: %v\n", err)
		return 2
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "cometbox %s%s\n", buildVersion(), buildCommit())
		return 0
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn(w)
	}
	if gogc := getenv("GOGC"); gogc == "" {
		debug.SetGCPercent(cfg.GCPercent)
	} else {
		log.Debug("GOGC is set; -gc-percent is not applied", "GOGC", gogc)
	}
	if err := serve(ctx, stopSignals, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		return 1
	}
	return 0
}

// serve runs the node until ctx ends, then drains.
func serve(ctx context.Context, stopSignals func(), cfg config.Config, log *slog.Logger) error {
	rdb, err := connectRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rdb.close()
	mode := rdb.mode

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	m.SetBuildInfo(buildVersion(), mode, cfg.NodeName)

	maxPolls := cfg.MaxPolls
	if maxPolls == 0 {
		maxPolls = defaultMaxPolls()
	}
	for name, v := range map[string]int{
		"polls_per_node": maxPolls, "polls_per_client": cfg.MaxPollsPerClient, "queue_cap": cfg.QueueCap,
		"batch_messages": cfg.MaxBatch, "body_bytes": int(cfg.MaxBody), "message_bytes": int(cfg.MaxMessage),
	} {
		m.SetLimit(name, float64(v))
	}

	q := queue.New(rdb.client, queue.Options{
		Prefix: cfg.KeyPrefix, Cap: cfg.QueueCap, TTL: cfg.QueueTTL, IdempotencyTTL: cfg.IdempotencyTTL,
		Durability: queue.Durability{AOF: cfg.DurableAOF, Replicas: cfg.DurableReplicas, Timeout: cfg.DurableTimeout},
		Sharded:    rdb.cluster != nil,
		Pipeline:   cfg.RedisPipeline,
		Primary:    rdb.primary,
	})
	if err := q.CheckDurability(ctx, func(ctx context.Context, section string) (string, error) {
		return rdb.client.Info(ctx, section).Result()
	}); err != nil {
		if errors.Is(err, queue.ErrDurabilityUnsupported) {
			return err
		}
		log.Warn("could not check Redis for the durability settings; publishes will fail if it lacks them", "err", err)
	}
	checkClock(ctx, log, time.Now, func(ctx context.Context) (time.Time, error) { return rdb.client.Time(ctx).Result() })
	nopts := notify.Options{
		ProbePrefix: cfg.KeyPrefix + "probe:", ProbeInterval: cfg.ProbeInterval, ProbeTimeout: cfg.ProbeTimeout,
	}
	if cc := rdb.cluster; cc != nil { // sharded pub/sub, a connection per master
		nopts.Cluster = notify.ClusterOf(cc)
	}
	n := notify.New(rdb.client, q.WakeChannel, log.With("component", "notify"), m, nopts)
	pres := newPresence(cfg, rdb, m, log)
	p := poll.New(q, n.Watch, m, poll.Options{
		Timeout: cfg.PollTimeout, Limit: cfg.BatchSize, DrainSpread: cfg.DrainSpread,
		MaxHeld: maxPolls, MaxPerClient: cfg.MaxPollsPerClient,
		Refresh:     cfg.QueueTTL / 8, // a quiet stream keeps its client's keys
		Presence:    pollPresence(pres),
		Disconnects: cutoff.IsDisconnect,
	})
	// Every request's context; cancelled when the shutdown grace period is
	// over.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	h := httpapi.New(q, p, httpapi.Config{
		PublishSecrets:    cfg.PublishSecrets,
		Tokens:            tokenVerifier(cfg),
		AdminSecrets:      cfg.AdminSecrets,
		Clients:           q,
		Groups:            q,
		Cutoff:            newCutoff(cfg, rdb, q),
		Presence:          apiPresence(pres),
		MaxBodyBytes:      int64(cfg.MaxBody),
		Limits:            message.Limits{MaxMessageBytes: int(cfg.MaxMessage), MaxMessages: cfg.MaxBatch},
		PollTimeout:       cfg.PollTimeout,
		Heartbeat:         cfg.StreamHeartbeat,
		CORSOrigins:       cfg.CORSOrigins,
		Assets:            web.Files,
		Demo:              cfg.Demo,
		Park:              cfg.ParkPolls,
		IdleTimeout:       cfg.IdleTimeout,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		BaseContext:       baseCtx,
		Ready: func(ctx context.Context) error {
			if err := rdb.client.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			return n.Ready()
		},
		Metrics:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		SeparateAdmin: cfg.AdminListen != "",
		Log:           log,
		M:             m,
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	admin, err := serveAdmin(cfg.AdminListen, h.Admin(), log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer admin.close()
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      15 * time.Second, // polls and streams extend their own deadline
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    16 << 10,
			BaseContext:       func(net.Listener) context.Context { return baseCtx },
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	// srv serves the listener; parked serves the connections that parked
	// polls hand back once answered (httpapi/park.go).
	srv, parked := newServer(), newServer()

	bg, cancelBg := context.WithCancel(context.Background())
	defer cancelBg()
	notifyDone := make(chan struct{})
	go func() { defer close(notifyDone); _ = n.Run(bg) }()
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		if pres != nil {
			_ = pres.Run(bg)
		}
	}()
	groupsDone := make(chan struct{})
	go func() { // group messages a dead node left half fanned out
		defer close(groupsDone)
		_ = q.RunGroups(bg)
	}()
	if f := rdb.follower; f != nil { // move with the primary as soon as any sentinel says
		f.moved = n.Reconnect
		f.ping = func(ctx context.Context) error { return rdb.client.Ping(ctx).Err() }
		go func() { _ = f.Run(bg) }()
	}
	go returnMemory(bg, log, time.Second, 32<<20)
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- parked.Serve(h.Returned()) }()
	stopDebug := serveDebug(cfg.DebugListen, log)
	defer stopDebug()

	log.Info("listening", "addr", ln.Addr().String(), "admin_addr", admin.addr, "version", buildVersion(),
		"redis", mode, "poll_timeout", cfg.PollTimeout, "max_polls", maxPolls, "demo", cfg.Demo)
	switch {
	case cfg.Demo && (len(cfg.PublishSecrets) > 0 || len(cfg.TokenSecrets) > 0):
		log.Info("demo page at /demo/: its publish and token routes need no secret, and serve only clients whose id starts with " + httpapi.DemoClientPrefix)
	case cfg.Demo:
		log.Info("demo page at /demo/ (its publish route needs no secret: turn it off with -demo=false on shared networks)")
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopSignals()

	// Drain (deployments/README.md, "The drain, everywhere"): leave the
	// balancers' rotation and serve as usual while they notice; then
	// answer held polls spread over -drain-spread while the listeners
	// close and in-flight requests finish; then exit.
	start := time.Now()
	log.Info("leaving the rotation", "held_polls", p.Held(), "drain_delay", cfg.DrainDelay)
	m.SetDraining()
	h.Leave()
	time.Sleep(cfg.DrainDelay)
	log.Info("draining", "held_polls", p.Held(), "drain_spread", cfg.DrainSpread)
	p.Drain()
	shutCtx, cancelShut := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelShut()
	var shut sync.WaitGroup
	for _, s := range []*http.Server{srv, parked} {
		shut.Go(func() {
			if err := s.Shutdown(shutCtx); err != nil {
				log.Warn("shutdown grace period over; cancelling what is left", "err", err)
				cancelBase()
				_ = s.Close()
			}
		})
	}
	shut.Wait()
	if err := p.Wait(shutCtx); err != nil { // parked polls are not the servers'
		log.Warn("shutdown grace period over with polls still held", "held", p.Held())
	}
	cancelBg()
	<-notifyDone
	<-presenceDone
	<-groupsDone
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// redisLogger sends go-redis's own messages (mostly dial failures, which
// cometbox logs where it handles them) to the debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}

// adminServer is the operator's listener (-admin-listen), when there is
// one; its zero value stands for none.
type adminServer struct {
	addr string // where it listens; "" when none
	srv  *http.Server
}

// serveAdmin serves the operator's routes on addr, when set. It keeps
// serving through the drain, so that /readyz says draining until the
// node exits.
func serveAdmin(addr string, h http.Handler, log *slog.Logger) (adminServer, error) {
	if addr == "" {
		return adminServer{}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return adminServer{}, fmt.Errorf("-admin-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "addr", addr, "err", err)
		}
	}()
	return adminServer{addr: ln.Addr().String(), srv: srv}, nil
}

func (a adminServer) close() {
	if a.srv != nil {
		_ = a.srv.Close()
	}
}

// serveDebug serves pprof on its own listener when addr is set.
func serveDebug(addr string, log *slog.Logger) (stop func()) {
	if addr == "" {
		return func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener", "addr", addr, "err", err)
		}
	}()
	log.Info("debug listener (pprof)", "addr", addr)
	return func() { _ = srv.Close() }
}

// tokenVerifier checks browser tokens under the configured secrets.
func tokenVerifier(cfg config.Config) token.Verifier {
	v := token.Verifier{Leeway: cfg.TokenLeeway, MaxTTL: cfg.TokenMaxTTL}
	for _, s := range cfg.TokenSecrets {
		v.Secrets = append(v.Secrets, []byte(s))
	}
	return v
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableDurations}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.NodeName)
}

// readableDurations writes durations as "25s", as the flags take them;
// the JSON handler would write nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// buildCommit is " (commit REVISION)": the stamped commit, or else the
// revision go build recorded from a Git checkout, with ", modified" when
// the tree had changes. Empty without either, as in a container build,
// which copies no .git.
func buildCommit() string {
	if commit != "" {
		return " (commit " + commit + ")"
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			modified = ", modified"
		}
	}
	if rev == "" {
		return ""
	}
	return " (commit " + rev + modified + ")"
}
