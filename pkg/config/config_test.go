package config_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/pkg/config"
)

func env(kv map[string]string) (func(string) string, []string) {
	var list []string
	for k, v := range kv {
		list = append(list, k+"="+v)
	}
	return func(k string) string { return kv[k] }, list
}

func TestPrecedence(t *testing.T) {
	getenv, environ := env(map[string]string{
		"COMETBOX_POLL_TIMEOUT": "10s",
		"COMETBOX_BATCH_SIZE":   "7",
		"COMETBOX_MAX_BODY":     "2MiB",
		"COMETBOX_PORT":         "tcp://10.0.0.1:8080", // Kubernetes' own
		"COMETBOX_POLL_TIMOUT":  "1s",                  // a typo
	})
	c, warnings, err := config.Parse([]string{"-batch-size", "9"}, getenv, environ, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.PollTimeout != 10*time.Second {
		t.Errorf("PollTimeout = %v; want the environment's 10s", c.PollTimeout)
	}
	if c.BatchSize != 9 {
		t.Errorf("BatchSize = %d; want the flag's 9", c.BatchSize)
	}
	if c.MaxBody != 2<<20 {
		t.Errorf("MaxBody = %d; want 2MiB", c.MaxBody)
	}
	if c.Listen != ":8080" || c.GCPercent != 400 || c.QueueCap != 1000 || c.QueueTTL != 24*time.Hour || c.MaxMessage != 64<<10 {
		t.Errorf("defaults = %+v", c)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "COMETBOX_POLL_TIMOUT") {
		t.Errorf("warnings = %q; want one about COMETBOX_POLL_TIMOUT", warnings)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		args    []string
		env     map[string]string
		mention string
	}{
		{[]string{"-poll-timeout", "0s"}, nil, "-poll-timeout"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{nil, map[string]string{"COMETBOX_QUEUE_CAP": "many"}, "COMETBOX_QUEUE_CAP"},
		{[]string{"-max-message", "2MiB"}, nil, "-max-message"},
		{[]string{"-max-body", "lots"}, nil, "size"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"-key-prefix", "a{b}"}, nil, "-key-prefix"},
		{[]string{"-gc-percent", "0"}, nil, "-gc-percent"},
		{nil, map[string]string{"COMETBOX_GC_PERCENT": "-1"}, "-gc-percent"},
	}
	for _, tt := range tests {
		getenv, environ := env(tt.env)
		_, _, err := config.Parse(tt.args, getenv, environ, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("Parse(%q, %v) = %v; want an error mentioning %q", tt.args, tt.env, err, tt.mention)
		}
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	getenv, environ := env(nil)
	_, _, err := config.Parse([]string{"-h"}, getenv, environ, &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("Parse(-h) = %v; want ErrHelp", err)
	}
	for _, want := range []string{"-redis-url", "env COMETBOX_REDIS_URL", "env COMETBOX_POLL_TIMEOUT, default 25s", "default 1MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage does not mention %q", want)
		}
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"1MiB": 1 << 20, "64KiB": 64 << 10, "512kb": 512 << 10, "2M": 2 << 20, "100": 100, "7B": 7} {
		var s config.Size
		if err := s.Set(in); err != nil || int64(s) != want {
			t.Errorf("Size.Set(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "1TiB"} {
		var s config.Size
		if err := s.Set(bad); err == nil {
			t.Errorf("Size.Set(%q) = nil error", bad)
		}
	}
}

// TestREADMEListsEveryFlag keeps the README's configuration table true:
// every flag and its variable must be there.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	getenv, environ := env(nil)
	config.Parse([]string{"-h"}, getenv, environ, &out)
	for _, line := range strings.Split(out.String(), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "-")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		row := "| `-" + name + "` | `" + config.EnvName(name) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row starting %s", row)
		}
	}
}
