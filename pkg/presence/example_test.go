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
	alice := waitOnline(p, "alice", true)
	bob := waitOnline(p, "bob", false)
	fmt.Println(alice.Client, alice.Online, bob.Client, bob.Online)

	p.End("alice") // and this when it is answered; she lingers, then goes
	alice = waitOnline(p, "alice", false)
	fmt.Println(alice.Client, alice.Online, !alice.LastSeen.IsZero())
	stop()
	<-done
	// Output:
	// alice true bob false
	// alice false true
}

// waitOnline looks client up until it is online, or not, as expected
// (the node writes its changes every Options.Flush), for five seconds at
// most.
func waitOnline(p *presence.Presence, client string, online bool) presence.State {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := p.Lookup(context.Background(), []string{client})
		switch {
		case err == nil && (st[0].Online == online || time.Now().After(deadline)):
			return st[0]
		case err != nil && time.Now().After(deadline):
			return presence.State{Client: client}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
