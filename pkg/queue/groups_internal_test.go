package queue

import (
	"fmt"
	"testing"
)

// No member-side script call carries more than memberChunk clients, and
// on a Cluster none spans two slots: a fan-out never holds Redis long,
// and every call runs on one shard.
func TestChunks(t *testing.T) {
	var clients []string
	for i := range 5000 {
		clients = append(clients, fmt.Sprintf("c%d", i))
	}
	clients = append(clients, clients[:300]...) // a slot with many: the same ids again
	for _, sharded := range []bool{false, true} {
		q := New(nil, Options{Sharded: sharded})
		n := 0
		for _, c := range q.chunks(clients) {
			n += len(c)
			if len(c) == 0 || len(c) > memberChunk {
				t.Fatalf("sharded=%v: a chunk of %d clients", sharded, len(c))
			}
			for _, x := range c {
				if sharded && slot(x) != slot(c[0]) {
					t.Fatalf("a chunk spans slots %d and %d", slot(c[0]), slot(x))
				}
			}
		}
		if n != len(clients) {
			t.Fatalf("sharded=%v: chunks hold %d clients; want %d", sharded, n, len(clients))
		}
	}
	if got := slot("123456789"); got != 0x31C3%16384 { // CRC16/XMODEM check value
		t.Fatalf("slot(123456789) = %d", got)
	}
}
