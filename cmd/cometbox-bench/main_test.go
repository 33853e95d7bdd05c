package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/bench"
	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
)

// The end-to-end test starts generator children by re-running this test
// binary; with this variable set it behaves as cometbox-bench instead.
const childEnv = "COMETBOX_BENCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	nodeproc.Cleanup()
	os.Exit(code)
}

func TestParsePhases(t *testing.T) {
	got, err := ParsePhases("r2000=2000/1/10s, max1=max/1/15s,batch100=max/100/1m")
	if err != nil {
		t.Fatal(err)
	}
	want := []bench.Phase{
		{Name: "r2000", Rate: 2000, Batch: 1, Duration: 10 * time.Second},
		{Name: "max1", Batch: 1, Duration: 15 * time.Second},
		{Name: "batch100", Batch: 100, Duration: time.Minute},
	}
	if len(got) != len(want) {
		t.Fatalf("ParsePhases = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("phase %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	if s := formatPhases(got); s != "r2000=2000/1/10s,max1=max/1/15s,batch100=max/100/1m0s" {
		t.Errorf("formatPhases = %q", s)
	}
	for _, bad := range []string{"", "x", "a=1/1", "a=-5/1/1s", "a=max/0/1s", "a=max/1/0s", "a=fast/1/1s"} {
		if _, err := ParsePhases(bad); err == nil {
			t.Errorf("ParsePhases(%q) = nil error", bad)
		}
	}
	if _, err := ParsePhases(DefaultPhases); err != nil {
		t.Errorf("DefaultPhases: %v", err)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCmd([]string{"-url", "http://10.0.0.1:80", "-subs", "1", "-phases", "a=max/1/1s", "-quiet"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("runCmd(non-loopback) = %v; want a loopback error", err)
	}
}

// TestEndToEnd runs the tool against a real node and a real redis-server:
// 200 held polls, a paced phase and a batched phase, in one process and
// then split over two generator processes; every message must arrive
// once. No timing is asserted.
func TestEndToEnd(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{})
	node := nodeproc.Start(t, "bench1", "-redis-url", rs.URL(), "-max-polls-per-client", "0", "-publish-secret", "s3")
	node.WaitReady()
	t.Setenv(childEnv, "1")
	t.Setenv("COMETBOX_BENCH_SECRET", "s3")
	dir := t.TempDir()

	for _, procs := range []int{1, 2} {
		out := filepath.Join(dir, "run"+strconv.Itoa(procs)+".json")
		var stdout, stderr bytes.Buffer
		args := []string{"-target", "cometbox", "-url", node.URL, "-subs", "200", "-procs", strconv.Itoa(procs),
			"-publishers", "4", "-source-addrs", "3", "-phases", "r2000=400/1/500ms,max1=max/1/500ms,batch100=max/20/500ms",
			"-pid", "node=" + strconv.Itoa(node.Pid()), "-redis", rs.Addr, "-settle", "100ms", "-drain", "5s",
			"-json", out, "-label", "cometbox", "-commit", "test"}
		if err := runCmd(args, &stdout, &stderr); err != nil {
			t.Fatalf("procs %d: runCmd: %v\nstderr:\n%s", procs, err, stderr.String())
		}
		var res bench.Result
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		f := res.Final
		if res.Connect.Connected != 200 || res.HeldReported != 200 {
			t.Errorf("procs %d: connected %d, held %d; want 200, 200", procs, res.Connect.Connected, res.HeldReported)
		}
		if f.Published == 0 || f.Delivered != f.Published || f.Lost != 0 || f.Dups != 0 || f.Extra != 0 || res.Errors != 0 {
			t.Errorf("procs %d: published %d delivered %d lost %d dups %d extra %d errors %d %v; want all delivered once, no errors",
				procs, f.Published, f.Delivered, f.Lost, f.Dups, f.Extra, res.Errors, f.ErrorSample)
		}
		if len(res.Phases) != 3 || res.Phases[2].Batch != 20 || res.Phases[0].Latency.Count == 0 {
			t.Fatalf("procs %d: phases %+v", procs, res.Phases)
		}
		if res.Memory == nil || len(res.Memory.Held) != 1 || res.Memory.Held[0].Pss <= 0 {
			t.Errorf("procs %d: memory %+v; want the node's", procs, res.Memory)
		}
		if res.Phases[1].RedisPerDelivered <= 0 || res.Phases[1].ServerCPU < 0 {
			t.Errorf("procs %d: max1 redis calls/msg %v, server CPU %v", procs, res.Phases[1].RedisPerDelivered, res.Phases[1].ServerCPU)
		}
		for _, want := range []string{"memory per held poll", "r2000", "batch100", "lost 0, duplicated 0"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("procs %d: table lacks %q:\n%s", procs, want, stdout.String())
			}
		}
	}

	// compare: medians of the two runs, a table and a chart
	var stdout bytes.Buffer
	svg := filepath.Join(dir, "latency.svg")
	if err := compareCmd([]string{"-svg", svg, filepath.Join(dir, "run1.json"), filepath.Join(dir, "run2.json")}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "| cometbox (2 runs) |") || !strings.Contains(stdout.String(), "delivered msg/s at max rate") {
		t.Errorf("compare output:\n%s", stdout.String())
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<polyline")) {
		t.Errorf("chart: %v %.200s", err, b)
	}
}

// TestGroupMode runs the tool in group mode against a real node: 3
// groups of 100 members, joined through the node's /groups route, long-
// polling and then holding event streams; every member gets every
// message of its group once, and the last member's copy of each group
// message is measured.
func TestGroupMode(t *testing.T) {
	rs := redisserver.Start(t, redisserver.Options{})
	node := nodeproc.Start(t, "bench1", "-redis-url", rs.URL(), "-max-polls-per-client", "0", "-publish-secret", "s3")
	node.WaitReady()
	t.Setenv("COMETBOX_BENCH_SECRET", "s3")
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) { groupMode(t, node, rs, stream) })
	}
}

func groupMode(t *testing.T, node *nodeproc.Node, rs *redisserver.Server, stream bool) {
	out := filepath.Join(t.TempDir(), "groups.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-target", "cometbox", "-url", node.URL, "-subs", "300", "-groups", "3", "-stream=" + strconv.FormatBool(stream),
		"-publishers", "2", "-phases", "g10=10/1/1s,gmax=max/1/500ms",
		"-pid", "node=" + strconv.Itoa(node.Pid()), "-redis", rs.Addr, "-settle", "100ms", "-drain", "5s",
		"-json", out, "-quiet"}
	if err := runCmd(args, &stdout, &stderr); err != nil {
		t.Fatalf("runCmd: %v\nstderr:\n%s", err, stderr.String())
	}
	var res bench.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	f := res.Final
	if f.Published == 0 || f.Published%100 != 0 || f.Delivered != f.Published || f.Lost != 0 || f.Dups != 0 || res.Errors != 0 {
		t.Fatalf("published %d delivered %d lost %d dups %d errors %d %v; want every copy once", f.Published, f.Delivered, f.Lost, f.Dups, res.Errors, f.ErrorSample)
	}
	g := res.Phases[0]
	if g.LastCopy == nil || g.LastCopy.Count < 5 || g.Latency.Count != 100*g.LastCopy.Count {
		t.Fatalf("g10: last copy %+v, copies %d; want one last copy per group message of 100 copies", g.LastCopy, g.Latency.Count)
	}
	if !strings.Contains(stdout.String(), "group mode: 3 groups of 100 members") {
		t.Errorf("table:\n%s", stdout.String())
	}
	var cmp bytes.Buffer
	if err := compareCmd([]string{"-groups", out}, &cmp); err != nil || !strings.Contains(cmp.String(), "| cometbox | g10 | 10 |") {
		t.Errorf("compare -groups = %v:\n%s", err, cmp.String())
	}
}
