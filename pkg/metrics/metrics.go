// Package metrics owns every Prometheus collector of a cometbox node.
//
// New registers them on the Registerer it is given; there is no global
// registry. Every method is safe for concurrent use and is a no-op on a
// nil *Metrics, so tests and tools can pass nil.
//
// Names follow Prometheus's conventions: a cometbox_ prefix, base units,
// _total on counters. No label ever carries a client id, cursor or token.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Poll outcomes, the values of the outcome label.
const (
	OutcomeMessages = "messages" // answered with messages, a gap or a reset
	OutcomeTimeout  = "timeout"  // answered [] at the poll timeout
	OutcomeGone     = "gone"     // the browser went away first
	OutcomeError    = "error"    // Redis failed
	OutcomeDrained  = "drained"  // answered [] because the node is draining
	// OutcomeDisconnected: answered [] because the server API
	// disconnected the client.
	OutcomeDisconnected = "disconnected"
	// OutcomeRefused: refused once subscribed, because a disconnect
	// revoked the client's token.
	OutcomeRefused = "refused"
)

// Metrics holds the node's collectors.
type Metrics struct {
	pollsWaiting      prometheus.Gauge
	streamsOpen       prometheus.Gauge
	streamEvents      *prometheus.CounterVec
	pollDuration      *prometheus.HistogramVec
	published         prometheus.Counter
	publishReplays    prometheus.Counter
	delivered         prometheus.Counter
	deliveryLatency   prometheus.Histogram
	dropped           prometheus.Counter
	gaps              prometheus.Counter
	resets            prometheus.Counter
	redisErrors       *prometheus.CounterVec
	pubsubReconnects  prometheus.Counter
	pubsubChannels    prometheus.Gauge
	wakeups           prometheus.Counter
	channelMoves      prometheus.Counter
	httpRequests      *prometheus.CounterVec
	httpCounters      sync.Map // httpKey -> prometheus.Counter, resolved once
	limitRejections   *prometheus.CounterVec
	limits            *prometheus.GaugeVec
	buildInfo         *prometheus.GaugeVec
	draining          prometheus.Gauge
	subscribeDuration prometheus.Histogram

	presenceClients  prometheus.Gauge
	presenceChanges  *prometheus.CounterVec
	presenceSweeper  prometheus.Gauge
	webhookRequests  *prometheus.CounterVec
	webhookDelivered prometheus.Counter
	webhookDropped   *prometheus.CounterVec
	webhookDelay     prometheus.Histogram
}

// New creates the collectors and registers them on reg. It panics if one
// is already registered there, as prometheus.MustRegister does.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pollsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_polls_waiting",
			Help: "Long-polls held by this node right now.",
		}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_streams_open",
			Help: "Server-sent event streams open on this node right now.",
		}),
		streamEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_stream_events_total",
			Help: "Server-sent events written to streams, by event (hello, message, gap, reset, ping).",
		}, []string{"event"}),
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cometbox_poll_duration_seconds",
			Help:    "How long polls were held, by outcome (messages, timeout, gone, error, drained, disconnected, refused).",
			Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 5, 10, 20, 30, 60},
		}, []string{"outcome"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_messages_published_total",
			Help: "Messages accepted by publish requests on this node (replays not counted).",
		}),
		publishReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_publish_replays_total",
			Help: "Publish requests answered from an earlier attempt with the same idempotency key.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_messages_delivered_total",
			Help: "Messages written to browsers by this node (a re-delivery counts again).",
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cometbox_delivery_latency_seconds",
			Help:    "Time from a message's enqueue to its delivery, by the clocks of the two nodes involved.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_messages_dropped_total",
			Help: "Queued messages dropped because a client's queue was over its cap.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_poll_gaps_total",
			Help: "Polls answered with a Cometbox-Gap header.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_poll_resets_total",
			Help: "Polls answered with a Cometbox-Reset header (cursor from a lost or expired sequence).",
		}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_redis_errors_total",
			Help: "Redis operations that failed, by operation.",
		}, []string{"op"}),
		pubsubReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_pubsub_reconnects_total",
			Help: "Times the pub/sub connection was re-established (after an error or a failed self-probe).",
		}),
		pubsubChannels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_pubsub_channels",
			Help: "Wake-up channels this node is subscribed to right now.",
		}),
		channelMoves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_pubsub_channel_moves_total",
			Help: "Wake-up channels subscribed again on another Redis Cluster shard after their slot moved.",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_pubsub_wakeups_total",
			Help: "Wake-up messages received on the pub/sub connection.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		limitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_limit_rejections_total",
			Help: "Requests refused because a limit was reached, by limit.",
		}, []string{"limit"}),
		limits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometbox_limit",
			Help: "Configured limits, by name, so dashboards can show usage against them.",
		}, []string{"limit"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometbox_build_info",
			Help: "Always 1; labels carry the version, the Redis mode and the node's name (-node-name).",
		}, []string{"version", "redis_mode", "node"}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_draining",
			Help: "1 while the node is draining before it exits, else 0.",
		}),
		subscribeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cometbox_pubsub_subscribe_duration_seconds",
			Help:    "Time from asking Redis for a wake-up subscription to its confirmation.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5},
		}),
		presenceClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_presence_clients",
			Help: "Clients this node holds a poll or stream of right now, or lets linger after their last one.",
		}),
		presenceChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_presence_changes_total",
			Help: "Clients that came online or went offline, by change (online, offline), as this node wrote them to Redis.",
		}, []string{"change"}),
		presenceSweeper: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cometbox_presence_sweeper",
			Help: "1 while this node holds the sweeper's lease (it counts out the clients of dead nodes and sends the webhooks), else 0.",
		}),
		webhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_webhook_requests_total",
			Help: "Webhook requests sent, by outcome (ok, refused: a status other than 2xx, failed: no answer).",
		}, []string{"outcome"}),
		webhookDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cometbox_webhook_events_delivered_total",
			Help: "Presence events the webhook receiver accepted.",
		}),
		webhookDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometbox_webhook_events_dropped_total",
			Help: "Presence events given up on, by reason (too_old: not delivered within the webhook's bound, trimmed: pushed out of Redis's capped stream first).",
		}, []string{"reason"}),
		webhookDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cometbox_webhook_delay_seconds",
			Help:    "Time from a presence change to the webhook receiver's acceptance of its event.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
	reg.MustRegister(m.pollsWaiting, m.streamsOpen, m.streamEvents, m.pollDuration, m.published, m.publishReplays,
		m.delivered, m.deliveryLatency, m.dropped, m.gaps, m.resets, m.redisErrors,
		m.pubsubReconnects, m.pubsubChannels, m.wakeups, m.channelMoves, m.httpRequests, m.limitRejections,
		m.limits, m.buildInfo, m.draining, m.subscribeDuration,
		m.presenceClients, m.presenceChanges, m.presenceSweeper,
		m.webhookRequests, m.webhookDelivered, m.webhookDropped, m.webhookDelay)
	return m
}

// PollStarted counts a poll as held; call the returned func with its
// outcome when it is answered.
func (m *Metrics) PollStarted() (done func(outcome string)) {
	if m == nil {
		return func(string) {}
	}
	start := time.Now()
	m.pollsWaiting.Inc()
	return func(outcome string) {
		m.pollsWaiting.Dec()
		m.pollDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}
}

// StreamOpened counts an open event stream; call the returned func when
// it closes.
func (m *Metrics) StreamOpened() (closed func()) {
	if m == nil {
		return func() {}
	}
	m.streamsOpen.Inc()
	return m.streamsOpen.Dec
}

// StreamEvents counts n server-sent events of one kind.
func (m *Metrics) StreamEvents(event string, n int) {
	if m != nil && n > 0 {
		m.streamEvents.WithLabelValues(event).Add(float64(n))
	}
}

// Published counts n accepted messages, of which dropped pushed older
// ones out of a capped queue.
func (m *Metrics) Published(n int) {
	if m != nil {
		m.published.Add(float64(n))
	}
}

// PublishReplayed counts a publish answered from an idempotency record.
func (m *Metrics) PublishReplayed() {
	if m != nil {
		m.publishReplays.Inc()
	}
}

// Delivered counts one message written to a browser and its latency.
func (m *Metrics) Delivered(published time.Time, now time.Time) {
	if m == nil {
		return
	}
	m.delivered.Inc()
	if d := now.Sub(published); d >= 0 {
		m.deliveryLatency.Observe(d.Seconds())
	}
}

// Dropped counts messages dropped by a queue cap.
func (m *Metrics) Dropped(n int) {
	if m != nil && n > 0 {
		m.dropped.Add(float64(n))
	}
}

// Gap counts a poll answered with a gap.
func (m *Metrics) Gap() {
	if m != nil {
		m.gaps.Inc()
	}
}

// Reset counts a poll answered with a reset.
func (m *Metrics) Reset() {
	if m != nil {
		m.resets.Inc()
	}
}

// RedisError counts a failed Redis operation (enqueue, read, subscribe,
// receive, probe, ping).
func (m *Metrics) RedisError(op string) {
	if m != nil {
		m.redisErrors.WithLabelValues(op).Inc()
	}
}

// PubSubReconnected counts a new pub/sub connection after a failure.
func (m *Metrics) PubSubReconnected() {
	if m != nil {
		m.pubsubReconnects.Inc()
	}
}

// PubSubChannels sets how many wake-up channels are subscribed.
func (m *Metrics) PubSubChannels(n int) {
	if m != nil {
		m.pubsubChannels.Set(float64(n))
	}
}

// Wakeup counts a received wake-up message.
func (m *Metrics) Wakeup() {
	if m != nil {
		m.wakeups.Inc()
	}
}

// ChannelMoved counts a channel followed to another shard.
func (m *Metrics) ChannelMoved() {
	if m != nil {
		m.channelMoves.Inc()
	}
}

// Subscribed observes how long a subscription took to be confirmed.
func (m *Metrics) Subscribed(d time.Duration) {
	if m != nil {
		m.subscribeDuration.Observe(d.Seconds())
	}
}

type httpKey struct {
	route string
	code  int
}

// HTTPRequest counts one answered request.
func (m *Metrics) HTTPRequest(route string, code int) {
	if m == nil {
		return
	}
	key := httpKey{route, code}
	c, ok := m.httpCounters.Load(key)
	if !ok {
		c, _ = m.httpCounters.LoadOrStore(key, m.httpRequests.WithLabelValues(route, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
}

// LimitRejected counts a request refused by the named limit.
func (m *Metrics) LimitRejected(limit string) {
	if m != nil {
		m.limitRejections.WithLabelValues(limit).Inc()
	}
}

// SetLimit publishes a configured limit's value.
func (m *Metrics) SetLimit(limit string, value float64) {
	if m != nil {
		m.limits.WithLabelValues(limit).Set(value)
	}
}

// SetBuildInfo records the version, the Redis mode and the node's name,
// which dashboards join to a scraped instance (an address, when
// Prometheus finds the nodes through DNS) to show names.
func (m *Metrics) SetBuildInfo(version, redisMode, node string) {
	if m != nil {
		m.buildInfo.WithLabelValues(version, redisMode, node).Set(1)
	}
}

// SetDraining flags the node as draining.
func (m *Metrics) SetDraining() {
	if m != nil {
		m.draining.Set(1)
	}
}

// PresenceClients sets how many clients this node holds or lets linger.
func (m *Metrics) PresenceClients(n int) {
	if m != nil {
		m.presenceClients.Set(float64(n))
	}
}

// PresenceChanges counts clients that came online and went offline.
func (m *Metrics) PresenceChanges(online, offline int64) {
	if m == nil {
		return
	}
	if online > 0 {
		m.presenceChanges.WithLabelValues("online").Add(float64(online))
	}
	if offline > 0 {
		m.presenceChanges.WithLabelValues("offline").Add(float64(offline))
	}
}

// PresenceSweeper flags whether this node holds the sweeper's lease.
func (m *Metrics) PresenceSweeper(holds bool) {
	if m == nil {
		return
	}
	v := 0.0
	if holds {
		v = 1
	}
	m.presenceSweeper.Set(v)
}

// WebhookRequest counts one webhook request by its outcome: ok, refused
// or failed.
func (m *Metrics) WebhookRequest(outcome string) {
	if m != nil {
		m.webhookRequests.WithLabelValues(outcome).Inc()
	}
}

// WebhookDelivered counts one event the receiver accepted, which
// happened at at.
func (m *Metrics) WebhookDelivered(at, now time.Time) {
	if m == nil {
		return
	}
	m.webhookDelivered.Inc()
	if d := now.Sub(at); d >= 0 {
		m.webhookDelay.Observe(d.Seconds())
	}
}

// WebhookDropped counts n events given up on for reason: too_old or
// trimmed.
func (m *Metrics) WebhookDropped(reason string, n int) {
	if m != nil && n > 0 {
		m.webhookDropped.WithLabelValues(reason).Add(float64(n))
	}
}
