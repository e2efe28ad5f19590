package passkeytest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/warden-sec/warden/internal/passkey/passkeytest"
)

var b64 = base64.RawURLEncoding

const (
	createOpts = `{"publicKey":{"challenge":"Y2hhbGxlbmdl","rp":{"id":"example.com","name":"x"},"user":{"id":"dXNlcg","name":"u","displayName":"u"}}}`
	getOpts    = `{"publicKey":{"challenge":"b3RoZXI","rpId":"example.com"}}`
)

// assertion is the decoded response of Assert.
type assertion struct {
	ID       string `json:"id"`
	Response struct {
		ClientDataJSON    string `json:"clientDataJSON"`
		AuthenticatorData string `json:"authenticatorData"`
		Signature         string `json:"signature"`
		UserHandle        string `json:"userHandle"`
	} `json:"response"`
}

func assert(t *testing.T, a *passkeytest.Authenticator) (clientData []byte, authData []byte, verified bool, userHandle string) {
	t.Helper()
	raw, err := a.Assert([]byte(getOpts))
	if err != nil {
		t.Fatal(err)
	}
	var r assertion
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != b64.EncodeToString(a.CredentialID) {
		t.Fatalf("id %q", r.ID)
	}
	cd, _ := b64.DecodeString(r.Response.ClientDataJSON)
	ad, _ := b64.DecodeString(r.Response.AuthenticatorData)
	sig, _ := b64.DecodeString(r.Response.Signature)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), h[:]...))
	return cd, ad, ecdsa.VerifyASN1(&a.Key.PublicKey, digest[:], sig), r.Response.UserHandle
}

func TestAuthenticator(t *testing.T) {
	a := passkeytest.NewSeeded("example.com", "https://example.com", []byte("s"))
	b := passkeytest.NewSeeded("example.com", "https://example.com", []byte("s"))
	if !a.Key.Equal(b.Key) || !bytes.Equal(a.CredentialID, b.CredentialID) {
		t.Fatal("the same seed gave other credentials")
	}
	if c := passkeytest.New("example.com", "https://example.com"); c.Key.Equal(a.Key) || bytes.Equal(c.CredentialID, a.CredentialID) {
		t.Fatal("New repeated a seeded credential")
	}
	if _, err := a.Register([]byte(createOpts)); err != nil {
		t.Fatal(err)
	}
	if string(a.UserHandle) != "user" || a.Counter != 0 {
		t.Fatalf("after Register: user handle %q, counter %d", a.UserHandle, a.Counter)
	}

	cd, ad, ok, uh := assert(t, a)
	var c struct{ Type, Challenge, Origin string }
	if err := json.Unmarshal(cd, &c); err != nil || c.Type != "webauthn.get" || c.Challenge != "b3RoZXI" || c.Origin != "https://example.com" {
		t.Fatalf("client data %s", cd)
	}
	rp := sha256.Sum256([]byte("example.com"))
	if !ok || !bytes.Equal(ad[:32], rp[:]) || ad[32] != passkeytest.FlagUP|passkeytest.FlagUV ||
		binary.BigEndian.Uint32(ad[33:]) != 1 || uh != "dXNlcg" {
		t.Fatalf("assertion: verified %v, authenticator data %x, user handle %q", ok, ad, uh)
	}

	// The knobs.
	a.Origin, a.RPID, a.Counter, a.Step = "https://evil.example", "evil.example", 7, 0
	cd, ad, ok, _ = assert(t, a)
	evil := sha256.Sum256([]byte("evil.example"))
	if !ok || !bytes.Contains(cd, []byte(`"https://evil.example"`)) || !bytes.Equal(ad[:32], evil[:]) || binary.BigEndian.Uint32(ad[33:]) != 7 {
		t.Fatalf("knobs: verified %v, client data %s, authenticator data %x", ok, cd, ad)
	}
	a.BadSignature = true
	if _, _, ok, _ = assert(t, a); ok {
		t.Fatal("BadSignature: the signature verifies")
	}

	for _, o := range []string{``, `{}`, `{"publicKey":{}}`, `[1]`} {
		if _, err := a.Assert([]byte(o)); err == nil {
			t.Errorf("Assert(%q) succeeded", o)
		}
		if _, err := a.Register([]byte(o)); err == nil {
			t.Errorf("Register(%q) succeeded", o)
		}
	}
	if _, err := a.Register([]byte(`{"publicKey":{"challenge":"eA","user":{"id":"!"}}}`)); err == nil {
		t.Error("Register with a user id that is not base64url succeeded")
	}
}
