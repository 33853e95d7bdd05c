package metrics_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometbox/cometbox/pkg/metrics"
)

func TestLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg)
	touchAll(m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestNilIsNoop(t *testing.T) {
	var m *metrics.Metrics
	m.PollStarted()(metrics.OutcomeGone)
	m.StreamOpened()()
	m.Published(3)
	m.Delivered(time.Now(), time.Now())
	m.RedisError("x")
	m.HTTPRequest("/", 500)
}

func TestPollGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	done := m.PollStarted()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cometbox_polls_waiting Long-polls held by this node right now.
# TYPE cometbox_polls_waiting gauge
cometbox_polls_waiting 1
`), "cometbox_polls_waiting"); err != nil {
		t.Error(err)
	}
	done(metrics.OutcomeMessages)
	if n := testutil.CollectAndCount(reg, "cometbox_poll_duration_seconds"); n != 1 {
		t.Errorf("poll duration series = %d; want 1", n)
	}
}

// TestREADMEListsEveryMetric keeps the README's metrics table true.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	touchAll(metrics.New(reg))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 15 {
		t.Fatalf("only %d metric families gathered", len(families))
	}
	for _, f := range families {
		if !strings.Contains(string(readme), "| `"+f.GetName()) {
			t.Errorf("README.md does not list %s", f.GetName())
		}
	}
}

// touchAll gives every labelled collector a series, so that gathering
// returns every family.
func touchAll(m *metrics.Metrics) {
	m.StreamEvents("ping", 1)
	m.PollStarted()(metrics.OutcomeTimeout)
	m.RedisError("read")
	m.HTTPRequest("/poll", 200)
	m.LimitRejected("polls_per_client")
	m.SetLimit("polls_per_client", 4)
	m.SetBuildInfo("test", "embedded", "node-1")
	m.PresenceChanges(1, 1)
	m.WebhookRequest("ok")
	m.WebhookDropped("too_old", 1)
}
