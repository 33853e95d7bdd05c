package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

// TestGroupOnCluster fans a group message out to members spread over
// every shard of a real Redis Cluster, one script call per slot, while
// one member's slot migrates (its refusals go again until the migration
// ends), with the node's cluster client settings; then a member joins
// and another leaves, and the next message follows.
func TestGroupOnCluster(t *testing.T) {
	c := redisserver.StartReplicated(t, redisserver.ClusterOptions{Replicas: -1})
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{c.Nodes[0].Addr}, MaxRedirects: -1, MaxRetries: -1,
	})
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, pipeline := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipeline=%v", pipeline), func(t *testing.T) {
			q := queue.New(cc, queue.Options{Sharded: true, Pipeline: pipeline})
			group := fmt.Sprintf("room:%v", pipeline)
			var members []string
			shards := map[*redisserver.Server]int{}
			owners := c.Owners()
			for i := range 1500 {
				m := fmt.Sprintf("p%v-%d", pipeline, i)
				members = append(members, m)
				shards[owners[redisserver.Slot(m)]]++
			}
			if len(shards) != 3 {
				t.Fatalf("members on %d shards; want 3", len(shards))
			}
			if _, n, err := q.Join(ctx, group, members[:1000]); err != nil || n != 1000 {
				t.Fatalf("Join = %d, %v", n, err)
			}
			if _, n, err := q.Join(ctx, group, members[1000:]); err != nil || n != 1500 {
				t.Fatalf("Join = %d, %v", n, err)
			}

			moving := members[7]
			from := owners[redisserver.Slot(moving)]
			to := c.Masters()[0]
			if to == from {
				to = c.Masters()[1]
			}
			c.BeginMigration(redisserver.Slot(moving), from, to)
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(200 * time.Millisecond)
				c.EndMigration(redisserver.Slot(moving), from, to)
			}()
			pub, err := q.Publish(ctx, batchOf(toGroup(group, members[0], "one")))
			<-done
			if err != nil || pub.Receipts[0].Members != 1499 {
				t.Fatalf("Publish during a migration = %v, %v; want 1499 members once it ended", pub.Receipts, err)
			}

			if _, _, err := q.Leave(ctx, group, []string{members[1]}); err != nil {
				t.Fatal(err)
			}
			newcomer := fmt.Sprintf("new-%v", pipeline)
			if _, _, err := q.Join(ctx, group, []string{newcomer}); err != nil {
				t.Fatal(err)
			}
			if pub, err := q.Publish(ctx, batchOf(toGroup(group, "", "two"))); err != nil || pub.Receipts[0].Members != 1500 {
				t.Fatalf("second Publish = %v, %v", pub.Receipts, err)
			}
			want := map[string]string{members[0]: "/two", members[1]: "/one", newcomer: "/two", moving: "/one /two"}
			for _, m := range members[2:] {
				if _, ok := want[m]; !ok {
					want[m] = "/one /two"
				}
			}
			for m, w := range want {
				page, err := q.Read(ctx, m, message.Cursor{}, 10)
				if err != nil {
					t.Fatalf("Read(%s): %v", m, err)
				}
				got := ""
				for _, msg := range page.Messages {
					var d delivered
					_ = jsonUnmarshal(msg.JSON, &d)
					got += " /" + d.Data
				}
				if got = got[min(1, len(got)):]; got != w {
					t.Fatalf("%s's queue = %q; want %q", m, got, w)
				}
			}
		})
	}
}
