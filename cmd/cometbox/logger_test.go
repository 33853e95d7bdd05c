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
