package notify

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// On a Redis Cluster the Notifier keeps a pub/sub connection per master,
// bound to that master alone, and follows the topology:
//
//   - A master that gives a slot up (a reshard moved it, or the master
//     was demoted) unsubscribes the channels in it by itself. Each such
//     channel waits (state moving) until the cluster loop has read the
//     topology afresh and subscribed it on the slot's new master; its
//     watchers re-read their queues once that is confirmed. Nothing else
//     is subscribed again, and no other watcher is woken.
//   - A master that refuses a subscription (MOVED: the slot is served
//     elsewhere) refuses that channel only; the ones of the same slot
//     waiting for their confirmation move with it.
//   - A shard that is no longer a master serving slots (a failover
//     demoted it, or it left) is dropped: its connection closes, its
//     channels move, and readiness no longer counts it.
//
// The loop reads the topology whenever something above happens, when a
// connection fails (its master may have failed over), and every probe
// interval, each read being a round trip to Redis.

// Cluster is what a Notifier needs to know of a Redis Cluster.
type Cluster interface {
	// MasterOf returns the address of the master that serves channel's
	// slot in the topology last read, and a client of that master alone.
	MasterOf(ctx context.Context, channel string) (addr string, node Redis, err error)
	// Masters reads the topology afresh from the cluster, so that MasterOf
	// answers from it from then on, and returns the addresses of the
	// masters that serve slots.
	Masters(ctx context.Context) ([]string, error)
}

// ClusterOf returns the Cluster of a go-redis cluster client.
func ClusterOf(cc *redis.ClusterClient) Cluster { return goRedisCluster{cc} }

type goRedisCluster struct{ cc *redis.ClusterClient }

func (c goRedisCluster) MasterOf(ctx context.Context, channel string) (string, Redis, error) {
	node, err := c.cc.MasterForKey(ctx, channel)
	if err != nil {
		return "", nil, err
	}
	return node.Options().Addr, node, nil
}

// Masters reloads the client's slot map before it reads the masters:
// ForEachMaster does (ReloadState only schedules a reload, so MasterOf
// would go on answering from the old map for a while).
func (c goRedisCluster) Masters(ctx context.Context) ([]string, error) {
	var (
		mu    sync.Mutex
		addrs []string
	)
	err := c.cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		addrs = append(addrs, node.Options().Addr)
		mu.Unlock()
		return nil
	})
	return addrs, err
}

// movingLocked marks ch as given up by its shard: it forgets its latest
// wake-up (wake-ups are lost until it is subscribed again) and waits for
// the cluster loop. Its watchers stay; they re-read once the channel is
// confirmed on its new shard.
func (n *Notifier) movingLocked(ch *channel) {
	ch.state, ch.since, ch.latest = moving, time.Now(), ""
	kick(n.topology)
}

// refused handles a MOVED or ASK reply on cn: the shard refused to
// subscribe (or unsubscribe) a channel of the slot it names, which it no
// longer serves. The channels of that slot waiting for a confirmation on
// cn move.
func (n *Notifier) refused(cn *conn, gen uint64, err error) {
	slot := -1
	if f := strings.Fields(err.Error()); len(f) == 3 {
		if s, perr := strconv.Atoi(f[1]); perr == nil {
			slot = s
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != cn.gen || cn.dropped {
		return
	}
	n.log.Debug("subscription refused", "shard", cn.shard, "slot", slot, "err", err)
	for name, ch := range n.chans {
		if ch.conn != cn || (slot >= 0 && keySlot(name) != slot) {
			continue
		}
		switch {
		case ch.state == subscribing:
			n.movingLocked(ch)
		case ch.state == unsubscribing && len(ch.watchers) == 0 && !ch.pinned:
			delete(n.chans, name) // nothing is subscribed here to undo
		case ch.state == unsubscribing:
			n.movingLocked(ch)
		}
	}
	n.countChannelsLocked()
}

// clusterLoop looks at the topology when asked (n.topology) and every
// probe interval, and again after a backoff while channels still wait for
// a shard.
func (n *Notifier) clusterLoop(ctx context.Context) {
	tick := time.NewTicker(n.opts.ProbeInterval)
	defer tick.Stop()
	backoff := newBackoff(20*time.Millisecond, time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.topology:
		case <-tick.C:
		}
		for n.reconcile(ctx) {
			if !sleep(ctx, backoff.next()) {
				return
			}
		}
		backoff.reset()
	}
}

// reconcile reads the topology, drops the shards that are no longer
// masters, and finds the moving channels (and probe channels) their new
// shard. It reports whether some still wait, to be tried again.
func (n *Notifier) reconcile(ctx context.Context) (pending bool) {
	rctx, cancel := context.WithTimeout(ctx, n.opts.ProbeTimeout)
	masters, err := n.opts.Cluster.Masters(rctx)
	cancel()
	if err == nil && len(masters) == 0 {
		err = errors.New("no master serves a slot") // a node reset, or not joined yet: drop nothing
	}
	if err != nil {
		n.log.Debug("reading the cluster topology", "err", err)
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, ch := range n.chans {
			if ch.state == moving {
				return true
			}
		}
		return false
	}
	isMaster := make(map[string]bool, len(masters))
	for _, m := range masters {
		isMaster[m] = true
	}

	var (
		closing []*redis.PubSub
		names   []string
		probes  []*conn
	)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	for shard, cn := range n.conns {
		if !isMaster[shard] {
			n.log.Info("shard is no longer a master; its channels move to the masters that serve them now", "shard", shard)
			closing = append(closing, n.dropLocked(cn))
		}
	}
	for name, ch := range n.chans {
		if ch.state != moving {
			continue
		}
		if ch.pinned {
			probes = append(probes, ch.conn)
		} else {
			names = append(names, name)
		}
	}
	n.mu.Unlock()
	for _, ps := range closing {
		_ = ps.Close()
	}

	for _, name := range names {
		dest, err := n.connFor(ctx, name)
		n.mu.Lock()
		ch := n.chans[name]
		switch {
		case ch == nil || ch.state != moving:
		case len(ch.watchers) == 0:
			delete(n.chans, name)
		case err != nil:
			pending = true
		case dest == ch.conn && time.Since(ch.since) < n.opts.ProbeTimeout:
			// The topology just read still has the slot on the shard that
			// gave it up: the node it came from has not heard of the move
			// yet. Look again shortly; past the probe timeout, believe it.
			pending = true
		default:
			if dest != ch.conn {
				n.m.ChannelMoved()
				n.log.Debug("channel moved", "channel", name, "from", ch.conn.shard, "to", dest.shard)
			}
			ch.conn = dest
			n.subscribeLocked(ch) // watchers re-read once it is confirmed
		}
		n.mu.Unlock()
	}
	for _, cn := range probes {
		probe, err := n.probeName(ctx, cn.shard)
		n.mu.Lock()
		switch {
		case cn.dropped || cn.probe.state != moving:
		case err != nil:
			pending = true
		default:
			delete(n.chans, cn.probe.name)
			cn.probe = &channel{name: probe, conn: cn, pinned: true}
			n.chans[probe] = cn.probe
			n.subscribeLocked(cn.probe) // its confirmation asks for a probe
		}
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.countChannelsLocked()
	n.mu.Unlock()
	return pending
}

// dropLocked takes cn, whose shard is no longer a master, out of the
// Notifier: its goroutines end, and its channels move. It returns cn's
// connection, for the caller to close.
func (n *Notifier) dropLocked(cn *conn) *redis.PubSub {
	cn.dropped = true
	delete(n.conns, cn.shard)
	close(cn.gone)
	for name, ch := range n.chans {
		if ch.conn != cn {
			continue
		}
		if ch.pinned || len(ch.watchers) == 0 {
			delete(n.chans, name)
			continue
		}
		n.movingLocked(ch)
	}
	return cn.ps
}

// keySlot is Redis Cluster's hash slot of a key or channel: CRC16 of its
// hash tag (between the first { and the next }, when not empty), or of
// the whole name, modulo 16384.
func keySlot(name string) int {
	if i := strings.IndexByte(name, '{'); i >= 0 {
		if j := strings.IndexByte(name[i+1:], '}'); j > 0 {
			name = name[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(name); i++ {
		crc ^= uint16(name[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
