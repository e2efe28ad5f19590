package oidcauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/warden-sec/warden/internal/errs"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

var testStateKey = bytes.Repeat([]byte{7}, 32)

const testClientNonce = "client-nonce-0123456789abcdef"

// offlineProvider is a Provider without discovery, for what needs no
// provider: states, AuthURL.
func offlineProvider(t testing.TB, c Config, key []byte, now func() time.Time) *Provider {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := newStateSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	n := c.normalized()
	return &Provider{
		cfg: n, now: now, sealer: s, binding: providerBinding(n.Issuer, n.ClientID),
		oauth: oauth2.Config{ClientID: n.ClientID, Scopes: n.Scopes, Endpoint: oauth2.Endpoint{AuthURL: n.Issuer + "/auth"}},
	}
}

func TestStateKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := newStateSealer(make([]byte, n)); !errs.Is(err, errs.Invalid) {
			t.Errorf("%d-byte key: %v", n, err)
		}
	}
}

func TestAuthURL(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	p := offlineProvider(t, validConfig(), testStateKey, clock.Now)
	u, state, err := p.AuthURL("http://127.0.0.1:5555/callback", testClientNonce)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := parsed.Query()
	for k, want := range map[string]string{
		"client_id": "warden", "response_type": "code", "scope": "openid profile email",
		"redirect_uri": "http://127.0.0.1:5555/callback", "code_challenge_method": "S256", "state": state,
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	st, err := p.openState(state, kindCode)
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("code_challenge") != oauth2.S256ChallengeFromVerifier(st.Verifier) || q.Get("nonce") != st.Nonce {
		t.Error("challenge or nonce does not match the sealed state")
	}
	if strings.Contains(u, st.Verifier) || strings.Contains(state, st.Verifier) {
		t.Error("the verifier is visible")
	}
	if strings.Contains(u, testClientNonce) || strings.Contains(state, testClientNonce) {
		t.Error("the client nonce is visible")
	}
	if st.Expiry != clock.Now().Add(10*time.Minute).Unix() || st.Redirect != "http://127.0.0.1:5555/callback" {
		t.Errorf("sealed %+v", st)
	}
	if _, s2, _ := p.AuthURL("http://127.0.0.1:5555/callback", testClientNonce); s2 == state {
		t.Error("two logins share a state")
	}

	if _, _, err := p.AuthURL("https://evil.example/callback", testClientNonce); !errs.Is(err, errs.Invalid) || err.Error() != "redirect_uri: not allowed" {
		t.Errorf("redirect not allowed: %v", err)
	}
	for _, n := range []string{"", "short", strings.Repeat("x", 513), "nonce with \x01 control......"} {
		if _, _, err := p.AuthURL("http://127.0.0.1:5555/callback", n); !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), "client_nonce:") {
			t.Errorf("client nonce %q: %v", n, err)
		}
	}
}

func TestStateRefusals(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	p := offlineProvider(t, validConfig(), testStateKey, clock.Now)
	_, state, err := p.AuthURL("http://127.0.0.1:5555/callback", testClientNonce)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(state)

	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherKey := offlineProvider(t, validConfig(), bytes.Repeat([]byte{8}, 32), clock.Now)
	otherClientCfg := validConfig()
	otherClientCfg.ClientID = "other"
	otherClient := offlineProvider(t, otherClientCfg, testStateKey, clock.Now)
	otherIssuerCfg := validConfig()
	otherIssuerCfg.Issuer = "https://other.example.com"
	otherIssuer := offlineProvider(t, otherIssuerCfg, testStateKey, clock.Now)

	for _, tc := range []struct {
		name  string
		p     *Provider
		state string
		kind  string
		want  string
	}{
		{"empty", p, "", kindCode, "state: required"},
		{"nonce bit", p, flip(0), kindCode, "state: invalid"},
		{"ciphertext bit", p, flip(stateNonceLen + 3), kindCode, "state: invalid"},
		{"tag bit", p, flip(len(raw) - 1), kindCode, "state: invalid"},
		{"truncated", p, state[:len(state)-4], kindCode, "state: invalid"},
		{"extended", p, state + "AAAA", kindCode, "state: invalid"},
		{"padded", p, state + "=", kindCode, "state: invalid"},
		{"newline", p, state[:10] + "\n" + state[10:], kindCode, "state: invalid"},
		{"std alphabet", p, base64.StdEncoding.EncodeToString(raw), kindCode, "state: invalid"},
		{"too long", p, strings.Repeat("A", maxStateText+1), kindCode, "state: invalid"},
		{"short", p, "AAAA", kindCode, "state: invalid"},
		{"other key", otherKey, state, kindCode, "state: invalid"},
		{"other client", otherClient, state, kindCode, "state: made for another provider configuration"},
		{"other issuer", otherIssuer, state, kindCode, "state: made for another provider configuration"},
		{"device kind", p, state, kindDevice, "state: not a device login state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.openState(tc.state, tc.kind)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	if _, err := p.openState(state, kindCode); err != nil {
		t.Fatalf("intact state: %v", err)
	}
	clock.Add(10*time.Minute - time.Second)
	if _, err := p.openState(state, kindCode); err != nil {
		t.Fatalf("state a second before expiry: %v", err)
	}
	clock.Add(time.Second)
	if _, err := p.openState(state, kindCode); err == nil || err.Error() != "state: expired" || !errs.Is(err, errs.Unauthenticated) {
		t.Fatalf("expired state: %v", err)
	}
}

// TestStateNonCanonicalBase64: the last character's unused bits must be
// zero, so a state has exactly one accepted text.
func TestStateNonCanonicalBase64(t *testing.T) {
	p := offlineProvider(t, validConfig(), testStateKey, time.Now)
	for range 16 {
		_, state, err := p.AuthURL("http://127.0.0.1:5555/callback", testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		if len(state)%4 == 0 {
			continue // no unused bits
		}
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, state[len(state)-1])
		mutated := state[:len(state)-1] + string(alphabet[last^1])
		if _, err := p.openState(mutated, kindCode); err == nil {
			t.Fatalf("non-canonical %q accepted", mutated)
		}
		return
	}
	t.Skip("no state with unused bits drawn")
}

// FuzzOpenState: opening never panics, and accepts nothing but the exact
// text of a state this key sealed. The seeds are sealed with a seeded nonce
// source, so every fuzz worker knows the same set.
func FuzzOpenState(f *testing.F) {
	p := offlineProvider(f, validConfig(), testStateKey, func() time.Time { return time.Unix(1_800_000_000, 0) })
	p.sealer.rand = mrand.NewChaCha8([32]byte{1})
	h := sha256.Sum256([]byte(testClientNonce))
	sealed := map[string]bool{}
	for _, st := range []*sealedState{
		{Kind: kindCode, Provider: p.binding, Expiry: 1_900_000_000, Verifier: "v", Nonce: "n", Redirect: "http://127.0.0.1:5555/callback", ClientNonce: h[:]},
		{Kind: kindCode, Provider: p.binding, Expiry: 1_900_000_000, Verifier: strings.Repeat("v", 43), Nonce: "n2", Redirect: "https://warden.example.com/ui/callback", ClientNonce: h[:]},
		{Kind: kindDevice, Provider: p.binding, Expiry: 1_900_000_000, DeviceCode: "dc", Interval: 5},
	} {
		s, err := p.sealer.seal(st)
		if err != nil {
			f.Fatal(err)
		}
		sealed[s] = true
		f.Add(s)
	}
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("_", 200))
	f.Fuzz(func(t *testing.T, text string) {
		for _, kind := range []string{kindCode, kindDevice} {
			st, err := p.openState(text, kind)
			if err != nil {
				if st != nil {
					t.Fatal("a state with an error")
				}
				if c := errs.CodeOf(err); c != errs.Invalid && c != errs.Unauthenticated {
					t.Fatalf("code %s: %v", c, err)
				}
				continue
			}
			if !sealed[text] {
				t.Fatalf("accepted a state this key did not seal: %q", text)
			}
		}
	})
}
