// Package embedredis runs the in-process Redis (miniredis) of a
// single-node cometbox, for development and small installs.
//
// miniredis never expires keys by itself; a Server advances its clock in
// step with the real one, so queue expiry works as it does on Redis. Data
// lives in the process's memory and is lost when it exits, and no other
// node can reach it: run a real Redis for anything more.
package embedredis

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Server is a running embedded Redis.
type Server struct {
	mr *miniredis.Miniredis
}

// Start starts an embedded Redis on a free loopback port.
func Start() (*Server, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedredis: start: %w", err)
	}
	return &Server{mr: mr}, nil
}

// Addr is the host:port clients connect to.
func (s *Server) Addr() string { return s.mr.Addr() }

// Run advances the embedded clock with the real one, so that keys expire,
// until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			s.mr.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Close stops the server; its data is gone.
func (s *Server) Close() { s.mr.Close() }
