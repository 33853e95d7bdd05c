package presence

import "context"

// Flush, Heartbeat and Sweep run one round of what Run does on its
// tickers, so that a test decides when.
func Flush(p *Presence, ctx context.Context)     { p.flush(ctx) }
func Heartbeat(p *Presence, ctx context.Context) { p.heartbeat(ctx) }
func Sweep(p *Presence, ctx context.Context) error {
	return p.sweep(ctx)
}

// DeliverShard hands one batch of a shard's events to the Sink.
func DeliverShard(p *Presence, ctx context.Context, shard int) (int, error) {
	return p.deliverShard(ctx, shard)
}

// ID is the node's id in Redis.
func ID(p *Presence) string { return p.id }

// Pending is how many changes the node keeps for its next write.
func Pending(p *Presence) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.adds) + len(p.ended)
}
