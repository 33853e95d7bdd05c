package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
)

// A Redis restarted from a snapshot (or an AOF it had not fsynced, after
// a power loss) lacks the last ids it handed out, and hands them out
// again. The restarted server has a new term: the sequence goes on in a
// new epoch, and a page whose cursor names the lost ids is reset and
// gets the new messages, where it used to be answered nothing and skip
// them.
func TestRedisRestartedBehindItsIDs(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{})
	nd := nodeproc.Start(t, "term", "-redis-url", rs.URL(), "-publish-secret", secret, "-poll-timeout", "1s")
	nd.WaitReady()
	publish(t, nd, "roll", "1", "roll", "2", "roll", "3")
	first := poll(t, nd, "roll", "")
	if _, err := rs.Do("SAVE"); err != nil { // the last that reaches the disk
		t.Fatal(err)
	}
	publish(t, nd, "roll", "4", "roll", "5")
	seen := poll(t, nd, "roll", first.Cursor)
	if texts(seen) != "4:4 5:5" {
		t.Fatalf("before the restart: %q; want 4 and 5", texts(seen))
	}

	rs.Kill()
	rs.Restart() // from the snapshot: ids 4 and 5 are free again
	nd.WaitReady()
	waitFor(t, 10*time.Second, "a publish after the restart", func() bool {
		status, _, _ := tc.Publish(context.Background(), nd.URL, secret, "application/xml", tc.XML("roll", "after 1"))
		return status == 200
	})
	publish(t, nd, "roll", "after 2")
	a := poll(t, nd, "roll", seen.Cursor)
	if !a.Reset || !strings.Contains(texts(a), ":after 1") || !strings.Contains(texts(a), ":after 2") {
		t.Fatalf("poll after %s = %q, reset %v; want a reset with both messages published after the restart", seen.Cursor, texts(a), a.Reset)
	}
	old, _, _ := strings.Cut(seen.Cursor, ":")
	if epoch, _, _ := strings.Cut(a.Cursor, ":"); epoch == old {
		t.Errorf("epoch after the restart = %q; want a new one", epoch)
	}
	t.Logf("after the restart, poll since %s: reset, %s in %s", seen.Cursor, texts(a), a.Cursor)
}
