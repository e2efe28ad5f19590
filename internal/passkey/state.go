package passkey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-webauthn/webauthn/webauthn"
)

// ceremony is the content of a state string.
type ceremony struct {
	V       int                  `json:"v"`       // stateVersion
	Kind    string               `json:"kind"`    // kindRegister or kindLogin
	Account string               `json:"account"` // Account.Name
	Expires int64                `json:"exp"`     // unix nanoseconds
	Session webauthn.SessionData `json:"session"`
}

// errExpired marks a well-signed state past its expiry.
var errExpired = errors.New("state expired")

// begin seals the session of a ceremony of kind for account and returns the
// options as JSON with the state.
func (p *Passkeys) begin(kind, account string, options any, session *webauthn.SessionData) (json.RawMessage, string, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, "", fmt.Errorf("passkey: encode options: %w", err)
	}
	st, err := p.seal(ceremony{V: stateVersion, Kind: kind, Account: account,
		Expires: p.now().Add(p.timeout).UnixNano(), Session: *session})
	if err != nil {
		return nil, "", err
	}
	return opts, st, nil
}

// seal encodes c as base64url(JSON) "." base64url(HMAC-SHA256).
func (p *Passkeys) seal(c ceremony) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("passkey: encode state: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(b)
	return body + "." + p.mac(body), nil
}

// mac is the base64url HMAC-SHA256 of the state's body text.
func (p *Passkeys) mac(body string) string {
	m := hmac.New(sha256.New, p.key)
	io.WriteString(m, macContext)
	io.WriteString(m, body)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// open checks the state's MAC, then its content: version, kind, account and
// expiry. The errors are for the log, never for the caller; errExpired only
// comes after the MAC checked out.
func (p *Passkeys) open(state, kind, account string) (*ceremony, error) {
	if len(state) > MaxStateSize {
		return nil, errors.New("state too large")
	}
	body, sig, ok := strings.Cut(state, ".")
	if !ok {
		return nil, errors.New("state malformed")
	}
	// Comparing the canonical encodings refuses a MAC in any other spelling.
	if !hmac.Equal([]byte(sig), []byte(p.mac(body))) {
		return nil, errors.New("state MAC mismatch")
	}
	// The MAC covers the text, so this decoding only ever sees our own.
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("state body: %w", err)
	}
	var c ceremony
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("state body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("state body: trailing data")
	}
	switch {
	case c.V != stateVersion:
		return nil, fmt.Errorf("state version %d", c.V)
	case c.Kind != kind:
		return nil, fmt.Errorf("state of a %s ceremony, not %s", c.Kind, kind)
	case c.Account != account:
		return nil, errors.New("state of another account")
	case p.now().UnixNano() >= c.Expires:
		return nil, errExpired
	}
	return &c, nil
}
