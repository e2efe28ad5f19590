package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/passkey"
	"github.com/warden-sec/warden/internal/passkey/passkeytest"
	"github.com/warden-sec/warden/internal/server"
)

const (
	passkeyRPID   = "localhost"
	passkeyOrigin = "https://localhost:8200"
	bobPassword   = "violet-ladder-stream-9"
)

// ceremony is the answer of a passkey begin route.
type ceremony struct {
	Options json.RawMessage `json:"options"`
	State   string          `json:"state"`
}

func (h *harness) ceremony(r resp) ceremony {
	h.t.Helper()
	var c ceremony
	if err := json.Unmarshal(h.want(r, 200).body, &c); err != nil || len(c.Options) == 0 || c.State == "" {
		h.t.Fatalf("begin answered %s (%v)", r.body, err)
	}
	return c
}

// registerPasskey registers a as the passkey called name of user, with the
// user's session, through the API.
func (h *harness) registerPasskey(tok, user, name string, a *passkeytest.Authenticator) {
	h.t.Helper()
	c := h.ceremony(h.do("POST", "/v1/users/"+user+"/mfa/webauthn/begin", tok, nil))
	o, err := passkeytest.ParseOptions(c.Options)
	if err != nil {
		h.t.Fatal(err)
	}
	if o.PublicKey.RP.ID != passkeyRPID || o.PublicKey.User.Name != user {
		h.t.Fatalf("creation options: %s", c.Options)
	}
	cred, err := a.Register(c.Options)
	if err != nil {
		h.t.Fatal(err)
	}
	h.want(h.do("POST", "/v1/users/"+user+"/mfa/webauthn/finish", tok,
		map[string]any{"name": name, "state": c.State, "credential": json.RawMessage(cred)}), 204)
}

// passkeyBegin starts a passkey login with the password.
func (h *harness) passkeyBegin(user, password string) resp {
	h.t.Helper()
	return h.do("POST", "/v1/auth/webauthn/login/begin", "", map[string]string{"user": user, "password": password})
}

// finishBody is the body of a passkey login's finish.
func finishBody(t testing.TB, user, state string, cred []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"user": user, "state": state, "credential": json.RawMessage(cred)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signatureOf is the base64url signature member of an assertion, as the
// browser posts it.
func signatureOf(t testing.TB, cred []byte) string {
	t.Helper()
	var c struct {
		Response struct {
			Signature string `json:"signature"`
		} `json:"response"`
	}
	if err := json.Unmarshal(cred, &c); err != nil || c.Response.Signature == "" {
		t.Fatalf("no signature in %s (%v)", cred, err)
	}
	return c.Response.Signature
}

// TestPasskeyLogin walks a passkey through the API of a real server:
// registration with a password session, the login it then requires
// (password, then an assertion), a policy that needs the second factor,
// the refusals of the ceremonies, disabling the user, and the audit log.
func TestPasskeyLogin(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) {
		c.WebAuthnRPID, c.WebAuthnOrigins = passkeyRPID, []string{passkeyOrigin}
	})
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "groups": []string{"staff"}, "password": alicePassword}), 200)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "bob", "groups": []string{"staff"}, "password": bobPassword}), 200)
	h.want(h.do("PUT", "/v1/kv/data/prod/db", root, map[string]any{"data": map[string]string{"pw": "s3cret"}}), 200)
	h.want(h.writePolicy(root, "warden", "read-with-mfa",
		`permit (principal, action == Action::"kv.read", resource) when { context.auth.mfa };`), 200)

	// Without a factor the password is enough to log in, not to read.
	tok, m := h.session("alice", alicePassword, "")
	if a := m["auth"].(map[string]any); a["method"] != "password" || a["mfa"] != false {
		t.Fatalf("password session: auth %v", m["auth"])
	}
	h.wantError(h.do("GET", "/v1/kv/data/prod/db", tok, nil), 403, "kv.read")
	// No passkey yet: nothing to challenge.
	h.want(h.passkeyBegin("alice", alicePassword), 400)

	// Bob's account is not hers to add a passkey to (users.self is on
	// oneself only), neither step.
	h.want(h.do("POST", "/v1/users/bob/mfa/webauthn/begin", tok, nil), 403)
	c := h.ceremony(h.do("POST", "/v1/users/alice/mfa/webauthn/begin", tok, nil))
	stray := passkeytest.New(passkeyRPID, passkeyOrigin)
	strayCred, err := stray.Register(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	h.want(h.do("POST", "/v1/users/bob/mfa/webauthn/finish", tok,
		map[string]any{"name": "mine", "state": c.State, "credential": json.RawMessage(strayCred)}), 403)
	if v := h.want(h.do("GET", "/v1/users/bob", root, nil), 200).json(t); v["passkeys"] != nil && len(v["passkeys"].([]any)) != 0 {
		t.Fatalf("bob has passkeys: %v", v)
	}

	// Register a passkey with her session.
	key := passkeytest.New(passkeyRPID, passkeyOrigin)
	h.registerPasskey(tok, "alice", "laptop", key)
	v := h.want(h.do("GET", "/v1/users/alice", root, nil), 200).json(t)
	if pks, _ := v["passkeys"].([]any); !slices.Contains(v["mfa"].([]any), any("webauthn")) ||
		len(pks) != 1 || pks[0].(map[string]any)["name"] != "laptop" {
		t.Fatalf("alice after registration: %v", v)
	}
	if bytes.Contains(h.do("GET", "/v1/users/alice", root, nil).body, []byte("publicKey")) {
		t.Fatal("the user view shows the stored credential")
	}

	// A new factor ends the sessions opened before it; with a factor, a
	// token without one (made for her since) changes no factor.
	h.want(h.do("GET", "/v1/auth/whoami", tok, nil), 401)
	tok = h.token(root, "alice", "staff")
	h.wantError(h.do("POST", "/v1/users/alice/mfa/webauthn/begin", tok, nil), 403,
		"re-authenticate with your second factor: this session was opened without one")

	// Now the password alone asks for the factor, naming webauthn.
	m = h.want(h.login("alice", alicePassword, ""), 200).json(t)
	if m["mfa_required"] != true || m["token"] != nil || !slices.Contains(m["methods"].([]any), any("webauthn")) {
		t.Fatalf("password login with a passkey: %v", m)
	}

	// The passkey login: the password, then the assertion.
	var signatures []string // of every assertion posted
	c = h.ceremony(h.passkeyBegin("alice", alicePassword))
	o, err := passkeytest.ParseOptions(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	if o.PublicKey.RPID != passkeyRPID || len(o.PublicKey.AllowCredentials) != 1 ||
		o.PublicKey.AllowCredentials[0].ID != base64.RawURLEncoding.EncodeToString(key.CredentialID) {
		t.Fatalf("request options: %s", c.Options)
	}
	cred, err := key.Assert(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	signatures = append(signatures, signatureOf(t, cred))
	good := finishBody(t, "alice", c.State, cred)
	m = h.want(h.do("POST", "/v1/auth/webauthn/login/finish", "", good), 200).json(t)
	pkTok, _ := m["token"].(string)
	accessor, _ := m["accessor"].(string)
	a := m["auth"].(map[string]any)
	if pkTok == "" || accessor == "" || m["user"] != "alice" || a["method"] != "password" || a["mfa"] != true ||
		a["mfa_method"] != "webauthn" || a["time"] == "" || m["expire_time"] == "" || m["max_expire_time"] == "" || m["scope"] != nil ||
		!slices.Equal(m["groups"].([]any), []any{"staff"}) {
		t.Fatalf("passkey session: %v", m)
	}
	if r := h.want(h.do("GET", "/v1/kv/data/prod/db", pkTok, nil), 200); !bytes.Contains(r.body, []byte("s3cret")) {
		t.Fatalf("read with the passkey session: %s", r.body)
	}
	// A session opened with the passkey may add another.
	h.ceremony(h.do("POST", "/v1/users/alice/mfa/webauthn/begin", pkTok, nil))
	if v := h.want(h.do("GET", "/v1/users/alice", root, nil), 200).json(t); v["passkeys"].([]any)[0].(map[string]any)["last_used"] == nil {
		t.Fatalf("passkey's last use not recorded: %v", v)
	}
	// A password-only session of another user is refused by the policy.
	bobTok, _ := h.session("bob", bobPassword, "")
	h.wantError(h.do("GET", "/v1/kv/data/prod/db", bobTok, nil), 403, "kv.read")

	// Refusals. The same answer for a wrong password as for a password login.
	h.wantError(h.passkeyBegin("alice", "wrong-password-123"), 401, "invalid user name, password or code")
	h.wantError(h.passkeyBegin("mallory", alicePassword), 401, "invalid user name, password or code")
	// The finish that opened the session, posted again.
	h.wantError(h.do("POST", "/v1/auth/webauthn/login/finish", "", good), 401, "invalid user name, password or code")

	// Bob's passkey and a ceremony begun for him.
	bobKey := passkeytest.New(passkeyRPID, passkeyOrigin)
	h.registerPasskey(bobTok, "bob", "phone", bobKey)
	bobC := h.ceremony(h.passkeyBegin("bob", bobPassword))

	unregistered := passkeytest.New(passkeyRPID, passkeyOrigin)
	unregistered.UserHandle = key.UserHandle // claims to be alice's
	for _, tc := range []struct {
		name string
		// assert answers a ceremony begun for alice (or not) and returns
		// the finish's user, state and credential.
		assert func(t *testing.T, c ceremony) (user, state string, cred []byte, err error)
		msg    string
	}{
		{"wrong origin", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			key.Origin = "https://evil.example"
			defer func() { key.Origin = passkeyOrigin }()
			cred, err := key.Assert(c.Options)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"wrong RP ID", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			key.RPID = "evil.example"
			defer func() { key.RPID = passkeyRPID }()
			cred, err := key.Assert(c.Options)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"bad signature", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			key.BadSignature = true
			defer func() { key.BadSignature = false }()
			cred, err := key.Assert(c.Options)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"counter not increasing", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			// Stored: 1 (the login above). A clone of the key at 0 signs 1.
			clone := *key
			clone.Counter = 0
			cred, err := clone.Assert(c.Options)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"unregistered authenticator", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			cred, err := unregistered.Assert(c.Options)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"another user's state", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			cred, err := key.Assert(bobC.Options) // alice's passkey over bob's challenge
			return "alice", bobC.State, cred, err
		}, "invalid user name, password or code"},
		{"another user's passkey", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			cred, err := bobKey.Assert(c.Options) // bob's passkey over alice's challenge
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
		{"her assertion for bob", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			cred, err := key.Assert(bobC.Options)
			return "bob", bobC.State, cred, err
		}, "invalid user name, password or code"},
		{"expired ceremony", func(t *testing.T, c ceremony) (string, string, []byte, error) {
			cred, err := key.Assert(c.Options)
			h.clk.Add(passkey.DefaultTimeout)
			return "alice", c.State, cred, err
		}, "invalid user name, password or code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.ceremony(h.passkeyBegin("alice", alicePassword))
			user, state, cred, err := tc.assert(t, c)
			if err != nil {
				t.Fatal(err)
			}
			signatures = append(signatures, signatureOf(t, cred))
			r := h.do("POST", "/v1/auth/webauthn/login/finish", "", finishBody(t, user, state, cred))
			h.wantError(r, 401, tc.msg)
			if bytes.Contains(r.body, []byte(`"token"`)) {
				t.Fatalf("a refusal holds a token: %s", r.body)
			}
		})
	}

	// Whether a user exists does not show in a finish's answer: an unknown
	// user's, an existing user's with a state begun for another, with a
	// state that is no state, or with an assertion that does not parse,
	// all answer the same.
	c = h.ceremony(h.passkeyBegin("alice", alicePassword))
	cred, err = key.Assert(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	signatures = append(signatures, signatureOf(t, cred))
	var first resp
	for i, body := range [][]byte{
		finishBody(t, "mallory", c.State, cred),
		finishBody(t, "bob", c.State, cred),
		finishBody(t, "mallory", "bm90LWEtc3RhdGU", cred),
		finishBody(t, "bob", "bm90LWEtc3RhdGU", cred),
		finishBody(t, "mallory", bobC.State, []byte(`{"id":"x"}`)),
		finishBody(t, "bob", bobC.State, []byte(`{"id":"x"}`)),
		finishBody(t, "Bob", bobC.State, []byte(`{}`)),
		finishBody(t, "no such user!", bobC.State, []byte(`{}`)),
	} {
		r := h.do("POST", "/v1/auth/webauthn/login/finish", "", body)
		if i == 0 {
			first = h.want(r, 401)
			h.wantError(first, 401, "invalid user name, password or code")
		} else if r.status != first.status || !bytes.Equal(r.body, first.body) {
			t.Fatalf("finish %d answered %d %s; an unknown user's %d %s", i, r.status, r.body, first.status, first.body)
		}
	}

	// After all that, the passkey still logs her in.
	c = h.ceremony(h.passkeyBegin("alice", alicePassword))
	cred, err = key.Assert(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	signatures = append(signatures, signatureOf(t, cred))
	m = h.want(h.do("POST", "/v1/auth/webauthn/login/finish", "", finishBody(t, "alice", c.State, cred)), 200).json(t)
	pkTok2 := m["token"].(string)
	h.want(h.do("GET", "/v1/kv/data/prod/db", pkTok2, nil), 200)

	// Disabling her revokes the passkey sessions; a ceremony begun before
	// cannot finish, and none begins.
	c = h.ceremony(h.passkeyBegin("alice", alicePassword))
	h.want(h.do("POST", "/v1/users/alice/disable", root, nil), 204)
	h.want(h.do("GET", "/v1/kv/data/prod/db", pkTok, nil), 401)
	h.want(h.do("GET", "/v1/kv/data/prod/db", pkTok2, nil), 401)
	cred, err = key.Assert(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	signatures = append(signatures, signatureOf(t, cred))
	h.wantError(h.do("POST", "/v1/auth/webauthn/login/finish", "", finishBody(t, "alice", c.State, cred)), 401, "invalid user name, password or code")
	h.wantError(h.passkeyBegin("alice", alicePassword), 401, "invalid user name, password or code")

	// The audit log has the passkey login, with the session's accessor,
	// and holds neither an assertion's signature nor a password.
	found := false
	for _, e := range h.entriesSince(0) {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append([]string{alicePassword, bobPassword, pkTok, pkTok2}, signatures...) {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("audit record holds a secret or a signature: %s", b)
			}
		}
		if e.Action == "auth.webauthn.finish" && e.Outcome == 200 && e.Principal == `User::"alice"` && e.Accessor == accessor {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit record of the passkey login with its session's accessor")
	}
}

// TestPasskeyConcurrentReplay posts one assertion's finish several times at
// once: exactly one may open a session. (A finish verifies the assertion
// against the user record it read; the record it commits must be that
// one, or two finishes that read it before either committed both win.)
func TestPasskeyConcurrentReplay(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) {
		c.WebAuthnRPID, c.WebAuthnOrigins = passkeyRPID, []string{passkeyOrigin}
	})
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	tok, _ := h.session("alice", alicePassword, "")
	key := passkeytest.New(passkeyRPID, passkeyOrigin)
	h.registerPasskey(tok, "alice", "laptop", key)

	const rounds, posts = 5, 8
	for round := range rounds {
		h.clk.Add(10 * time.Second) // refills the address's failure budget (5/s, burst 20)
		c := h.ceremony(h.passkeyBegin("alice", alicePassword))
		cred, err := key.Assert(c.Options)
		if err != nil {
			t.Fatal(err)
		}
		body := finishBody(t, "alice", c.State, cred)
		statuses := make(chan int, posts)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for range posts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", h.srv.Addr()+"/v1/auth/webauthn/login/finish", bytes.NewReader(body))
				if err != nil {
					statuses <- -1
					return
				}
				req.Header.Set("Content-Type", "application/json")
				<-ready
				res, err := h.http.Do(req)
				if err != nil {
					statuses <- -1
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses <- res.StatusCode
			}()
		}
		close(ready)
		wg.Wait()
		close(statuses)
		got := map[int]int{}
		for s := range statuses {
			got[s]++
		}
		if got[200] != 1 || got[200]+got[401] != posts {
			t.Fatalf("round %d: %d identical finishes answered %v, want one 200 and the rest 401", round, posts, got)
		}
	}
}

// TestPasskeyRemove: a user removes a lost passkey by its name, with a
// session opened with a factor (a token without one is refused), and the
// passkey no longer logs in.
func TestPasskeyRemove(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) {
		c.WebAuthnRPID, c.WebAuthnOrigins = passkeyRPID, []string{passkeyOrigin}
	})
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	tok, _ := h.session("alice", alicePassword, "")
	laptop, phone := passkeytest.New(passkeyRPID, passkeyOrigin), passkeytest.New(passkeyRPID, passkeyOrigin)
	h.registerPasskey(tok, "alice", "laptop", laptop)
	login := func(key *passkeytest.Authenticator) resp {
		c := h.ceremony(h.passkeyBegin("alice", alicePassword))
		cred, err := key.Assert(c.Options)
		if err != nil {
			t.Fatal(err)
		}
		return h.do("POST", "/v1/auth/webauthn/login/finish", "", finishBody(t, "alice", c.State, cred))
	}
	mfa := h.want(login(laptop), 200).json(t)["token"].(string)
	h.registerPasskey(mfa, "alice", "phone", phone) // ends the laptop session
	mfa = h.want(login(phone), 200).json(t)["token"].(string)

	plain := h.token(root, "alice")
	h.wantError(h.do("DELETE", "/v1/users/alice/mfa/webauthn/laptop", plain, nil), 403, "re-authenticate with your second factor")
	h.want(h.do("DELETE", "/v1/users/alice/mfa/webauthn/nothing", mfa, nil), 404)
	h.want(h.do("DELETE", "/v1/users/alice/mfa/webauthn/laptop", mfa, nil), 204)
	v := h.want(h.do("GET", "/v1/users/alice", root, nil), 200).json(t)
	if pks := v["passkeys"].([]any); len(pks) != 1 || pks[0].(map[string]any)["name"] != "phone" {
		t.Fatalf("passkeys after the removal: %v", v["passkeys"])
	}
	h.want(login(laptop), 401)
	h.want(login(phone), 200)
}
