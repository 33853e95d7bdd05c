package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A new term is adopted only while no publish is under way with the old
// one: a connection to the new primary is refused until then, and new
// publishes wait for it.
func TestPrimaryAdoptsATermBetweenPublishes(t *testing.T) {
	ctx := context.Background()
	p := NewPrimary()
	if err := p.Learned("t1"); err != nil || p.Term() != "t1" {
		t.Fatalf("first Learned = %v, term %q", err, p.Term())
	}
	term, err := p.enter(ctx)
	if err != nil || term != "t1" {
		t.Fatalf("enter = %q, %v", term, err)
	}
	if err := p.Learned("t1"); err != nil {
		t.Fatalf("Learned(same term) = %v", err)
	}
	if err := p.Learned("t2"); !errors.Is(err, ErrNewPrimary) {
		t.Fatalf("Learned(t2) with a publish under t1 = %v; want ErrNewPrimary", err)
	}
	entered := make(chan string)
	go func() {
		term, _ := p.enter(ctx)
		entered <- term
	}()
	select {
	case term := <-entered:
		t.Fatalf("a publish entered with %q while the term was changing", term)
	case <-time.After(50 * time.Millisecond):
	}
	p.leave() // the last publish under t1 is done: t2 is adopted
	if term := <-entered; term != "t2" {
		t.Fatalf("waiting publish entered with %q; want t2", term)
	}
	if err := p.Learned("t2"); err != nil {
		t.Fatalf("Learned(t2) after the change = %v", err)
	}
	p.leave()
}

// A fence holds publishes until Unfence or its end, or the publish's
// own deadline.
func TestPrimaryFence(t *testing.T) {
	ctx := context.Background()
	p := NewPrimary()
	p.Fence(time.Now().Add(time.Hour))
	if !p.Fenced() {
		t.Fatal("not fenced after Fence")
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := p.enter(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter while fenced = %v; want the deadline", err)
	}
	entered := make(chan struct{})
	go func() {
		if _, err := p.enter(ctx); err == nil {
			p.leave()
		}
		close(entered)
	}()
	time.Sleep(20 * time.Millisecond)
	p.Unfence()
	select {
	case <-entered:
	case <-time.After(time.Second):
		t.Fatal("a publish still held after Unfence")
	}

	start := time.Now()
	p.Fence(start.Add(50 * time.Millisecond))
	if _, err := p.enter(ctx); err != nil {
		t.Fatal(err)
	}
	p.leave()
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("a fence of 50ms held a publish %v", d)
	}
}
