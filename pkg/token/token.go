// Package token mints and checks the tokens that let a browser poll one
// client's queue.
//
// A token is "EXP.SIG": EXP is a Unix time in seconds after which the token
// is refused, SIG is the unpadded base64url HMAC-SHA256, under the token
// secret, of "cometbox:v1:" + client + ":" + EXP. Any language with an HMAC
// can mint one; docs/protocol.md gives the recipe and testdata/vectors.json
// holds vectors that every implementation (Go, PHP, JavaScript) checks.
//
// The functions are pure and safe for concurrent use.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned by Verify.
var (
	// ErrMissing: no token was given.
	ErrMissing = errors.New("token missing")
	// ErrMalformed: the token is not of the form EXP.SIG.
	ErrMalformed = errors.New("token malformed")
	// ErrSignature: the signature does not match this client (a token for
	// another client, or a forged one).
	ErrSignature = errors.New("token signature invalid")
	// ErrExpired: EXP is in the past, beyond the leeway.
	ErrExpired = errors.New("token expired")
)

const prefix = "cometbox:v1:"

// Mint returns a token that opens client's queue until exp.
func Mint(secret []byte, client string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + sign(secret, client, e)
}

// Verify checks tok for client at time now. A token that expired less than
// leeway ago is still accepted, to forgive clock skew between the back end
// that minted it and this node.
func Verify(secret []byte, client, tok string, now time.Time, leeway time.Duration) error {
	if tok == "" {
		return ErrMissing
	}
	expText, sig, ok := strings.Cut(tok, ".")
	if !ok || expText == "" || sig == "" || len(tok) > 200 {
		return ErrMalformed
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || exp < 0 || strconv.FormatInt(exp, 10) != expText {
		return ErrMalformed
	}
	// Check the signature before the time, so an expired token for another
	// client reads as "not yours" rather than "expired".
	if !hmac.Equal([]byte(sig), []byte(sign(secret, client, expText))) {
		return ErrSignature
	}
	if now.Add(-leeway).Unix() > exp {
		return fmt.Errorf("expired at %s: %w", time.Unix(exp, 0).UTC().Format(time.RFC3339), ErrExpired)
	}
	return nil
}

func sign(secret []byte, client, exp string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(prefix))
	mac.Write([]byte(client))
	mac.Write([]byte(":"))
	mac.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
