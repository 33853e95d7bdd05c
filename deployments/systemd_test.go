package deployments_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cometbox/cometbox/internal/nodeproc"
	"github.com/cometbox/cometbox/internal/testenv"
)

// unitFile is a systemd unit: section → key → values (keys may repeat).
type unitFile map[string]map[string][]string

func loadUnit(t *testing.T, rel string) unitFile {
	t.Helper()
	u := unitFile{}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q", rel, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func loadEnvFile(t *testing.T, rel string) map[string]any {
	t.Helper()
	env := map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not NAME=value", rel, line)
		}
		env[k] = v
	}
	return env
}

// TestSystemd checks the unit's hardening and stop timeout, and runs
// systemd-analyze on it.
func TestSystemd(t *testing.T) {
	const uw, ew = "deployments/systemd/cometbox.service", "deployments/systemd/cometbox.env.example"
	u := loadUnit(t, uw)
	svc := u["Service"]
	for k, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "Restart": "on-failure", "KillSignal": "SIGTERM",
		"EnvironmentFile": "/etc/cometbox/cometbox.env", "ExecStart": "/usr/local/bin/cometbox",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s=%v; want %s", uw, k, got, want)
		}
	}
	if n, err := strconv.Atoi(strings.Join(svc["LimitNOFILE"], "")); err != nil || n < 65536 {
		t.Errorf("%s: LimitNOFILE=%v; want at least 65536 (every held poll is an open socket)", uw, svc["LimitNOFILE"])
	}

	env := loadEnvFile(t, ew)
	checkNodeEnv(t, ew, env)
	// /readyz and /metrics off the public port, on a loopback address by
	// default.
	host, _, err := net.SplitHostPort(fmt.Sprint(env["COMETBOX_ADMIN_LISTEN"]))
	if addr, perr := netip.ParseAddr(host); err != nil || perr != nil || !addr.IsLoopback() {
		t.Errorf("%s: COMETBOX_ADMIN_LISTEN=%v; want a loopback address", ew, env["COMETBOX_ADMIN_LISTEN"])
	}
	for k, v := range env {
		if (strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD")) && v != "" {
			t.Errorf("%s: %s has a value; secrets belong in /etc/cometbox/cometbox.env only", ew, k)
		}
	}
	systemdTimings(t).check(t, uw)

	analyze := testenv.LookPath(t, "systemd-analyze", "apt-get install systemd")
	// verify checks that ExecStart exists: point it at a built node.
	unit := filepath.Join(t.TempDir(), "cometbox.service")
	b := bytes.ReplaceAll(readRepoFile(t, uw), []byte("ExecStart=/usr/local/bin/cometbox"), []byte("ExecStart="+nodeproc.Binary(t)))
	if err := os.WriteFile(unit, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "", analyze, "verify", unit); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	// Exposure on systemd's 0-100 scale (shown as 0.0-10.0): 20 is "OK".
	cmd := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", unit)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}
