package deployments_test

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The drain's timings, as README.md's "The drain, everywhere" gives them:
// on SIGTERM a node serves as usual for the drain delay, then answers its
// held polls spread over the drain spread and exits, about delay + spread
// after the signal. The shutdown timeout runs from the end of the delay
// and bounds everything after it, the spread included, so the node exits
// at most delay + shutdown timeout after the signal.

const (
	// shutdownMargin is what every grace period keeps above the node's
	// own bound on its drain (drain delay + shutdown timeout).
	shutdownMargin = 5 * time.Second
	// inFlightMargin is what the shutdown timeout keeps above the spread,
	// for a request begun just before the spread ends (a publish waits at
	// most -durable-timeout, 1s, for Redis's confirmation).
	inFlightMargin = 2 * time.Second
)

// drainTimings are one deployment's drain settings and the grace period
// after which whoever sends SIGTERM kills.
type drainTimings struct {
	delay, spread, shutdown, grace time.Duration
	// graceSetting is the grace period as its file writes it, e.g.
	// "stop_grace_period: 30s".
	graceSetting string
}

// check fails when the grace period does not cover the drain, or the
// shutdown timeout does not cover the spread.
func (d drainTimings) check(t *testing.T, where string) {
	t.Helper()
	if d.spread <= 0 {
		t.Errorf("%s: COMETBOX_DRAIN_SPREAD %v; want a spread, or every held poll is answered at the same moment", where, d.spread)
	}
	if need := d.spread + inFlightMargin; d.shutdown < need {
		t.Errorf("%s: COMETBOX_SHUTDOWN_TIMEOUT %v; want at least the drain spread + %v = %v: it runs from the end of the delay, and cuts whatever is left", where, d.shutdown, inFlightMargin, need)
	}
	if need := d.delay + d.shutdown + shutdownMargin; d.grace < need {
		t.Errorf("%s: %s; want at least drain delay + shutdown timeout + %v = %v (the node exits about delay + spread = %v after SIGTERM, at most delay + shutdown timeout)",
			where, d.graceSetting, shutdownMargin, need, d.delay+d.spread)
	}
}

// exits is how long after SIGTERM the node exits: about, and at most.
func (d drainTimings) exits() (about, most time.Duration) {
	return d.delay + d.spread, d.delay + d.shutdown
}

// composeTimings reads the drain of docker-compose.yml's node service.
func composeTimings(t *testing.T) drainTimings {
	t.Helper()
	const w = "docker-compose.yml: " + nodeService
	svc := mapping(t, w, loadYAML(t, "docker-compose.yml")[0], "services", nodeService)
	env := mapping(t, w, svc, "environment")
	d := func(k string) time.Duration { return duration(t, w+" "+k, text(t, w, env, k)) }
	grace := text(t, w, svc, "stop_grace_period")
	return drainTimings{
		delay: d("COMETBOX_DRAIN_DELAY"), spread: d("COMETBOX_DRAIN_SPREAD"), shutdown: d("COMETBOX_SHUTDOWN_TIMEOUT"),
		grace: duration(t, w+" stop_grace_period", grace), graceSetting: "stop_grace_period: " + grace,
	}
}

// kubernetesTimings reads the drain of the Deployment and its ConfigMap.
func kubernetesTimings(t *testing.T) drainTimings {
	t.Helper()
	const dw, cw = "deployments/kubernetes/deployment.yaml", "deployments/kubernetes/configmap.yaml"
	data := mapping(t, cw, loadYAML(t, cw)[0], "data")
	d := func(k string) time.Duration { return duration(t, cw+" "+k, text(t, cw, data, k)) }
	grace := text(t, dw, loadYAML(t, dw)[0], "spec", "template", "spec", "terminationGracePeriodSeconds")
	s, err := strconv.Atoi(grace)
	if err != nil {
		t.Fatalf("%s: terminationGracePeriodSeconds %q: %v", dw, grace, err)
	}
	return drainTimings{
		delay: d("COMETBOX_DRAIN_DELAY"), spread: d("COMETBOX_DRAIN_SPREAD"), shutdown: d("COMETBOX_SHUTDOWN_TIMEOUT"),
		grace: time.Duration(s) * time.Second, graceSetting: "terminationGracePeriodSeconds: " + grace,
	}
}

// systemdTimings reads the drain of the unit and its environment file.
func systemdTimings(t *testing.T) drainTimings {
	t.Helper()
	const uw, ew = "deployments/systemd/cometbox.service", "deployments/systemd/cometbox.env.example"
	env := loadEnvFile(t, ew)
	d := func(k string) time.Duration { return duration(t, ew+" "+k, fmt.Sprint(env[k])) }
	grace := strings.Join(loadUnit(t, uw)["Service"]["TimeoutStopSec"], "")
	return drainTimings{
		delay: d("COMETBOX_DRAIN_DELAY"), spread: d("COMETBOX_DRAIN_SPREAD"), shutdown: d("COMETBOX_SHUTDOWN_TIMEOUT"),
		grace: duration(t, uw+" TimeoutStopSec", grace), graceSetting: "TimeoutStopSec=" + grace,
	}
}

var seconds = regexp.MustCompile(`(\d+) s\b`)

// TestDrainTable holds the table of README.md's "The drain, everywhere"
// to the files it describes, and each of them to the drain's order.
func TestDrainTable(t *testing.T) {
	const rel = "deployments/README.md"
	files := map[string]drainTimings{
		"docker-compose": composeTimings(t),
		"Kubernetes":     kubernetesTimings(t),
		"systemd":        systemdTimings(t),
	}
	var header []string
	rows := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	in := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## The drain, everywhere"
		case !in || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|--"):
		case header == nil:
			header = cells(line)
		default:
			c := cells(line)
			rows[c[0]] = c
		}
	}
	want := []string{"where", "detection", "drain delay", "spread", "exits after SIGTERM", "shutdown timeout", "kill after"}
	if strings.Join(header, "|") != strings.Join(want, "|") {
		t.Fatalf("%s: drain table columns %q; want %q", rel, header, want)
	}
	for _, where := range sortedKeys(files) {
		d := files[where]
		d.check(t, where)
		row, ok := rows[where]
		if !ok {
			t.Errorf("%s: the drain table has no row %q", rel, where)
			continue
		}
		secs := func(col int) []time.Duration {
			var out []time.Duration
			for _, m := range seconds.FindAllStringSubmatch(row[col], -1) {
				n, _ := strconv.Atoi(m[1])
				out = append(out, time.Duration(n)*time.Second)
			}
			return out
		}
		about, most := d.exits()
		for _, c := range []struct {
			col  int
			want []time.Duration
		}{
			{2, []time.Duration{d.delay}}, {3, []time.Duration{d.spread}},
			{4, []time.Duration{about, most}}, {5, []time.Duration{d.shutdown}},
		} {
			if got := secs(c.col); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s: drain table, %s, %s: %q; the files say %v", rel, where, header[c.col], row[c.col], c.want)
			}
		}
		if got, want := row[6], "`"+d.graceSetting+"`"; got != want {
			t.Errorf("%s: drain table, %s, kill after: %s; the files say %s", rel, where, got, want)
		}
	}
	for where := range rows {
		if _, ok := files[where]; !ok {
			t.Errorf("%s: drain table row %q describes no file the test knows", rel, where)
		}
	}
}

// cells splits a Markdown table row.
func cells(line string) []string {
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
