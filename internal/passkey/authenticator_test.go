package passkey_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/warden-sec/warden/internal/passkey/passkeytest"
)

var b64 = base64.RawURLEncoding

// newAuthenticator returns a software authenticator (passkeytest) for the
// test relying party whose credential id and key derive from id alone, so
// that runs (and fuzz worker processes) repeat.
func newAuthenticator(t testing.TB, id byte) *passkeytest.Authenticator {
	t.Helper()
	return passkeytest.NewSeeded(rpID, origin, []byte{id})
}

// create has a answer registration options, failing the test if it cannot.
func create(t testing.TB, a *passkeytest.Authenticator, opts json.RawMessage) []byte {
	t.Helper()
	resp, err := a.Register(opts)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// get has a answer login options, failing the test if it cannot.
func get(t testing.TB, a *passkeytest.Authenticator, opts json.RawMessage) []byte {
	t.Helper()
	resp, err := a.Assert(opts)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func parseOptions(t testing.TB, raw json.RawMessage) passkeytest.Options {
	t.Helper()
	o, err := passkeytest.ParseOptions(raw)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
