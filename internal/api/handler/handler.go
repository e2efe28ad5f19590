// Package handler is the contract between Warden's HTTP pipeline
// (internal/api) and the handlers of a capability that lives in a package
// of its own (internal/api/transitapi): the request a handler sees and the
// function it is.
//
// The pipeline does everything before and after a handler — limits,
// authentication, authorization, the audit record's commit, encoding the
// answer — so a handler only decodes, calls its service and returns. It
// must not write the response itself, log secrets, or keep the Request
// after it returns.
package handler

import (
	"context"
	"net/url"

	"github.com/warden-sec/warden/internal/audit"
)

// Request is one request as a handler sees it. It is used by one
// goroutine, for the duration of the handler.
type Request interface {
	// Context is the request's context: its deadline, and, on a route of
	// audit class change, the pending audit record that a store
	// transaction made under it commits with.
	Context() context.Context
	// PathValue is the value of a wildcard of the route's pattern.
	PathValue(name string) string
	// Query is the parsed URL query.
	Query() url.Values
	// Decode strictly decodes the JSON object body into v (see DecodeJSON),
	// read up to the route's body limit. An empty body, or JSON null,
	// leaves v as it is.
	Decode(v any) error
	// Hash puts the HMAC (under the audit log's key) of value into the
	// request's audit record as name. It does nothing when the request
	// has no record.
	Hash(name string, value []byte) error
	// Entry is the request's audit record, for a handler to complete
	// (entry.KeyVersion), or nil when the request is not recorded. On a
	// change route the record is written when the change commits: set its
	// fields before.
	Entry() *audit.Entry
}

// Func is a handler: the status of a success (the route's declared one)
// and the body to encode as JSON (nil: none), or an error (an *errs.Error
// is answered with its code's status and message; any other error is an
// internal error, whose detail only the server log shows).
type Func func(Request) (status int, body any, err error)
