package api

import (
	"testing"
	"time"
)

// FuzzParseExpiry: an attestation's expiry is a number of days, a
// duration or an RFC 3339 time; whatever is accepted lies in the future
// and at most three years ahead.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"90d", "2160h", "2027-01-01T00:00:00Z", "0d", "-1d", "9999999999999d", "1e9h", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseExpiry(v, now)
		if err != nil {
			return
		}
		if !got.After(now) || got.After(now.AddDate(3, 0, 0)) {
			t.Fatalf("%q accepted as %s", v, got)
		}
	})
}
