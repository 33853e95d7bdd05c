package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// home is where the project says it lives: the Go module path, and the
// address every manifest points at.
const home = "github.com/cometbox/cometbox"

// TestManifests checks that every place carrying the version agrees with
// VERSION, the single source of truth, and that every manifest names the
// same license (LICENSE's) and home.
func TestManifests(t *testing.T) {
	version := strings.TrimSpace(readRoot(t, "VERSION"))
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`).MatchString(version) {
		t.Fatalf("VERSION = %q; want a semantic version without a v (0.1.0)", version)
	}
	if got := firstLine(readRoot(t, "LICENSE")); got != "MIT License" {
		t.Errorf("LICENSE begins %q; want %q", got, "MIT License")
	}

	var npm struct {
		Name, Version, License, Homepage string
		Private                          bool
		Repository                       struct{ URL, Directory string }
	}
	readJSON(t, "web/package.json", &npm)
	var lock struct {
		Name, Version string
		Packages      map[string]struct{ Name, Version, License string }
	}
	readJSON(t, "web/package-lock.json", &lock)
	var composer struct {
		Name, Version, License, Homepage string
		Support                          map[string]string
	}
	readJSON(t, "php-client/composer.json", &composer)
	banner, _, _ := strings.Cut(readRoot(t, "web/cometbox.js"), "*/")
	goMod := firstLine(readRoot(t, "go.mod"))
	phpConst := regexp.MustCompile(`const VERSION = '([^']*)'`).FindStringSubmatch(readRoot(t, "php-client/src/Client.php"))
	if phpConst == nil {
		phpConst = []string{"", "(none)"}
	}
	jsConst := regexp.MustCompile(`var VERSION = "([^"]*)"`).FindStringSubmatch(readRoot(t, "web/cometbox.js"))
	if jsConst == nil {
		jsConst = []string{"", "(none)"}
	}

	for _, c := range []struct {
		where, got, want string
	}{
		{"web/package.json version", npm.Version, version},
		{"web/package-lock.json version", lock.Version, version},
		{`web/package-lock.json packages[""] version`, lock.Packages[""].Version, version},
		{"php-client/composer.json version", composer.Version, version},
		{"php-client/src/Client.php Client::VERSION", phpConst[1], version},
		{"web/cometbox.js Cometbox.VERSION", jsConst[1], version},
		{"web/package.json license", npm.License, "MIT"},
		{`web/package-lock.json packages[""] license`, lock.Packages[""].License, "MIT"},
		{"php-client/composer.json license", composer.License, "MIT"},
		{"web/package.json name", npm.Name, "cometbox"},
		{"web/package-lock.json name", lock.Name, npm.Name},
		{"php-client/composer.json name", composer.Name, "cometbox/cometbox-php"},
		{"go.mod module", goMod, "module " + home},
		{"web/package.json repository", npm.Repository.URL, "git+https://" + home + ".git"},
		{"web/package.json repository directory", npm.Repository.Directory, "web"},
		{"web/package.json homepage", npm.Homepage, "https://" + home + "/tree/main/web#readme"},
		{"php-client/composer.json homepage", composer.Homepage, "https://" + home + "/tree/main/php-client"},
		{"php-client/composer.json support.issues", composer.Support["issues"], "https://" + home + "/issues"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.where, c.got, c.want)
		}
	}
	if npm.Private {
		t.Error(`web/package.json is "private": npm would refuse to publish it`)
	}

	for _, c := range []struct {
		where, text, want string
	}{
		{"the banner of web/cometbox.js", banner, "cometbox.js " + version + ":"},
		{"the banner of web/cometbox.js", banner, "@license MIT"},
		{"CHANGELOG.md", readRoot(t, "CHANGELOG.md"), "\n## " + version + " "},
		{"README.md's install section", section(readRoot(t, "README.md"), "## Install"), "Version " + version},
		{"README.md's install section", section(readRoot(t, "README.md"), "## Install"), "@v" + version},
		{"php-client/README.md's install section", section(readRoot(t, "php-client/README.md"), "## Install"), "version " + version},
		{"Dockerfile", readRoot(t, "Dockerfile"), `org.opencontainers.image.source="https://` + home + `"`},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s does not say %q", c.where, c.want)
		}
	}
}

// TestVersionFlag checks what -version prints, with and without a
// stamped commit (make stamps both; go test binaries carry no VCS
// information, so the commit is otherwise empty here).
func TestVersionFlag(t *testing.T) {
	savedVersion, savedCommit := version, commit
	t.Cleanup(func() { version, commit = savedVersion, savedCommit })

	for _, c := range []struct {
		version, commit, want string
	}{
		{"0.1.0", "0123456789abcdef0123456789abcdef01234567", "cometbox 0.1.0 (commit 0123456789abcdef0123456789abcdef01234567)\n"},
		{"0.1.0", "0123456789abcdef0123456789abcdef01234567-dirty", "cometbox 0.1.0 (commit 0123456789abcdef0123456789abcdef01234567-dirty)\n"},
		{"v1.2.3", "", "cometbox v1.2.3\n"},
	} {
		version, commit = c.version, c.commit
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), func() {}, []string{"-version"}, func(string) string { return "" }, nil, &stdout, &stderr)
		if code != 0 || stdout.String() != c.want {
			t.Errorf("version %q, commit %q: cometbox -version = %d, %q (stderr %q); want 0, %q",
				c.version, c.commit, code, stdout.String(), stderr.String(), c.want)
		}
	}
}

func readRoot(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readJSON(t *testing.T, rel string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(readRoot(t, rel)), v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// section returns the Markdown section that begins with the heading line
// head, up to the next heading of the same level ("" if there is none).
func section(doc, head string) string {
	level := head[:strings.IndexByte(head, ' ')+1]
	var b strings.Builder
	in := false
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if in && strings.HasPrefix(line, level) {
			break
		}
		if line == head {
			in = true
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
