package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/pkg/config"
)

// Durations read in logs as the flags take them, in both formats.
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log := newLogger(config.Config{LogFormat: format, LogLevel: "info", NodeName: "n"}, &out)
		log.Info("listening", "poll_timeout", 25*time.Second)
		want := map[string]string{"text": "poll_timeout=25s", "json": `"poll_timeout":"25s"`}[format]
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s log: %s; want %s", format, out.String(), want)
		}
	}
}

// A Redis URL is logged without its passwords, wherever the URL puts
// them: in its user info, or (Sentinel) in its query.
func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://r:6379/0":            "redis://r:6379/0",
		"redis://:hunter2@r:6379/0":   "redis://:xxxxx@r:6379/0",
		"redis://user:hunter2@r:6379": "redis://user:xxxxx@r:6379",
		"redis-sentinel://s1:26379,s2:26379/mymaster?password=hunter2":                 "redis-sentinel://s1:26379,s2:26379/mymaster?password=xxxxx",
		"redis-sentinel://:hunter2@s1:26379/mymaster?db=1":                             "redis-sentinel://:xxxxx@s1:26379/mymaster?db=1",
		"rediss-sentinel://s1:26379/m?db=1&sentinel_password=hunter2&Password=hunter2": "rediss-sentinel://s1:26379/m?db=1&sentinel_password=xxxxx&Password=xxxxx",
		"redis-cluster://h1:7000,h2:7001?password=hunter2#x":                           "redis-cluster://h1:7000,h2:7001?password=xxxxx#x",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q; want %q", raw, got, want)
		}
	}
}
