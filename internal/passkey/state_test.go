package passkey

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// States signed with the right key but not what this version writes are
// refused: only a key holder can make them, so this is defence in depth.
func TestOpenRefusesOddContent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p, err := New(Config{RPID: "warden.example.com", Origins: []string{"https://warden.example.com"},
		StateKey: make([]byte, StateKeySize), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	good := ceremony{V: stateVersion, Kind: kindLogin, Account: "alice", Expires: now.Add(time.Minute).UnixNano(),
		Session: webauthn.SessionData{Challenge: "x"}}
	sealed := func(c ceremony) string {
		s, err := p.seal(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	raw := func(body string) string {
		b := base64.RawURLEncoding.EncodeToString([]byte(body))
		return b + "." + p.mac(b)
	}
	if _, err := p.open(sealed(good), kindLogin, "alice"); err != nil {
		t.Fatalf("good state: %v", err)
	}
	v2 := good
	v2.V = 2
	for name, s := range map[string]string{
		"version 2":       sealed(v2),
		"unknown member":  raw(`{"v":1,"kind":"login","account":"alice","exp":9000000000000000000,"session":{"challenge":"x"},"admin":true}`),
		"trailing data":   raw(`{"v":1,"kind":"login","account":"alice","exp":9000000000000000000,"session":{"challenge":"x"}} {}`),
		"not JSON":        raw(`v=1`),
		"body not base64": "*." + p.mac("*"),
	} {
		if _, err := p.open(s, kindLogin, "alice"); err == nil || errors.Is(err, errExpired) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCauseDropsRequestText(t *testing.T) {
	err := protocol.ErrVerification.WithDetails("Error validating origin\nforged: line").WithInfo("Received: https://evil.example")
	got := cause(err).Error()
	if strings.Contains(got, "evil") || strings.Contains(got, "\n") {
		t.Errorf("cause = %q", got)
	}
	if got := cause(errors.New("secret detail")).Error(); strings.Contains(got, "secret") {
		t.Errorf("cause of a plain error = %q", got)
	}
	if got := clean(strings.Repeat("é", 200)); len(got) > 170 || !strings.HasSuffix(got, "...") {
		t.Errorf("clean: %q", got)
	}
}
