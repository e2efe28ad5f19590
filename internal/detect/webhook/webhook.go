// Package webhook signs and sends Warden's alert notifications, and
// verifies them for receivers written in Go.
//
// A notification is an HTTP POST of the alert's JSON with these headers:
//
//	Content-Type: application/json
//	Warden-Delivery: <delivery id, the same on every retry of one notification>
//	Warden-Timestamp: <Unix time in seconds when this attempt was signed>
//	Warden-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// The signed material is the timestamp's decimal digits, a dot, and the
// exact body bytes; a receiver recomputes the HMAC with the shared secret,
// compares it in constant time, and refuses a timestamp too far from its
// clock (Verify's tolerance), so a captured request cannot be replayed
// later. Receivers deduplicate by Warden-Delivery: delivery is at least
// once (a receiver that answered 2xx just before the server lost
// leadership may get the notification again).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderSignature = "Warden-Signature"
	HeaderTimestamp = "Warden-Timestamp"
	HeaderDelivery  = "Warden-Delivery"
)

// Sign returns the Warden-Signature value of body sent at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature: the signature or timestamp does not verify.
var ErrBadSignature = errors.New("webhook: signature does not verify")

// Verify checks a received notification's signature and that its
// timestamp is within tolerance of now.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s: not a Unix time", ErrBadSignature, HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s from now", ErrBadSignature, ts, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// Sender posts notifications.
type Sender struct {
	HTTP *http.Client // nil: a client with a 10s timeout that follows no redirect
	Now  func() time.Time
}

// Send posts body to url signed with secret. A status other than 2xx is
// an error naming it; the error never holds the secret.
func (s *Sender) Send(ctx context.Context, url string, secret []byte, delivery string, body []byte) error {
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	ts := now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "warden-webhook/1")
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: receiver answered %d %s", resp.StatusCode, strings.TrimSpace(http.StatusText(resp.StatusCode)))
	}
	return nil
}
