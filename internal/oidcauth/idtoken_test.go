package oidcauth

// A hand-made provider, for what a real provider never does: ID tokens
// with another issuer, several audiences, a bad signature, no subject;
// failing or oversized answers; slow_down. It serves discovery and a JWKS
// over TLS on 127.0.0.1 and signs tokens with go-jose (ES256).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/warden-sec/warden/internal/errs"
)

type fakeIdP struct {
	srv    *httptest.Server
	issuer string
	caPEM  string
	key    *ecdsa.PrivateKey

	mu       sync.Mutex
	meta     map[string]any // discovery document
	token    http.HandlerFunc
	userinfo http.HandlerFunc
	device   http.HandlerFunc
}

func startFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(f.meta)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	route := func(h func() http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			fn := h()
			f.mu.Unlock()
			if fn == nil {
				http.NotFound(w, r)
				return
			}
			fn(w, r)
		}
	}
	mux.HandleFunc("/token", route(func() http.HandlerFunc { return f.token }))
	mux.HandleFunc("/userinfo", route(func() http.HandlerFunc { return f.userinfo }))
	mux.HandleFunc("/device", route(func() http.HandlerFunc { return f.device }))
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	f.issuer = f.srv.URL
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
	f.meta = map[string]any{
		"issuer":                                f.issuer,
		"authorization_endpoint":                f.issuer + "/auth",
		"token_endpoint":                        f.issuer + "/token",
		"jwks_uri":                              f.issuer + "/keys",
		"userinfo_endpoint":                     f.issuer + "/userinfo",
		"device_authorization_endpoint":         f.issuer + "/device",
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
	return f
}

func (f *fakeIdP) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeIdP) config() Config {
	return Config{Issuer: f.issuer, ClientID: "warden", ClientSecret: "fake-client-secret",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, CAPEM: f.caPEM}
}

// sign returns a compact JWS of claims with key (nil: the provider's).
func (f *fakeIdP) sign(t *testing.T, claims map[string]any, key *ecdsa.PrivateKey) string {
	t.Helper()
	if key == nil {
		key = f.key
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claims are a valid ID token's claims at now.
func (f *fakeIdP) claims(now time.Time, nonce string) map[string]any {
	return map[string]any{
		"iss": f.issuer, "aud": "warden", "sub": "u1", "nonce": nonce,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "email": "u1@example.com", "email_verified": true,
	}
}

func TestIDTokenVerification(t *testing.T) {
	f := startFakeIdP(t)
	now := time.Now()
	p, err := NewProvider(t.Context(), f.config(), testStateKey, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(m map[string]any)) map[string]any {
		m := f.claims(now, "n0nce")
		edit(m)
		return m
	}
	unsigned := func(m map[string]any) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		b, _ := json.Marshal(m)
		return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	}
	for _, tc := range []struct {
		name string
		raw  string
		err  string // "" for success
	}{
		{"valid", f.sign(t, f.claims(now, "n0nce"), nil), ""},
		{"other issuer", f.sign(t, with(func(m map[string]any) { m["iss"] = "https://evil.example" }), nil), "issued by another issuer"},
		{"other audience", f.sign(t, with(func(m map[string]any) { m["aud"] = "other" }), nil), "issued for another client"},
		{"audiences without azp", f.sign(t, with(func(m map[string]any) { m["aud"] = []string{"other", "warden"} }), nil), "issued for another client (azp)"},
		{"audiences with azp", f.sign(t, with(func(m map[string]any) { m["aud"] = []string{"other", "warden"}; m["azp"] = "warden" }), nil), ""},
		{"azp of another client", f.sign(t, with(func(m map[string]any) { m["azp"] = "other" }), nil), "issued for another client (azp)"},
		{"expired", f.sign(t, with(func(m map[string]any) { m["exp"] = now.Add(-time.Second).Unix() }), nil), "expired"},
		{"no expiry", f.sign(t, with(func(m map[string]any) { delete(m, "exp") }), nil), "expired"},
		{"not yet valid", f.sign(t, with(func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() }), nil), "not yet valid"},
		{"other key", f.sign(t, f.claims(now, "n0nce"), otherKey), "bad signature"},
		{"unsigned", unsigned(f.claims(now, "n0nce")), "malformed"},
		{"garbage", "not.a.jwt", "malformed"},
		{"no nonce", f.sign(t, with(func(m map[string]any) { delete(m, "nonce") }), nil), "no nonce"},
		{"other nonce", f.sign(t, with(func(m map[string]any) { m["nonce"] = "n0ncf" }), nil), "nonce does not match the login"},
		{"no subject", f.sign(t, with(func(m map[string]any) { delete(m, "sub") }), nil), "no valid subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := p.verifyIDToken(t.Context(), tc.raw, "n0nce", true)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: "+tc.err)
			noSecrets(t, err, tc.raw)
		})
	}

	// The signature is checked against the provider's keys, not the
	// token's say: a token naming a key the provider does not have fails.
	tampered := f.sign(t, f.claims(now, "n0nce"), nil)
	parts := strings.Split(tampered, ".")
	body, _ := json.Marshal(with(func(m map[string]any) { m["sub"] = "admin" }))
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	_, _, err = p.verifyIDToken(t.Context(), strings.Join(parts, "."), "n0nce", true)
	wantErr(t, err, errs.Unauthenticated, "oidc: ID token refused: bad signature")
}

// codeLogin begins a login at the fake provider and returns the state and
// the authorization request's parameters.
func codeLogin(t *testing.T, p *Provider) (string, url.Values) {
	t.Helper()
	authURL, state, err := p.AuthURL("http://127.0.0.1:40000/callback", testClientNonce)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return state, u.Query()
}

// TestExchangeFake: Exchange's request to the token endpoint, and its
// answers to what a provider may send back.
func TestExchangeFake(t *testing.T) {
	f := startFakeIdP(t)
	p, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("token request", func(t *testing.T) {
		state, q := codeLogin(t, p)
		var form url.Values
		var user, pass string
		f.set(func() {
			f.token = func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				form = r.PostForm
				user, pass, _ = r.BasicAuth()
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer",
					"id_token": f.sign(t, f.claims(time.Now(), q.Get("nonce")), nil)})
			}
		})
		id, err := p.Exchange(t.Context(), state, "the-code", testClientNonce)
		if err != nil {
			t.Fatal(err)
		}
		if id.User != "u1@example.com" || id.Subject != "u1" || id.Issuer != f.issuer {
			t.Fatalf("got %+v", id)
		}
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		if form.Get("grant_type") != "authorization_code" || form.Get("code") != "the-code" ||
			form.Get("redirect_uri") != "http://127.0.0.1:40000/callback" ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
			t.Fatalf("token request %v", form)
		}
		if user != "warden" || pass != "fake-client-secret" || form.Has("client_secret") {
			t.Fatal("client not authenticated with client_secret_basic")
		}
	})

	for _, tc := range []struct {
		name  string
		token func(t *testing.T, nonce string) http.HandlerFunc
		code  errs.Code
		err   string
	}{
		{"server error", func(*testing.T, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
		}, errs.Unavailable, "oidc: the provider's token endpoint failed (HTTP 503)"},
		{"refused with description", func(*testing.T, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"invalid_grant","error_description":"<b>long text from the provider</b>"}`)
			}
		}, errs.Unauthenticated, "oidc: the provider refused the code (invalid_grant)"},
		{"no ID token", func(*testing.T, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"at","token_type":"Bearer"}`)
			}
		}, errs.Unauthenticated, "oidc: the provider sent no ID token"},
		{"at_hash mismatch", func(t *testing.T, nonce string) http.HandlerFunc {
			c := f.claims(time.Now(), nonce)
			c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
			tok := f.sign(t, c, nil)
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": tok})
			}
		}, errs.Unauthenticated, "at_hash does not match"},
		{"oversized answer", func(*testing.T, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"`+strings.Repeat("a", 2<<20)+`"}`)
			}
		}, errs.Unavailable, "oidc: the provider's token endpoint failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, q := codeLogin(t, p)
			h := tc.token(t, q.Get("nonce"))
			f.set(func() { f.token = h })
			_, err := p.Exchange(t.Context(), state, "the-code", testClientNonce)
			wantErr(t, err, tc.code, tc.err)
			if strings.Contains(err.Error(), "long text") {
				t.Fatal("the provider's description is echoed")
			}
		})
	}

	t.Run("userinfo", func(t *testing.T) {
		// The ID token has no email: Exchange asks userinfo.
		c := f.config()
		c.GroupsClaim = "groups"
		p, err := NewProvider(t.Context(), c, testStateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name     string
			userinfo string
			size     int
			code     errs.Code
			err      string
		}{
			{"completes", `{"sub":"u1","email":"U1@example.com","email_verified":true,"groups":["g"],"amr":["mfa"]}`, 0, "", ""},
			{"another subject", `{"sub":"u2","email":"u2@example.com"}`, 0, errs.Unauthenticated, "userinfo refused: for another subject"},
			{"oversized", `{"sub":"u1","email":"`, 2 << 20, errs.Unavailable, "userinfo endpoint failed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				state, q := codeLogin(t, p)
				claims := f.claims(time.Now(), q.Get("nonce"))
				delete(claims, "email")
				delete(claims, "email_verified")
				tok := f.sign(t, claims, nil)
				var auth string
				f.set(func() {
					f.token = func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Content-Type", "application/json")
						json.NewEncoder(w).Encode(map[string]any{"access_token": "the-access-token", "token_type": "Bearer", "id_token": tok})
					}
					f.userinfo = func(w http.ResponseWriter, r *http.Request) {
						auth = r.Header.Get("Authorization")
						w.Header().Set("Content-Type", "application/json")
						io.WriteString(w, tc.userinfo+strings.Repeat("x", tc.size))
					}
				})
				id, err := p.Exchange(t.Context(), state, "the-code", testClientNonce)
				if tc.err != "" {
					wantErr(t, err, tc.code, tc.err)
					noSecrets(t, err, "the-access-token")
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if auth != "Bearer the-access-token" || id.User != "u1@example.com" || len(id.Groups) != 1 || id.MFA {
					t.Fatalf("got %+v (userinfo's amr must not count)", id)
				}
			})
		}
	})
}

func TestDiscoveryRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any, issuer string)
		code errs.Code
		err  string
	}{
		{"http token endpoint", func(m map[string]any, iss string) {
			m["token_endpoint"] = strings.Replace(iss, "https", "http", 1) + "/token"
		}, errs.Invalid, "issuer: the provider's token_endpoint is not an https URL"},
		{"no jwks", func(m map[string]any, _ string) { delete(m, "jwks_uri") }, errs.Invalid, "jwks_uri is not an https URL"},
		{"plain PKCE only", func(m map[string]any, _ string) { m["code_challenge_methods_supported"] = []string{"plain"} },
			errs.Invalid, "issuer: the provider does not support PKCE with S256"},
		{"not JSON", func(m map[string]any, _ string) { m["issuer"] = 7 }, errs.Unavailable, "issuer: discovery failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeIdP(t)
			f.set(func() { tc.edit(f.meta, f.issuer) })
			_, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
			wantErr(t, err, tc.code, tc.err)
		})
	}

	t.Run("oversized", func(t *testing.T) {
		f := startFakeIdP(t)
		f.set(func() { f.meta["padding"] = strings.Repeat("x", 2<<20) })
		_, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
		wantErr(t, err, errs.Unavailable, "issuer: discovery failed")
	})

	t.Run("client_secret_post", func(t *testing.T) {
		f := startFakeIdP(t)
		f.set(func() {
			f.meta["token_endpoint_auth_methods_supported"] = []string{"client_secret_post", "private_key_jwt"}
		})
		p, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		state, q := codeLogin(t, p)
		var form url.Values
		var basic bool
		tok := f.sign(t, f.claims(time.Now(), q.Get("nonce")), nil)
		f.set(func() {
			f.token = func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				form = r.PostForm
				_, _, basic = r.BasicAuth()
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": tok})
			}
		})
		if _, err := p.Exchange(t.Context(), state, "the-code", testClientNonce); err != nil {
			t.Fatal(err)
		}
		if basic || form.Get("client_id") != "warden" || form.Get("client_secret") != "fake-client-secret" {
			t.Fatalf("client not authenticated with client_secret_post: %v", form)
		}
	})
}

// TestDevicePollFake: one poll, one token request; each provider answer.
func TestDevicePollFake(t *testing.T) {
	f := startFakeIdP(t)
	p, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	device := func(answer string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, answer)
		}
	}
	f.set(func() {
		f.device = device(`{"device_code":"the-device-code","user_code":"ABCD-EFGH","verification_uri":"https://idp.example/device","expires_in":600,"interval":7}`)
	})
	da, err := p.DeviceStart(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if da.Interval != 7 || da.ExpiresIn < 598 || da.ExpiresIn > 600 || da.VerificationURIComplete != "" || strings.Contains(da.State, "the-device-code") {
		t.Fatalf("%+v", da)
	}

	var polls int
	answer := func(status int, body string) {
		f.set(func() {
			f.token = func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				if u, pw, _ := r.BasicAuth(); u != "warden" || pw != "fake-client-secret" ||
					r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || r.PostForm.Get("device_code") != "the-device-code" {
					http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
					return
				}
				polls++
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				io.WriteString(w, body)
			}
		})
	}

	answer(http.StatusBadRequest, `{"error":"authorization_pending"}`)
	if _, err := p.DevicePoll(t.Context(), da.State); err != ErrAuthorizationPending {
		t.Fatalf("pending: %v", err)
	}
	answer(http.StatusBadRequest, `{"error":"slow_down"}`)
	_, err = p.DevicePoll(t.Context(), da.State)
	var slow *SlowDownError
	if !errors.Is(err, ErrAuthorizationPending) || !errors.As(err, &slow) || slow.Interval != 12 || !strings.HasSuffix(err.Error(), "slow down: poll every 12 s") {
		t.Fatalf("slow_down: %v", err)
	}
	if polls != 2 {
		t.Fatalf("%d token requests for 2 polls", polls)
	}
	for _, tc := range []struct {
		status int
		body   string
		code   errs.Code
		err    string
	}{
		{400, `{"error":"access_denied"}`, errs.Unauthenticated, "oidc: the user denied the device login"},
		{400, `{"error":"expired_token"}`, errs.Unauthenticated, "oidc: the device login has expired"},
		{401, `{"error":"invalid_client","error_description":"long text"}`, errs.Unauthenticated, "oidc: the provider refused the device login (invalid_client)"},
		{400, `{"error":"<script>"}`, errs.Unauthenticated, "oidc: the provider refused the device login (HTTP 400)"},
		{503, `down`, errs.Unavailable, "oidc: the provider's token endpoint failed (HTTP 503)"},
		{500, `{"error":"server_error"}`, errs.Unavailable, "oidc: the provider's token endpoint failed (HTTP 500)"},
		{200, `{"token_type":"Bearer"}`, errs.Unauthenticated, "no access token"},
		{200, `{"access_token":"at","token_type":"Bearer"}`, errs.Unauthenticated, "oidc: the provider sent no ID token"},
		{200, `{"access_token":"` + strings.Repeat("a", 2<<20) + `"}`, errs.Unavailable, "cannot be read"},
	} {
		answer(tc.status, tc.body)
		_, err := p.DevicePoll(t.Context(), da.State)
		wantErr(t, err, tc.code, tc.err)
		noSecrets(t, err, "the-device-code", "fake-client-secret", "long text")
	}

	// An ID token without a nonce is right for the device grant.
	answer(http.StatusOK, `{"access_token":"at","token_type":"Bearer","id_token":"`+f.sign(t, f.claims(time.Now(), ""), nil)+`"}`)
	if id, err := p.DevicePoll(t.Context(), da.State); err != nil || id.User != "u1@example.com" {
		t.Fatalf("got %+v, %v", id, err)
	}

	t.Run("start refusals", func(t *testing.T) {
		for _, tc := range []struct {
			h    http.HandlerFunc
			code errs.Code
			err  string
		}{
			{device(`{"device_code":"dc","user_code":"U","verification_uri":"http://idp.example/device","expires_in":600}`), errs.Unavailable, "malformed"},
			{device(`{"device_code":"","user_code":"U","verification_uri":"https://idp.example/device","expires_in":600}`), errs.Unavailable, "malformed"},
			{func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"unauthorized_client"}`)
			}, errs.Precondition, "oidc: the provider refused to start a device login (unauthorized_client)"},
			{func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusBadGateway) }, errs.Unavailable, "device authorization endpoint failed"},
		} {
			f.set(func() { f.device = tc.h })
			_, err := p.DeviceStart(t.Context())
			wantErr(t, err, tc.code, tc.err)
		}

		f := startFakeIdP(t)
		f.set(func() { delete(f.meta, "device_authorization_endpoint") })
		p, err := NewProvider(t.Context(), f.config(), testStateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.DeviceStart(t.Context())
		wantErr(t, err, errs.Precondition, "no device authorization endpoint")
	})
}
