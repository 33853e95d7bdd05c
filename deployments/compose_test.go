package deployments_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// nodeService is docker-compose.yml's one node service: the name Docker's
// DNS answers with every replica's address, which haproxy.cfg and
// prometheus.yml look up.
const nodeService = "cometbox"

// TestCompose checks docker-compose.yml's structure: the services the
// issue asks for, and that they fit each other and the files they mount.
func TestCompose(t *testing.T) {
	const where = "docker-compose.yml"
	doc := loadYAML(t, where)[0]
	services := mapping(t, where, doc, "services")
	for _, name := range []string{"redis", nodeService, "lb", "prometheus", "grafana"} {
		if _, ok := services[name]; !ok {
			t.Errorf("%s: no service %q", where, name)
		}
	}
	for name := range services {
		if strings.HasPrefix(name, nodeService+"-") {
			t.Errorf("%s: service %q: the nodes are one service, %q, scaled with --scale", where, name, nodeService)
		}
	}
	lb := loadHAProxy(t)
	lbDetect := lb.detection(t)
	serverTimeout := duration(t, "haproxy timeout server", lb.timeouts["server"])
	// The node's ports, as its environment sets them.
	nodePort, adminPort := composeNodePorts(t)

	t.Run("redis", func(t *testing.T) {
		cmd := list(t, where, services, "redis", "command")
		args := make([]string, len(cmd))
		for i, a := range cmd {
			args[i] = fmt.Sprint(a)
		}
		for flag, want := range map[string]string{"--appendonly": "yes", "--maxmemory-policy": "noeviction"} {
			i := slices.Index(args, flag)
			if i < 0 || i+1 >= len(args) || args[i+1] != want {
				t.Errorf("redis command %v: want %s %s", args, flag, want)
			}
		}
		if !slices.ContainsFunc(list(t, where, services, "redis", "volumes"), func(v any) bool {
			return strings.HasSuffix(fmt.Sprint(v), ":/data")
		}) {
			t.Error("redis: no volume on /data: the append-only file would not survive the container")
		}
		if _, ok := dig(services, "redis", "healthcheck", "test"); !ok {
			t.Error("redis: no healthcheck (the nodes wait for service_healthy)")
		}
	})

	t.Run(nodeService, func(t *testing.T) {
		w := where + ": " + nodeService
		svc := mapping(t, w, services, nodeService)
		if ctx := text(t, w, svc, "build", "context"); ctx != "." {
			t.Errorf("%s: build context %q; want . (the Dockerfile at the root)", w, ctx)
		}
		if n, err := strconv.Atoi(text(t, w, svc, "deploy", "replicas")); err != nil || n < 2 {
			t.Errorf("%s: deploy.replicas %v; want at least 2, so that a drain has somewhere to send polls", w, n)
		}
		// Whatever every replica would share stops it from scaling: a
		// host name (and so a node name), a container name, a host port.
		for _, k := range []string{"hostname", "container_name", "ports"} {
			if _, ok := dig(svc, k); ok {
				t.Errorf("%s: sets %s, which every replica would share", w, k)
			}
		}
		env := mapping(t, w, svc, "environment")
		for _, k := range []string{"COMETBOX_REDIS_URL", "COMETBOX_PUBLISH_SECRET", "COMETBOX_TOKEN_SECRET", "COMETBOX_LISTEN", "COMETBOX_ADMIN_LISTEN",
			"COMETBOX_DRAIN_DELAY", "COMETBOX_DRAIN_SPREAD", "COMETBOX_SHUTDOWN_TIMEOUT", "COMETBOX_LOG_FORMAT"} {
			if _, ok := env[k]; !ok {
				t.Errorf("%s: no %s", w, k)
			}
		}
		if v, ok := env["COMETBOX_NODE_NAME"]; ok {
			t.Errorf("%s: COMETBOX_NODE_NAME %q names every replica alike; leave it to the container's host name", w, v)
		}
		expanded := map[string]any{}
		for k, v := range env {
			expanded[k] = expandCompose(fmt.Sprint(v))
		}
		checkNodeEnv(t, w, expanded)
		if got := text(t, w, env, "COMETBOX_LOG_FORMAT"); got != "json" {
			t.Errorf("%s: COMETBOX_LOG_FORMAT %q; want json", w, got)
		}
		var exposed []string
		for _, p := range list(t, w, svc, "expose") {
			exposed = append(exposed, fmt.Sprint(p))
		}
		for _, p := range []string{nodePort, adminPort} {
			if !slices.Contains(exposed, p) {
				t.Errorf("%s: expose %v; want the node's ports %s and %s", w, exposed, nodePort, adminPort)
			}
		}
		// Secrets come from .env: a required reference, never a value.
		for _, k := range []string{"COMETBOX_PUBLISH_SECRET", "COMETBOX_TOKEN_SECRET"} {
			if v := text(t, w, env, k); !requiredRef.MatchString(v) || requiredRef.FindString(v) != v {
				t.Errorf("%s: %s = %q; want only a required ${VAR:?...} reference to .env", w, k, v)
			}
		}
		if url := text(t, w, env, "COMETBOX_REDIS_URL"); !strings.HasPrefix(url, "redis://:${") || !strings.HasSuffix(url, "@redis:6379/0") {
			t.Errorf("%s: COMETBOX_REDIS_URL %q; want redis://:${REDIS_PASSWORD...}@redis:6379/0", w, url)
		}
		delay := duration(t, w, text(t, w, env, "COMETBOX_DRAIN_DELAY"))
		if delay <= lbDetect {
			t.Errorf("%s: COMETBOX_DRAIN_DELAY %v; want more than HAProxy takes to notice a 503 on /readyz (%v)", w, delay, lbDetect)
		}
		if poll := duration(t, w, text(t, w, env, "COMETBOX_POLL_TIMEOUT")); poll >= serverTimeout {
			t.Errorf("%s: COMETBOX_POLL_TIMEOUT %v; want below HAProxy's timeout server %v", w, poll, serverTimeout)
		}
		composeTimings(t).check(t, w)
		if text(t, w, svc, "read_only") != "true" {
			t.Errorf("%s: want read_only: true", w)
		}
		if !slices.Contains(list(t, w, svc, "security_opt"), any("no-new-privileges:true")) {
			t.Errorf("%s: want security_opt no-new-privileges:true", w)
		}
		if c := text(t, w, svc, "depends_on", "redis", "condition"); c != "service_healthy" {
			t.Errorf("%s: depends_on redis %q; want service_healthy", w, c)
		}
	})

	t.Run("lb", func(t *testing.T) {
		w := where + ": lb"
		if !strings.HasPrefix(text(t, w, services, "lb", "image"), "haproxy:") {
			t.Errorf("%s: image %q; want haproxy", w, text(t, w, services, "lb", "image"))
		}
		mountsFile(t, w, list(t, w, services, "lb", "volumes"), "./deployments/haproxy/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg")
		// The config's defaults find the node service's replicas on
		// Docker's DNS, and check them on their admin port.
		for k, want := range map[string]string{
			"NODE_SERVICE": nodeService, "NODE_PORT": nodePort, "NODE_ADMIN_PORT": adminPort, "LB_DNS_ADDR": "127.0.0.11:53",
		} {
			if got := lb.env[k]; got != want {
				t.Errorf("haproxy.cfg: ${%s-%s}; want the default %q (docker-compose.yml)", k, got, want)
			}
		}
		if n, err := strconv.Atoi(lb.env["LB_MAX_NODES"]); err != nil || n < 10 {
			t.Errorf("haproxy.cfg: ${LB_MAX_NODES-%s}; want room for at least 10 nodes", lb.env["LB_MAX_NODES"])
		}
		if !slices.ContainsFunc(list(t, w, services, "lb", "ports"), func(p any) bool {
			return strings.HasSuffix(fmt.Sprint(p), ":"+strings.TrimPrefix(lb.env["LB_BIND_ADDR"], ":"))
		}) {
			t.Errorf("%s: the balancer's port %s is not published", w, lb.env["LB_BIND_ADDR"])
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		w := where + ": prometheus"
		mountsFile(t, w, list(t, w, services, "prometheus", "volumes"), "./deployments/prometheus", "/etc/prometheus")
		if !slices.Contains(list(t, w, services, "prometheus", "command"), any("--config.file=/etc/prometheus/prometheus.yml")) {
			t.Errorf("%s: want --config.file=/etc/prometheus/prometheus.yml", w)
		}
		const pw = "deployments/prometheus/prometheus.yml"
		jobs := map[string]any{}
		for _, job := range list(t, pw, loadYAML(t, pw)[0], "scrape_configs") {
			jobs[text(t, pw, job, "job_name")] = job
		}
		// Every replica of the node service, on its admin port, found on
		// Docker's DNS: no list to keep.
		sd := list(t, pw, jobs["cometbox"], "dns_sd_configs")
		if len(sd) != 1 {
			t.Fatalf("%s: job cometbox has %d dns_sd_configs; want one", pw, len(sd))
		}
		names := list(t, pw, sd[0], "names")
		if len(names) != 1 || names[0] != nodeService || text(t, pw, sd[0], "type") != "A" || text(t, pw, sd[0], "port") != adminPort {
			t.Errorf("%s: job cometbox dns_sd_configs %v; want names [%s], type A, port %s (the admin port)", pw, sd[0], nodeService, adminPort)
		}
		if _, ok := dig(jobs["cometbox"], "static_configs"); ok {
			t.Errorf("%s: job cometbox lists targets by hand", pw)
		}
		var targets []string
		for _, sc := range list(t, pw, jobs["haproxy"], "static_configs") {
			for _, tg := range list(t, pw, sc, "targets") {
				targets = append(targets, fmt.Sprint(tg))
			}
		}
		if want := []string{"lb" + lb.env["LB_STATS_ADDR"]}; !slices.Equal(targets, want) {
			t.Errorf("%s: job haproxy scrapes %v; want %v", pw, targets, want)
		}
	})

	t.Run("grafana", func(t *testing.T) {
		w := where + ": grafana"
		vols := list(t, w, services, "grafana", "volumes")
		mountsFile(t, w, vols, "./deployments/grafana/provisioning", "/etc/grafana/provisioning")
		mountsFile(t, w, vols, "./deployments/grafana/dashboards", "/etc/grafana/dashboards")
		const pw = "deployments/grafana/provisioning/dashboards/cometbox.yml"
		if p := text(t, pw, loadYAML(t, pw)[0], "providers", 0, "options", "path"); p != "/etc/grafana/dashboards" {
			t.Errorf("%s: provider path %q; want the mounted /etc/grafana/dashboards", pw, p)
		}
		const dw = "deployments/grafana/provisioning/datasources/prometheus.yml"
		if u := text(t, dw, loadYAML(t, dw)[0], "datasources", 0, "url"); u != "http://prometheus:9090" {
			t.Errorf("%s: url %q; want the compose service http://prometheus:9090", dw, u)
		}
		if v := text(t, w, services, "grafana", "environment", "GF_SECURITY_ADMIN_PASSWORD"); requiredRef.FindString(v) != v {
			t.Errorf("%s: GF_SECURITY_ADMIN_PASSWORD %q; want a required ${VAR:?...} reference to .env", w, v)
		}
	})
}

// composeNodePorts is the node service's public and admin ports, from
// COMETBOX_LISTEN and COMETBOX_ADMIN_LISTEN.
func composeNodePorts(t *testing.T) (port, admin string) {
	t.Helper()
	const w = "docker-compose.yml: " + nodeService
	env := mapping(t, w, loadYAML(t, "docker-compose.yml")[0], "services", nodeService, "environment")
	p := func(k string) string {
		v := text(t, w, env, k)
		_, port, err := net.SplitHostPort(v)
		if err != nil || port == "" {
			t.Fatalf("%s: %s %q: want host:port or :port", w, k, v)
		}
		return port
	}
	port, admin = p("COMETBOX_LISTEN"), p("COMETBOX_ADMIN_LISTEN")
	if port == admin {
		t.Fatalf("%s: COMETBOX_LISTEN and COMETBOX_ADMIN_LISTEN on one port %s", w, port)
	}
	return port, admin
}

// requiredRef is a compose variable that must be set: ${NAME:?message}.
var requiredRef = regexp.MustCompile(`\$\{(\w+):\?[^}]*\}`)

// composeRef is any compose variable reference.
var composeRef = regexp.MustCompile(`\$\{(\w+)(:?[-?][^}]*)?\}`)

// expandCompose replaces compose variable references the way compose
// would with a filled-in .env: defaults for ${VAR:-default}, a
// placeholder for required ones.
func expandCompose(s string) string {
	return composeRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := composeRef.FindStringSubmatch(ref)
		if def, ok := strings.CutPrefix(m[2], ":-"); ok {
			return def
		}
		return "placeholder-" + strings.ToLower(m[1])
	})
}

func mountsFile(t *testing.T, where string, volumes []any, source, target string) {
	t.Helper()
	for _, v := range volumes {
		parts := strings.Split(fmt.Sprint(v), ":")
		if len(parts) >= 2 && parts[0] == source && parts[1] == target {
			if _, err := os.Stat(repoPath(strings.TrimPrefix(source, "./"))); err != nil {
				t.Errorf("%s: mounts %s, which does not exist: %v", where, source, err)
			}
			return
		}
	}
	t.Errorf("%s: no volume %s:%s", where, source, target)
}

// TestEnvExample checks that .env.example names every variable
// docker-compose.yml reads, and holds no secret value.
func TestEnvExample(t *testing.T) {
	example := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, ".env.example")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		example[k] = v
	}
	compose := string(readRepoFile(t, "docker-compose.yml"))
	for _, m := range composeRef.FindAllStringSubmatch(compose, -1) {
		if _, ok := example[m[1]]; !ok {
			t.Errorf(".env.example: no %s, which docker-compose.yml reads", m[1])
		}
	}
	for _, m := range requiredRef.FindAllStringSubmatch(compose, -1) {
		if example[m[1]] != "" {
			t.Errorf(".env.example: %s=%q; a required secret must be empty there, so that compose refuses to start until .env sets it", m[1], example[m[1]])
		}
	}
	for k, v := range example {
		if (strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD")) && v != "" {
			t.Errorf(".env.example: %s has a value; secrets belong in .env only", k)
		}
		if !strings.Contains(compose, "${"+k) {
			t.Errorf(".env.example: %s is not used by docker-compose.yml", k)
		}
	}
	if !slices.Contains(strings.Fields(string(readRepoFile(t, ".gitignore"))), ".env") {
		t.Error(".gitignore does not ignore .env")
	}
	if included(t, ".env") {
		t.Error(".dockerignore lets .env into the build context")
	}
}
