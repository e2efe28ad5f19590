package api

import "testing"

// TestRetryAfterOf: a 429 or 503 says Retry-After N when its message says
// "retry in N s" (the login backoff's), else 1.
func TestRetryAfterOf(t *testing.T) {
	for msg, want := range map[string]int{
		"too many failed logins; retry in 2 s":   2,
		"too many failed logins; retry in 900 s": 900,
		"rate limit exceeded; retry later":       1,
		"retry in 0 s":                           1,
		"retry in -3 s":                          1,
		"retry in 5s":                            1,
		"retry in x s":                           1,
		"sealed":                                 1,
	} {
		if got := retryAfterOf(msg); got != want {
			t.Errorf("retryAfterOf(%q) = %d, want %d", msg, got, want)
		}
	}
}
