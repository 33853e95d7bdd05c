package cutoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/cutoff"
)

// A banned user: her polls end everywhere, and the tokens minted for her
// before now (for an hour) are refused; one minted after works.
func Example() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	now := time.Now()
	c := cutoff.New(rdb, cutoff.Options{WakeChannel: func(client string) string { return "cb:{" + client + "}:w" }})

	if _, err := c.Disconnect(ctx, "mallory", now.Add(time.Hour)); err != nil {
		panic(err)
	}
	old := now.Add(50 * time.Minute)            // minted 10 minutes ago, for an hour
	fresh := now.Add(time.Hour + 5*time.Second) // minted just after
	fmt.Println(errors.Is(c.Check(ctx, "mallory", old), cutoff.ErrRevoked))
	fmt.Println(c.Check(ctx, "mallory", fresh))
	// Output:
	// true
	// <nil>
}
