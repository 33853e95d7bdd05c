package queue

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster refusals: while a slot is resharded or a master fails
// over, Redis refuses some commands before running them and says why:
//
//	MOVED slot addr  the slot has moved for good: the cluster client
//	                 reloads its slot map, and the call goes again
//	ASK slot addr    the slot is migrating and none of the call's keys is
//	                 left on the source: the call goes to addr, after
//	                 ASKING
//	TRYAGAIN         the slot is migrating and the keys are split between
//	                 the two masters, or some are missing on the target
//	                 (an enqueue's idempotency key never exists there):
//	                 the call goes again when the slot has moved
//	CLUSTERDOWN      no master serves the slot (a failover under way)
//
// The node's cluster client follows and retries nothing by itself
// (MaxRedirects -1, cmd/cometbox/redis.go): on TRYAGAIN for the first
// call of a pipeline, or on a broken connection, go-redis sends the whole
// pipeline again, calls Redis already ran included, which stores their
// messages twice. So the refused calls alone go again, after a short
// backoff, for as long as the caller's deadline allows; the caller's
// answer waits meanwhile (a slot's migration takes milliseconds).
//
// A read may also fail halfway: read.lua deletes a fully acknowledged
// list and then touches it again, which Redis refuses with "Script
// attempted to access a non local key" while the slot migrates. A read is
// idempotent (it acknowledges up to the same cursor and reads the same
// entries), so it goes again too; an enqueue never does.

const (
	retryMin = 5 * time.Millisecond
	retryMax = 100 * time.Millisecond
	// retryAnswer is the time a call going again keeps for its answer:
	// one cut short by the deadline would replace a refusal, which says
	// the call did not run, with a deadline error, which says nothing.
	retryAnswer = 100 * time.Millisecond
)

// refused reports whether Redis refused c without running it (or, for a
// read, ran part of it) because of a cluster change: going again is safe.
func refused(c scriptCall, err error) bool {
	switch {
	case err == nil:
		return false
	case redis.HasErrorPrefix(err, "MOVED"), redis.HasErrorPrefix(err, "ASK"),
		redis.HasErrorPrefix(err, "TRYAGAIN"), redis.HasErrorPrefix(err, "CLUSTERDOWN"):
		return true
	}
	return c.script == readScript && redis.HasErrorPrefix(err, "Script attempted to access a non local key") // after "ERR "
}

// askTarget returns the address an ASK refusal names.
func askTarget(err error) (addr string, ok bool) {
	if !redis.HasErrorPrefix(err, "ASK") {
		return "", false
	}
	f := strings.Fields(err.Error())
	if len(f) != 3 {
		return "", false
	}
	return f[2], true
}

// retryRefused runs again, through run, the calls whose cmds Redis
// refused (see refused), until none is refused or ctx's deadline leaves
// no time for another wait and its answer (retryAnswer); it replaces
// their cmds with the new results.
// A call refused with ASK goes to the named master at once, when rdb can
// reach it directly; the others wait a jittered, growing backoff first.
func retryRefused(ctx context.Context, rdb Redis, calls []scriptCall, cmds []*redis.Cmd,
	run func(ctx context.Context, calls []scriptCall) []*redis.Cmd) {
	wait := retryMin
	for {
		var asked, again []int
		for i, cmd := range cmds {
			if !refused(calls[i], cmd.Err()) {
				continue
			}
			if _, ok := askTarget(cmd.Err()); ok {
				asked = append(asked, i)
			} else {
				again = append(again, i)
			}
		}
		if len(asked) > 0 {
			again = append(again, followAsk(ctx, rdb, calls, cmds, asked)...)
		}
		if len(again) == 0 {
			return
		}
		d := wait/2 + rand.N(wait/2+1)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+retryAnswer {
			return // no time left: the refusal is the answer
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
		redo := make([]scriptCall, len(again))
		for j, i := range again {
			redo[j] = calls[i]
		}
		for j, res := range run(ctx, redo) {
			cmds[again[j]] = res
		}
	}
}

// clusterMasters is what following ASK needs of a cluster client;
// *redis.ClusterClient has it.
type clusterMasters interface {
	ForEachMaster(ctx context.Context, fn func(ctx context.Context, client *redis.Client) error) error
}

// followAsk sends each call at asked, with ASKING, to the master its ASK
// names, and replaces its cmd with the answer. It returns those it could
// not send (rdb is not a cluster client, or the master is unknown to it)
// and those that master refused in turn (TRYAGAIN while the keys are
// split between the two): they wait and go again the usual way.
func followAsk(ctx context.Context, rdb Redis, calls []scriptCall, cmds []*redis.Cmd, asked []int) (left []int) {
	cc, ok := rdb.(clusterMasters)
	if !ok {
		return asked
	}
	// Reading the masters reloads the client's slot map (a round trip):
	// it is the only way to the client of one master by its address.
	masters := map[string]*redis.Client{}
	var mu sync.Mutex
	_ = cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		masters[c.Options().Addr] = c
		mu.Unlock()
		return nil
	})
	for _, i := range asked {
		addr, _ := askTarget(cmds[i].Err())
		node := masters[addr]
		if node == nil {
			left = append(left, i)
			continue
		}
		cmds[i] = askCall(ctx, node, calls[i])
		if refused(calls[i], cmds[i].Err()) {
			left = append(left, i)
		}
	}
	return left
}

// askCall runs c on node after ASKING, with EVALSHA and then, if node
// does not know the script, with EVAL.
func askCall(ctx context.Context, node *redis.Client, c scriptCall) *redis.Cmd {
	pipe := node.Pipeline()
	pipe.Do(ctx, "asking")
	cmd := c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	_, _ = pipe.Exec(ctx)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		pipe.Do(ctx, "asking")
		cmd = c.script.Eval(ctx, pipe, c.keys, c.args...)
		_, _ = pipe.Exec(ctx)
	}
	return cmd
}
