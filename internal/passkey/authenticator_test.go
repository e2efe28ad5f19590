package passkey_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagAT = 0x40 // attested credential data included
)

var b64 = base64.RawURLEncoding

// authenticator is a software WebAuthn authenticator and browser in one: an
// ECDSA P-256 key, "none" attestation, and the client data a browser at
// origin would collect. Its fields may be changed between ceremonies to make
// it misbehave.
type authenticator struct {
	key     *ecdsa.PrivateKey
	id      []byte // credential id
	rpID    string // the RP ID it hashes into its authenticator data
	origin  string // the origin the "browser" reports
	flags   byte   // UP, UV (AT is added at registration)
	counter uint32 // signature counter of the last ceremony
	step    uint32 // added to counter before each assertion; 0: counter stays 0
	user    []byte // user handle learned at registration
}

// newAuthenticator returns an authenticator whose credential id and key
// derive from id alone, so that runs (and fuzz worker processes) repeat.
func newAuthenticator(t testing.TB, id byte) *authenticator {
	t.Helper()
	d := sha256.Sum256([]byte{'k', 'e', 'y', id})
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	cid := make([]byte, 32)
	for i := range cid {
		cid[i] = id
	}
	return &authenticator{key: key, id: cid, rpID: rpID, origin: origin, flags: flagUP | flagUV, step: 1}
}

// options is what the authenticator reads of the options the RP sent.
type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		RPID string `json:"rpId"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		UserVerification   string `json:"userVerification"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		AuthenticatorSelection struct {
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	} `json:"publicKey"`
}

func parseOptions(t testing.TB, raw json.RawMessage) options {
	t.Helper()
	var o options
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options: %v", err)
	}
	return o
}

func clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

func (a *authenticator) authData(flags byte) []byte {
	h := sha256.Sum256([]byte(a.rpID))
	d := append(h[:], flags)
	return binary.BigEndian.AppendUint32(d, a.counter)
}

// coseKey is the public key as a COSE_Key: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
func (a *authenticator) coseKey(t testing.TB) []byte {
	t.Helper()
	pt, err := a.key.PublicKey.Bytes() // 0x04 | x | y
	if err != nil {
		t.Fatal(err)
	}
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pt[1:33], -3: pt[33:65]})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// create answers navigator.credentials.create(options).
func (a *authenticator) create(t testing.TB, raw json.RawMessage) []byte {
	t.Helper()
	o := parseOptions(t, raw)
	user, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user.id: %v", err)
	}
	a.user = user
	a.counter = 0
	ad := a.authData(a.flags | flagAT)
	ad = append(ad, make([]byte, 16)...) // AAGUID
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(a.id)))
	ad = append(ad, a.id...)
	ad = append(ad, a.coseKey(t)...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		t.Fatal(err)
	}
	return a.credential(map[string]string{
		"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", o.PublicKey.Challenge, a.origin)),
		"attestationObject": b64.EncodeToString(att),
	})
}

// get answers navigator.credentials.get(options).
func (a *authenticator) get(t testing.TB, raw json.RawMessage) []byte {
	t.Helper()
	o := parseOptions(t, raw)
	a.counter += a.step
	ad := a.authData(a.flags)
	cd := clientData("webauthn.get", o.PublicKey.Challenge, a.origin)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return a.credential(map[string]string{
		"clientDataJSON":    b64.EncodeToString(cd),
		"authenticatorData": b64.EncodeToString(ad),
		"signature":         b64.EncodeToString(sig),
		"userHandle":        b64.EncodeToString(a.user),
	})
}

// credential is the PublicKeyCredential JSON a browser posts.
func (a *authenticator) credential(response map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id":                     b64.EncodeToString(a.id),
		"rawId":                  b64.EncodeToString(a.id),
		"type":                   "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               response,
	})
	return b
}
