package oidcauth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"

	"github.com/warden-sec/warden/internal/errs"
)

// The sealed state.
//
// A login's secrets (PKCE verifier, ID token nonce, device code) travel with
// the client, not in server memory, so that any Warden server can finish a
// login that another began. They are sealed with AES-256-GCM: a random
// 96-bit nonce, additional data stateAAD, and a key derived with HKDF-SHA256
// from the 32-byte state key (info stateAAD), so that the same state key may
// serve another purpose (an HMAC) without key reuse across algorithms. The
// text form is base64url (unpadded, canonical) of nonce || ciphertext.
const (
	stateAAD      = "warden-oidc-state-v1"
	maxStateText  = 4096
	stateNonceLen = 12
	kindCode      = "code"
	kindDevice    = "device"
)

// sealedState is what a state carries. Field names are short to keep the
// authorization URL small.
type sealedState struct {
	Kind        string `json:"k"`           // kindCode or kindDevice
	Provider    []byte `json:"p"`           // providerBinding of the issuer and client id
	Expiry      int64  `json:"e"`           // Unix seconds
	Verifier    string `json:"v,omitempty"` // PKCE code verifier (code)
	Nonce       string `json:"n,omitempty"` // ID token nonce (code)
	Redirect    string `json:"r,omitempty"` // redirect URI (code)
	ClientNonce []byte `json:"c,omitempty"` // SHA-256 of the client nonce (code)
	DeviceCode  string `json:"d,omitempty"` // device code (device)
	Interval    int    `json:"i,omitempty"` // poll interval in seconds (device)
}

// stateSealer seals and opens states. Safe for concurrent use.
type stateSealer struct {
	aead cipher.AEAD
	rand io.Reader // nonces; crypto/rand.Reader but in tests
}

func newStateSealer(stateKey []byte) (*stateSealer, error) {
	if len(stateKey) != 32 {
		return nil, errs.E(errs.Invalid, "state key: must be 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, stateKey, nil, stateAAD, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &stateSealer{aead: aead, rand: rand.Reader}, nil
}

// providerBinding ties a state to one provider configuration, so that a
// state made for one issuer or client cannot be spent with another.
func providerBinding(issuer, clientID string) []byte {
	h := sha256.Sum256([]byte(issuer + "\x00" + clientID))
	return h[:16]
}

func (s *stateSealer) seal(st *sealedState) (string, error) {
	pt, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	buf := make([]byte, stateNonceLen, stateNonceLen+len(pt)+s.aead.Overhead())
	if _, err := io.ReadFull(s.rand, buf); err != nil {
		return "", err
	}
	buf = s.aead.Seal(buf, buf[:stateNonceLen], pt, []byte(stateAAD))
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// badState is the one answer to a state that does not open: whether it was
// truncated, tampered with or sealed under another key is not told.
func badState() error { return errs.E(errs.Unauthenticated, "state: invalid") }

// open returns the state sealed in text, of the given kind. It refuses
// anything but the canonical text of a state this key sealed.
func (s *stateSealer) open(text, kind string) (*sealedState, error) {
	if text == "" {
		return nil, errs.E(errs.Invalid, "state: required")
	}
	if len(text) > maxStateText {
		return nil, badState()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, badState()
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(text)
	if err != nil || len(raw) < stateNonceLen+s.aead.Overhead() {
		return nil, badState()
	}
	pt, err := s.aead.Open(nil, raw[:stateNonceLen], raw[stateNonceLen:], []byte(stateAAD))
	if err != nil {
		return nil, badState()
	}
	var st sealedState
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || dec.More() {
		return nil, errs.Wrap(errs.Unauthenticated, errors.Join(err, errors.New("state: malformed plaintext")), "state: invalid")
	}
	if st.Kind != kind {
		return nil, errs.E(errs.Unauthenticated, "state: not a %s login state", kind)
	}
	return &st, nil
}
