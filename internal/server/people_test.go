package server_test

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/users"
)

const alicePassword = "plum-orbit-cellar-42"

// totpNow is the code of a base32 TOTP secret at the harness's time.
func (h *harness) totpNow(secret string) string {
	h.t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		h.t.Fatal(err)
	}
	return users.TOTPCode(key, h.clk.Now().Unix()/30, 6, otp.AlgorithmSHA1)
}

func (h *harness) login(user, password, code string) resp {
	h.t.Helper()
	return h.do("POST", "/v1/auth/login", "", map[string]string{"user": user, "password": password, "totp": code})
}

// session logs in and returns the session's token, failing on anything
// but a new session.
func (h *harness) session(user, password, code string) (string, map[string]any) {
	h.t.Helper()
	m := h.want(h.login(user, password, code), 200).json(h.t)
	tok, _ := m["token"].(string)
	if tok == "" {
		h.t.Fatalf("no session: %v", m)
	}
	return tok, m
}

// TestPeople walks the life of a user account through the API: password
// rules, a login and its context.auth, a policy that needs a second
// factor, TOTP enrollment, login with a code (once), recovery codes,
// disabling (which revokes the sessions), and what the audit log keeps.
func TestPeople(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	// Password rules: too short, common, containing the name.
	for _, pw := range []string{"short-pw", "qwertyuiopasdfghjkl", "alice-the-great-1"} {
		r := h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "groups": []string{"admins"}, "password": pw})
		if r.status != 400 || !strings.Contains(r.errorText(t), "password") || strings.Contains(string(r.body), pw) {
			t.Fatalf("password %q: %d %s", pw, r.status, r.body)
		}
	}
	view := h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "Alice", "groups": []string{"admins"}, "password": alicePassword}), 200).json(t)
	if view["name"] != "alice" || view["has_password"] != true || bytes.Contains(h.do("GET", "/v1/users/alice", root, nil).body, []byte("argon2")) {
		t.Fatalf("created %v", view)
	}
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword + "x"}), 409)

	// One answer for an unknown user and a wrong password.
	h.wantError(h.login("alice", "wrong-password-123", ""), 401, "invalid user name, password or code")
	h.wantError(h.login("mallory", "wrong-password-123", ""), 401, "invalid user name, password or code")

	// A password session: context.auth says password, no second factor.
	tok, m := h.session("alice", alicePassword, "")
	if a := m["auth"].(map[string]any); a["method"] != "password" || a["mfa"] != false {
		t.Fatalf("auth %v", m["auth"])
	}
	h.want(h.do("PUT", "/v1/kv/data/prod/db", root, map[string]any{"data": map[string]string{"pw": "s3cret"}}), 200)
	h.want(h.writePolicy(root, "warden", "admins-mfa",
		`permit (principal in Group::"admins", action == Action::"kv.read", resource) when { context.auth.mfa };`), 200)
	h.wantError(h.do("GET", "/v1/kv/data/prod/db", tok, nil), 403, "kv.read")

	// Enroll TOTP with the session (users.self, built in), confirm it.
	enr := h.want(h.do("POST", "/v1/users/alice/mfa/totp", tok, nil), 200).json(t)
	secret := enr["secret"].(string)
	if !strings.HasPrefix(enr["uri"].(string), "otpauth://totp/") {
		t.Fatalf("uri %v", enr["uri"])
	}
	h.wantError(h.do("POST", "/v1/users/alice/mfa/totp/confirm", tok, map[string]string{"code": "000000"}), 400, "code")
	conf := h.want(h.do("POST", "/v1/users/alice/mfa/totp/confirm", tok, map[string]string{"code": h.totpNow(secret)}), 200).json(t)
	recovery := conf["recovery_codes"].([]any)
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes", len(recovery))
	}
	// A new factor ends the sessions opened before it.
	h.want(h.do("GET", "/v1/auth/whoami", tok, nil), 401)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "bob", "password": "violet-ladder-stream-9"}), 200)

	// Now the password alone asks for the factor, and gives no token.
	if m := h.want(h.login("alice", alicePassword, ""), 200).json(t); m["mfa_required"] != true || m["token"] != nil {
		t.Fatalf("without a code: %v", m)
	}
	// The code of the confirmation's step was used: the next step's works.
	h.wantError(h.login("alice", alicePassword, h.totpNow(secret)), 401, "invalid user name, password or code")
	h.clk.Add(30 * time.Second)
	code := h.totpNow(secret)
	mfaTok, m := h.session("alice", alicePassword, code)
	if a := m["auth"].(map[string]any); a["method"] != "password" || a["mfa"] != true || a["mfa_method"] != "totp" {
		t.Fatalf("auth %v", m["auth"])
	}
	h.wantError(h.login("alice", alicePassword, code), 401, "invalid user name, password or code") // replay
	// Another user's factor is not alice's to enroll.
	h.want(h.do("POST", "/v1/users/bob/mfa/totp", mfaTok, nil), 403)
	if r := h.want(h.do("GET", "/v1/kv/data/prod/db", mfaTok, nil), 200); !bytes.Contains(r.body, []byte("s3cret")) {
		t.Fatalf("read %s", r.body)
	}

	// A recovery code works once.
	rc := recovery[3].(string)
	h.session("alice", alicePassword, rc)
	h.wantError(h.login("alice", alicePassword, rc), 401, "invalid user name, password or code")

	// Disabling revokes every token of alice at once: her sessions, and
	// the token root made for her.
	made := h.token(root, "alice", "admins")
	h.want(h.do("GET", "/v1/auth/whoami", made, nil), 200)
	h.want(h.do("POST", "/v1/users/alice/disable", root, nil), 204)
	h.want(h.do("GET", "/v1/kv/data/prod/db", mfaTok, nil), 401)
	h.want(h.do("GET", "/v1/auth/whoami", made, nil), 401)
	h.want(h.do("POST", "/v1/users/alice/mfa/totp", tok, nil), 401)
	h.wantError(h.login("alice", alicePassword, h.totpNow(secret)), 401, "invalid user name, password or code")
	h.want(h.do("POST", "/v1/users/alice/enable", root, nil), 204)
	h.clk.Add(30 * time.Second)
	h.session("alice", alicePassword, h.totpNow(secret))

	// The audit log names the logins and never holds a secret.
	es := h.entriesSince(0)
	logins := 0
	for _, e := range es {
		b, _ := json.Marshal(e)
		for _, s := range []string{alicePassword, secret, rc, code} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("audit record holds a secret: %s", b)
			}
		}
		if e.Action == "auth.login" && e.Outcome == 200 && e.Principal == `User::"alice"` && e.Accessor != "" {
			logins++
		}
	}
	if logins < 4 {
		t.Fatalf("%d login records", logins)
	}
}

// TestLoginBackoffAndUnlock: repeated failures for a user make even the
// right password wait (429), the same for a user that does not exist;
// unlock ends the wait.
func TestLoginBackoffAndUnlock(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	for _, user := range []string{"alice", "nobody"} {
		for range 5 {
			h.want(h.login(user, "wrong-password-123", ""), 401)
		}
		r := h.login(user, alicePassword, "")
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s after 5 failures: %d %s", user, r.status, r.body)
		}
	}
	h.want(h.do("POST", "/v1/users/alice/unlock", root, nil), 204)
	h.session("alice", alicePassword, "")
}

// TestRequireMFAGroup: a member of a --require-mfa-group without a factor
// gets a session that may only enroll one.
func TestRequireMFAGroup(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.RequireMFAGroups = []string{"admins"} })
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "groups": []string{"admins"}, "password": alicePassword}), 200)
	h.want(h.writePolicy(root, "warden", "admins", `permit (principal in Group::"admins", action, resource);`), 200)
	tok, m := h.session("alice", alicePassword, "")
	if m["scope"] != "mfa-enroll" {
		t.Fatalf("session %v", m)
	}
	h.wantError(h.do("GET", "/v1/users", tok, nil), 403, "only enroll a second factor")
	enr := h.want(h.do("POST", "/v1/users/alice/mfa/totp", tok, nil), 200).json(t)
	h.want(h.do("POST", "/v1/users/alice/mfa/totp/confirm", tok, map[string]string{"code": h.totpNow(enr["secret"].(string))}), 200)
	h.clk.Add(30 * time.Second)
	full, m := h.session("alice", alicePassword, h.totpNow(enr["secret"].(string)))
	if m["scope"] != nil && m["scope"] != "" {
		t.Fatalf("session %v", m)
	}
	h.want(h.do("GET", "/v1/users", full, nil), 200)
}

// TestSessionRenewAndLogout: a session ends when unused for its idle
// timeout, renew-self moves that, never past the session's maximum, and
// logout revokes it.
func TestSessionRenewAndLogout(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.SessionIdle = 10 * time.Minute; c.SessionTTL = 30 * time.Minute })
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	tok, m := h.session("alice", alicePassword, "")
	exp, _ := time.Parse(time.RFC3339Nano, m["expire_time"].(string))
	if d := exp.Sub(h.clk.Now()); d > 10*time.Minute || d < 9*time.Minute {
		t.Fatalf("expires in %s", d)
	}
	for i := range 3 {
		h.clk.Add(9 * time.Minute)
		r := h.want(h.do("POST", "/v1/auth/token/renew-self", tok, nil), 200).json(t)
		exp, _ = time.Parse(time.RFC3339Nano, r["expire_time"].(string))
		if i == 2 {
			// 27 minutes in: the maximum (30) caps the renewal.
			maxExp, _ := time.Parse(time.RFC3339Nano, m["max_expire_time"].(string))
			if !exp.Equal(maxExp) {
				t.Fatalf("renewed to %s past the maximum %s", exp, maxExp)
			}
		}
	}
	h.clk.Add(4 * time.Minute)
	h.want(h.do("POST", "/v1/auth/token/renew-self", tok, nil), 401)

	// Idle: unused past the timeout, the session is gone.
	tok2, _ := h.session("alice", alicePassword, "")
	h.clk.Add(11 * time.Minute)
	h.want(h.do("POST", "/v1/auth/token/renew-self", tok2, nil), 401)

	tok3, _ := h.session("alice", alicePassword, "")
	h.want(h.do("POST", "/v1/auth/logout", tok3, nil), 204)
	h.want(h.do("POST", "/v1/auth/token/renew-self", tok3, nil), 401)
	// The root token has no session to end.
	h.want(h.do("POST", "/v1/auth/logout", root, nil), 400)
}

// TestSessionTouch: a session in use is renewed by the server in the
// background (with a record of its own), so it outlives its first idle
// deadline; and a child token made meanwhile is made of the renewed record.
func TestSessionTouch(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.SessionIdle = 10 * time.Minute })
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	h.want(h.writePolicy(root, "warden", "tokens", `permit (principal == User::"alice", action == Action::"token.create", resource);`), 200)
	tok, m := h.session("alice", alicePassword, "")
	first := m["expire_time"].(string)
	h.clk.Add(6 * time.Minute) // 4 minutes left: the next use renews
	deadline := time.Now().Add(30 * time.Second)
	for {
		self := h.want(h.do("GET", "/v1/auth/token/lookup-self", tok, nil), 200).json(t)
		if self["expire_time"] != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session was not renewed by its use")
		}
		// The renewal is asynchronous: ask again (each ask is a use too).
		runtime.Gosched()
	}
	h.want(h.do("POST", "/v1/auth/token/create", tok, map[string]any{"ttl": "1m"}), 200)
	h.clk.Add(8 * time.Minute) // past the first deadline, within the renewed one
	h.want(h.do("GET", "/v1/auth/whoami", tok, nil), 200)
	found := false
	for _, e := range h.entriesSince(0) {
		if e.Action == "token.touch" && e.AuthMethod == "system" && e.Accessor != "" {
			found = true
		}
	}
	if !found {
		t.Fatal("no record of the renewal")
	}
}

// TestUserNamesCanonical: a user route's {name} is the canonical name the
// users service acts on, or the request is refused before authorization:
// BOB would otherwise escape a forbid on User::"bob" while changing bob.
// The audit records of logins and creations name the canonical user.
func TestUserNamesCanonical(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "Bob", "groups": []string{"dev"}, "password": alicePassword}), 200)
	h.want(h.writePolicy(root, "warden", "admins", `permit (principal in Group::"admins", action, resource);`), 200)
	h.want(h.writePolicy(root, "warden", "not-bob", `forbid (principal, action == Action::"users.write", resource == User::"bob");`), 200)
	carol := h.token(root, "carol", "admins")
	from := auditSize(t, h)

	h.wantError(h.do("PATCH", "/v1/users/bob", carol, map[string]any{"groups": []string{"security"}}), 403, "not-bob")
	for path, msg := range map[string]string{
		"/v1/users/BOB":      `name: "BOB" is not a canonical user name; use "bob"`,
		"/v1/users/Bob":      `use "bob"`,
		"/v1/users/b%C3%B6b": "name: character",
		"/v1/users/bob..x":   "name: label 2 is empty",
	} {
		h.wantError(h.do("PATCH", path, carol, map[string]any{"groups": []string{"security"}}), 400, msg)
	}
	for _, p := range []string{"/v1/users/BOB/disable", "/v1/users/BOB/unlock", "/v1/users/BOB/mfa/reset"} {
		h.wantError(h.do("POST", p, carol, nil), 400, `use "bob"`)
	}
	h.wantError(h.do("DELETE", "/v1/users/BOB", carol, nil), 400, `use "bob"`)
	h.wantError(h.do("POST", "/v1/users/BOB/password", carol, map[string]string{"password": "another-long-password-7"}), 400, `use "bob"`)
	h.wantError(h.do("GET", "/v1/users/BOB", carol, nil), 400, `use "bob"`)
	v := h.want(h.do("GET", "/v1/users/bob", root, nil), 200).json(t)
	if g := v["groups"].([]any); len(g) != 1 || g[0] != "dev" || v["disabled"] != false {
		t.Fatalf("bob after the refusals: %v", v)
	}

	// A login names the user it opens a session of, whatever the spelling.
	_, m := h.session("BOB", alicePassword, "")
	if m["user"] != "bob" {
		t.Fatalf("session %v", m)
	}
	wantRecords(t, h.entriesSince(from), []record{
		{action: "users.write", principal: `User::"carol"`, resource: `User::"bob"`, outcome: 403, err: "not-bob"},
		{action: "auth.login", principal: `User::"bob"`, resource: `User::"bob"`, outcome: 200},
	})
	for _, e := range h.entriesSince(0) {
		if strings.Contains(e.Principal+e.Resource, "Bob") || strings.Contains(e.Principal+e.Resource, "BOB") {
			t.Fatalf("a record names the user as given, not canonically: %+v", e)
		}
	}
}

// TestDualControlUsers: with dual control on, a users.write that makes,
// changes or removes a member of Group::"security" (the approvers of the
// default rule) is held for two approvals, whoever the user and however
// the change is made: a create or update into security, an update out of
// it, a delete, disable, enable, unlock or password reset of a member, an
// administrator adding herself. The same changes of other users run at
// once. Without it, an administrator with users.write made approvers, logged
// in as them, and approved her own requests.
func TestDualControlUsers(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.DualControl = true })
	_, root := h.initUnseal(1, 1)
	alice := h.token(root, "alice", "security")
	bob := h.token(root, "bob", "security")
	carol := h.token(root, "carol", "admins")
	run := func(id string) resp {
		t.Helper()
		for _, tok := range []string{alice, bob} {
			h.want(h.do("POST", "/v1/requests/"+id+"/approve", tok, nil), 200)
		}
		return h.do("POST", "/v1/requests/"+id+"/run", carol, nil)
	}
	// Administrators may do anything, as dual control lets them.
	h.want(run(held(t, h.writePolicy(carol, "warden", "admins", `permit (principal in Group::"admins", action, resource);`), 2)), 200)

	// A new user in security is held, and runs once approved; in dev, not.
	const pw = "violet-ladder-stream-9"
	create := func(name string, groups ...string) resp {
		return h.do("POST", "/v1/users", carol, map[string]any{"name": name, "groups": groups, "password": pw})
	}
	id := held(t, create("mallory", "security"), 2)
	h.want(h.do("GET", "/v1/users/mallory", root, nil), 404)
	h.want(run(id), 200)
	h.want(create("dave", "dev"), 200)
	held(t, create("Eve", "Dev", "Security"), 2) // as the service will store them
	held(t, create("eve", "security"), 2)

	// Changes of a member of security, or into it, are held; of others not.
	for _, r := range []struct{ method, path string }{
		{"DELETE", "/v1/users/mallory"},
		{"POST", "/v1/users/mallory/disable"},
		{"POST", "/v1/users/mallory/enable"},
		{"POST", "/v1/users/mallory/unlock"},
	} {
		held(t, h.do(r.method, r.path, carol, nil), 2)
	}
	held(t, h.do("POST", "/v1/users/mallory/password", carol, map[string]string{"password": "another-long-password-7"}), 2)
	held(t, h.do("PATCH", "/v1/users/mallory", carol, map[string]any{"groups": []string{"dev"}}), 2) // out of security
	held(t, h.do("PATCH", "/v1/users/dave", carol, map[string]any{"groups": []string{"dev", "security"}}), 2)
	h.want(h.do("PATCH", "/v1/users/dave", carol, map[string]any{"groups": []string{"dev", "ops"}}), 200)
	h.want(h.do("POST", "/v1/users/dave/password", carol, map[string]string{"password": "another-long-password-7"}), 204)
	h.want(h.do("POST", "/v1/users/dave/disable", carol, nil), 204)
	h.want(h.do("DELETE", "/v1/users/dave", carol, nil), 204)
	// An administrator with an account of her own, adding herself.
	h.want(create("carol", "admins"), 200)
	held(t, h.do("PATCH", "/v1/users/carol", carol, map[string]any{"groups": []string{"admins", "security"}}), 2)
	if v := h.want(h.do("GET", "/v1/users/carol", root, nil), 200).json(t); len(v["groups"].([]any)) != 1 {
		t.Fatalf("carol changed her groups without approval: %v", v)
	}
	// mallory is in security, unchanged by the held requests.
	v := h.want(h.do("GET", "/v1/users/mallory", root, nil), 200).json(t)
	if g := v["groups"].([]any); len(g) != 1 || g[0] != "security" || v["disabled"] != false {
		t.Fatalf("mallory %v", v)
	}
}

// TestFactorChangesNeedFactor: once a user has a second factor, the routes
// that change factors refuse a session opened without one (a stolen
// password must not replace the factor), and anything else whose
// context.auth.mfa is false; the first enrollment needs none.
func TestFactorChangesNeedFactor(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	h.want(h.writePolicy(root, "warden", "tokens", `permit (principal == User::"alice", action == Action::"token.create", resource);`), 200)
	tok, _ := h.session("alice", alicePassword, "")

	// The first enrollment, with the password session.
	enr := h.want(h.do("POST", "/v1/users/alice/mfa/totp", tok, nil), 200).json(t)
	secret := enr["secret"].(string)
	h.want(h.do("POST", "/v1/users/alice/mfa/totp/confirm", tok, map[string]string{"code": h.totpNow(secret)}), 200)

	// The password session ended with the new factor; a token made for
	// alice since, without a second factor, changes no factor.
	h.want(h.do("GET", "/v1/auth/whoami", tok, nil), 401)
	tok = h.token(root, "alice")
	const msg = "re-authenticate with your second factor: this session was opened without one"
	refused := func(tok string) {
		t.Helper()
		h.wantError(h.do("POST", "/v1/users/alice/mfa/totp", tok, nil), 403, msg)
		h.wantError(h.do("POST", "/v1/users/alice/mfa/totp/confirm", tok, map[string]string{"code": h.totpNow(secret)}), 403, msg)
		h.wantError(h.do("POST", "/v1/users/alice/mfa/recovery-codes", tok, nil), 403, msg)
		h.wantError(h.do("POST", "/v1/users/alice/mfa/webauthn/begin", tok, nil), 403, msg)
		h.wantError(h.do("POST", "/v1/users/alice/mfa/webauthn/finish", tok,
			map[string]any{"name": "mine", "state": "x", "credential": map[string]string{"id": "x"}}), 403, msg)
	}
	refused(tok)
	// A session opened with the factor does; a token made from it is a
	// new credential (context.auth.method token) and does not.
	h.clk.Add(30 * time.Second)
	mfaTok, _ := h.session("alice", alicePassword, h.totpNow(secret))
	if n := len(h.want(h.do("POST", "/v1/users/alice/mfa/recovery-codes", mfaTok, nil), 200).json(t)["recovery_codes"].([]any)); n != 10 {
		t.Fatalf("%d recovery codes", n)
	}
	h.want(h.do("POST", "/v1/users/alice/mfa/totp", mfaTok, nil), 200)
	child := h.want(h.do("POST", "/v1/auth/token/create", mfaTok, map[string]any{"ttl": "10m"}), 200).json(t)["token"].(string)
	refused(child)
	// Nor does the root token (it resets factors with users.mfa.reset).
	h.wantError(h.do("POST", "/v1/users/alice/mfa/recovery-codes", root, nil), 403, msg)
	v := h.want(h.do("GET", "/v1/users/alice", root, nil), 200).json(t)
	if v["recovery_codes_left"] != float64(10) {
		t.Fatalf("alice after the refusals: %v", v)
	}
}

// TestRequireMFAGroupNotCanonical: a group of RequireMFAGroups that is not
// a canonical name is an error of New naming the flag, not a panic.
func TestRequireMFAGroupNotCanonical(t *testing.T) {
	for g, want := range map[string]string{"Admins": `use "admins"`, "ad min": "character"} {
		srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RequireMFAGroups: []string{g}})
		if err == nil {
			srv.Close()
			t.Fatalf("%q: New accepted it", g)
		}
		if !strings.Contains(err.Error(), "--require-mfa-group") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", g, err)
		}
	}
}

// TestLoginFailuresAlert: repeated failed logins for one user name become a
// login_failures server event in the stream, which the built-in rule
// warden_login_failures matches at level high.
func TestLoginFailuresAlert(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	p := waitPlane(t, h.srv)
	h.want(h.do("POST", "/v1/users", root, map[string]any{"name": "alice", "password": alicePassword}), 200)
	for range 5 {
		h.want(h.login("alice", "wrong-password-123", ""), 401)
	}
	ev := waitServerEvent(t, p, events.ActionLoginFailures, "alice")
	if ev.String("warden.failures") != "5" || ev.String("event.dataset") != "warden.server" {
		t.Fatalf("login failures event %v", ev)
	}
	m := builtinMatches(t, ev)
	if len(m) != 1 || m[0].Title != "Repeated failed logins to Warden" || m[0].Level != "high" {
		t.Fatalf("the event matches %v, want the high built-in rule", m)
	}
}
