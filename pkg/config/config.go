// Package config turns command-line flags and COMETBOX_* environment
// variables into a validated Config.
//
// A flag beats its environment variable, which beats the default. Every
// flag's variable is COMETBOX_ followed by the flag's name in upper case
// with dashes as underscores: -poll-timeout is COMETBOX_POLL_TIMEOUT.
// Parse takes the environment as a function, so tests need not touch the
// process's own.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable the node reads.
const EnvPrefix = "COMETBOX_"

// Config is a node's whole configuration.
type Config struct {
	Listen      string
	AdminListen string
	DebugListen string
	NodeName    string

	RedisURL      string
	KeyPrefix     string
	RedisPipeline bool

	// PublishSecrets and TokenSecrets hold one secret each, or several
	// while one is rotated: any listed secret is accepted; the first
	// token secret signs the tokens the node mints (the demo's).
	PublishSecrets []string
	TokenSecrets   []string
	TokenLeeway    time.Duration
	TokenMaxTTL    time.Duration
	// AdminSecrets guard the server API (/api/); empty: the publish
	// secrets do.
	AdminSecrets []string

	Presence       bool
	PresenceLinger time.Duration
	WebhookURL     string
	WebhookSecrets []string
	WebhookMaxAge  time.Duration

	CORSOrigins     []string
	StreamHeartbeat time.Duration
	Demo            bool

	PollTimeout       time.Duration
	BatchSize         int
	MaxPolls          int
	MaxPollsPerClient int

	QueueCap       int
	QueueTTL       time.Duration
	IdempotencyTTL time.Duration

	DurableAOF      bool
	DurableReplicas int
	DurableTimeout  time.Duration

	ProbeInterval time.Duration
	ProbeTimeout  time.Duration

	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	ParkPolls         bool

	MaxBody    Size
	MaxMessage Size
	MaxBatch   int

	DrainDelay      time.Duration
	DrainSpread     time.Duration
	ShutdownTimeout time.Duration

	LogFormat string
	LogLevel  string

	GCPercent int

	Version bool
}

// ErrHelp is returned by Parse when -h or -help was given; the usage has
// been written.
var ErrHelp = flag.ErrHelp

// Parse reads args (without the program name) and the environment
// through getenv. environ lists the environment as "KEY=value" strings,
// only to warn about unknown COMETBOX_* variables; warnings are returned,
// not logged, because the logger is not configured yet. Usage and errors
// go to out.
func Parse(args []string, getenv func(string) string, environ []string, out io.Writer) (Config, []string, error) {
	var c Config
	fs := flag.NewFlagSet("cometbox", flag.ContinueOnError)
	fs.SetOutput(out)
	host, _ := os.Hostname()

	fs.StringVar(&c.Listen, "listen", ":8080", "address the HTTP API listens on")
	fs.StringVar(&c.AdminListen, "admin-listen", "", "address of the operator's listener: /healthz, /readyz and /metrics. When set, /readyz and /metrics leave -listen (which keeps /healthz for balancers that probe it); use a loopback or private address. Empty: all on -listen")
	fs.StringVar(&c.DebugListen, "debug-listen", "", "address for pprof (/debug/pprof/); empty: off. Never expose it publicly")
	fs.StringVar(&c.NodeName, "node-name", host, "this node's name in logs and metrics (default: the host name)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL, e.g. redis://:password@host:6379/0 or rediss://...; empty: an embedded in-process Redis (single node only)")
	fs.BoolVar(&c.RedisPipeline, "redis-pipeline", true, "let the Redis calls of concurrent requests share pipelines: fewer round trips, no pool pile-up in bursts")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "cb:", "prefix of every Redis key and channel, to share one Redis between deployments")
	fs.Func("publish-secret", "secret required as \"Authorization: Bearer\" on POST /publish; several, comma-separated, while one is rotated (any is accepted); empty: publishing is open (prefer the environment variable: flags show in ps)", func(v string) error {
		c.PublishSecrets = secretList(v)
		return nil
	})
	fs.Func("token-secret", "HMAC secret of browser tokens; when set, every poll needs a token. Several, comma-separated, while one is rotated: any verifies, the first signs (prefer the environment variable)", func(v string) error {
		c.TokenSecrets = secretList(v)
		return nil
	})
	fs.Func("admin-secret", "secret required as \"Authorization: Bearer\" on the server API (/api/: presence, inspect, delete, disconnect); several, comma-separated, while one is rotated; empty: the publish secret is required there (prefer the environment variable)", func(v string) error {
		c.AdminSecrets = secretList(v)
		return nil
	})
	fs.BoolVar(&c.Presence, "presence", true, "track which clients are online (a poll held or a stream open on any node, and the linger after), for GET /api/presence and the webhooks")
	fs.DurationVar(&c.PresenceLinger, "presence-linger", 5*time.Second, "how long a client stays online after its last poll or stream ended, so that the gap between polls never shows as offline")
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "URL the presence changes (client_online, client_offline) are POSTed to, signed with -webhook-secret; empty: no webhooks")
	fs.Func("webhook-secret", "HMAC secret that signs the webhooks (Cometbox-Signature); several, comma-separated, while one is rotated: each signs (prefer the environment variable)", func(v string) error {
		c.WebhookSecrets = secretList(v)
		return nil
	})
	fs.DurationVar(&c.WebhookMaxAge, "webhook-max-age", 10*time.Minute, "presence events not delivered this long after they happened are dropped (counted and logged), so a dead receiver queues nothing without bound")
	fs.DurationVar(&c.TokenLeeway, "token-leeway", 60*time.Second, "how long after its expiry a token is still accepted, for clock skew")
	fs.DurationVar(&c.TokenMaxTTL, "token-max-ttl", 24*time.Hour, "tokens that expire further ahead than this are refused, so that a leaked token cannot live forever; 0: no bound")
	fs.Func("cors-origins", "comma-separated origins (scheme://host[:port]) whose pages may poll and stream from another origin; * allows any", func(v string) error {
		origins, err := parseOrigins(v)
		c.CORSOrigins = origins
		return err
	})
	fs.DurationVar(&c.StreamHeartbeat, "stream-heartbeat", 15*time.Second, "how often an idle event stream (/stream) gets a ping event")
	var demo autoBool
	fs.Var(&demo, "demo", "serve the demo page at /demo/ with its own publish and token routes, which need no secret. auto: on with the embedded Redis and no secret set. With a secret set, the demo's routes serve only clients whose id starts with demo:")
	fs.DurationVar(&c.PollTimeout, "poll-timeout", 25*time.Second, "how long a poll is held before it is answered with []; keep it below your proxies' idle timeouts")
	fs.IntVar(&c.BatchSize, "batch-size", 100, "most messages in one poll answer; the rest come with the next poll")
	fs.IntVar(&c.MaxPolls, "max-polls", 0, "most polls this node holds at once, then 503 with Retry-After; 0: 90% of the open-file limit")
	fs.IntVar(&c.MaxPollsPerClient, "max-polls-per-client", 4, "most polls one client holds on this node at once, then 429; 0: no limit")
	fs.IntVar(&c.QueueCap, "queue-cap", 1000, "most messages queued for one client; the oldest are dropped beyond it (and reported as a gap)")
	fs.DurationVar(&c.QueueTTL, "queue-ttl", 24*time.Hour, "a client's queue is deleted after this long without a publish, poll or open stream (at most an eighth later)")
	fs.DurationVar(&c.IdempotencyTTL, "idempotency-ttl", 10*time.Minute, "how long an idempotency key is remembered")
	fs.BoolVar(&c.DurableAOF, "durable-aof", false, "answer a publish only once Redis has fsynced it to its append-only file (WAITAOF; Redis 7.2+, appendonly yes)")
	fs.IntVar(&c.DurableReplicas, "durable-replicas", 0, "answer a publish only once this many replicas have it (WAIT), or have fsynced it with -durable-aof")
	fs.DurationVar(&c.DurableTimeout, "durable-timeout", time.Second, "how long a publish waits for -durable-aof/-durable-replicas before it fails with 503 not_durable")
	fs.DurationVar(&c.ProbeInterval, "pubsub-probe-interval", 5*time.Second, "how often the node proves its pub/sub connection alive by publishing to itself")
	fs.DurationVar(&c.ProbeTimeout, "pubsub-probe-timeout", 3*time.Second, "how long a self-probe may take before the pub/sub connection is replaced and held polls re-read")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "how long a client may take to send its request headers (slow clients are cut)")
	fs.BoolVar(&c.ParkPolls, "park-polls", true, "hold waiting long-polls on parked connections (a few kB each) rather than in HTTP handlers (about 30 kB each)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open; keep it above your load balancer's")
	c.MaxBody = 1 << 20
	fs.Var(&c.MaxBody, "max-body", "largest publish body, e.g. 1MiB, 512KiB or bytes")
	c.MaxMessage = 64 << 10
	fs.Var(&c.MaxMessage, "max-message", "largest single message payload, e.g. 64KiB")
	fs.IntVar(&c.MaxBatch, "max-batch", 1000, "most messages in one publish request")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving as usual with /readyz at 503, for load balancers to take the node out of rotation, before polls are answered and the listener closes")
	fs.DurationVar(&c.DrainSpread, "drain-spread", 3*time.Second, "after the drain delay, held polls are answered with [] spread over this window")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, the most time allowed for in-flight requests after the drain delay")
	fs.IntVar(&c.GCPercent, "gc-percent", 400, "the Go garbage collector's GOGC: how much the heap grows, in %, before the next collection. A node's live heap is small and each collection scans every held poll, so collecting less often saves CPU under load, for a heap up to (1 + N/100) times the live one; a node that turns quiet collects and returns memory at once. Set GOMEMLIMIT to cap the heap. The GOGC environment variable, when set, wins")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")

	fs.Usage = func() { usage(fs, out) }
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	if fs.NArg() > 0 {
		return Config{}, nil, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	known := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		known[name] = true
		v := getenv(name)
		if set[f.Name] || v == "" || noEnv[f.Name] {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			if _, auto := f.Value.(*autoBool); isBool(f) && !auto {
				err = errors.New("want true or false") // flag's own says "parse error"
			}
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Config{}, nil, err
	}
	// A single-node try-out shows the demo; a node with a secret does
	// only when asked to.
	c.Demo = demo.resolve(c.RedisURL == "" && len(c.PublishSecrets) == 0 && len(c.TokenSecrets) == 0)
	if err := c.validate(); err != nil {
		return Config{}, nil, err
	}
	return c, unknownEnv(environ, known), nil
}

// noEnv are the flags no environment variable sets, and whose variable
// is ignored without a warning: -version is a command, not a setting,
// and COMETBOX_VERSION is a name deploy tools set for their own use.
var noEnv = map[string]bool{"version": true}

// EnvName returns the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.PollTimeout >= time.Second && c.PollTimeout <= 10*time.Minute, "-poll-timeout %v: want 1s to 10m", c.PollTimeout)
	check(c.BatchSize >= 1 && c.BatchSize <= 10000, "-batch-size %d: want 1 to 10000", c.BatchSize)
	check(c.MaxPolls >= 0, "-max-polls %d: want 0 or more", c.MaxPolls)
	check(c.MaxPollsPerClient >= 0, "-max-polls-per-client %d: want 0 or more", c.MaxPollsPerClient)
	check(c.QueueCap >= 1 && c.QueueCap <= 1_000_000, "-queue-cap %d: want 1 to 1000000", c.QueueCap)
	check(c.QueueTTL >= time.Second, "-queue-ttl %v: want at least 1s", c.QueueTTL)
	check(c.IdempotencyTTL >= time.Second, "-idempotency-ttl %v: want at least 1s", c.IdempotencyTTL)
	check(c.TokenLeeway >= 0 && c.TokenLeeway <= time.Hour, "-token-leeway %v: want 0 to 1h", c.TokenLeeway)
	check(c.TokenMaxTTL == 0 || c.TokenMaxTTL >= time.Minute, "-token-max-ttl %v: want 0 (no bound) or at least 1m", c.TokenMaxTTL)
	check(c.MaxBody >= 1024, "-max-body %v: want at least 1KiB", c.MaxBody)
	check(c.MaxMessage >= 16 && c.MaxMessage <= c.MaxBody, "-max-message %v: want 16 bytes up to -max-body (%v)", c.MaxMessage, c.MaxBody)
	check(c.MaxBatch >= 1 && c.MaxBatch <= 100000, "-max-batch %d: want 1 to 100000", c.MaxBatch)
	check(c.DrainDelay >= 0 && c.DrainSpread > 0 && c.ShutdownTimeout > 0, "-drain-delay, -drain-spread and -shutdown-timeout: want positive durations")
	check(c.LogFormat == "text" || c.LogFormat == "json", "-log-format %q: want text or json", c.LogFormat)
	check(map[string]bool{"debug": true, "info": true, "warn": true, "error": true}[c.LogLevel], "-log-level %q: want debug, info, warn or error", c.LogLevel)
	check(c.KeyPrefix != "" && !strings.ContainsAny(c.KeyPrefix, "{} "), "-key-prefix %q: want a non-empty prefix without braces or spaces", c.KeyPrefix)
	check(c.Listen != "", "-listen: want an address such as :8080")
	check(c.AdminListen == "" || c.AdminListen != c.Listen || strings.HasSuffix(c.Listen, ":0"), "-admin-listen %q: want an address other than -listen's", c.AdminListen)
	check(c.DurableReplicas >= 0 && c.DurableTimeout > 0, "-durable-replicas %d, -durable-timeout %v: want 0 or more, and a positive timeout", c.DurableReplicas, c.DurableTimeout)
	check(c.ProbeInterval >= 100*time.Millisecond && c.ProbeTimeout >= 100*time.Millisecond, "-pubsub-probe-interval and -pubsub-probe-timeout: want at least 100ms")
	check(c.ReadHeaderTimeout > 0 && c.IdleTimeout > 0, "-read-header-timeout and -idle-timeout: want positive durations")
	check(c.GCPercent >= 10 && c.GCPercent <= 10000, "-gc-percent %d: want 10 to 10000", c.GCPercent)
	check(c.StreamHeartbeat >= time.Second && c.StreamHeartbeat <= 5*time.Minute, "-stream-heartbeat %v: want 1s to 5m", c.StreamHeartbeat)
	check(c.PresenceLinger >= 100*time.Millisecond && c.PresenceLinger <= 10*time.Minute, "-presence-linger %v: want 100ms to 10m", c.PresenceLinger)
	check(c.WebhookMaxAge >= time.Second, "-webhook-max-age %v: want at least 1s", c.WebhookMaxAge)
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "-webhook-url %q: want an http(s) URL", c.WebhookURL)
		check(len(c.WebhookSecrets) > 0, "-webhook-url needs -webhook-secret (COMETBOX_WEBHOOK_SECRET), which signs every webhook")
		check(c.Presence, "-webhook-url needs -presence: the webhooks are its changes")
	}
	return errors.Join(errs...)
}

// unknownEnv lists COMETBOX_* variables that no flag reads: usually a
// typo. Variables Kubernetes injects for a Service named cometbox
// (COMETBOX_PORT, COMETBOX_SERVICE_HOST, ...) and the test suite's
// COMETBOX_TEST_* are not ours and not reported.
func unknownEnv(environ []string, known map[string]bool) []string {
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || isForeign(name) {
			continue
		}
		warnings = append(warnings, fmt.Sprintf("unknown environment variable %s (no flag reads it; see cometbox -h)", name))
	}
	sort.Strings(warnings)
	return warnings
}

// parseOrigins reads a comma-separated list of exact origins.
func parseOrigins(v string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return nil, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://app.example.com", o)
			}
			o = u.Scheme + "://" + u.Host
		}
		out = append(out, o)
	}
	return out, nil
}

func isForeign(name string) bool {
	// COMETBOX_NODE is what the PHP example reads for the node's URL; a
	// walkthrough exports it in the same shell as the node's variables.
	if name == "COMETBOX_NODE" {
		return true
	}
	for _, p := range []string{"COMETBOX_PORT", "COMETBOX_SERVICE_", "COMETBOX_TEST_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func usage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, `cometbox: a comet (server push) node. Back ends POST messages to /publish,
browsers long-poll /poll; messages wait in Redis. See README.md.

Usage: cometbox [flags]

Every flag can also be set by its environment variable; a flag beats the
variable, which beats the default.

`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		fmt.Fprintf(out, "  -%s %s\n", f.Name, typ)
		fmt.Fprintf(out, "    \t%s\n", help)
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		if noEnv[f.Name] {
			fmt.Fprintf(out, "    \tno environment variable, default %s\n", def)
			return
		}
		fmt.Fprintf(out, "    \tenv %s, default %s\n", EnvName(f.Name), def)
	})
}

// secretList reads a comma-separated list of secrets, dropping blanks.
func secretList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// autoBool is a boolean flag that may be left to a default decided after
// parsing: "auto" until set.
type autoBool struct{ value, set bool }

func (b *autoBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.value)
}

func (b *autoBool) Set(v string) error {
	if v == "auto" {
		b.set = false
		return nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true, false or auto")
	}
	b.value, b.set = on, true
	return nil
}

func (b *autoBool) IsBoolFlag() bool { return true }

// resolve is the flag's value, or auto when it was left to the default.
func (b *autoBool) resolve(auto bool) bool {
	if !b.set {
		return auto
	}
	return b.value
}

// isBool reports whether f takes no value on the command line.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
