package presence_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/presence"
)

// A node tells its Presence of each poll; any node can then say who is
// online.
func Example() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	p := presence.New(rdb, nil, nil, presence.Options{Node: "node1", Flush: 10 * time.Millisecond, Linger: 50 * time.Millisecond})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()

	p.Begin("alice") // package poll does this as a poll of alice is held
	time.Sleep(300 * time.Millisecond)
	st, _ := p.Lookup(context.Background(), []string{"alice", "bob"})
	fmt.Println(st[0].Client, st[0].Online, st[1].Client, st[1].Online)

	p.End("alice") // and this when it is answered; she lingers, then goes
	time.Sleep(500 * time.Millisecond)
	st, _ = p.Lookup(context.Background(), []string{"alice"})
	fmt.Println(st[0].Client, st[0].Online, !st[0].LastSeen.IsZero())
	stop()
	<-done
	// Output:
	// alice true bob false
	// alice false true
}
