package api

import (
	"bytes"
	"net/url"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/audit"
)

// The pipeline's request is what the handlers of a capability's own
// package (handler.Func) see.
var _ handler.Request = (*request)(nil)

// handle runs a handler.Func as a route's handler.
func handle(h handler.Func) handlerFunc {
	return func(req *request) (int, any, error) { return h(req) }
}

// Query is the parsed URL query.
func (req *request) Query() url.Values { return req.URL.Query() }

// Decode strictly decodes the body into v; an empty body or JSON null (what
// Vault's client sends for no data) leaves v as it is.
func (req *request) Decode(v any) error {
	body, err := req.readBody()
	if err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil
	}
	return handler.DecodeJSON(body, v, true)
}

// Hash puts the audit HMAC of value into the request's record as name.
func (req *request) Hash(name string, value []byte) error {
	if req.entry == nil {
		return nil
	}
	h, err := req.s.cfg.Audit.Hash(value)
	if err != nil {
		return err
	}
	if req.entry.Hashes == nil {
		req.entry.Hashes = map[string]string{}
	}
	req.entry.Hashes[name] = h
	return nil
}

// Entry is the request's audit record (nil when it has none).
func (req *request) Entry() *audit.Entry { return req.entry }
