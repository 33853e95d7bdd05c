package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redisserver"
	"github.com/cometbox/cometbox/pkg/message"
)

// primaryWithReplica starts a redis-server and a replica of it.
func primaryWithReplica(t *testing.T) (primary, replica *redisserver.Server) {
	t.Helper()
	primary = redisserver.Start(t, redisserver.Options{Args: []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}})
	_, port, _ := strings.Cut(primary.Addr, ":")
	replica = redisserver.Start(t, redisserver.Options{Args: []string{"--replicaof", "127.0.0.1", port}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := primary.Do("INFO", "replication")
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			return primary, replica
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never synced: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A round confirms the writes other connections made before it; while
// the replica is missing, any number of waiting calls share one round
// and one connection, and fail together after the timeout, while the
// rest of the pool serves other commands at once.
func TestConfirmerRounds(t *testing.T) {
	primary, replica := primaryWithReplica(t)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr, PoolSize: 4, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	other := redis.NewClient(&redis.Options{Addr: primary.Addr})
	t.Cleanup(func() { _ = other.Close() })
	if err := other.Set(ctx, "written", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	generous := newConfirmer(rdb, Durability{Replicas: 1, Timeout: 5 * time.Second}, "cb:durable") // CI machines are busy
	if err := generous.confirm(ctx); err != nil {
		t.Fatalf("confirm with a replica = %v", err)
	}
	t.Logf("confirmed in %v", time.Since(start))
	if got, _ := replica.Do("GET", "written"); got != "1" {
		t.Errorf("after a confirmed round the replica holds %q for a write of another connection; want 1", got)
	}

	replica.Kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, _ := primary.Do("INFO", "replication"); strings.Contains(info, "connected_slaves:0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the primary never noticed its replica gone")
		}
	}
	c := newConfirmer(rdb, Durability{Replicas: 1, Timeout: 500 * time.Millisecond}, "cb:durable")
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() { errs <- c.confirm(ctx) })
	}
	time.Sleep(100 * time.Millisecond) // the round is waiting now
	pingStart := time.Now()
	for range 10 {
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING while confirmations wait = %v", err)
		}
	}
	if d := time.Since(pingStart); d > 200*time.Millisecond {
		t.Errorf("10 PINGs took %v while confirmations waited; want them served at once", d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, message.ErrNotDurable) {
			t.Fatalf("confirm without a replica = %v; want ErrNotDurable", err)
		}
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("200 confirmations without a replica took %v; want one timeout (500ms), or two at most", d)
	}
}

// Durable publishes and reads waiting for a replica that is missing
// leave the connection pool to everything else: one connection waits in
// WAIT for all of them. (Each used to hold a connection of its own for
// the whole timeout: with 40 of them on a pool of 4, a PING waited for
// the pool's timeout, and so did polls, probes and /readyz.)
func TestDurableWaitsLeaveThePool(t *testing.T) {
	primary := redisserver.Start(t, redisserver.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr, PoolSize: 4, PoolTimeout: time.Second, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	q := New(rdb, Options{Durability: Durability{Replicas: 1, Timeout: 2 * time.Second}})
	pub := func(to string) error {
		_, err := q.Publish(ctx, message.Batch{Messages: []message.Message{{To: to, Data: message.EncodeText("x")}}})
		return err
	}
	if err := pub("warm"); !errors.Is(err, message.ErrNotDurable) { // loads the script
		t.Fatalf("Publish without a replica = %v; want ErrNotDurable", err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { _ = pub(fmt.Sprint("c", i)) })
	}
	time.Sleep(300 * time.Millisecond) // they all wait now
	start := time.Now()
	err := rdb.Ping(ctx).Err()
	took := time.Since(start)
	wg.Wait()
	if err != nil || took > 200*time.Millisecond {
		t.Errorf("PING while 40 durable publishes waited = %v after %v; want an answer at once", err, took)
	}
}
