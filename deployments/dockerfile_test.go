package deployments_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/nodeproc"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	stage     int // index of the FROM it belongs to; -1 before the first
}

func loadDockerfile(t *testing.T) []instruction {
	t.Helper()
	var (
		out   []instruction
		cur   strings.Builder
		stage = -1
	)
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd, strings.TrimSpace(args), stage})
	}
	return out
}

// TestDockerfile checks the Dockerfile's structure: what the issue asks
// of the image, in the form Docker reads it.
func TestDockerfile(t *testing.T) {
	ins := loadDockerfile(t)
	last := ins[len(ins)-1].stage
	var final []instruction
	args := map[string]string{}
	for _, in := range ins {
		if in.stage == last {
			final = append(final, in)
		}
		if in.cmd == "ARG" && in.stage == -1 {
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		}
	}

	goVersion, ok := args["GO_VERSION"]
	if !ok {
		t.Fatal("Dockerfile: no ARG GO_VERSION before the first FROM")
	}
	modGo := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readRepoFile(t, "go.mod"))
	if modGo == nil || versionLess(goVersion, string(modGo[1])) {
		t.Errorf("Dockerfile: GO_VERSION %s is older than go.mod's go line %s", goVersion, modGo[1])
	}

	base := final[0].args
	if !strings.Contains(base, "distroless/static") && base != "scratch" {
		t.Errorf("Dockerfile: final image FROM %s; want distroless/static or scratch (no shell, nothing but the binary)", base)
	}
	copied := map[string]bool{}
	var user, entrypoint, health string
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			copied[f[len(f)-1]] = true
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "HEALTHCHECK":
			health = in.args
		}
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "0" || name == "root" {
		t.Errorf("Dockerfile: final stage USER %q; want a non-root user", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 || !copied[ep[0]] {
		t.Errorf("Dockerfile: ENTRYPOINT %s; want the exec form of a binary the final stage copies in", entrypoint)
	}
	argv := healthcheckArgv(t, health)
	if !copied[argv[0]] {
		t.Errorf("Dockerfile: HEALTHCHECK runs %s, which the final stage does not copy in (it has no shell or tools)", argv[0])
	}
	if len(argv) < 2 || argv[1] != "healthcheck" {
		t.Errorf("Dockerfile: HEALTHCHECK %v; want the node's own `cometbox healthcheck`", argv)
	}

	build := goBuildCommand(t, ins)
	if !slices.ContainsFunc(build, func(a string) bool { return strings.Contains(a, "-X main.version=${VERSION}") }) {
		t.Errorf("Dockerfile: %v does not stamp -X main.version=${VERSION}", build)
	}
	cgoOff := false
	for _, in := range ins {
		if in.stage == ins[slices.IndexFunc(ins, func(i instruction) bool { return strings.Contains(i.args, "go build") })].stage &&
			(in.cmd == "ENV" || in.cmd == "RUN") && strings.Contains(in.args, "CGO_ENABLED=0") {
			cgoOff = true
		}
	}
	if !cgoOff {
		t.Error("Dockerfile: the build stage does not set CGO_ENABLED=0")
	}
}

// healthcheckArgv returns the exec-form command of a HEALTHCHECK.
func healthcheckArgv(t *testing.T, health string) []string {
	t.Helper()
	_, cmd, ok := strings.Cut(health, "CMD ")
	var argv []string
	if !ok || json.Unmarshal([]byte(strings.TrimSpace(cmd)), &argv) != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile: HEALTHCHECK %q; want CMD in exec form (the image has no shell)", health)
	}
	return argv
}

// goBuildCommand returns the words of the Dockerfile's go build command.
func goBuildCommand(t *testing.T, ins []instruction) []string {
	t.Helper()
	for _, in := range ins {
		if i := strings.Index(in.args, "go build"); in.cmd == "RUN" && i >= 0 {
			return shellWords(in.args[i:])
		}
	}
	t.Fatal("Dockerfile: no RUN with go build")
	return nil
}

// shellWords splits a command line on blanks, keeping double-quoted
// words whole (enough for the Dockerfile's own commands).
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		quote bool
		any   bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quote, any = !quote, true
		case (r == ' ' || r == '\t') && !quote:
			if any {
				words = append(words, cur.String())
			}
			cur.Reset()
			any = false
		case (r == ';' || r == '&') && !quote:
			return append(words, cur.String())
		default:
			cur.WriteRune(r)
			any = true
		}
	}
	if any {
		words = append(words, cur.String())
	}
	return words
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// dockerignore is the build context filter of .dockerignore, with
// Docker's rules: patterns in order, the last match wins, "!" re-includes,
// a pattern that matches a directory matches everything in it, "**"
// matches any number of directories.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func loadDockerignore(t *testing.T) dockerignore {
	t.Helper()
	var d dockerignore
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		negate := strings.HasPrefix(p, "!")
		p = filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), negate})
	}
	return d
}

// includes reports whether the file rel (slash-separated, relative to the
// repository root) reaches the build context.
func (d dockerignore) includes(rel string) bool {
	excluded := false
	for _, r := range d {
		for p := rel; ; {
			if r.re.MatchString(p) {
				excluded = !r.negate
				break
			}
			i := strings.LastIndex(p, "/")
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return !excluded
}

func included(t *testing.T, rel string) bool { return loadDockerignore(t).includes(rel) }

// TestDockerBuild builds the node the way the Dockerfile's build stage
// does, from a copy of the build context that .dockerignore lets
// through: it must compile (nothing it needs is ignored), be static, and
// report the stamped version.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the node; skipped with -short")
	}
	ignore := loadDockerignore(t)
	ctxDir := t.TempDir()
	var copied []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !ignore.includes(rel) {
			return nil
		}
		copied = append(copied, rel)
		return copyFile(path, filepath.Join(ctxDir, filepath.FromSlash(rel)))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range copied {
		if strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, ".git") || rel == ".env" || strings.HasPrefix(rel, "bin/") {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}

	const version = "v0.0.0-deploytest"
	words := goBuildCommand(t, loadDockerfile(t))
	bin := filepath.Join(t.TempDir(), "cometbox")
	for i := range words {
		words[i] = strings.ReplaceAll(words[i], "${VERSION}", version)
		if i > 0 && words[i-1] == "-o" {
			words[i] = bin
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in the build context: %v\n%s", strings.Join(words, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (it has an ELF interpreter); want CGO off, static")
		}
	}
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "cometbox "+version {
		t.Errorf("cometbox -version = %q, %v; want %q", got, err, "cometbox "+version)
	}
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestDockerHealthcheck runs the image's HEALTHCHECK command, the node's
// own `cometbox healthcheck`, with the environment a container would give
// it, against a live node and a dead one.
func TestDockerHealthcheck(t *testing.T) {
	var health string
	for _, in := range loadDockerfile(t) {
		if in.cmd == "HEALTHCHECK" {
			health = in.args
		}
	}
	argv := healthcheckArgv(t, health)
	node := nodeproc.Start(t, "healthcheck")
	addr := strings.TrimPrefix(node.URL, "http://")
	check := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, nodeproc.Binary(t), argv[1:]...)
		cmd.Env = append(os.Environ(), "COMETBOX_LISTEN="+addr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(); err != nil {
		t.Fatalf("HEALTHCHECK %v against a live node: %v\n%s", argv, err, out)
	}
	node.Kill()
	if out, err := check(); err == nil {
		t.Fatalf("HEALTHCHECK %v passed against a dead node:\n%s", argv, out)
	}
}
