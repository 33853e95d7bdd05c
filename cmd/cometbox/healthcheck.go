package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cometbox/cometbox/pkg/config"
)

// healthcheck is `cometbox healthcheck`: GET /healthz of the node this
// environment configures, exit 0 if it answers 200. It lets an image
// without a shell or curl (distroless) carry a HEALTHCHECK. It is a
// subcommand, not a flag, because every flag can be set from the
// environment, and a variable must never turn a node into a probe.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cometbox healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to check (default: /healthz on the -listen address of "+config.EnvName("listen")+", or :8080)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" {
		listen := getenv(config.EnvName("listen"))
		if listen == "" {
			listen = ":8080"
		}
		*url = "http://" + loopback(listen) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "cometbox healthcheck: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "cometbox healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "cometbox healthcheck: %s answered %s\n", *url, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "ok\n")
	return 0
}

// loopback turns a listen address into one to connect to: an empty or
// wildcard host becomes the loopback address of the same family.
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
