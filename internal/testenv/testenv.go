// Package testenv decides what a test does when a tool it needs is
// missing: skip with a clear message, or fail in strict mode
// (COMETBOX_TEST_STRICT=1, which .ci/run sets), where every suite must run.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
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

// WaitFor checks cond every 20ms until it holds, or fails the test after
// d, naming what it waited for.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Buffer collects a process's output; safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// WriteString appends s.
func (b *Buffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
