// Package errs is Warden's one application error type: a code that the API
// edge maps to an HTTP status, and a message that is safe to show the caller.
//
// Services return *Error for everything the caller can act on (bad input, not
// found, conflict). Anything else is an internal error: the API logs it and
// shows the caller only a request id. A Message must never contain a secret,
// a token or key material.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for the caller.
type Code string

// The codes. Each maps to one HTTP status at the API edge.
const (
	Invalid         Code = "invalid"         // 400: bad input; the message names the field
	Unauthenticated Code = "unauthenticated" // 401: no, unknown, expired or revoked credentials
	Denied          Code = "denied"          // 403: authenticated but not permitted
	NotFound        Code = "not_found"       // 404
	Conflict        Code = "conflict"        // 409: version (check-and-set) conflict
	Precondition    Code = "precondition"    // 412
	TooLarge        Code = "too_large"       // 413
	RateLimited     Code = "rate_limited"    // 429
	Unavailable     Code = "unavailable"     // 503: sealed, no leader, a required sink down
	Internal        Code = "internal"        // 500: never shown in detail
)

// Error is an application error. The zero value is not useful; use E or Wrap.
type Error struct {
	Code    Code
	Message string // safe to show to the caller
	Err     error  // optional cause, for logs and errors.Is; never shown
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// E returns an *Error with a formatted message.
func E(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with a message and a cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }

// retryAfter is an error that says how long to wait before trying again.
type retryAfter struct {
	err   error
	after time.Duration
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// WithRetryAfter returns err carrying how long the caller should wait
// before trying again, d (the API answers it as Retry-After, in whole
// seconds rounded up). err's code, message and causes are unchanged: CodeOf,
// Is and errors.Is see through it. nil stays nil; d <= 0 adds nothing.
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfter{err: err, after: d}
}

// RetryAfter returns the wait the first error in err's chain made by
// WithRetryAfter carries, or 0 if there is none.
func RetryAfter(err error) time.Duration {
	var r *retryAfter
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}
