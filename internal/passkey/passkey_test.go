package passkey_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/passkey"
	"github.com/warden-sec/warden/internal/passkey/passkeytest"
)

const (
	rpID   = "warden.example.com"
	origin = "https://warden.example.com"
)

var stateKey = bytes.Repeat([]byte{0x5a}, passkey.StateKeySize)

// clock is a fake clock the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newPasskeys(t testing.TB, c *clock) *passkey.Passkeys {
	t.Helper()
	p, err := passkey.New(passkey.Config{RPID: rpID, RPDisplayName: "Warden test", Origins: []string{origin},
		StateKey: stateKey, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// register registers a with acct and adds the credential to it.
func register(t testing.TB, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) json.RawMessage {
	t.Helper()
	opts, state, err := p.BeginRegistration(*acct)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	id, cred, err := p.FinishRegistration(*acct, state, create(t, a, opts))
	if err != nil {
		t.Fatalf("FinishRegistration: %v (%v)", err, cause(err))
	}
	if !bytes.Equal(id, a.CredentialID) {
		t.Fatalf("FinishRegistration id = %x, want %x", id, a.CredentialID)
	}
	acct.Credentials = append(acct.Credentials, cred)
	return cred
}

// assertion begins a login for acct and has a answer it.
func assertion(t testing.TB, p *passkey.Passkeys, acct passkey.Account, a *passkeytest.Authenticator) (state string, resp []byte) {
	t.Helper()
	opts, state, err := p.BeginLogin(acct)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	return state, get(t, a, opts)
}

// store replaces the credential with id in acct, as the caller does after a login.
func store(t testing.TB, acct *passkey.Account, id []byte, updated json.RawMessage) {
	t.Helper()
	for i, raw := range acct.Credentials {
		var c webauthn.Credential
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(c.ID, id) {
			acct.Credentials[i] = updated
			return
		}
	}
	t.Fatalf("no credential %x", id)
}

func decode(t testing.TB, raw json.RawMessage) webauthn.Credential {
	t.Helper()
	var c webauthn.Credential
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("credential JSON: %v", err)
	}
	return c
}

// cause is the logged cause of an application error, for test failure messages.
func cause(err error) error {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Err
	}
	return nil
}

// The messages a caller may see: fixed, naming nothing from the request.
var messages = map[string]bool{
	"passkey: assertion refused":                          true,
	"passkey: login ceremony expired; begin again":        true,
	"passkey: registration refused":                       true,
	"passkey: registration ceremony expired; begin again": true,
	"passkey: malformed credential response":              true,
	"passkey: this passkey is already registered":         true,
}

// refused checks err is an application error with code and a fixed message.
func refused(t testing.TB, err error, code errs.Code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want refused (%s)", what, code)
	}
	if got := errs.CodeOf(err); got != code {
		t.Fatalf("%s: code %s (%v), want %s", what, got, err, code)
	}
	if !messages[err.Error()] {
		t.Fatalf("%s: message %q is not one of the fixed ones", what, err.Error())
	}
	t.Logf("%s: %v (%v)", what, err, cause(err))
}

func TestRegisterAndLogin(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)

	opts, _, err := p.BeginRegistration(acct)
	if err != nil {
		t.Fatal(err)
	}
	o := parseOptions(t, opts)
	if o.PublicKey.RP.ID != rpID || o.PublicKey.AuthenticatorSelection.UserVerification != "preferred" {
		t.Errorf("creation options: rp %q, uv %q", o.PublicKey.RP.ID, o.PublicKey.AuthenticatorSelection.UserVerification)
	}
	sum := sha256.Sum256([]byte("alice"))
	if uid, _ := b64.DecodeString(o.PublicKey.User.ID); !bytes.Equal(uid, sum[:16]) {
		t.Errorf("user handle %x, want SHA-256(name)[:16]", uid)
	}

	cred := decode(t, register(t, p, &acct, a))
	if !bytes.Equal(cred.ID, a.CredentialID) || cred.Authenticator.SignCount != 0 || !cred.Flags.UserVerified {
		t.Fatalf("registered credential: %+v", cred)
	}

	for want := uint32(1); want <= 3; want++ {
		c.t = c.t.Add(time.Minute)
		opts, state, err := p.BeginLogin(acct)
		if err != nil {
			t.Fatal(err)
		}
		o := parseOptions(t, opts)
		if o.PublicKey.RPID != rpID || o.PublicKey.UserVerification != "preferred" ||
			len(o.PublicKey.AllowCredentials) != 1 || o.PublicKey.AllowCredentials[0].ID != b64.EncodeToString(a.CredentialID) {
			t.Fatalf("request options: %s", opts)
		}
		c.t = c.t.Add(4 * time.Minute) // still within the 5 minutes
		r, err := p.VerifyLogin(acct, state, get(t, a, opts))
		if err != nil {
			t.Fatalf("login %d: %v (%v)", want, err, cause(err))
		}
		if !bytes.Equal(r.ID, a.CredentialID) || !r.UserVerified || r.SignCount != want {
			t.Fatalf("login %d: id %x uv %v count %d", want, r.ID, r.UserVerified, r.SignCount)
		}
		if got := decode(t, r.Credential); got.Authenticator.SignCount != want || got.Authenticator.CloneWarning {
			t.Fatalf("login %d: updated credential counter %d clone %v", want, got.Authenticator.SignCount, got.Authenticator.CloneWarning)
		}
		store(t, &acct, r.ID, r.Credential)
	}
}

// Without UV the login still succeeds (UV is preferred, not required) and says so.
func TestLoginWithoutUserVerification(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	register(t, p, &acct, a)
	a.Flags = passkeytest.FlagUP
	state, resp := assertion(t, p, acct, a)
	r, err := p.VerifyLogin(acct, state, resp)
	if err != nil {
		t.Fatalf("%v (%v)", err, cause(err))
	}
	if r.UserVerified {
		t.Error("UserVerified = true for an assertion without UV")
	}
	// FinishLogin is the same verification.
	state, resp = assertion(t, p, acct, a)
	store(t, &acct, r.ID, r.Credential)
	id, updated, err := p.FinishLogin(acct, state, resp)
	if err != nil || !bytes.Equal(id, a.CredentialID) || decode(t, updated).Authenticator.SignCount != 2 {
		t.Fatalf("FinishLogin: %x %v", id, err)
	}
}

// A caller that stores the updated credential cannot be replayed: the counter
// stops it, and for an authenticator whose counter stays 0, the challenges
// recorded in the credential do.
func TestReplayRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		step uint32
	}{{"counter", 1}, {"zero counter", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := newPasskeys(t, c)
			acct := passkey.Account{Name: "alice"}
			a := newAuthenticator(t, 1)
			a.Step = tc.step
			register(t, p, &acct, a)

			earlier, earlierResp := assertion(t, p, acct, a) // begun first, finished last
			state, resp := assertion(t, p, acct, a)
			c.t = c.t.Add(time.Second)
			id, updated, err := p.FinishLogin(acct, state, resp)
			if err != nil {
				t.Fatalf("login: %v (%v)", err, cause(err))
			}
			store(t, &acct, id, updated)

			_, _, err = p.FinishLogin(acct, state, resp)
			refused(t, err, errs.Unauthenticated, "replayed state and assertion")

			if tc.step == 0 {
				// An unused state begun earlier still works (a counter
				// would refuse it: its assertion carries the older count).
				id, updated, err = p.FinishLogin(acct, earlier, earlierResp)
				if err != nil {
					t.Fatalf("unused earlier state: %v (%v)", err, cause(err))
				}
				store(t, &acct, id, updated)
				for _, s := range []struct {
					state string
					resp  []byte
				}{{state, resp}, {earlier, earlierResp}} {
					_, _, err = p.FinishLogin(acct, s.state, s.resp)
					refused(t, err, errs.Unauthenticated, "replay")
				}
			}
		})
	}
}

// The used challenges stay bounded: entries are dropped once they can no
// longer match a live state, and a passkey used more often than that is
// refused rather than forgetting a challenge early.
func TestUsedChallengesBounded(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	a.Step = 0
	register(t, p, &acct, a)
	login := func() error {
		state, resp := assertion(t, p, acct, a)
		id, updated, err := p.FinishLogin(acct, state, resp)
		if err == nil {
			store(t, &acct, id, updated)
		}
		return err
	}
	used := func() int {
		var m struct {
			Used []json.RawMessage `json:"wardenUsed"`
		}
		if err := json.Unmarshal(acct.Credentials[0], &m); err != nil {
			t.Fatal(err)
		}
		return len(m.Used)
	}
	for i := range 64 {
		if err := login(); err != nil {
			t.Fatalf("login %d: %v (%v)", i, err, cause(err))
		}
	}
	refused(t, login(), errs.Unauthenticated, "65th login within the timeout")
	if n := used(); n != 64 {
		t.Fatalf("%d used challenges stored, want 64", n)
	}
	// Kept one timeout past their expiry (clock skew between servers).
	c.t = c.t.Add(2*passkey.DefaultTimeout - time.Nanosecond)
	refused(t, login(), errs.Unauthenticated, "login before the used challenges expire")
	c.t = c.t.Add(time.Nanosecond)
	if err := login(); err != nil {
		t.Fatalf("login after the used challenges expired: %v (%v)", err, cause(err))
	}
	if n := used(); n != 1 {
		t.Fatalf("%d used challenges stored, want 1", n)
	}
}

func TestCounterNotIncreasingRefused(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	register(t, p, &acct, a)

	a.Step = 5
	state, resp := assertion(t, p, acct, a) // counter 5
	id, updated, err := p.FinishLogin(acct, state, resp)
	if err != nil {
		t.Fatalf("%v (%v)", err, cause(err))
	}
	store(t, &acct, id, updated)

	for _, tc := range []struct {
		name    string
		counter uint32 // before the assertion's step
		step    uint32
	}{
		{"lower", 2, 1},        // 3 < 5
		{"equal", 4, 1},        // 5 = 5
		{"back to zero", 0, 0}, // 0 after 5
	} {
		a.Counter, a.Step = tc.counter, tc.step
		state, resp := assertion(t, p, acct, a)
		_, _, err := p.FinishLogin(acct, state, resp)
		refused(t, err, errs.Unauthenticated, tc.name+" counter")
	}
	a.Counter, a.Step = 5, 1
	state, resp = assertion(t, p, acct, a)
	if _, _, err := p.FinishLogin(acct, state, resp); err != nil {
		t.Fatalf("counter 6 after 5: %v (%v)", err, cause(err))
	}
}

func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   errs.Code
		attack func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (state string, resp []byte)
	}{
		{"wrong origin", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Origin = "https://warden.example.com.evil.example"
			return assertion(t, p, *acct, a)
		}},
		{"http origin", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Origin = "http://warden.example.com"
			return assertion(t, p, *acct, a)
		}},
		{"wrong RP ID hash", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.RPID = "evil.example"
			return assertion(t, p, *acct, a)
		}},
		{"no user presence", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Flags = passkeytest.FlagUV
			return assertion(t, p, *acct, a)
		}},
		{"bad signature", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			return state, mutate(t, resp, "signature", func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
		}},
		{"well-formed signature of other data", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.BadSignature = true
			return assertion(t, p, *acct, a)
		}},
		{"signed by another key", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Key = newAuthenticator(t, 4).Key
			return assertion(t, p, *acct, a)
		}},
		{"authenticator data altered", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			return state, mutate(t, resp, "authenticatorData", func(b []byte) []byte { b[36] += 100; return b }) // counter
		}},
		{"client data altered", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			return state, mutate(t, resp, "clientDataJSON", func(b []byte) []byte {
				return append(b[:len(b)-1], `,"extra":1}`...) // still valid JSON, not what was signed
			})
		}},
		{"challenge of another state", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, _ := assertion(t, p, *acct, a)
			_, resp := assertion(t, p, *acct, a)
			return state, resp
		}},
		{"registration state", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			_, state, err := p.BeginRegistration(*acct)
			if err != nil {
				t.Fatal(err)
			}
			_, resp := assertion(t, p, *acct, a)
			return state, resp
		}},
		{"expired state", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			c.t = c.t.Add(passkey.DefaultTimeout)
			return state, resp
		}},
		{"state of another account", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			// A state begun for bob, answered by alice's passkey over its
			// challenge, does not finish alice's login.
			bob := passkey.Account{Name: "bob"}
			register(t, p, &bob, newAuthenticator(t, 2))
			return assertion(t, p, bob, a)
		}},
		{"passkey of another account", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			bob := passkey.Account{Name: "bob"}
			b := newAuthenticator(t, 2)
			register(t, p, &bob, b)
			b.UserHandle = a.UserHandle
			return assertion(t, p, *acct, b) // alice's state, bob's passkey
		}},
		{"passkey removed after begin", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			acct.Credentials = acct.Credentials[1:]
			return state, resp
		}},
		{"account's user handle changed after begin", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			acct.ID = []byte("another handle")
			return state, resp
		}},
		{"other user handle", errs.Unauthenticated, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.UserHandle = []byte("someone else")
			return assertion(t, p, *acct, a)
		}},
		{"malformed response", errs.Invalid, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := assertion(t, p, *acct, a)
			return state, resp[:len(resp)/2]
		}},
		{"oversized response", errs.Invalid, func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, _ := assertion(t, p, *acct, a)
			return state, bytes.Repeat([]byte(" "), passkey.MaxResponseSize+1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := newPasskeys(t, c)
			acct := passkey.Account{Name: "alice"}
			a := newAuthenticator(t, 1)
			register(t, p, &acct, a)
			// a second passkey, registered after the first
			register(t, p, &acct, newAuthenticator(t, 3))
			state, resp := tc.attack(t, c, p, &acct, a)
			_, _, err := p.FinishLogin(acct, state, resp)
			refused(t, err, tc.code, tc.name)
		})
	}
}

// The state is refused in every altered form, and before it, a state is
// accepted up to the last nanosecond of its lifetime.
func TestStateRefusals(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	register(t, p, &acct, a)
	state, resp := assertion(t, p, acct, a)

	body, mac, _ := strings.Cut(state, ".")
	other, err := passkey.New(passkey.Config{RPID: rpID, Origins: []string{origin}, Now: c.Now,
		StateKey: bytes.Repeat([]byte{0xa5}, passkey.StateKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	otherState, otherResp := assertion(t, other, acct, a)

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, s := range map[string]string{
		"empty":               "",
		"no MAC":              body,
		"empty MAC":           body + ".",
		"body byte changed":   flip(body, len(body)/2) + "." + mac,
		"MAC byte changed":    body + "." + flip(mac, 3),
		"MAC truncated":       body + "." + mac[:len(mac)-1],
		"MAC padded":          body + "." + mac + "=",
		"MAC with newline":    body + "." + mac[:10] + "\n" + mac[10:],
		"extra part":          state + "." + mac,
		"swapped":             mac + "." + body,
		"signed by other key": otherState,
		"oversized":           strings.Repeat("A", passkey.MaxStateSize+1),
	} {
		_, _, err := p.FinishLogin(acct, s, resp)
		refused(t, err, errs.Unauthenticated, name)
	}
	if _, _, err := other.FinishLogin(acct, state, otherResp); err == nil {
		t.Fatal("a state of one key accepted by a server with another")
	}

	c.t = c.t.Add(passkey.DefaultTimeout - time.Nanosecond)
	if _, _, err := p.FinishLogin(acct, state, resp); err != nil {
		t.Fatalf("state at the end of its lifetime: %v (%v)", err, cause(err))
	}
	c.t = c.t.Add(time.Nanosecond)
	_, _, err = p.FinishLogin(acct, state, resp)
	refused(t, err, errs.Unauthenticated, "expired")
	if err.Error() != "passkey: login ceremony expired; begin again" {
		t.Errorf("expired: %q", err)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (state string, resp []byte)
	}{
		{"wrong origin", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Origin = "https://evil.example"
			return begin(t, p, acct, a)
		}},
		{"wrong RP ID hash", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.RPID = "example.com"
			return begin(t, p, acct, a)
		}},
		{"no user presence", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			a.Flags = passkeytest.FlagUV
			return begin(t, p, acct, a)
		}},
		{"unknown attestation format", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := begin(t, p, acct, a)
			return state, mutate(t, resp, "attestationObject", func(b []byte) []byte {
				return bytes.Replace(b, []byte("none"), []byte("nonf"), 1)
			})
		}},
		{"expired state", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := begin(t, p, acct, a)
			c.t = c.t.Add(passkey.DefaultTimeout)
			return state, resp
		}},
		{"tampered state", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := begin(t, p, acct, a)
			return "A" + state[1:], resp
		}},
		{"state of another account", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, resp := begin(t, p, &passkey.Account{Name: "bob"}, a)
			return state, resp
		}},
		{"login state", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			register(t, p, acct, newAuthenticator(t, 9))
			_, state, err := p.BeginLogin(*acct)
			if err != nil {
				t.Fatal(err)
			}
			_, resp := begin(t, p, acct, a)
			return state, resp
		}},
		{"already registered", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			register(t, p, acct, a)
			return begin(t, p, acct, a)
		}},
		{"malformed", func(t *testing.T, c *clock, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
			state, _ := begin(t, p, acct, a)
			return state, []byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{}}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := newPasskeys(t, c)
			acct := passkey.Account{Name: "alice"}
			state, resp := tc.attack(t, c, p, &acct, newAuthenticator(t, 1))
			_, _, err := p.FinishRegistration(acct, state, resp)
			refused(t, err, errs.Invalid, tc.name)
		})
	}
}

func begin(t testing.TB, p *passkey.Passkeys, acct *passkey.Account, a *passkeytest.Authenticator) (string, []byte) {
	t.Helper()
	opts, state, err := p.BeginRegistration(*acct)
	if err != nil {
		t.Fatal(err)
	}
	return state, create(t, a, opts)
}

// Registration excludes the account's passkeys, so the authenticator can
// refuse to register twice, and FinishRegistration refuses it anyway.
func TestRegistrationExcludesRegistered(t *testing.T) {
	p := newPasskeys(t, newClock())
	acct := passkey.Account{Name: "alice", ID: []byte("handle-1")}
	a, b := newAuthenticator(t, 1), newAuthenticator(t, 2)
	register(t, p, &acct, a)
	register(t, p, &acct, b)
	opts, _, err := p.BeginRegistration(acct)
	if err != nil {
		t.Fatal(err)
	}
	o := parseOptions(t, opts)
	var got []string
	for _, c := range o.PublicKey.ExcludeCredentials {
		got = append(got, c.ID)
	}
	want := []string{b64.EncodeToString(a.CredentialID), b64.EncodeToString(b.CredentialID)}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("excludeCredentials = %v, want %v", got, want)
	}
	if uid, _ := b64.DecodeString(o.PublicKey.User.ID); string(uid) != "handle-1" {
		t.Fatalf("user handle %q, want the account's", uid)
	}
}

func TestBeginErrors(t *testing.T) {
	p := newPasskeys(t, newClock())
	if _, _, err := p.BeginLogin(passkey.Account{Name: "alice"}); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("BeginLogin without passkeys: %v", err)
	}
	for name, a := range map[string]passkey.Account{
		"no name":         {},
		"empty handle":    {Name: "alice", ID: []byte{}},
		"handle too long": {Name: "alice", ID: make([]byte, 65)},
	} {
		if _, _, err := p.BeginRegistration(a); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("%s: BeginRegistration: %v", name, err)
		}
	}
	// A stored credential that does not decode is corrupt storage: internal.
	for name, raw := range map[string]string{"not JSON": `{`, "no key": `{"id":"AAAA"}`} {
		_, _, err := p.BeginLogin(passkey.Account{Name: "alice", Credentials: []json.RawMessage{json.RawMessage(raw)}})
		if err == nil || errs.CodeOf(err) != errs.Internal {
			t.Errorf("%s: BeginLogin: %v", name, err)
		}
	}
}

func TestNewConfig(t *testing.T) {
	ok := passkey.Config{RPID: rpID, Origins: []string{origin}, StateKey: stateKey}
	if _, err := passkey.New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*passkey.Config){
		"no RP ID":         func(c *passkey.Config) { c.RPID = "" },
		"bad RP ID":        func(c *passkey.Config) { c.RPID = "https://warden.example.com/" },
		"no origins":       func(c *passkey.Config) { c.Origins = nil },
		"short key":        func(c *passkey.Config) { c.StateKey = stateKey[:16] },
		"negative timeout": func(c *passkey.Config) { c.Timeout = -time.Second },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := passkey.New(cfg); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Timeout is both what the browser is told and what the state allows.
	c := newClock()
	cfg := ok
	cfg.Timeout, cfg.Now = time.Minute, c.Now
	p, err := passkey.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	register(t, p, &acct, a)
	opts, state, err := p.BeginLogin(acct)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			Timeout int `json:"timeout"`
		} `json:"publicKey"`
	}
	if json.Unmarshal(opts, &o); o.PublicKey.Timeout != 60000 {
		t.Errorf("options timeout = %d ms, want 60000", o.PublicKey.Timeout)
	}
	c.t = c.t.Add(time.Minute)
	_, _, err = p.FinishLogin(acct, state, get(t, a, opts))
	refused(t, err, errs.Unauthenticated, "state past a 1 min timeout")
}

// The updated credential is still webauthn.Credential JSON, with the used
// challenges as one extra member.
func TestUpdatedCredentialJSON(t *testing.T) {
	p := newPasskeys(t, newClock())
	acct := passkey.Account{Name: "alice"}
	a := newAuthenticator(t, 1)
	reg := register(t, p, &acct, a)
	state, resp := assertion(t, p, acct, a)
	_, updated, err := p.FinishLogin(acct, state, resp)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(updated, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["wardenUsed"]; !ok {
		t.Errorf("no wardenUsed in %s", updated)
	}
	before, after := decode(t, reg), decode(t, updated)
	if !bytes.Equal(before.PublicKey, after.PublicKey) || !bytes.Equal(before.ID, after.ID) {
		t.Error("the updated credential lost its id or key")
	}
}

// mutate decodes the base64url member field of the credential's response,
// changes it and puts it back.
func mutate(t testing.TB, cred []byte, field string, f func([]byte) []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cred, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	b, err := b64.DecodeString(r[field].(string))
	if err != nil {
		t.Fatal(err)
	}
	r[field] = b64.EncodeToString(f(b))
	out, _ := json.Marshal(m)
	return out
}

// One Passkeys serves concurrent ceremonies (run with -race).
func TestConcurrentUse(t *testing.T) {
	c := newClock()
	p := newPasskeys(t, c)
	done := make(chan error)
	for i := range 4 {
		go func() {
			acct := passkey.Account{Name: "user" + string(rune('a'+i))}
			// No t.Fatal off the test's goroutine: errors go to done.
			a := passkeytest.NewSeeded(rpID, origin, []byte{byte(10 + i)})
			opts, state, err := p.BeginRegistration(acct)
			if err != nil {
				done <- err
				return
			}
			resp, err := a.Register(opts)
			if err != nil {
				done <- err
				return
			}
			_, cred, err := p.FinishRegistration(acct, state, resp)
			if err != nil {
				done <- err
				return
			}
			acct.Credentials = []json.RawMessage{cred}
			for range 5 {
				opts, state, err := p.BeginLogin(acct)
				if err != nil {
					done <- err
					return
				}
				resp, err := a.Assert(opts)
				if err != nil {
					done <- err
					return
				}
				_, updated, err := p.FinishLogin(acct, state, resp)
				if err != nil {
					done <- err
					return
				}
				acct.Credentials = []json.RawMessage{updated}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
