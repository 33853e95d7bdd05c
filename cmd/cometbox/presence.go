package main

import (
	"log/slog"

	"github.com/cometbox/cometbox/pkg/config"
	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/webhook"
)

// clusterPresenceShards is how many shards presence spreads clients over
// on a Redis Cluster, so that its work spreads over the masters; one
// Redis takes them all in one.
const clusterPresenceShards = 16

// newPresence returns the node's presence tracker, with the webhook as
// its sink when -webhook-url is set; nil with -presence=false.
func newPresence(cfg config.Config, rdb *redisConn, m *metrics.Metrics, log *slog.Logger) *presence.Presence {
	if !cfg.Presence {
		return nil
	}
	opts := presence.Options{Prefix: cfg.KeyPrefix, Node: cfg.NodeName, Linger: cfg.PresenceLinger}
	if rdb.cluster != nil {
		opts.Shards = clusterPresenceShards
	}
	if cfg.WebhookURL != "" {
		opts.Sink = webhook.New(webhook.Options{
			URL: cfg.WebhookURL, Secrets: cfg.WebhookSecrets, MaxAge: cfg.WebhookMaxAge,
			Log: log.With("component", "webhook"), M: m,
		})
	}
	return presence.New(rdb.client, log.With("component", "presence"), m, opts)
}

// newCutoff returns what disconnects clients and checks their tokens
// against it.
func newCutoff(cfg config.Config, rdb *redisConn, q *queue.Queue) *cutoff.Cutoff {
	return cutoff.New(rdb.client, cutoff.Options{
		Prefix: cfg.KeyPrefix, WakeChannel: q.WakeChannel, Sharded: rdb.cluster != nil, Leeway: cfg.TokenLeeway,
	})
}

// pollPresence and apiPresence hand pres to poll and httpapi, or nothing
// (not a nil pointer in an interface) when presence is off.
func pollPresence(pres *presence.Presence) poll.Presence {
	if pres == nil {
		return nil
	}
	return pres
}

func apiPresence(pres *presence.Presence) httpapi.Presence {
	if pres == nil {
		return nil
	}
	return pres
}
