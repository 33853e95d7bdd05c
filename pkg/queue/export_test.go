package queue

import "time"

// SetAckDelay changes how long AckSoon's acknowledgements wait for a
// pipeline, so that a test can tell the two ways they travel apart.
func SetAckDelay(q *Queue, d time.Duration) { q.ackDelay = d }
