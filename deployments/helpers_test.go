package deployments_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodeproc.Cleanup()
	os.Exit(code)
}

// repoPath returns the path of a file of the repository, given relative
// to its root (tests run in deployments/).
func repoPath(rel string) string { return filepath.Join("..", filepath.FromSlash(rel)) }

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadYAML decodes every document of a YAML file (merge keys resolved).
func loadYAML(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readRepoFile(t, rel)))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", rel)
	}
	return docs
}

// dig follows keys (string) and indexes (int) into decoded YAML or JSON.
func dig(v any, path ...any) (any, bool) {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil, false
			}
			v = l[k]
		}
	}
	return v, true
}

// field is dig for a value that must be there.
func field(t *testing.T, where string, v any, path ...any) any {
	t.Helper()
	got, ok := dig(v, path...)
	if !ok {
		t.Fatalf("%s: no %v", where, path)
	}
	return got
}

// text is field for a scalar, as a string.
func text(t *testing.T, where string, v any, path ...any) string {
	t.Helper()
	switch s := field(t, where, v, path...).(type) {
	case string:
		return s
	case int, bool, float64:
		return fmt.Sprint(s)
	default:
		t.Fatalf("%s: %v is %T, not a scalar", where, path, s)
		return ""
	}
}

func list(t *testing.T, where string, v any, path ...any) []any {
	t.Helper()
	l, ok := field(t, where, v, path...).([]any)
	if !ok {
		t.Fatalf("%s: %v is not a list", where, path)
	}
	return l
}

func mapping(t *testing.T, where string, v any, path ...any) map[string]any {
	t.Helper()
	m, ok := field(t, where, v, path...).(map[string]any)
	if !ok {
		t.Fatalf("%s: %v is not a mapping", where, path)
	}
	return m
}

func duration(t *testing.T, where, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %q is not a duration: %v", where, s, err)
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// haproxyConfig is what the tests read from deployments/haproxy/haproxy.cfg.
type haproxyConfig struct {
	path     string
	env      map[string]string   // "${NAME-default}" references: name → default
	timeouts map[string]string   // the defaults section's "timeout NAME VALUE"
	servers  map[string][]string // backend → server addresses as written
	// templates is backend → server-template addresses as written.
	templates map[string][]string
	// defaultServer is backend → its default-server line as written.
	defaultServer map[string]string
}

var envRef = regexp.MustCompile(`\$\{(\w+)(?:-([^}]*))?\}`)

func loadHAProxy(t *testing.T) haproxyConfig {
	t.Helper()
	const rel = "deployments/haproxy/haproxy.cfg"
	c := haproxyConfig{path: repoPath(rel), env: map[string]string{}, timeouts: map[string]string{}, servers: map[string][]string{},
		templates: map[string][]string{}, defaultServer: map[string]string{}}
	var section, name string
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, m := range envRef.FindAllStringSubmatch(line, -1) {
			c.env[m[1]] = m[2]
		}
		if line[0] != ' ' && line[0] != '\t' {
			section, name = f[0], ""
			if len(f) > 1 {
				name = f[1]
			}
			continue
		}
		switch {
		case section == "defaults" && f[0] == "timeout" && len(f) == 3:
			c.timeouts[f[1]] = f[2]
		case section == "backend" && f[0] == "server" && len(f) >= 3:
			c.servers[name] = append(c.servers[name], strings.Trim(f[2], `"`))
		case section == "backend" && f[0] == "server-template" && len(f) >= 4:
			c.templates[name] = append(c.templates[name], strings.Trim(f[3], `"`))
		case section == "backend" && f[0] == "default-server":
			c.defaultServer[name] = strings.Join(f[1:], " ")
		}
	}
	return c
}

// expand replaces the config's "${NAME-default}" references by their
// defaults.
func (c haproxyConfig) expand(s string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		return c.env[envRef.FindStringSubmatch(ref)[1]]
	})
}

// detection is the longest a node answering 503 on /readyz stays in the
// rotation with the config's defaults: LB_CHECK_FALL checks LB_CHECK_INTER
// apart, plus one check timeout.
func (c haproxyConfig) detection(t *testing.T) time.Duration {
	t.Helper()
	inter := duration(t, "LB_CHECK_INTER", c.env["LB_CHECK_INTER"])
	fall, err := strconv.Atoi(c.env["LB_CHECK_FALL"])
	if err != nil {
		t.Fatalf("LB_CHECK_FALL default %q: %v", c.env["LB_CHECK_FALL"], err)
	}
	return time.Duration(fall)*inter + duration(t, "timeout check", c.timeouts["check"])
}

// scrape reads a Prometheus text exposition: for each sample name, the
// label names seen on its samples, and the sum of its values by the
// given label filter.
type scrape map[string][]sample

type sample struct {
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func getScrape(t *testing.T, url string) scrape {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	s := scrape{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := sampleLine.FindStringSubmatch(sc.Text())
		if m == nil || strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		s[m[1]] = append(s[m[1]], sample{labels, v})
	}
	return s
}

// sum adds the samples of name whose labels include match.
func (s scrape) sum(name string, match map[string]string) float64 {
	var total float64
next:
	for _, smp := range s[name] {
		for k, v := range match {
			if smp.labels[k] != v {
				continue next
			}
		}
		total += smp.value
	}
	return total
}

// hasLabel reports whether some sample of name carries label.
func (s scrape) hasLabel(name, label string) bool {
	for _, smp := range s[name] {
		if _, ok := smp.labels[label]; ok {
			return true
		}
	}
	return false
}

// waitFor polls cond every 20ms until it holds or d passes.
var waitFor = testenv.WaitFor

// lockedBuffer collects a process's output.
type lockedBuffer = testenv.Buffer

// run runs a tool and fails the test with its output if it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	nodeEnvOnce sync.Once
	nodeEnvVars map[string]bool
	nodeEnvErr  error
)

// nodeEnv returns the COMETBOX_* variables the node reads, from its own
// `cometbox -h`.
func nodeEnv(t *testing.T) map[string]bool {
	t.Helper()
	bin := nodeproc.Binary(t)
	nodeEnvOnce.Do(func() {
		out, err := exec.Command(bin, "-h").CombinedOutput()
		if err != nil {
			nodeEnvErr = fmt.Errorf("cometbox -h: %v\n%s", err, out)
			return
		}
		nodeEnvVars = map[string]bool{}
		for _, m := range regexp.MustCompile(`env (COMETBOX_\w+)`).FindAllStringSubmatch(string(out), -1) {
			nodeEnvVars[m[1]] = true
		}
		if len(nodeEnvVars) == 0 {
			nodeEnvErr = fmt.Errorf("cometbox -h names no COMETBOX_ variable:\n%s", out)
		}
	})
	if nodeEnvErr != nil {
		t.Fatal(nodeEnvErr)
	}
	return nodeEnvVars
}

// checkNodeEnv fails for a variable the node does not read (a typo the
// node would only warn about), and for values it refuses: it runs
// `cometbox -version` with the variables, which validates them all.
func checkNodeEnv(t *testing.T, where string, vars map[string]any) {
	t.Helper()
	known := nodeEnv(t)
	cmd := exec.Command(nodeproc.Binary(t), "-version")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range sortedKeys(vars) {
		if !strings.HasPrefix(k, "COMETBOX_") {
			continue
		}
		if !known[k] {
			t.Errorf("%s: %s is not a variable the node reads (cometbox -h)", where, k)
		}
		if v, ok := vars[k].(string); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: the node refuses these settings: %v\n%s", where, err, out)
	}
}
