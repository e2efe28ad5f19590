// Package transitapi serves Warden's transit engine over HTTP in the shape
// of Vault's transit API (/v1/transit/...): the same request fields, the
// same {"data": {...}} envelope, batch_input and batch_results, so that a
// program written for Vault changes its address, token and mount only.
// docs/transit.md describes the API; design notes are in the route table
// (internal/api/routes.go), which declares every route's target, audit
// class and status.
//
// Its handlers decode strictly (unknown fields are errors; the Vault fields
// Warden does not implement are accepted only at their default), call the
// engine and the pure operations of its keys, and put into the request's
// audit record the version they used and the HMACs of the inputs. Every
// bad input is a 400 naming the field; a ciphertext that does not open is
// only "cannot decrypt". It never logs, and no error it returns holds key
// material, a plaintext or a data key.
package transitapi

import (
	"net/http"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/transit"
	"github.com/warden-sec/warden/internal/transit/engine"
)

// Handlers are the transit API's handlers over one engine.
type Handlers struct {
	e *engine.Engine
}

// New returns the handlers over e; with a nil e they answer 503.
func New(e *engine.Engine) *Handlers { return &Handlers{e: e} }

// envelope is Vault's response shape.
type envelope struct {
	Data any `json:"data"`
}

const ok = http.StatusOK

var errNotConfigured = errs.E(errs.Unavailable, "transit is not configured on this server")

// engine returns the engine, or 503.
func (h *Handlers) engine() (*engine.Engine, error) {
	if h.e == nil {
		return nil, errNotConfigured
	}
	return h.e, nil
}

// keyName is the route's {name}, checked.
func keyName(r handler.Request) (string, error) {
	name := r.PathValue("name")
	return name, transit.ValidName(name)
}

// named returns the engine and the route's key name, and decodes the body
// into in (nil: the body is not read).
func (h *Handlers) named(r handler.Request, in any) (*engine.Engine, string, error) {
	eng, err := h.engine()
	if err != nil {
		return nil, "", err
	}
	name, err := keyName(r)
	if err != nil {
		return nil, "", err
	}
	if in != nil {
		if err := r.Decode(in); err != nil {
			return nil, "", err
		}
	}
	return eng, name, nil
}

// load returns the key the route names.
func (h *Handlers) load(r handler.Request) (*engine.Engine, *transit.Key, error) {
	eng, name, err := h.named(r, nil)
	if err != nil {
		return nil, nil, err
	}
	k, err := eng.Key(r.Context(), name)
	if err != nil {
		return nil, nil, err
	}
	return eng, k, nil
}

// setVersion records the key version an operation used (the newest of
// several).
func setVersion(r handler.Request, v int) {
	if e := r.Entry(); e != nil && uint64(v) > e.KeyVersion {
		e.KeyVersion = uint64(v)
	}
}
