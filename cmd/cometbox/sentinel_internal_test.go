package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/pkg/queue"
)

// listen accepts connections on a loopback port and counts them.
func listen(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return ln.Addr().String(), accepted
}

// The follower reads the sentinels' events: publishes are held from the
// first sign of a failover until the new primary is reached, an abort
// lifts the hold only when no other sentinel is still trying, a switch is
// completed once whichever sentinel tells it, late news of a finished
// failover is ignored, and dials for the old primary go to the new one.
func TestSentinelFollowerEvents(t *testing.T) {
	ctx := context.Background()
	oldAddr, _ := listen(t)
	newAddr, onNew := listen(t)
	oldHost, oldPort, _ := net.SplitHostPort(oldAddr)
	newHost, newPort, _ := net.SplitHostPort(newAddr)
	primary := queue.NewPrimary()
	f := newSentinelFollower(&redis.FailoverOptions{MasterName: "mymaster", DialTimeout: time.Second},
		primary, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var moved, pinged atomic.Int64
	f.moved = func() { moved.Add(1) }
	f.ping = func(context.Context) error { pinged.Add(1); return nil }
	master := "master mymaster " + oldHost + " " + oldPort

	f.event(ctx, "s1", "+try-failover", "master othermaster 10.0.0.1 6379")
	if primary.Fenced() {
		t.Fatal("fenced by another master's failover")
	}
	f.event(ctx, "s1", "+try-failover", master)
	f.event(ctx, "s2", "+try-failover", master)
	if !primary.Fenced() {
		t.Fatal("not fenced after +try-failover")
	}
	f.event(ctx, "s2", "-failover-abort-not-elected", master)
	if !primary.Fenced() {
		t.Fatal("one sentinel's abort lifted the fence while another still tried")
	}
	f.event(ctx, "s1", "-failover-abort-no-good-slave", master)
	if primary.Fenced() {
		t.Fatal("still fenced after every attempt was aborted")
	}

	toOld, err := f.dial(ctx, "tcp", oldAddr) // a connection of the node's to the old primary
	if err != nil {
		t.Fatal(err)
	}
	f.event(ctx, "s1", "+selected-slave", "slave "+newAddr+" "+newHost+" "+newPort+" @ mymaster "+oldHost+" "+oldPort)
	if !primary.Fenced() {
		t.Fatal("not fenced after +selected-slave")
	}
	switchMaster := "mymaster " + oldHost + " " + oldPort + " " + newHost + " " + newPort
	f.event(ctx, "s2", "+switch-master", switchMaster)
	f.event(ctx, "s3", "+switch-master", switchMaster)
	deadline := time.Now().Add(2 * time.Second)
	for primary.Fenced() {
		if time.Now().After(deadline) {
			t.Fatal("still fenced 2s after +switch-master")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if moved.Load() != 1 || pinged.Load() == 0 {
		t.Errorf("after two +switch-master: moved %d times, pinged %d; want once, at least once", moved.Load(), pinged.Load())
	}
	if _, err := toOld.Read(make([]byte, 1)); err == nil {
		t.Error("the connection to the old primary is still open after the switch")
	}

	f.event(ctx, "s1", "+promoted-slave", "slave "+newAddr+" "+newHost+" "+newPort+" @ mymaster "+oldHost+" "+oldPort)
	if primary.Fenced() {
		t.Error("fenced by late news of the failover already switched")
	}
	c, err := f.dial(ctx, "tcp", oldAddr) // go-redis's sentinel has not caught up
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != newAddr {
		t.Errorf("a dial for the old primary reached %s; want the new one, %s", c.RemoteAddr(), newAddr)
	}
	for deadline := time.Now().Add(time.Second); onNew.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new primary never saw the connection")
		}
	}
}
