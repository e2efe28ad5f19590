// Package passkeytest is a software WebAuthn authenticator and browser in
// one, for tests of WebAuthn relying parties (internal/passkey and the API
// over it). Only tests import it.
//
// An Authenticator holds one credential: an ECDSA P-256 key (COSE
// algorithm ES256) with a credential ID. Register answers the options of a
// registration ceremony (navigator.credentials.create) with "none"
// attestation; Assert answers the options of a login ceremony
// (navigator.credentials.get). Both return the PublicKeyCredential JSON a
// browser posts, with the client data a browser at Origin would collect.
//
// It reads the options and nothing more: it answers even when its
// credential is excluded from a registration or not allowed in a login, and
// whatever RP ID the options name, so that a test can watch the relying
// party refuse. Its exported fields are its state and its knobs; change
// them between ceremonies to make it misbehave (a wrong Origin or RPID, a
// Counter that does not increase, a BadSignature, another Key).
//
// An Authenticator is not safe for concurrent use.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator data flags (WebAuthn §6.1).
const (
	FlagUP byte = 0x01 // user present
	FlagUV byte = 0x04 // user verified
	FlagAT byte = 0x40 // attested credential data included (Register adds it)
)

// b64 is the encoding of binary members in WebAuthn JSON: base64url
// without padding.
var b64 = base64.RawURLEncoding

// Authenticator is a software authenticator with one credential. Fields
// may be changed between ceremonies.
type Authenticator struct {
	// Key is the credential's private key. Replacing it after Register
	// makes assertions that the registered public key does not verify.
	Key *ecdsa.PrivateKey
	// CredentialID is the credential's ID (32 bytes from New).
	CredentialID []byte
	// RPID is the relying party ID whose SHA-256 goes into the
	// authenticator data (a different one than the relying party's is
	// the "wrong RP ID" case).
	RPID string
	// Origin is the origin the "browser" reports in the client data.
	Origin string
	// Flags are the user presence and verification flags of the
	// authenticator data: FlagUP|FlagUV from New; without FlagUP the
	// ceremony must fail.
	Flags byte
	// Counter is the signature counter of the last ceremony: Register
	// sets it to 0 and Assert adds Step before signing. Set it (and Step)
	// to produce a counter that does not increase.
	Counter uint32
	// Step is added to Counter by each Assert: 1 from New; 0 is an
	// authenticator whose counter stays 0, as many passkeys' does.
	Step uint32
	// UserHandle is the user handle (the options' user.id) learned by
	// Register, sent back by Assert; nil before Register.
	UserHandle []byte
	// BadSignature makes Assert sign something other than what it sends
	// (a well-formed signature that does not verify).
	BadSignature bool
}

// New returns an authenticator with a random key and credential ID, for
// relying party rpID, in a browser at origin (such as
// "https://warden.example.com").
func New(rpID, origin string) *Authenticator {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		panic(err) // crypto/rand.Read does not fail
	}
	return NewSeeded(rpID, origin, seed)
}

// NewSeeded is New with the key and credential ID derived from seed alone,
// for tests that must repeat (fuzz workers rerun their setup): the same
// seed gives the same credential.
func NewSeeded(rpID, origin string, seed []byte) *Authenticator {
	d := sha256.Sum256(append([]byte("passkeytest key\x00"), seed...))
	var key *ecdsa.PrivateKey
	for {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
		if err == nil {
			key = k
			break
		}
		// d was 0 or not below the group order (chance about 2^-32):
		// hash again.
		d = sha256.Sum256(d[:])
	}
	id := sha256.Sum256(append([]byte("passkeytest id\x00"), seed...))
	return &Authenticator{Key: key, CredentialID: id[:], RPID: rpID, Origin: origin, Flags: FlagUP | FlagUV, Step: 1}
}

// Options is what an authenticator (and a test) reads of the options a
// relying party sends, either kind: the JSON of go-webauthn's
// protocol.CredentialCreation or protocol.CredentialAssertion,
// {"publicKey": {...}}. Binary members are base64url strings.
type Options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		Timeout   int    `json:"timeout"` // milliseconds
		// RP and User are members of creation options.
		RP struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		} `json:"user"`
		ExcludeCredentials     []Descriptor `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Attestation string `json:"attestation"`
		// RPID, AllowCredentials and UserVerification are members of
		// request (login) options.
		RPID             string       `json:"rpId"`
		AllowCredentials []Descriptor `json:"allowCredentials"`
		UserVerification string       `json:"userVerification"`
	} `json:"publicKey"`
}

// Descriptor names a credential in options.
type Descriptor struct {
	Type string `json:"type"`
	ID   string `json:"id"` // base64url
}

// ParseOptions decodes options JSON. It fails if there is no publicKey
// member or no challenge.
func ParseOptions(optionsJSON []byte) (Options, error) {
	var o Options
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return o, fmt.Errorf("passkeytest: options: %w", err)
	}
	if o.PublicKey.Challenge == "" {
		return o, errors.New("passkeytest: options: no publicKey.challenge")
	}
	return o, nil
}

// Register answers registration options (navigator.credentials.create): it
// learns the user handle, sets Counter to 0, and returns the
// PublicKeyCredential JSON with "none" attestation of its credential.
func (a *Authenticator) Register(optionsJSON []byte) (responseJSON []byte, err error) {
	o, err := ParseOptions(optionsJSON)
	if err != nil {
		return nil, err
	}
	user, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil || len(user) == 0 {
		return nil, fmt.Errorf("passkeytest: options: user.id is not base64url: %q", o.PublicKey.User.ID)
	}
	cose, err := a.coseKey()
	if err != nil {
		return nil, err
	}
	a.UserHandle = user
	a.Counter = 0
	ad := a.authData(a.Flags | FlagAT)
	ad = append(ad, make([]byte, 16)...) // AAGUID: none
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(a.CredentialID)))
	ad = append(ad, a.CredentialID...)
	ad = append(ad, cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		return nil, fmt.Errorf("passkeytest: attestation object: %w", err)
	}
	return a.credential(map[string]string{
		"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", o.PublicKey.Challenge, a.Origin)),
		"attestationObject": b64.EncodeToString(att),
	}), nil
}

// Assert answers login options (navigator.credentials.get): it adds Step
// to Counter and returns the PublicKeyCredential JSON of an assertion by
// its credential over the options' challenge, with UserHandle.
func (a *Authenticator) Assert(optionsJSON []byte) ([]byte, error) {
	o, err := ParseOptions(optionsJSON)
	if err != nil {
		return nil, err
	}
	a.Counter += a.Step
	ad := a.authData(a.Flags)
	cd := clientData("webauthn.get", o.PublicKey.Challenge, a.Origin)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), h[:]...))
	if a.BadSignature {
		digest[0] ^= 1
	}
	sig, err := ecdsa.SignASN1(rand.Reader, a.Key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("passkeytest: sign: %w", err)
	}
	return a.credential(map[string]string{
		"clientDataJSON":    b64.EncodeToString(cd),
		"authenticatorData": b64.EncodeToString(ad),
		"signature":         b64.EncodeToString(sig),
		"userHandle":        b64.EncodeToString(a.UserHandle),
	}), nil
}

// clientData is the CollectedClientData JSON a browser makes.
func clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// authData is the authenticator data up to the attested credential data:
// SHA-256(RPID), flags, counter.
func (a *Authenticator) authData(flags byte) []byte {
	h := sha256.Sum256([]byte(a.RPID))
	d := append(h[:], flags)
	return binary.BigEndian.AppendUint32(d, a.Counter)
}

// coseKey is the public key as a COSE_Key: {1: 2 (EC2), 3: -7 (ES256),
// -1: 1 (P-256), -2: x, -3: y}.
func (a *Authenticator) coseKey() ([]byte, error) {
	pt, err := a.Key.PublicKey.Bytes() // 0x04 | x | y
	if err != nil {
		return nil, fmt.Errorf("passkeytest: public key: %w", err)
	}
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pt[1:33], -3: pt[33:65]})
	if err != nil {
		return nil, fmt.Errorf("passkeytest: COSE key: %w", err)
	}
	return b, nil
}

// credential is the PublicKeyCredential JSON a browser posts.
func (a *Authenticator) credential(response map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id":                     b64.EncodeToString(a.CredentialID),
		"rawId":                  b64.EncodeToString(a.CredentialID),
		"type":                   "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               response,
	})
	return b
}
