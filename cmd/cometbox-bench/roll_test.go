package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/testenv"
)

// TestRoll runs the rolling-restart mode at a small scale: two nodes
// behind the project's haproxy.cfg with 100ms checks and a 1s drain
// delay, 100 subscribers of which 20 idle, one round of SIGTERMs and one
// SIGKILL. Every window must account for its messages, none lost or
// twice; no timing is asserted. A publish whose answer was lost (an EOF
// as a node goes) may have been stored: its message may be delivered
// without counting as published, so a window may deliver more than it
// published, never fewer.
func TestRoll(t *testing.T) {
	testenv.LookPath(t, "haproxy", "apt-get install haproxy")
	testenv.LookPath(t, "redis-server", "apt-get install redis-server")
	out := filepath.Join(t.TempDir(), "roll.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-node-bin", nodeproc.Binary(t), "-haproxy-cfg", filepath.Join("..", "..", "deployments", "haproxy", "haproxy.cfg"),
		"-nodes", "2", "-subs", "100", "-idle", "20", "-rate", "100", "-rounds", "1", "-kills", "1", "-baseline", "2s", "-slot", "3s",
		"-drain-delay", "1s", "-drain-spread", "500ms", "-check-inter", "100ms", "-check-rise", "1",
		"-dir", t.TempDir(), "-json", out, "-quiet"}
	if err := rollCmd(args, &stdout, &stderr); err != nil {
		t.Fatalf("rollCmd: %v\n%s", err, stderr.String())
	}
	var res bench.RollResult
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", stdout.String())
	if len(res.Restarts) != 3 {
		t.Fatalf("%d restarts; want 3 (two SIGTERMs, one SIGKILL)", len(res.Restarts))
	}
	for i, rs := range res.Restarts {
		w := rs.Window
		if w.Published == 0 || w.Lost != 0 || w.Duplicated != 0 || w.Delivered < w.Published {
			t.Errorf("restart %d (%s %s): published %d delivered %d lost %d dup %d; want all delivered once",
				i+1, rs.Signal, rs.Node, w.Published, w.Delivered, w.Lost, w.Duplicated)
		}
		if rs.Signal == "TERM" && rs.ExitCode != 0 {
			t.Errorf("restart %d: %s exited %d after SIGTERM; want 0", i+1, rs.Node, rs.ExitCode)
		}
		if rs.UpAfter <= 0 {
			t.Errorf("restart %d: %s never UP again", i+1, rs.Node)
		}
	}
	if f := res.Final; f.Lost != 0 || f.Dups != 0 || f.Delivered < f.Published {
		t.Errorf("final: published %d delivered %d lost %d dups %d", f.Published, f.Delivered, f.Lost, f.Dups)
	}
	for _, want := range []string{"baseline", "TERM", "KILL", "timeouts"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
