package passkey_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/passkey"
)

// FuzzFinishLogin feeds FinishLogin arbitrary states and responses. Nothing
// may panic, every error must be an application error, and nothing may
// succeed: the one state answered has been used (its replay is a seed), and
// an answer to any other state would need a forged signature. (A fuzz worker
// reruns this setup with the same key but other challenges; the seed
// assertion it receives carries counter 1, which its stored credential has
// already reached.)
func FuzzFinishLogin(f *testing.F) {
	c := newClock()
	p := newPasskeys(f, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(f, 1)
	register(f, p, &acct, a)
	used, usedResp := assertion(f, p, acct, a)
	id, updated, err := p.FinishLogin(acct, used, usedResp)
	if err != nil {
		f.Fatal(err)
	}
	store(f, &acct, id, updated)
	_, regState, err := p.BeginRegistration(acct)
	if err != nil {
		f.Fatal(err)
	}
	_, live, err := p.BeginLogin(acct)
	if err != nil {
		f.Fatal(err)
	}

	f.Add(used, usedResp)
	f.Add(live, usedResp)
	f.Add(regState, usedResp)
	f.Add("", []byte(nil))
	f.Add(live, []byte(`{}`))
	f.Add(live, []byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add(live+"x", []byte(`null`))
	f.Fuzz(func(t *testing.T, state string, resp []byte) {
		id, cred, err := p.FinishLogin(acct, state, resp)
		if err == nil {
			t.Fatalf("accepted: id %x, credential %s", id, cred)
		}
		if code := errs.CodeOf(err); code != errs.Invalid && code != errs.Unauthenticated {
			t.Fatalf("error code %s: %v", code, err)
		}
	})
}

// FuzzFinishRegistration feeds FinishRegistration arbitrary states and
// responses. Nothing may panic and every error must be errs.Invalid. A
// success is possible ("none" attestation signs nothing: a seed is a valid
// registration), but only with a state issued for this account under this
// key, so the same input must fail for another account; and it yields a new
// credential whose JSON carries the returned id.
func FuzzFinishRegistration(f *testing.F) {
	p := newPasskeys(f, newClock())
	sum := sha256.Sum256([]byte("alice"))
	acct := passkey.Account{Name: "alice", ID: sum[:16]}
	a := newAuthenticator(f, 1)
	register(f, p, &acct, a)
	live, resp := begin(f, p, &acct, newAuthenticator(f, 2))
	_, dup := begin(f, p, &acct, a)

	f.Add(live, resp)
	f.Add(live, dup)
	f.Add("", []byte(nil))
	f.Add(live, []byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`))
	f.Fuzz(func(t *testing.T, state string, response []byte) {
		id, cred, err := p.FinishRegistration(acct, state, response)
		if err != nil {
			if code := errs.CodeOf(err); code != errs.Invalid {
				t.Fatalf("error code %s: %v", code, err)
			}
			return
		}
		if _, _, err := p.FinishRegistration(passkey.Account{Name: "bob", ID: acct.ID}, state, response); err == nil {
			t.Fatal("a registration for alice also accepted for bob")
		}
		c := decode(t, cred)
		if len(id) == 0 || !bytes.Equal(c.ID, id) || bytes.Equal(id, a.CredentialID) || len(c.PublicKey) == 0 {
			t.Fatalf("accepted: id %x, credential %s", id, cred)
		}
	})
}
