package config_test

import (
	"bytes"
	"errors"
	"io"
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
	// Each flag's usage is "-name type", its help, then "env VAR,
	// default ..." or "no environment variable, default ...".
	name := ""
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(line, "-"); ok {
			name, _, _ = strings.Cut(n, " ")
			continue
		}
		env := ""
		if v, ok := strings.CutPrefix(line, "env "); ok {
			v, _, _ = strings.Cut(v, ",")
			env = "`" + v + "`"
		} else if strings.HasPrefix(line, "no environment variable") {
			env = "none"
		}
		if name == "" || env == "" {
			continue
		}
		if row := "| `-" + name + "` | " + env + " |"; !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row starting %s", row)
		}
		name = ""
	}
}

func TestDemoDefault(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"embedded Redis", nil, nil, true},
		{"real Redis", []string{"-redis-url", "redis://localhost:6379"}, nil, false},
		{"publish secret", nil, map[string]string{"COMETBOX_PUBLISH_SECRET": "p"}, false},
		{"token secret", nil, map[string]string{"COMETBOX_TOKEN_SECRET": "t"}, false},
		{"both secrets", nil, map[string]string{"COMETBOX_PUBLISH_SECRET": "p", "COMETBOX_TOKEN_SECRET": "t"}, false},
		{"asked for, with secrets", []string{"-demo"}, map[string]string{"COMETBOX_PUBLISH_SECRET": "p"}, true},
		{"asked for in the environment", nil, map[string]string{"COMETBOX_DEMO": "true", "COMETBOX_TOKEN_SECRET": "t"}, true},
		{"turned off", []string{"-demo=false"}, nil, false},
		{"auto", []string{"-demo=auto"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv, environ := env(tt.env)
			c, _, err := config.Parse(tt.args, getenv, environ, &bytes.Buffer{})
			if err != nil || c.Demo != tt.want {
				t.Errorf("Parse(%q, %v): Demo = %v, %v; want %v", tt.args, tt.env, c.Demo, err, tt.want)
			}
		})
	}
	var out bytes.Buffer
	getenv, environ := env(nil)
	config.Parse([]string{"-h"}, getenv, environ, &out)
	if _, after, _ := strings.Cut(out.String(), "-demo"); !strings.Contains(after[:strings.Index(after, "\n  -")], "default auto") {
		t.Errorf("usage of -demo does not say its default is auto:\n%s", out.String())
	}
}

func TestSecretsAndTokens(t *testing.T) {
	getenv, environ := env(map[string]string{"COMETBOX_PUBLISH_SECRET": "new, old", "COMETBOX_TOKEN_SECRET": "t1,,t2 "})
	c, _, err := config.Parse(nil, getenv, environ, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.PublishSecrets, "|") != "new|old" || strings.Join(c.TokenSecrets, "|") != "t1|t2" {
		t.Errorf("secrets = %q, %q; want [new old], [t1 t2]", c.PublishSecrets, c.TokenSecrets)
	}
	if c.TokenMaxTTL != 24*time.Hour {
		t.Errorf("TokenMaxTTL = %v; want 24h by default", c.TokenMaxTTL)
	}
	for _, bad := range []string{"30s", "-1h"} {
		if _, _, err := config.Parse([]string{"-token-max-ttl", bad}, getenv, environ, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-token-max-ttl") {
			t.Errorf("-token-max-ttl %s: %v; want an error", bad, err)
		}
	}
}

// Deploy tools set COMETBOX_VERSION for their own use; it is not the
// -version flag, which takes no value.
func TestVersionVariableIgnored(t *testing.T) {
	getenv, environ := env(map[string]string{"COMETBOX_VERSION": "1.2.3"})
	c, warnings, err := config.Parse(nil, getenv, environ, &bytes.Buffer{})
	if err != nil || c.Version || len(warnings) != 0 {
		t.Errorf("with COMETBOX_VERSION=1.2.3: Version %v, warnings %q, err %v; want it ignored", c.Version, warnings, err)
	}
	getenv, environ = env(map[string]string{"COMETBOX_PARK_POLLS": "yes"})
	if _, _, err := config.Parse(nil, getenv, environ, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `COMETBOX_PARK_POLLS="yes": want true or false`) {
		t.Errorf("COMETBOX_PARK_POLLS=yes: %v; want it named with what a boolean takes", err)
	}
}

func TestPresenceAndWebhookSettings(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error; empty: valid
	}{
		{"defaults", nil, nil, ""},
		{"webhook", []string{"-webhook-url", "https://app.example/hooks/cometbox"}, map[string]string{"COMETBOX_WEBHOOK_SECRET": "w"}, ""},
		{"webhook without a secret", []string{"-webhook-url", "https://app.example/hooks"}, nil, "needs -webhook-secret"},
		{"webhook not http", []string{"-webhook-url", "ftp://app.example/"}, map[string]string{"COMETBOX_WEBHOOK_SECRET": "w"}, "want an http(s) URL"},
		{"webhook without presence", []string{"-webhook-url", "http://a/", "-presence=false"}, map[string]string{"COMETBOX_WEBHOOK_SECRET": "w"}, "needs -presence"},
		{"linger too short", []string{"-presence-linger", "10ms"}, nil, "-presence-linger"},
		{"max age too short", []string{"-webhook-max-age", "0s"}, nil, "-webhook-max-age"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv, environ := env(tt.env)
			c, _, err := config.Parse(tt.args, getenv, environ, io.Discard)
			if tt.want == "" {
				if err != nil || !c.Presence || c.PresenceLinger != 5*time.Second {
					t.Errorf("Parse = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v; want an error about %s", err, tt.want)
			}
		})
	}
	getenv, environ := env(map[string]string{"COMETBOX_ADMIN_SECRET": "a1, a2", "COMETBOX_WEBHOOK_SECRET": "w1,w2"})
	c, _, err := config.Parse(nil, getenv, environ, io.Discard)
	if err != nil || strings.Join(c.AdminSecrets, "|") != "a1|a2" || strings.Join(c.WebhookSecrets, "|") != "w1|w2" {
		t.Errorf("secrets = %q, %q, %v", c.AdminSecrets, c.WebhookSecrets, err)
	}
}
