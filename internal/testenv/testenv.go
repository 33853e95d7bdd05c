// Package testenv decides what a test does when a tool it needs is
// missing: skip with a clear message, or fail in strict mode
// (COMETBOX_TEST_STRICT=1, which .ci/run sets), where every suite must run.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing tools fail tests instead of skipping them.
func Strict() bool { return os.Getenv("COMETBOX_TEST_STRICT") == "1" }

// LookPath returns the path of a program the test needs, or skips (fails
// in strict mode) when it is not installed.
func LookPath(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not found on PATH ("+hint+")")
	}
	return p
}

// Missing skips the test, or fails it in strict mode.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("strict mode: %s", why)
	}
	t.Skipf("skipped: %s; set COMETBOX_TEST_STRICT=1 to make this a failure", why)
}
