package message

import (
	"errors"
	"time"
)

// Queued is a message as a poll reads it from a client's queue.
type Queued struct {
	// ID is the message's id in its client's sequence.
	ID uint64
	// JSON is the message as the browser receives it: {"id":N,"data":...}.
	JSON []byte
	// Published is when the node that accepted it enqueued it, by that
	// node's clock; used for the delivery latency metric.
	Published time.Time
}

// Page is what one read of a client's queue returns.
type Page struct {
	// Messages after the cursor, in id order, at most the read's limit.
	Messages []Queued
	// Next is the cursor to poll with once Messages are handled: the last
	// message's id, or where the queue stands when Messages is empty.
	Next Cursor
	// Gap, when not zero, names ids after the poll's cursor that the queue
	// can no longer return: dropped by the queue cap, or acknowledged by
	// another poll of the same client.
	Gap Range
	// Reset reports that the poll's cursor did not belong to the client's
	// current sequence (Redis lost it, it expired, or the cursor is from
	// the future). Nothing was acknowledged; Messages are everything the
	// queue holds and Next is in the new epoch.
	Reset bool
}

// Settled reports whether the page should be answered at once rather
// than held: it carries messages, a gap or a reset.
func (p Page) Settled() bool {
	return len(p.Messages) > 0 || p.Reset || p.Gap != (Range{})
}

// Published is the outcome of enqueueing a Batch.
type Published struct {
	// Receipts, one per message in the batch's order.
	Receipts []Receipt
	// Replayed reports that the batch's idempotency key was known: nothing
	// new was enqueued and Receipts are those of the first attempt.
	Replayed bool
	// Dropped counts older messages pushed out of capped queues.
	Dropped int
	// Copies counts the copies of group messages written to members'
	// queues (none on a replay).
	Copies int
}

// ErrNotDurable: the batch was written, but Redis did not confirm it on
// disk or on replicas within the timeout. Retrying with the same
// idempotency key is safe.
var ErrNotDurable = errors.New("write not confirmed durable")

// ErrIdempotencyConflict: a batch reused the idempotency key of another
// batch, one with other messages (recipients, payloads or their order).
var ErrIdempotencyConflict = errors.New("idempotency key reused for a different batch")
