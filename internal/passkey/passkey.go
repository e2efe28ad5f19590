// Package passkey runs WebAuthn (passkey) registration and assertion
// ceremonies for Warden's local accounts, over github.com/go-webauthn/webauthn.
//
// The ceremonies are stateless across servers: Begin returns the options for
// the browser and a state string that carries the go-webauthn SessionData (the
// challenge and what it was issued for), the account name, the ceremony kind
// and an expiry time, signed with HMAC-SHA256 under Config.StateKey.
// Any server holding the key can finish a ceremony another one began. The
// state is signed, not encrypted: it holds nothing the browser does not see in
// the options.
//
// Stateless state cannot be consumed, so replay is stopped by the credential
// the caller stores after each login: FinishLogin refuses a sign counter that
// does not increase (when either counter is non-zero), and it records in the
// updated credential the challenges of the states it accepted until they
// expire, refusing a state whose challenge is among them (which covers
// authenticators whose counter is always zero, as many passkeys' is). Both
// need the caller to store the updated credential conditioned on the version
// it read the account at, so two concurrent finishes of one assertion cannot
// both succeed.
//
// The package keeps no storage and does no logging; it does not support
// discoverable (user-name-less) logins nor verify attestation beyond what
// go-webauthn does without a metadata service.
package passkey

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/warden-sec/warden/internal/errs"
)

const (
	// DefaultTimeout is how long a ceremony may take when Config.Timeout is 0.
	DefaultTimeout = 5 * time.Minute
	// StateKeySize is the required length of Config.StateKey.
	StateKeySize = 32
	// MaxResponseSize bounds the browser's JSON response accepted by the
	// Finish methods.
	MaxResponseSize = 64 << 10
	// MaxStateSize bounds the state string accepted by the Finish methods.
	MaxStateSize = 64 << 10
	// maxUserHandle is WebAuthn's bound on a user handle (§5.4.3).
	maxUserHandle = 64

	stateVersion = 1
	kindRegister = "register"
	kindLogin    = "login"
	// macContext separates this MAC from any other use of the state key.
	macContext = "warden passkey state v1\x00"
	// usedField is the member FinishLogin adds to the credential JSON: the
	// challenges it accepted that may not have expired yet.
	usedField = "wardenUsed"
	// maxUsed bounds that list: at most this many logins with one passkey
	// per ceremony timeout (more are refused, never forgotten early).
	maxUsed = 64
)

// Messages of the errors of the Finish methods. They say nothing an attacker
// could use; the go-webauthn reason, stripped of any value taken from the
// request, is their cause (errors.Unwrap) for the server's log.
const (
	errLoginRefused    = "passkey: assertion refused"
	errLoginExpired    = "passkey: login ceremony expired; begin again"
	errRegisterRefused = "passkey: registration refused"
	errRegisterExpired = "passkey: registration ceremony expired; begin again"
	errMalformed       = "passkey: malformed credential response"
	errDuplicate       = "passkey: this passkey is already registered"
)

var errTooLarge = fmt.Errorf("response larger than %d bytes", MaxResponseSize)

// Config configures Passkeys. It must not be modified after New.
type Config struct {
	RPID          string   // relying party ID, a registrable domain such as "warden.example.com"
	RPDisplayName string   // shown by the authenticator; "": "Warden"
	Origins       []string // accepted origins of the browser, such as "https://warden.example.com"
	// StateKey is the HMAC-SHA256 key of the state strings: exactly
	// StateKeySize bytes, the same on every server that may finish a
	// ceremony another began. New copies it.
	StateKey []byte
	Now      func() time.Time // nil: time.Now
	Timeout  time.Duration    // how long a ceremony may take; 0: DefaultTimeout
}

// Passkeys runs WebAuthn ceremonies. Safe for concurrent use.
type Passkeys struct {
	wa      *webauthn.WebAuthn
	key     []byte
	now     func() time.Time
	timeout time.Duration
}

// New checks cfg and returns Passkeys. Errors are errs.Invalid naming the field.
func New(cfg Config) (*Passkeys, error) {
	if cfg.RPID == "" {
		return nil, errs.E(errs.Invalid, "rp_id: required")
	}
	if len(cfg.Origins) == 0 {
		return nil, errs.E(errs.Invalid, "origins: at least one is required")
	}
	if len(cfg.StateKey) != StateKeySize {
		return nil, errs.E(errs.Invalid, "state_key: must be %d bytes", StateKeySize)
	}
	if cfg.Timeout < 0 {
		return nil, errs.E(errs.Invalid, "timeout: must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	name := cfg.RPDisplayName
	if name == "" {
		name = "Warden"
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// Expiry is enforced here, with the injected clock, from the signed
	// state; go-webauthn only tells the browser the timeout.
	t := webauthn.TimeoutConfig{Timeout: timeout, TimeoutUVD: timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         name,
		RPOrigins:             append([]string(nil), cfg.Origins...),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: t, Registration: t},
	})
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "passkey: invalid relying party configuration (rp_id, origins)")
	}
	return &Passkeys{wa: wa, key: bytes.Clone(cfg.StateKey), now: now, timeout: timeout}, nil
}

// Account is the user a ceremony is for.
type Account struct {
	Name string
	// ID is the stable WebAuthn user handle, at most 64 bytes; nil:
	// SHA-256(Name)[:16]. It must not change once a passkey is registered.
	ID []byte
	// Credentials are the account's registered passkeys, each the
	// credential JSON returned by FinishRegistration or FinishLogin. One
	// that does not decode, or has no id or key, makes every method fail
	// with an internal error (no errs code): storage is corrupt.
	Credentials []json.RawMessage
}

// user is an Account as go-webauthn sees it.
type user struct {
	name  string
	id    []byte
	creds []webauthn.Credential
	used  [][]usedState // per credential: challenges accepted, see usedField
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

var _ webauthn.User = (*user)(nil)

// account decodes a. A stored credential that does not decode is an internal
// error: storage is corrupt, the caller did nothing wrong.
func account(a Account) (*user, error) {
	if a.Name == "" {
		return nil, errs.E(errs.Invalid, "account: name required")
	}
	id := a.ID
	if id == nil {
		sum := sha256.Sum256([]byte(a.Name))
		id = sum[:16]
	}
	if len(id) == 0 || len(id) > maxUserHandle {
		return nil, errs.E(errs.Invalid, "account: user handle must be 1 to %d bytes", maxUserHandle)
	}
	u := &user{name: a.Name, id: id}
	for i, raw := range a.Credentials {
		var c webauthn.Credential
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("passkey: stored credential %d of %q: %w", i, a.Name, err)
		}
		if len(c.ID) == 0 || len(c.PublicKey) == 0 {
			return nil, fmt.Errorf("passkey: stored credential %d of %q: no id or public key", i, a.Name)
		}
		var extra struct {
			Used []usedState `json:"wardenUsed"`
		}
		if err := json.Unmarshal(raw, &extra); err != nil {
			return nil, fmt.Errorf("passkey: stored credential %d of %q: %w", i, a.Name, err)
		}
		u.creds = append(u.creds, c)
		u.used = append(u.used, extra.Used)
	}
	return u, nil
}

// find returns the index of the credential with this id, or -1.
func (u *user) find(id []byte) int {
	for i, c := range u.creds {
		if bytes.Equal(c.ID, id) {
			return i
		}
	}
	return -1
}

// BeginRegistration starts registering a new passkey for a. options is the
// go-webauthn protocol.CredentialCreation as JSON ({"publicKey": {...}}, the
// argument of navigator.credentials.create); it excludes the account's
// registered passkeys, asks for no attestation, prefers user verification
// and a discoverable credential. state is handed back to FinishRegistration.
func (p *Passkeys) BeginRegistration(a Account) (options json.RawMessage, state string, err error) {
	u, err := account(a)
	if err != nil {
		return nil, "", err
	}
	creation, session, err := p.wa.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	if err != nil {
		return nil, "", fmt.Errorf("passkey: begin registration: %w", err)
	}
	return p.begin(kindRegister, a.Name, creation, session)
}

// FinishRegistration verifies the browser's response (the
// PublicKeyCredential JSON) to the options of BeginRegistration, for the same
// account, within the timeout. It returns the new credential's id and its
// JSON to store with the account. Errors are errs.Invalid: a malformed
// response, an expired, tampered or foreign state, a response that fails
// verification (challenge, origin, RP ID hash, user presence, attestation),
// or a passkey already registered to the account. The caller must also
// refuse an id registered to another account.
func (p *Passkeys) FinishRegistration(a Account, state string, response []byte) (id []byte, cred json.RawMessage, err error) {
	u, err := account(a)
	if err != nil {
		return nil, nil, err
	}
	st, err := p.open(state, kindRegister, a.Name)
	if err != nil {
		if errors.Is(err, errExpired) {
			return nil, nil, errs.Wrap(errs.Invalid, err, errRegisterExpired)
		}
		return nil, nil, errs.Wrap(errs.Invalid, err, errRegisterRefused)
	}
	if len(response) > MaxResponseSize {
		return nil, nil, errs.Wrap(errs.Invalid, errTooLarge, errMalformed)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, cause(err), errMalformed)
	}
	c, err := p.wa.CreateCredential(u, st.Session, parsed)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, cause(err), errRegisterRefused)
	}
	if u.find(c.ID) >= 0 {
		return nil, nil, errs.E(errs.Invalid, errDuplicate)
	}
	out, err := json.Marshal(c)
	if err != nil {
		return nil, nil, fmt.Errorf("passkey: encode credential: %w", err)
	}
	return c.ID, out, nil
}

// BeginLogin starts an assertion by one of a's passkeys. options is the
// go-webauthn protocol.CredentialAssertion as JSON ({"publicKey": {...}}, the
// argument of navigator.credentials.get), allowing exactly the account's
// passkeys and preferring user verification. errs.Invalid if the account has
// no passkey.
func (p *Passkeys) BeginLogin(a Account) (options json.RawMessage, state string, err error) {
	u, err := account(a)
	if err != nil {
		return nil, "", err
	}
	if len(u.creds) == 0 {
		return nil, "", errs.E(errs.Invalid, "passkey: the account has no passkey")
	}
	assertion, session, err := p.wa.BeginLogin(u)
	if err != nil {
		return nil, "", fmt.Errorf("passkey: begin login: %w", err)
	}
	return p.begin(kindLogin, a.Name, assertion, session)
}

// FinishLogin verifies the browser's response to the options of BeginLogin
// and returns the id of the passkey used and its updated JSON (sign counter,
// flags, and the challenges used, as the package documentation describes),
// which the caller must store in place of the old one, conditioned on the
// account being unchanged since it was read. Errors: errs.Invalid for a
// malformed response; errs.Unauthenticated for an expired, tampered or
// foreign state, a passkey not registered to the account, a wrong origin or
// RP ID hash, no user presence, a bad signature, a sign counter that did not
// increase, or a replayed state.
func (p *Passkeys) FinishLogin(a Account, state string, response []byte) (id []byte, updated json.RawMessage, err error) {
	r, err := p.VerifyLogin(a, state, response)
	if err != nil {
		return nil, nil, err
	}
	return r.ID, r.Credential, nil
}

// Assertion is a verified login assertion.
type Assertion struct {
	ID           []byte          // the passkey's credential id
	Credential   json.RawMessage // the passkey's updated JSON, to store (see FinishLogin)
	UserVerified bool            // the authenticator verified the user (PIN, biometric) in this ceremony
	SignCount    uint32          // the authenticator's sign counter in this assertion
}

// VerifyLogin is FinishLogin returning also whether the authenticator
// verified the user in this ceremony. Same errors as FinishLogin.
func (p *Passkeys) VerifyLogin(a Account, state string, response []byte) (*Assertion, error) {
	u, err := account(a)
	if err != nil {
		return nil, err
	}
	st, err := p.open(state, kindLogin, a.Name)
	if err != nil {
		if errors.Is(err, errExpired) {
			return nil, errs.Wrap(errs.Unauthenticated, err, errLoginExpired)
		}
		return nil, errs.Wrap(errs.Unauthenticated, err, errLoginRefused)
	}
	if len(response) > MaxResponseSize {
		return nil, errs.Wrap(errs.Invalid, errTooLarge, errMalformed)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, cause(err), errMalformed)
	}
	c, err := p.wa.ValidateLogin(u, st.Session, parsed)
	if err != nil {
		return nil, errs.Wrap(errs.Unauthenticated, cause(err), errLoginRefused)
	}
	i := u.find(c.ID)
	if i < 0 { // ValidateLogin found it; this cannot happen
		return nil, errs.Wrap(errs.Unauthenticated, errors.New("credential vanished"), errLoginRefused)
	}
	// §7.2 step 21: a counter that does not increase means a cloned
	// authenticator or a replay. go-webauthn only flags it; refuse it.
	old, got := u.creds[i].Authenticator.SignCount, parsed.Response.AuthenticatorData.Counter
	if (old != 0 || got != 0) && got <= old {
		return nil, errs.Wrap(errs.Unauthenticated, fmt.Errorf("sign counter %d not above stored %d", got, old), errLoginRefused)
	}
	used, err := p.markUsed(u.used[i], st)
	if err != nil {
		return nil, errs.Wrap(errs.Unauthenticated, err, errLoginRefused)
	}
	c.Authenticator.SignCount = got
	out, err := withUsed(c, used)
	if err != nil {
		return nil, err
	}
	return &Assertion{
		ID:           c.ID,
		Credential:   out,
		UserVerified: parsed.Response.AuthenticatorData.Flags.HasUserVerified(),
		SignCount:    got,
	}, nil
}

// usedState is a challenge FinishLogin accepted, until its state expires.
type usedState struct {
	Challenge string `json:"c"` // SessionData.Challenge, base64url; no secret once answered
	Expires   int64  `json:"e"` // the state's expiry, unix nanoseconds
}

// markUsed refuses st if its challenge was accepted before, and returns the
// list to store: used without the entries that can no longer match a live
// state, plus st. An entry is kept one timeout past its expiry, so that a
// server whose clock is behind by less than that still sees it.
func (p *Passkeys) markUsed(used []usedState, st *ceremony) ([]usedState, error) {
	now := p.now().UnixNano()
	keep := make([]usedState, 0, len(used)+1)
	for _, e := range used {
		if e.Challenge == st.Session.Challenge {
			return nil, errors.New("state already used with this passkey")
		}
		if now < e.Expires+int64(p.timeout) {
			keep = append(keep, e)
		}
	}
	if len(keep) >= maxUsed {
		return nil, fmt.Errorf("more than %d logins with this passkey within the timeout", maxUsed)
	}
	return append(keep, usedState{Challenge: st.Session.Challenge, Expires: st.Expires}), nil
}

// withUsed encodes c with the used challenges added as one more member.
// webauthn.Credential ignores unknown members when decoding, so the result is
// still webauthn.Credential JSON to any other reader.
func withUsed(c *webauthn.Credential, used []usedState) (json.RawMessage, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("passkey: encode credential: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("passkey: encode credential: %w", err)
	}
	if m[usedField], err = json.Marshal(used); err != nil {
		return nil, fmt.Errorf("passkey: encode credential: %w", err)
	}
	b, err = json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("passkey: encode credential: %w", err)
	}
	return b, nil
}

// cause reduces a go-webauthn error to its kind and fixed description, for
// the server's log: its debug text can echo values from the request (origin,
// challenge) which have no place in a log line.
func cause(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("webauthn: %s: %s", pe.Type, clean(pe.Details))
	}
	return fmt.Errorf("webauthn: %T", err)
}

// clean keeps s to one printable line of bounded length.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 160 {
		s = strings.ToValidUTF8(s[:160], "") + "..."
	}
	return s
}
