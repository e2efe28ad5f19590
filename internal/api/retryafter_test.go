package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/errs"
)

// TestRetryAfterCarried: the Retry-After of a failure is the wait its error
// carries (errs.WithRetryAfter), in whole seconds rounded up, whatever the
// message says; an error that carries none says 1.
func TestRetryAfterCarried(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errs.WithRetryAfter(errs.E(errs.RateLimited, "too many failed logins"), 7*time.Second), "7"},
		{errs.WithRetryAfter(errs.E(errs.RateLimited, "too many failed logins"), 1500*time.Millisecond), "2"},
		{errs.WithRetryAfter(errs.E(errs.RateLimited, "slow down; retry in 9 s"), 4*time.Second), "4"}, // the wait wins
		{errs.WithRetryAfter(errs.E(errs.Unavailable, "no leader"), 3*time.Second), "3"},
		{errs.E(errs.RateLimited, "too many failed logins; retry in 5 s"), "1"}, // a message is no wait
		{errs.E(errs.RateLimited, "rate limit exceeded"), "1"},
	} {
		rec := httptest.NewRecorder()
		req := &request{Request: httptest.NewRequest("POST", "/v1/auth/login", nil), w: rec, s: s, id: "t"}
		s.fail(req, tc.err)
		if got := rec.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.want)
		}
		if rec.Code != statusFor(tc.err) {
			t.Errorf("%v: status %d", tc.err, rec.Code)
		}
	}
}
