package errs

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestRetryAfter: a wait rides along an error without changing what the
// error is, through further wrapping.
func TestRetryAfter(t *testing.T) {
	base := E(RateLimited, "too many failed logins")
	err := WithRetryAfter(base, 3*time.Second)
	wrapped := fmt.Errorf("login: %w", err)
	for _, e := range []error{err, wrapped} {
		if got := RetryAfter(e); got != 3*time.Second {
			t.Errorf("RetryAfter(%v) = %s", e, got)
		}
		if !Is(e, RateLimited) || !errors.Is(e, base) {
			t.Errorf("%v: code %s, not base", e, CodeOf(e))
		}
	}
	if err.Error() != base.Error() {
		t.Errorf("message %q, want %q", err.Error(), base.Error())
	}
	if RetryAfter(base) != 0 || RetryAfter(nil) != 0 {
		t.Error("a wait without WithRetryAfter")
	}
	if WithRetryAfter(nil, time.Second) != nil {
		t.Error("WithRetryAfter(nil) is not nil")
	}
	if e := WithRetryAfter(base, 0); e != error(base) {
		t.Errorf("WithRetryAfter(err, 0) = %#v, want err itself", e)
	}
}
