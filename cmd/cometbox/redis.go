package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/config"
	"github.com/cometbox/cometbox/pkg/embedredis"
	"github.com/cometbox/cometbox/pkg/queue"
)

// redisConn is the node's connection to Redis in one of its modes.
type redisConn struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set in cluster mode
	mode    string               // embedded, standalone, sentinel or cluster
	close   func()
	// primary tracks the term of the primary publishes write to (see
	// queue.Primary); nil (no terms) on the embedded Redis and a Cluster.
	primary *queue.Primary
	// follower follows the sentinels (sentinel mode only).
	follower *sentinelFollower
}

// connectRedis connects to cfg.RedisURL, or to an embedded Redis when it
// is empty. The URL's scheme picks the mode:
//
//	redis://[:password@]host:port[/db]            one server (rediss:// for TLS)
//	redis-sentinel://[:sentinel-password@]host:port,host:port/MASTER[?password=...&db=N]
//	redis-cluster://[:password@]host:port,host:port[?...]
func connectRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (*redisConn, error) {
	redis.SetLogger(redisLogger{log.With("component", "go-redis")})
	rc := &redisConn{mode: "standalone"}
	var embed *embedredis.Server
	switch scheme, _, _ := strings.Cut(cfg.RedisURL, "://"); scheme {
	case "":
		var err error
		if embed, err = embedredis.Start(); err != nil {
			return nil, err
		}
		rc.mode = "embedded"
		log.Warn("single-node mode: using an embedded in-process Redis; queued messages live in this process only and no other node can share them. Set -redis-url (COMETBOX_REDIS_URL) for production or several nodes")
		rc.client = redis.NewClient(tune(&redis.Options{Addr: embed.Addr()}, cfg))
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		// A restarted server has a new term: what it lost since its last
		// fsync shows as a new epoch (queue.Primary).
		rc.primary = queue.NewPrimary()
		opts.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			return learnTerm(ctx, cn, rc.primary, false)
		}
		rc.client = redis.NewClient(tune(opts, cfg))
	case "redis-sentinel", "rediss-sentinel":
		opts, err := parseSentinelURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		opts.MaxRetries, opts.DialerRetries = -1, 1
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, readTimeout(cfg), 3*time.Second
		opts.ClientName = "cometbox:" + cfg.NodeName
		rc.mode = "sentinel"
		rc.primary = queue.NewPrimary()
		rc.follower = newSentinelFollower(opts, rc.primary, log.With("component", "sentinel"))
		opts.Dialer, opts.OnConnect = rc.follower.dial, rc.follower.onConnect
		rc.client = redis.NewFailoverClient(opts)
	case "redis-cluster", "rediss-cluster":
		if cfg.DurableAOF || cfg.DurableReplicas > 0 {
			return nil, errors.New("-durable-aof and -durable-replicas are not supported on a Redis Cluster: WAIT confirms one connection's writes, and a publish spans shards")
		}
		opts, err := parseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		opts.MaxRetries, opts.DialerRetries = -1, 1
		// Nor does the cluster client follow MOVED or ASK, or retry
		// TRYAGAIN, by itself: it would send a whole pipeline again, calls
		// Redis ran included. Package queue goes again with refused calls
		// only (queue/cluster.go).
		opts.MaxRedirects = -1
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 3*time.Second, 3*time.Second
		opts.ClientName = "cometbox:" + cfg.NodeName
		rc.mode = "cluster"
		rc.cluster = redis.NewClusterClient(opts)
		rc.client = rc.cluster
	default:
		return nil, fmt.Errorf("-redis-url %q: want redis://, rediss://, redis-sentinel://, redis-cluster:// (or rediss-*), or nothing for the embedded Redis", redactURL(cfg.RedisURL))
	}

	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := rc.client.Ping(pingCtx).Err(); err != nil {
		log.Error("redis does not answer yet; /readyz stays 503 until it does", "redis", redactURL(cfg.RedisURL), "mode", rc.mode, "err", err)
	}

	stopTick := func() {}
	if embed != nil {
		tickCtx, cancelTick := context.WithCancel(context.Background())
		go func() { _ = embed.Run(tickCtx) }()
		stopTick = cancelTick
	}
	rc.close = func() {
		_ = rc.client.Close()
		stopTick()
		if embed != nil {
			embed.Close()
		}
	}
	return rc, nil
}

// tune applies the node's rules to a connection's options (the sentinel
// and cluster options get the same). Fail fast and never retry by
// ourselves: a retried enqueue whose first attempt reached Redis would
// duplicate messages; clients retry, with idempotency keys.
func tune(opts *redis.Options, cfg config.Config) *redis.Options {
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = readTimeout(cfg)
	opts.WriteTimeout = 3 * time.Second
	opts.ClientName = "cometbox:" + cfg.NodeName
	return opts
}

// readTimeout bounds a Redis reply: 3s, or longer than a durable publish
// may wait in WAIT/WAITAOF, so that the wait ends in its own answer
// (503 not_durable) rather than in a read timeout.
func readTimeout(cfg config.Config) time.Duration {
	if cfg.DurableAOF || cfg.DurableReplicas > 0 {
		return max(3*time.Second, cfg.DurableTimeout+time.Second)
	}
	return 3 * time.Second
}

// parseSentinelURL reads
// redis-sentinel://[:sentinel-password@]h1:p1,h2:p2/MASTER[?password=...&db=N&...]
// into go-redis's failover options.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	u, hosts, err := splitHosts(raw, "redis-sentinel", "rediss-sentinel")
	if err != nil {
		return nil, err
	}
	master := strings.Trim(u.Path, "/")
	if master == "" {
		return nil, errors.New("redis-sentinel:// needs the master name as its path, e.g. redis-sentinel://s1:26379,s2:26379/mymaster")
	}
	q := u.Query()
	q.Set("master_name", master)
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	u.Host, u.Path, u.RawQuery = hosts[0], "", q.Encode()
	return redis.ParseFailoverURL(u.String())
}

// parseClusterURL reads redis-cluster://[:password@]h1:p1,h2:p2[?...] into
// go-redis's cluster options.
func parseClusterURL(raw string) (*redis.ClusterOptions, error) {
	u, hosts, err := splitHosts(raw, "redis-cluster", "rediss-cluster")
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	u.Host, u.RawQuery = hosts[0], q.Encode()
	return redis.ParseClusterURL(u.String())
}

// splitHosts parses a URL whose host part lists several host:port pairs,
// and turns its scheme into redis or rediss.
func splitHosts(raw, plain, tls string) (*url.URL, []string, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	auth, hostAndRest, found := strings.Cut(rest, "@")
	if !found {
		auth, hostAndRest = "", rest
	}
	hostList, tail := hostAndRest, ""
	if i := strings.IndexAny(hostAndRest, "/?"); i >= 0 {
		hostList, tail = hostAndRest[:i], hostAndRest[i:]
	}
	var hosts []string
	for _, h := range strings.Split(hostList, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("%s:// lists no host:port", scheme)
	}
	newScheme := "redis"
	if scheme == tls {
		newScheme = "rediss"
	} else if scheme != plain {
		return nil, nil, fmt.Errorf("scheme %s: want %s or %s", scheme, plain, tls)
	}
	if auth != "" {
		auth += "@"
	}
	u, err := url.Parse(newScheme + "://" + auth + hosts[0] + tail)
	if err != nil {
		return nil, nil, err
	}
	return u, hosts, nil
}

// redactURL hides a URL's passwords for logs: the one in its user info
// and, as a Sentinel URL may carry them, those in its query (any
// parameter whose name says password). It errs on hiding too much: an
// unescaped @ in the query hides what comes before it.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, _ := strings.Cut(rest[:at], ":")
		rest = user + ":xxxxx" + rest[at:]
	}
	head, query, ok := strings.Cut(rest, "?")
	if !ok {
		return scheme + "://" + rest
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		if name, _, ok := strings.Cut(p, "="); ok && strings.Contains(strings.ToLower(name), "password") {
			params[i] = name + "=xxxxx"
		}
	}
	out := scheme + "://" + head + "?" + strings.Join(params, "&")
	if hasFragment {
		out += "#" + fragment
	}
	return out
}
