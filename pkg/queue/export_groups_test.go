package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/message"
)

// FanOutPartly records a group message and fans it out to the first
// pages of its group's members, as a node that then dies would: the
// group's lease is left held, the job in the list.
func FanOutPartly(ctx context.Context, q *Queue, group string, data json.RawMessage, pages int) error {
	if _, _, _, err := q.recordJob(ctx, message.Message{Group: group, Data: data}, "", "", 0); err != nil {
		return err
	}
	if pages == 0 {
		return nil
	}
	const token = "dead"
	if held, err := q.call(ctx, q.groupCall(group, "", "claim", token, leaseTTL.Milliseconds())).Int(); err != nil || held != 1 {
		return fmt.Errorf("claim = %d, %v", held, err)
	}
	gen, j, _, _, err := q.head(ctx, group)
	if err != nil || j == nil {
		return fmt.Errorf("head = %v, %v", j, err)
	}
	after := ""
	for range pages {
		_, _, names, err := q.membersPage(ctx, group, after, fanoutPage)
		if err != nil {
			return err
		}
		have, _, _, err := q.copyTo(ctx, group, gen, *j, names)
		if err != nil {
			return err
		}
		after = names[len(names)-1]
		if err := q.call(ctx, q.groupCall(group, "", "progress", token, itoa(j.seq), after, have, leaseTTL.Milliseconds())).Err(); err != nil {
			return err
		}
	}
	return nil
}

// ResumeGroups is one look of RunGroups.
func ResumeGroups(ctx context.Context, q *Queue) { q.resumeGroups(ctx) }

// ExpireLease ends the lease on group, as its running out would.
func ExpireLease(t *testing.T, rdb redis.Cmdable, q *Queue, group string) {
	t.Helper()
	if err := rdb.Del(context.Background(), q.groupTag(group)+":l").Err(); err != nil {
		t.Fatal(err)
	}
}
