package queue

import "time"

// SetAckDelay changes how long AckSoon's acknowledgements wait for a
// pipeline, so that a test can tell the two ways they travel apart.
func SetAckDelay(q *Queue, d time.Duration) { q.ackDelay = d }

// SetClock gives the queue a clock of the test's: now tells the time
// (of AckSoon's flushes, and the publish time stored with messages),
// after plans a flush.
func SetClock(q *Queue, now func() time.Time, after func(time.Duration, func())) {
	q.now, q.after = now, after
}

// BatchDigest is what an idempotency record keeps of a batch.
var BatchDigest = batchDigest
