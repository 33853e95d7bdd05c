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
	// ErrTooLong: EXP is further ahead than the verifier's MaxTTL.
	ErrTooLong = errors.New("token lifetime too long")
)

const prefix = "cometbox:v1:"

// Mint returns a token that opens client's queue until exp.
func Mint(secret []byte, client string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + sign(secret, client, e)
}

// Verify checks tok for client at time now. A token that expired less than
// leeway ago is still accepted, to forgive clock skew between the back end
// that minted it and this node. It sets no bound on a token's lifetime;
// a Verifier can.
func Verify(secret []byte, client, tok string, now time.Time, leeway time.Duration) error {
	return Verifier{Secrets: [][]byte{secret}, Leeway: leeway}.Verify(client, tok, now)
}

// Verifier checks tokens under any of several secrets, so that a secret
// can be rotated without an outage: a new one is added in front, back
// ends move to it, and the old one is removed once the tokens minted with
// it have expired. Its zero value refuses every token.
type Verifier struct {
	// Secrets are the secrets a token may be signed with: any one of
	// them verifies it.
	Secrets [][]byte
	// Leeway forgives clock skew: a token that expired less than this
	// long ago is still accepted. Zero: none.
	Leeway time.Duration
	// MaxTTL refuses a token that expires more than this (plus Leeway)
	// after now, so that a leaked token cannot live forever. Zero: no
	// bound.
	MaxTTL time.Duration
}

// Verify checks tok for client at time now.
func (v Verifier) Verify(client, tok string, now time.Time) error {
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
	if !v.signed(client, expText, sig) {
		return ErrSignature
	}
	if now.Add(-v.Leeway).Unix() > exp {
		return fmt.Errorf("expired at %s: %w", time.Unix(exp, 0).UTC().Format(time.RFC3339), ErrExpired)
	}
	if v.MaxTTL > 0 && exp > now.Add(v.MaxTTL+v.Leeway).Unix() {
		return fmt.Errorf("expires at %s, more than %v ahead: %w", time.Unix(exp, 0).UTC().Format(time.RFC3339), v.MaxTTL, ErrTooLong)
	}
	return nil
}

// Expiry returns the expiry a token states, without checking it: call
// it once Verify accepted the token. ok is false for a token that is not
// of the form EXP.SIG.
func Expiry(tok string) (exp time.Time, ok bool) {
	expText, _, found := strings.Cut(tok, ".")
	sec, err := strconv.ParseInt(expText, 10, 64)
	if !found || err != nil || sec < 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// signed reports whether sig signs client and expText under any secret.
// Every secret is tried, so the time taken does not tell which one
// matched.
func (v Verifier) signed(client, expText, sig string) bool {
	ok := false
	for _, secret := range v.Secrets {
		if hmac.Equal([]byte(sig), []byte(sign(secret, client, expText))) {
			ok = true
		}
	}
	return ok
}

func sign(secret []byte, client, exp string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(prefix))
	mac.Write([]byte(client))
	mac.Write([]byte(":"))
	mac.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
