package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// seen is one request as the stand-in server received it.
type seen struct {
	method, uri, auth, contentType, body string
}

// stub answers every request with status and body and records it.
func stub(t *testing.T, status int, body string) (*Client, *seen) {
	t.Helper()
	got := &seen{}
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	return c, got
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("want %q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

const userJSON = `{"name":"alice","groups":["ops"],"disabled":false,"has_password":true,"mfa":["totp"],
"recovery_codes_left":9,"passkeys":[{"name":"yubi","created":"2026-01-02T03:04:05Z","last_used":""}],
"created_time":"2026-01-01T00:00:00Z","updated_time":"2026-01-02T00:00:00Z","locked":true,"locked_until":"2026-01-03T00:00:00Z"}`

var wantUser = UserView{Name: "alice", Groups: []string{"ops"}, HasPassword: true, MFA: []string{"totp"},
	RecoveryCodesLeft: 9, Passkeys: []PasskeyView{{Name: "yubi", Created: "2026-01-02T03:04:05Z"}},
	CreatedTime: "2026-01-01T00:00:00Z", UpdatedTime: "2026-01-02T00:00:00Z", Locked: true, LockedUntil: "2026-01-03T00:00:00Z"}

const loginJSON = `{"token":"wdn_new","accessor":"acc","user":"alice","groups":["ops"],"expire_time":"2026-01-01T08:00:00Z",
"max_expire_time":"2026-01-02T00:00:00Z","auth":{"method":"password","mfa":true,"mfa_method":"totp","time":"2026-01-01T00:00:00Z"},"scope":""}`

var wantLogin = LoginResponse{Token: "wdn_new", Accessor: "acc", User: "alice", Groups: []string{"ops"},
	ExpireTime: "2026-01-01T08:00:00Z", MaxExpireTime: "2026-01-02T00:00:00Z",
	Auth: &AuthInfo{Method: "password", MFA: true, MFAMethod: "totp", Time: "2026-01-01T00:00:00Z"}}

// TestUserAndAuthRequests: each method sends the documented method, path,
// body and Authorization header (none for the login calls, although the
// Client holds a token) and decodes the documented answer.
func TestUserAndAuthRequests(t *testing.T) {
	const bearer = "Bearer wdn_secret"
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		status      int
		resp        string
		call        func(c *Client) (any, error)
		method, uri string
		body, auth  string // body "": none sent
		want        any
	}{
		{"UserCreate", 200, userJSON, func(c *Client) (any, error) {
			return c.UserCreate(ctx, UserCreateRequest{Name: "alice", Groups: []string{"ops"}, Password: "pw"})
		}, "POST", "/v1/users", `{"name":"alice","groups":["ops"],"password":"pw"}`, bearer, wantUser},
		{"UserCreate without password or groups", 200, userJSON, func(c *Client) (any, error) {
			return c.UserCreate(ctx, UserCreateRequest{Name: "sso"})
		}, "POST", "/v1/users", `{"name":"sso","groups":[]}`, bearer, wantUser},
		{"UserList", 200, `{"users":[` + userJSON + `],"next":"alice"}`, func(c *Client) (any, error) {
			us, next, err := c.UserList(ctx, "a b", 1)
			return []any{us, next}, err
		}, "GET", "/v1/users?after=a+b&limit=1", "", bearer, []any{[]UserView{wantUser}, "alice"}},
		{"UserList empty", 200, `{"users":null,"next":""}`, func(c *Client) (any, error) {
			us, next, err := c.UserList(ctx, "", 0)
			return []any{us, next}, err
		}, "GET", "/v1/users", "", bearer, []any{[]UserView{}, ""}},
		{"UserRead", 200, userJSON, func(c *Client) (any, error) { return c.UserRead(ctx, "a/b") },
			"GET", "/v1/users/a%2Fb", "", bearer, wantUser},
		{"UserUpdate", 200, userJSON, func(c *Client) (any, error) { return c.UserUpdate(ctx, "alice", []string{"a", "b"}) },
			"PATCH", "/v1/users/alice", `{"groups":["a","b"]}`, bearer, wantUser},
		{"UserUpdate no groups", 200, userJSON, func(c *Client) (any, error) { return c.UserUpdate(ctx, "alice", nil) },
			"PATCH", "/v1/users/alice", `{"groups":[]}`, bearer, wantUser},
		{"UserDelete", 204, "", func(c *Client) (any, error) { return nil, c.UserDelete(ctx, "alice") },
			"DELETE", "/v1/users/alice", "", bearer, nil},
		{"UserDisable", 204, "", func(c *Client) (any, error) { return nil, c.UserDisable(ctx, "alice") },
			"POST", "/v1/users/alice/disable", "", bearer, nil},
		{"UserEnable", 204, "", func(c *Client) (any, error) { return nil, c.UserEnable(ctx, "alice") },
			"POST", "/v1/users/alice/enable", "", bearer, nil},
		{"UserUnlock", 204, "", func(c *Client) (any, error) { return nil, c.UserUnlock(ctx, "alice") },
			"POST", "/v1/users/alice/unlock", "", bearer, nil},
		{"UserMFAReset", 204, "", func(c *Client) (any, error) { return nil, c.UserMFAReset(ctx, "alice") },
			"POST", "/v1/users/alice/mfa/reset", "", bearer, nil},
		{"UserSetPassword own", 204, "", func(c *Client) (any, error) { return nil, c.UserSetPassword(ctx, "alice", "new", "old") },
			"POST", "/v1/users/alice/password", `{"password":"new","current_password":"old"}`, bearer, nil},
		{"UserSetPassword other", 204, "", func(c *Client) (any, error) { return nil, c.UserSetPassword(ctx, "bob", "new", "") },
			"POST", "/v1/users/bob/password", `{"password":"new"}`, bearer, nil},
		{"TOTPEnroll", 200, `{"uri":"otpauth://totp/Warden:alice?secret=ABC","secret":"ABC"}`,
			func(c *Client) (any, error) { return c.TOTPEnroll(ctx, "alice") },
			"POST", "/v1/users/alice/mfa/totp", "", bearer, TOTPEnrollment{URI: "otpauth://totp/Warden:alice?secret=ABC", Secret: "ABC"}},
		{"TOTPConfirm", 200, `{"recovery_codes":["r1","r2"]}`, func(c *Client) (any, error) { return c.TOTPConfirm(ctx, "alice", "123456") },
			"POST", "/v1/users/alice/mfa/totp/confirm", `{"code":"123456"}`, bearer, []string{"r1", "r2"}},
		{"RecoveryCodes", 200, `{"recovery_codes":["r3"]}`, func(c *Client) (any, error) { return c.RecoveryCodes(ctx, "alice") },
			"POST", "/v1/users/alice/mfa/recovery-codes", "", bearer, []string{"r3"}},
		{"Login", 200, loginJSON, func(c *Client) (any, error) {
			return c.Login(ctx, LoginRequest{User: "alice", Password: "pw", TOTP: "123456"})
		}, "POST", "/v1/auth/login", `{"user":"alice","password":"pw","totp":"123456"}`, "", wantLogin},
		{"Login mfa_required", 200, `{"mfa_required":true,"methods":["totp","webauthn"]}`, func(c *Client) (any, error) {
			return c.Login(ctx, LoginRequest{User: "alice", Password: "pw"})
		}, "POST", "/v1/auth/login", `{"user":"alice","password":"pw"}`, "", LoginResponse{MFARequired: true, Methods: []string{"totp", "webauthn"}}},
		{"Login mfa_required as 401", 401, `{"mfa_required":true,"methods":["totp"]}`, func(c *Client) (any, error) {
			return c.Login(ctx, LoginRequest{User: "alice", Password: "pw"})
		}, "POST", "/v1/auth/login", `{"user":"alice","password":"pw"}`, "", LoginResponse{MFARequired: true, Methods: []string{"totp"}}},
		{"OIDCAuthURL", 200, `{"auth_url":"https://idp/auth?x=1","state":"st"}`, func(c *Client) (any, error) {
			u, s, err := c.OIDCAuthURL(ctx, "http://localhost:8250/oidc/callback", "nonce")
			return []any{u, s}, err
		}, "POST", "/v1/auth/oidc/auth_url", `{"redirect_uri":"http://localhost:8250/oidc/callback","client_nonce":"nonce"}`, "",
			[]any{"https://idp/auth?x=1", "st"}},
		{"OIDCCallback", 200, loginJSON, func(c *Client) (any, error) { return c.OIDCCallback(ctx, "st", "code", "nonce") },
			"POST", "/v1/auth/oidc/callback", `{"state":"st","code":"code","client_nonce":"nonce"}`, "", wantLogin},
		{"OIDCDeviceStart", 200, `{"user_code":"ABCD-EFGH","verification_uri":"https://idp/device","verification_uri_complete":"https://idp/device?c=ABCD-EFGH","expires_in":600,"interval":5,"state":"st"}`,
			func(c *Client) (any, error) { return c.OIDCDeviceStart(ctx) },
			"POST", "/v1/auth/oidc/device", `{}`, "", DeviceAuth{UserCode: "ABCD-EFGH", VerificationURI: "https://idp/device",
				VerificationURIComplete: "https://idp/device?c=ABCD-EFGH", ExpiresIn: 600, Interval: 5, State: "st"}},
		{"OIDCDevicePoll", 200, loginJSON, func(c *Client) (any, error) { return c.OIDCDevicePoll(ctx, "st") },
			"POST", "/v1/auth/oidc/device/poll", `{"state":"st"}`, "", wantLogin},
		{"Logout", 204, "", func(c *Client) (any, error) { return nil, c.Logout(ctx) },
			"POST", "/v1/auth/logout", "", bearer, nil},
		{"RenewSelf", 200, `{"accessor":"acc","user":"alice","expire_time":"2026-01-01T09:00:00Z"}`,
			func(c *Client) (any, error) { return c.RenewSelf(ctx) },
			"POST", "/v1/auth/token/renew-self", "", bearer, Token{Accessor: "acc", User: "alice", ExpireTime: "2026-01-01T09:00:00Z"}},
		{"OIDCConfigRead", 200, `{"issuer":"https://idp","client_id":"warden","redirect_uris":["http://localhost/oidc/callback"],
"scopes":["openid"],"user_claim":"email","groups_claim":"groups","allowed_domains":["example.com"],"mfa_acr_values":["mfa"],"ca_pem":"","client_secret_set":true}`,
			func(c *Client) (any, error) { return c.OIDCConfigRead(ctx) },
			"GET", "/v1/auth/oidc/config", "", bearer, OIDCConfig{Issuer: "https://idp", ClientID: "warden",
				RedirectURIs: []string{"http://localhost/oidc/callback"}, Scopes: []string{"openid"}, UserClaim: "email",
				GroupsClaim: "groups", AllowedDomains: []string{"example.com"}, MFAACRValues: []string{"mfa"}, ClientSecretSet: true}},
		{"OIDCConfigWrite", 204, "", func(c *Client) (any, error) {
			return nil, c.OIDCConfigWrite(ctx, OIDCConfig{Issuer: "https://idp", ClientID: "warden", ClientSecret: "s3",
				ClientSecretSet: true, RedirectURIs: []string{"http://localhost/oidc/callback"}, UserClaim: "email", CAPEM: "pem"})
		}, "PUT", "/v1/auth/oidc/config", `{"issuer":"https://idp","client_id":"warden","client_secret":"s3",
"redirect_uris":["http://localhost/oidc/callback"],"scopes":null,"user_claim":"email","groups_claim":"","allowed_domains":null,
"mfa_acr_values":null,"ca_pem":"pem"}`, bearer, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, got := stub(t, tc.status, tc.resp)
			res, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if got.method != tc.method || got.uri != tc.uri || got.auth != tc.auth {
				t.Errorf("request %s %s auth %q, want %s %s auth %q", got.method, got.uri, got.auth, tc.method, tc.uri, tc.auth)
			}
			switch {
			case tc.body == "" && (got.body != "" || got.contentType != ""):
				t.Errorf("body %q (%s) sent, want none", got.body, got.contentType)
			case tc.body != "" && (!sameJSON(t, got.body, tc.body) || got.contentType != "application/json"):
				t.Errorf("body %s (%s), want %s", got.body, got.contentType, tc.body)
			}
			if tc.want != nil && !reflect.DeepEqual(res, tc.want) {
				t.Errorf("result %#v\nwant %#v", res, tc.want)
			}
		})
	}
}

// TestLoginErrors: a 401 without mfa_required is an APIError with the
// server's message; so is any other failure.
func TestLoginErrors(t *testing.T) {
	c, _ := stub(t, 401, `{"errors":["invalid user name, password or code"]}`)
	_, err := c.Login(context.Background(), LoginRequest{User: "alice", Password: "pw"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Error() != "warden: 401 Unauthorized: invalid user name, password or code" {
		t.Fatalf("401: %v", err)
	}
	c, _ = stub(t, 400, `{"errors":["user: required"]}`)
	if _, err := c.Login(context.Background(), LoginRequest{}); !IsStatus(err, 400) {
		t.Fatalf("400: %v", err)
	}
}

// TestDevicePollPending: a 412 whose message starts with
// authorization_pending is ErrAuthorizationPending; other 412s and other
// errors are not.
func TestDevicePollPending(t *testing.T) {
	ctx := context.Background()
	c, _ := stub(t, 412, `{"errors":["authorization_pending: the user has not approved yet"]}`)
	if _, err := c.OIDCDevicePoll(ctx, "st"); !errors.Is(err, ErrAuthorizationPending) {
		t.Fatalf("pending: %v", err)
	}
	for _, body := range []string{`{"errors":["expired_token: the device code expired"]}`, `{}`} {
		c, _ = stub(t, 412, body)
		if _, err := c.OIDCDevicePoll(ctx, "st"); errors.Is(err, ErrAuthorizationPending) || !IsStatus(err, 412) {
			t.Fatalf("%s: %v", body, err)
		}
	}
	c, _ = stub(t, 401, `{"errors":["authorization_pending"]}`)
	if _, err := c.OIDCDevicePoll(ctx, "st"); errors.Is(err, ErrAuthorizationPending) || !IsStatus(err, 401) {
		t.Fatalf("401: %v", err)
	}
}

// TestLoginNeedsNoToken: the login calls work with a Client that has no
// token, and do not touch the token of one that has.
func TestLoginNeedsNoToken(t *testing.T) {
	c, got := stub(t, 200, loginJSON)
	c.SetToken("")
	if _, err := c.Login(context.Background(), LoginRequest{User: "alice", Password: "pw"}); err != nil || got.auth != "" {
		t.Fatalf("login: %v, auth %q", err, got.auth)
	}
	c.SetToken("wdn_old")
	if _, err := c.OIDCCallback(context.Background(), "s", "c", "n"); err != nil || got.auth != "" || c.Token() != "wdn_old" {
		t.Fatalf("callback: %v, auth %q, token %q", err, got.auth, c.Token())
	}
	if !strings.HasPrefix(got.uri, "/v1/auth/oidc/callback") {
		t.Fatal(got.uri)
	}
}

// TestLoginRateLimitedNotRetried: a 429 to a login call (the server's
// backoff after failed logins) is returned at once, as a *RateLimitError
// carrying Retry-After, while another call to the same server still waits
// out a 429 and retries. Retry-After 0 keeps the retried call fast; the
// login calls are refused with "7" and must not wait for it.
func TestLoginRateLimitedNotRetried(t *testing.T) {
	var calls atomic.Int32
	var refuse atomic.Int32 // 429s still to answer
	var retryAfter atomic.Value
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if refuse.Add(-1) >= 0 {
			w.Header().Set("Retry-After", retryAfter.Load().(string))
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"errors":["too many failed logins; retry in 7 s"]}`)
			return
		}
		io.WriteString(w, loginJSON)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Login", func() error { _, err := c.Login(ctx, LoginRequest{User: "alice", Password: "pw"}); return err }},
		{"OIDCCallback", func() error { _, err := c.OIDCCallback(ctx, "s", "c", "n"); return err }},
		{"OIDCDevicePoll", func() error { _, err := c.OIDCDevicePoll(ctx, "s"); return err }},
	} {
		calls.Store(0)
		refuse.Store(1)
		retryAfter.Store("7")
		err := tc.call()
		var rl *RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second || !IsStatus(err, http.StatusTooManyRequests) {
			t.Fatalf("%s: err %v, want a *RateLimitError with RetryAfter 7s", tc.name, err)
		}
		if err.Error() != "warden: 429 Too Many Requests: too many failed logins; retry in 7 s" {
			t.Fatalf("%s: %q", tc.name, err.Error())
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("%s: %d requests, want 1 (no retry)", tc.name, n)
		}
	}

	// Every other call keeps waiting out a 429 and retrying.
	calls.Store(0)
	refuse.Store(2)
	retryAfter.Store("0")
	if _, err := c.UserRead(ctx, "alice"); err != nil {
		t.Fatalf("read after two 429s: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("UserRead: %d requests, want 3", n)
	}
	// And its last 429 carries Retry-After too.
	calls.Store(0)
	refuse.Store(MaxRateLimitRetries + 1)
	var rl *RateLimitError
	if _, err := c.UserRead(ctx, "alice"); !errors.As(err, &rl) || rl.RetryAfter != 0 || calls.Load() != MaxRateLimitRetries+1 {
		t.Fatalf("UserRead refused every time: %v after %d requests", err, calls.Load())
	}
}

// TestParseRetryAfter: seconds or an HTTP date; anything else, a past date
// or a negative number is no wait; very long waits are capped at a day.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"12":                            12 * time.Second,
		" 3 ":                           3 * time.Second,
		"-1":                            0,
		"1.5":                           0,
		"soon":                          0,
		"999999999999":                  24 * time.Hour,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:04:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestNodeListFollowsPages: NodeList reads every page the server answers,
// passing each page's next as the cursor of the following request.
func TestNodeListFollowsPages(t *testing.T) {
	var uris []string
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		uris = append(uris, r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("cursor") {
		case "":
			io.WriteString(w, `{"nodes":[{"name":"a-1"},{"name":"b-1"}],"next":"b-1"}`)
		case "b-1":
			io.WriteString(w, `{"nodes":[{"name":"c-1"}]}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	ns, err := c.NodeList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range ns {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "a-1,b-1,c-1" {
		t.Fatalf("nodes %q", names)
	}
	if want := []string{"/v1/nodes?limit=1000", "/v1/nodes?cursor=b-1&limit=1000"}; !reflect.DeepEqual(uris, want) {
		t.Fatalf("requests %q, want %q", uris, want)
	}
}
