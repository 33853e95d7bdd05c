package token_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cometbox/cometbox/pkg/token"
)

// vector is one entry of testdata/vectors.json, the file the PHP and
// JavaScript clients' tests read too.
type vector struct {
	Secret string `json:"secret"`
	Client string `json:"client"`
	Exp    int64  `json:"exp"`
	Token  string `json:"token"`
}

func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) < 3 {
		t.Fatalf("only %d vectors", len(doc.Vectors))
	}
	for _, v := range doc.Vectors {
		got := token.Mint([]byte(v.Secret), v.Client, time.Unix(v.Exp, 0))
		if got != v.Token {
			t.Errorf("Mint(%q, %q, %d) = %q; want %q", v.Secret, v.Client, v.Exp, got, v.Token)
		}
		if err := token.Verify([]byte(v.Secret), v.Client, v.Token, time.Unix(v.Exp, 0), 0); err != nil {
			t.Errorf("Verify(vector %q) = %v", v.Token, err)
		}
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_800_000_000, 0)
	good := token.Mint(secret, "alice", now.Add(time.Hour))
	tests := []struct {
		name, client, tok string
		leeway            time.Duration
		want              error
	}{
		{"good", "alice", good, 0, nil},
		{"missing", "alice", "", 0, token.ErrMissing},
		{"no dot", "alice", "1800003600", 0, token.ErrMalformed},
		{"bad exp", "alice", "18e8.abc", 0, token.ErrMalformed},
		{"leading zero exp", "alice", "01800003600.abc", 0, token.ErrMalformed},
		{"other client", "bob", good, 0, token.ErrSignature},
		{"other secret", "alice", token.Mint([]byte("other"), "alice", now.Add(time.Hour)), 0, token.ErrSignature},
		{"tampered exp", "alice", "1900000000" + good[10:], 0, token.ErrSignature},
		{"expired", "alice", token.Mint(secret, "alice", now.Add(-2*time.Minute)), time.Minute, token.ErrExpired},
		{"expired within leeway", "alice", token.Mint(secret, "alice", now.Add(-30*time.Second)), time.Minute, nil},
		{"expired other client", "bob", token.Mint(secret, "alice", now.Add(-time.Hour)), 0, token.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := token.Verify(secret, tt.client, tt.tok, now, tt.leeway)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(%q, %q) = %v; want %v", tt.client, tt.tok, err, tt.want)
			}
		})
	}
}

func TestVerifier(t *testing.T) {
	old, current := []byte("old-secret"), []byte("new-secret")
	v := token.Verifier{Secrets: [][]byte{current, old}, Leeway: time.Minute, MaxTTL: 24 * time.Hour}
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"current secret", token.Mint(current, "alice", now.Add(time.Hour)), nil},
		{"old secret", token.Mint(old, "alice", now.Add(time.Hour)), nil},
		{"retired secret", token.Mint([]byte("retired"), "alice", now.Add(time.Hour)), token.ErrSignature},
		{"a day ahead", token.Mint(current, "alice", now.Add(24*time.Hour)), nil},
		{"a day and the leeway ahead", token.Mint(current, "alice", now.Add(24*time.Hour+time.Minute)), nil},
		{"further ahead", token.Mint(current, "alice", now.Add(24*time.Hour+time.Minute+time.Second)), token.ErrTooLong},
		{"forever", token.Mint(current, "alice", time.Unix(9999999999, 0)), token.ErrTooLong},
		{"forged forever", "9999999999.abc", token.ErrSignature},
		{"expired", token.Mint(old, "alice", now.Add(-2*time.Minute)), token.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify("alice", tt.tok, now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(%q) = %v; want %v", tt.tok, err, tt.want)
			}
		})
	}
	if err := (token.Verifier{}).Verify("alice", token.Mint(current, "alice", now.Add(time.Hour)), now); !errors.Is(err, token.ErrSignature) {
		t.Errorf("zero Verifier: Verify = %v; want ErrSignature", err)
	}
}

func ExampleMint() {
	tok := token.Mint([]byte("s3cret"), "alice", time.Unix(1800000000, 0))
	fmt.Println(tok)
	// Output: 1800000000.OJy6rWDNN4fvMrkOBF1Jtl-qlb24LC065SQGhcG9rjs
}

func TestExpiry(t *testing.T) {
	exp := time.Unix(1_800_000_000, 0)
	if got, ok := token.Expiry(token.Mint([]byte("s"), "alice", exp)); !ok || !got.Equal(exp) {
		t.Errorf("Expiry(minted for %v) = %v, %v", exp, got, ok)
	}
	for _, bad := range []string{"", "1800000000", "x.sig", "-1.sig"} {
		if _, ok := token.Expiry(bad); ok {
			t.Errorf("Expiry(%q) = ok", bad)
		}
	}
}
