package deployments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/redisserver"
	tc "github.com/cometbox/cometbox/internal/testclient"
	"github.com/cometbox/cometbox/internal/testenv"
)

const (
	alertsFile    = "deployments/prometheus/alerts.yml"
	dashboardFile = "deployments/grafana/dashboards/cometbox.json"
)

// query is one PromQL expression of the alerts or the dashboard.
type query struct {
	where, expr string
}

func alertRules(t *testing.T) []map[string]any {
	t.Helper()
	var rules []map[string]any
	for _, g := range list(t, alertsFile, loadYAML(t, alertsFile)[0], "groups") {
		for _, r := range list(t, alertsFile, g, "rules") {
			rules = append(rules, r.(map[string]any))
		}
	}
	return rules
}

func loadDashboard(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(readRepoFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// queries returns every expression of the alert rules and the dashboard
// (panel targets and variable queries).
func queries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, r := range alertRules(t) {
		qs = append(qs, query{alertsFile + " " + text(t, alertsFile, r, "alert"), text(t, alertsFile, r, "expr")})
	}
	d := loadDashboard(t)
	for _, p := range list(t, dashboardFile, d, "panels") {
		targets, _ := dig(p, "targets")
		for _, tg := range asList(targets) {
			qs = append(qs, query{fmt.Sprintf("%s panel %q", dashboardFile, text(t, dashboardFile, p, "title")), text(t, dashboardFile, tg, "expr")})
		}
	}
	for _, v := range list(t, dashboardFile, d, "templating", "list") {
		if q, ok := dig(v, "query", "query"); ok {
			qs = append(qs, query{fmt.Sprintf("%s variable %q", dashboardFile, text(t, dashboardFile, v, "name")), fmt.Sprint(q)})
		}
	}
	return qs
}

func asList(v any) []any { l, _ := v.([]any); return l }

// seriesRef finds the series an expression reads, with its label
// matchers: the project's metrics, the Go and process collectors,
// HAProxy's exporter, and Prometheus's own up.
var (
	seriesRef  = regexp.MustCompile(`\b(cometbox_\w+|go_\w+|process_\w+|haproxy_\w+|up)\b(\{[^}]*\})?`)
	matcherRef = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)\s*"`)
)

type seriesUse struct {
	where, name string
	labels      []string
	selector    string
}

func seriesUses(t *testing.T) []seriesUse {
	t.Helper()
	var uses []seriesUse
	for _, q := range queries(t) {
		for _, m := range seriesRef.FindAllStringSubmatch(q.expr, -1) {
			u := seriesUse{where: q.where, name: m[1], selector: m[2]}
			for _, l := range matcherRef.FindAllStringSubmatch(m[2], -1) {
				u.labels = append(u.labels, l[1])
			}
			uses = append(uses, u)
		}
	}
	return uses
}

// checkSeries fails for a series or a label an expression reads that the
// scrape does not have. job and instance are Prometheus's own labels.
func checkSeries(t *testing.T, uses []seriesUse, s scrape) {
	t.Helper()
	for _, u := range uses {
		if _, ok := s[u.name]; !ok {
			t.Errorf("%s reads %s, which is not exported", u.where, u.name)
			continue
		}
		for _, l := range u.labels {
			if l != "job" && l != "instance" && !s.hasLabel(u.name, l) {
				t.Errorf("%s reads %s%s, but %s has no label %q", u.where, u.name, u.selector, u.name, l)
			}
		}
	}
}

// TestMetricNames checks that every series the alert rules and the
// dashboard read is one a node exports, with the labels they match on.
// The node's list comes from two live nodes made to export every metric:
// one serving a publish, polls and a refused poll, one without Redis.
func TestMetricNames(t *testing.T) {
	var own []seriesUse
	for _, u := range seriesUses(t) {
		switch {
		case u.name == "up" || strings.HasPrefix(u.name, "haproxy_"):
			// Prometheus's own; HAProxy's are checked by TestTopology.
		default:
			own = append(own, u)
			if !strings.Contains(u.selector, `job="cometbox"`) {
				t.Errorf("%s: %s%s does not select job=\"cometbox\"", u.where, u.name, u.selector)
			}
		}
	}

	busy := nodeproc.Start(t, "metrics", "-max-polls-per-client", "1", "-poll-timeout", "5s", "-demo=false")
	deadRedis := fmt.Sprintf("redis://127.0.0.1:%d", redisserver.FreePort(t))
	broken := nodeproc.Start(t, "no-redis", "-redis-url", deadRedis)
	busy.WaitReady()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if st, body, err := tc.Publish(ctx, busy.URL, "", "application/xml", tc.XML("alice", "hello")); err != nil || st != http.StatusOK {
		t.Fatalf("publish: %d %s %v", st, body, err)
	}
	if a, err := tc.Poll(ctx, busy.URL, "alice", "", ""); err != nil || len(a.Messages) != 1 {
		t.Fatalf("poll: %+v %v", a, err)
	}
	holdCtx, release := context.WithCancel(ctx)
	held := make(chan struct{})
	go func() {
		defer close(held)
		_, _ = tc.Poll(holdCtx, busy.URL, "bob", "", "")
	}()
	waitFor(t, 5*time.Second, "a held poll", func() bool {
		return getScrape(t, busy.OpsURL()+"/metrics").sum("cometbox_polls_waiting", nil) == 1
	})
	if a, err := tc.Poll(ctx, busy.URL, "bob", "", ""); err != nil || a.Status != http.StatusTooManyRequests {
		t.Fatalf("second poll of one client: %d %v; want 429", a.Status, err)
	}
	release()
	<-held
	waitFor(t, 10*time.Second, "Redis errors on the node without Redis", func() bool {
		return len(getScrape(t, broken.OpsURL()+"/metrics")["cometbox_redis_errors_total"]) > 0
	})

	s := getScrape(t, busy.OpsURL()+"/metrics")
	for name, samples := range getScrape(t, broken.OpsURL()+"/metrics") {
		s[name] = append(s[name], samples...)
	}
	checkSeries(t, own, s)
}

// TestPrometheus runs promtool on the configuration and the rules, their
// unit tests, and every dashboard expression; and checks that the alerts
// the deployment promises exist, each with a test that makes it fire.
func TestPrometheus(t *testing.T) {
	rules := alertRules(t)
	names := map[string]bool{}
	for _, r := range rules {
		name := text(t, alertsFile, r, "alert")
		names[name] = true
		text(t, alertsFile, r, "labels", "severity")
		text(t, alertsFile, r, "annotations", "summary")
		text(t, alertsFile, r, "annotations", "description")
	}
	for _, want := range []string{"CometboxNodeDown", "CometboxRedisErrors", "CometboxPubSubReconnectStorm", "CometboxPollErrorRatio", "CometboxDeliveryLatencyHigh"} {
		if !names[want] {
			t.Errorf("%s: no alert %s", alertsFile, want)
		}
	}
	const testFile = "deployments/prometheus/alerts_test.yml"
	fires := map[string]bool{}
	for _, tst := range list(t, testFile, loadYAML(t, testFile)[0], "tests") {
		for _, a := range list(t, testFile, tst, "alert_rule_test") {
			if exp, _ := dig(a, "exp_alerts"); len(asList(exp)) > 0 {
				fires[text(t, testFile, a, "alertname")] = true
			}
		}
	}
	for name := range names {
		if !fires[name] {
			t.Errorf("%s: no test where %s fires", testFile, name)
		}
	}

	promtool := testenv.LookPath(t, "promtool", "apt-get install prometheus")
	dir := repoPath("deployments/prometheus")
	run(t, dir, promtool, "check", "config", "prometheus.yml")
	run(t, dir, promtool, "check", "rules", "alerts.yml")
	run(t, dir, promtool, "test", "rules", "alerts_test.yml")

	// The dashboard's expressions, as recording rules, with Grafana's
	// variables replaced by what they stand for.
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	for i, q := range queries(t) {
		if !strings.HasPrefix(q.where, dashboardFile) {
			continue
		}
		expr, _ := json.Marshal(grafanaVars.Replace(q.expr))
		if strings.HasPrefix(q.expr, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		fmt.Fprintf(&b, "      - record: dashboard_query_%d\n        expr: %s\n", i, expr)
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "", promtool, "check", "rules", f)
}

// TestGrafana checks the provisioning files and the dashboard's shape:
// unique ids, panels inside the grid and not overlapping, every panel
// on the datasource variable, every variable it uses defined.
func TestGrafana(t *testing.T) {
	const dw = "deployments/grafana/provisioning/datasources/prometheus.yml"
	ds := loadYAML(t, dw)[0]
	if typ := text(t, dw, ds, "datasources", 0, "type"); typ != "prometheus" {
		t.Errorf("%s: datasource type %q", dw, typ)
	}
	const pw = "deployments/grafana/provisioning/dashboards/cometbox.yml"
	if typ := text(t, pw, loadYAML(t, pw)[0], "providers", 0, "type"); typ != "file" {
		t.Errorf("%s: provider type %q; want file", pw, typ)
	}

	d := loadDashboard(t)
	if uid := text(t, dashboardFile, d, "uid"); uid != "cometbox" {
		t.Errorf("%s: uid %q", dashboardFile, uid)
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range list(t, dashboardFile, d, "templating", "list") {
		vars[text(t, dashboardFile, v, "name")] = true
	}
	if !vars["datasource"] {
		t.Fatalf("%s: no datasource variable", dashboardFile)
	}

	ids := map[string]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	varRef := regexp.MustCompile(`\$\{?(\w+)`)
	for _, p := range list(t, dashboardFile, d, "panels") {
		title := text(t, dashboardFile, p, "title")
		w := fmt.Sprintf("%s panel %q", dashboardFile, title)
		id := text(t, w, p, "id")
		if ids[id] {
			t.Errorf("%s: id %s used twice", w, id)
		}
		ids[id] = true
		gp := mapping(t, w, p, "gridPos")
		x, y, wd, h := int(gp["x"].(float64)), int(gp["y"].(float64)), int(gp["w"].(float64)), int(gp["h"].(float64))
		if x < 0 || wd <= 0 || h <= 0 || x+wd > 24 {
			t.Errorf("%s: gridPos %v outside the 24-column grid", w, gp)
		}
		for i := x; i < x+wd; i++ {
			for j := y; j < y+h; j++ {
				if other, ok := used[cell{i, j}]; ok {
					t.Errorf("%s overlaps panel %q", w, other)
					i, j = x+wd, y+h
					continue
				}
				used[cell{i, j}] = title
			}
		}
		if text(t, w, p, "type") == "row" {
			continue
		}
		if uid := text(t, w, p, "datasource", "uid"); uid != "${datasource}" {
			t.Errorf("%s: datasource %q; want ${datasource}", w, uid)
		}
		targets := list(t, w, p, "targets")
		refs := map[string]bool{}
		for _, tg := range targets {
			ref := text(t, w, tg, "refId")
			if refs[ref] {
				t.Errorf("%s: refId %s used twice", w, ref)
			}
			refs[ref] = true
			expr := text(t, w, tg, "expr")
			for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
				if !vars[m[1]] {
					t.Errorf("%s: uses $%s, which is not a variable of the dashboard", w, m[1])
				}
			}
		}
		if len(targets) == 0 {
			t.Errorf("%s: no query", w)
		}
	}
	// However many nodes there are: the node variable lists what
	// Prometheus finds (DNS in docker-compose, the pods in Kubernetes),
	// all of them by default, and no query names one.
	for _, v := range list(t, dashboardFile, d, "templating", "list") {
		if text(t, dashboardFile, v, "name") != "instance" {
			continue
		}
		if q := text(t, dashboardFile, v, "query", "query"); !strings.HasPrefix(q, "label_values(") {
			t.Errorf("%s: variable instance is %q; want the label_values Prometheus finds", dashboardFile, q)
		}
		if text(t, dashboardFile, v, "multi") != "true" || text(t, dashboardFile, v, "includeAll") != "true" {
			t.Errorf("%s: variable instance must allow several nodes and All", dashboardFile)
		}
	}
	fixed := regexp.MustCompile(`instance\s*=~?\s*"[^"$]`)
	for _, q := range queries(t) {
		if strings.HasPrefix(q.where, dashboardFile) && fixed.MatchString(q.expr) {
			t.Errorf("%s: %s names a node", q.where, q.expr)
		}
	}
	var titles []string
	for _, p := range list(t, dashboardFile, d, "panels") {
		titles = append(titles, text(t, dashboardFile, p, "title"))
	}
	for _, want := range []string{"Polls held", "Delivery latency", "Redis errors by operation", "Pub/sub reconnections", "Poll error ratio"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("%s: no panel %q", dashboardFile, want)
		}
	}
}
