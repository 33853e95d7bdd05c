package queue

// What the server API does to a client's queue: show it, delete it.

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed inspect.lua
	inspectSrc string
	//go:embed delete.lua
	deleteSrc string

	inspectScript = redis.NewScript(inspectSrc)
	deleteScript  = redis.NewScript(deleteSrc)
)

// Info is what Inspect shows of a client's queue.
type Info struct {
	// Epoch names the client's sequence; empty when it has none (nothing
	// published yet, or expired, deleted or lost).
	Epoch string
	// Last is the last id given in the sequence.
	Last uint64
	// Length is how many messages are queued: the ids Last-Length+1 to
	// Last.
	Length int
}

// First is the id of the oldest queued message; 0 when none is.
func (i Info) First() uint64 {
	if i.Length == 0 {
		return 0
	}
	return i.Last - uint64(i.Length) + 1
}

// Inspect reads a client's queue, in one script (so the figures agree),
// without changing anything: not even its expiry.
func (q *Queue) Inspect(ctx context.Context, client string) (Info, error) {
	res, err := inspectScript.Run(ctx, q.rdb, []string{q.metaKey(client), q.listKey(client)}).Slice()
	if err != nil {
		return Info{}, fmt.Errorf("queue: inspect %s: %w", client, err)
	}
	if len(res) != 3 {
		return Info{}, fmt.Errorf("queue: inspect %s: unexpected reply %v", client, res)
	}
	epoch, _ := res[0].(string)
	last, _ := res[1].(int64)
	n, _ := res[2].(int64)
	return Info{Epoch: epoch, Last: uint64(last), Length: int(n)}, nil
}

// Delete deletes a client's queue and sequence, and wakes its held polls
// on every node: those with a cursor are answered with Cometbox-Reset. It
// reports whether there was anything to delete.
func (q *Queue) Delete(ctx context.Context, client string) (existed bool, err error) {
	publish := "PUBLISH"
	if q.opts.Sharded {
		publish = "SPUBLISH"
	}
	n, err := deleteScript.Run(ctx, q.rdb, []string{q.metaKey(client), q.listKey(client)},
		q.WakeChannel(client), publish).Int()
	if err != nil {
		return false, fmt.Errorf("queue: delete %s: %w", client, err)
	}
	return n > 0, nil
}
