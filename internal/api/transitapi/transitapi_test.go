package transitapi

import (
	"context"
	"net/url"
	"testing"

	"github.com/warden-sec/warden/internal/api/handler"
	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
)

// bareRequest is a request with a path and a body and no audit record.
type bareRequest struct {
	path map[string]string
	body string
}

var _ handler.Request = (*bareRequest)(nil)

func (r *bareRequest) Context() context.Context     { return context.Background() }
func (r *bareRequest) PathValue(name string) string { return r.path[name] }
func (r *bareRequest) Query() url.Values            { return url.Values{} }
func (r *bareRequest) Decode(v any) error           { return handler.DecodeJSON([]byte(r.body), v, true) }
func (r *bareRequest) Hash(string, []byte) error    { return nil }
func (r *bareRequest) Entry() *audit.Entry          { return nil }

// TestNoEngine: without an engine every handler answers 503.
func TestNoEngine(t *testing.T) {
	h := New(nil)
	fs := map[string]handler.Func{"ReadKey": h.ReadKey, "CreateKey": h.CreateKey, "ListKeys": h.ListKeys, "DeleteKey": h.DeleteKey,
		"RotateKey": h.RotateKey, "ConfigKey": h.ConfigKey, "TrimKey": h.TrimKey, "Export": h.Export, "Encrypt": h.Encrypt,
		"Decrypt": h.Decrypt, "Rewrap": h.Rewrap, "DataKey": h.DataKey(false), "Sign": h.Sign, "Verify": h.Verify, "HMAC": h.HMAC}
	for name, f := range fs {
		_, _, err := f(&bareRequest{path: map[string]string{"name": "k", "type": "public-key"}, body: `{}`})
		if errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("%s: %v, want a 503", name, err)
		}
	}
}
