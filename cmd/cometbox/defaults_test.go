package main

import (
	"io"
	"testing"

	"github.com/cometbox/cometbox/pkg/config"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/webhook"
)

// pkg/config imports no other cometbox package, so its flags restate the
// defaults that the packages set once: they must agree.
func TestFlagDefaultsAreThePackages(t *testing.T) {
	c, _, err := config.Parse(nil, func(string) string { return "" }, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ flag, pkg any }{
		"-presence-linger, presence.DefaultLinger": {c.PresenceLinger, presence.DefaultLinger},
		"-webhook-max-age, webhook.DefaultMaxAge":  {c.WebhookMaxAge, webhook.DefaultMaxAge},
	} {
		if tt.flag != tt.pkg {
			t.Errorf("%s: flag default %v, package default %v; want them equal", name, tt.flag, tt.pkg)
		}
	}
}
