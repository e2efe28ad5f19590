package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/users"
	"github.com/warden-sec/warden/pkg/client"
)

// testClock is a server clock the test moves: TOTP steps (30 s) pass by
// choosing the time, not by sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// userViewKeys are the fields of a user as GET /v1/users/{name} shows it
// (internal/users.UserView) when not locked; locked_until is added while
// locked.
var userViewKeys = []string{"name", "groups", "disabled", "has_password", "mfa", "recovery_codes_left", "passkeys",
	"created_time", "updated_time", "locked"}

// TestPeopleE2E runs the people commands as a new user would, against a
// real server on a 127.0.0.1:0 port whose clock the test holds: an
// administrator (the root token) creates alice, a member of a group that
// must have a second factor; alice logs in (the session saved in
// ~/.warden/token), enrolls TOTP, logs in with codes and a recovery code,
// changes her password, is disabled and enabled, is locked out by wrong
// passwords and unlocked, and logs out.
func TestPeopleE2E(t *testing.T) {
	clk := &testClock{t: time.Now().UTC()}
	srv := startServerWith(t, func(c *server.Config) { c.Now, c.RequireMFAGroups = clk.Now, []string{"admins"} })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// One run of the CLI, bounded by the test's deadline.
	cli := func(e env, stdin string, argv ...string) result {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(ctx, argv, strings.NewReader(stdin), &out, &errb, e.get)
		return result{out.String(), errb.String(), code}
	}
	ok := func(e env, stdin string, argv ...string) string {
		t.Helper()
		r := cli(e, stdin, argv...)
		if r.code != 0 {
			t.Fatalf("warden %s: exit %d, stderr %q", strings.Join(argv, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	fails := func(code int, contains string, e env, stdin string, argv ...string) result {
		t.Helper()
		r := cli(e, stdin, argv...)
		checkErr(t, r, code, contains)
		return r
	}

	base := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile()}
	caPEM, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	apiClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer apiClient.CloseIdleConnections()
	root := env{"HOME": t.TempDir()}
	alice := env{"HOME": t.TempDir()} // no WARDEN_TOKEN: the saved session
	for k, v := range base {
		root[k], alice[k] = v, v
	}
	in := mustJSON(t, cli(root, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"),
		"unseal_keys", "root_token")
	ok(root, "", "operator", "unseal", in["unseal_keys"].([]any)[0].(string))
	root["WARDEN_TOKEN"] = in["root_token"].(string)

	// The administrator creates alice; weak passwords are refused with
	// the rule they break.
	const pw1, pw2 = "correct horse battery staple", "tr0ubador & a second one"
	for weak, rule := range map[string]string{
		"short one":        "password: shorter than 12 characters",
		"alice-in-chains!": "password: must not contain the user name",
		"1qaz2wsx3edc":     "password: one of the 100,000 most common passwords",
	} {
		r := fails(ExitError, rule, root, weak+"\n", "user", "create", "alice", "--group", "admins", "--password-stdin")
		if strings.Contains(r.stderr+r.stdout, weak) {
			t.Fatalf("the refused password is in the output: %q", r.stderr)
		}
	}
	created := mustJSON(t, cli(root, pw1+"\n", "user", "create", "alice", "--group", "admins", "--password-stdin", "--format", "json"),
		userViewKeys...)
	if created["name"] != "alice" || !reflect.DeepEqual(created["groups"], []any{"admins"}) || created["has_password"] != true ||
		!reflect.DeepEqual(created["mfa"], []any{}) {
		t.Fatalf("created: %v", created)
	}

	// alice logs in: the session is saved (0600 in a 0700 directory).
	// Her group must have a second factor and she has none yet, so the
	// session may only enroll one, and says so.
	tokenFile := filepath.Join(alice["HOME"], ".warden", "token")
	r := cli(alice, pw1+"\n", "login", "--user", "alice", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "Logged in as alice") || !strings.Contains(r.stdout, "mfa-enroll") ||
		!strings.Contains(r.stderr, "warden user mfa enroll totp") {
		t.Fatalf("first login: %+v", r)
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v", err)
	}
	if fi, err := os.Stat(filepath.Dir(tokenFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("token directory: %v", err)
	}
	fails(ExitError, "may only enroll a second factor", alice, "", "user", "list")

	// Enrollment, with the saved session: the URI, its QR code and the
	// secret; the code from the app confirms, once the app has the secret.
	r = cli(alice, "", "user", "mfa", "enroll", "totp")
	out := r.stdout
	if r.code != 0 || !strings.Contains(r.stderr, "warden user mfa enroll totp --code") {
		t.Fatalf("enroll: %+v", r)
	}
	uri := regexp.MustCompile(`otpauth://totp/\S+`).FindString(out)
	m := regexp.MustCompile(`[?&]secret=([A-Z2-7]+)`).FindStringSubmatch(uri)
	if m == nil {
		t.Fatalf("enroll: no otpauth URI with a secret:\n%s", out)
	}
	qr, err := qrText(uri)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, qr) || !strings.Contains(out, "Secret") || !strings.Contains(out, m[1]) {
		t.Fatalf("enroll output:\n%s", out)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	code := func() string { return users.TOTPCode(secret, clk.Now().Unix()/30, 6, otp.AlgorithmSHA1) }
	// next moves the clock to the next 30-s step and returns its code.
	next := func() string {
		clk.Advance(30 * time.Second)
		return code()
	}
	// A wrong code: none of the three steps the server accepts.
	step := clk.Now().Unix() / 30
	wrong := "000000"
	for i := 0; slices.Contains([]string{users.TOTPCode(secret, step-1, 6, otp.AlgorithmSHA1), code(),
		users.TOTPCode(secret, step+1, 6, otp.AlgorithmSHA1)}, wrong); i++ {
		wrong = fmt.Sprintf("%06d", i+1)
	}
	fails(ExitError, "code: wrong or expired", alice, "", "user", "mfa", "enroll", "totp", "--code", wrong)
	confirmed := code()
	out = ok(alice, "", "user", "mfa", "enroll", "totp", "--code", confirmed)
	recovery := regexp.MustCompile(`(?m)^    ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})$`).FindAllStringSubmatch(out, -1)
	if len(recovery) != 10 || !strings.Contains(out, "not shown again") {
		t.Fatalf("recovery codes:\n%s", out)
	}

	// Logging in now needs the code: from the line after the password
	// or --totp. The step used to confirm does not log in; each code
	// works once.
	fails(ExitError, "second factor", alice, pw1+"\n", "login", "--user", "alice", "--password-stdin")
	fails(ExitError, "invalid user name, password or code", alice, pw1+"\n", "login", "--user", "alice", "--password-stdin", "--totp", confirmed)
	c2 := next()
	r = cli(alice, pw1+"\n"+c2+"\n", "login", "--user", "alice", "--password-stdin", "--format", "json")
	login := mustJSON(t, r, "accessor", "user", "groups", "expire_time", "max_expire_time", "auth")
	if a := login["auth"].(map[string]any); a["method"] != "password" || a["mfa"] != true || a["mfa_method"] != "totp" {
		t.Fatalf("login with TOTP: %v", login)
	}
	fails(ExitError, "invalid user name, password or code", alice, pw1+"\n", "login", "--user", "alice", "--password-stdin", "--totp", c2)

	// The saved session renews itself, and prints until when.
	renewed := mustJSON(t, cli(alice, "", "token", "renew", "--format", "json"), "accessor", "display_name", "policies",
		"parent_accessor", "created_time", "expire_time", "ttl", "root", "user", "groups", "principal")
	if renewed["user"] != "alice" || renewed["expire_time"] == "" {
		t.Fatalf("token renew: %v", renewed)
	}
	if out := ok(alice, "", "token", "renew"); !strings.Contains(out, "Expire Time") {
		t.Fatalf("token renew table: %q", out)
	}

	// A recovery code works once, in place of a code.
	rc := recovery[0][1]
	ok(alice, pw1+"\n", "login", "--user", "alice", "--password-stdin", "--totp", rc)
	fails(ExitError, "invalid user name, password or code", alice, pw1+"\n", "login", "--user", "alice", "--password-stdin", "--totp", rc)

	// Her own password: the current one first.
	fails(ExitError, "current_password", alice, "not the password\n"+pw2+"\n", "user", "passwd", "--password-stdin")
	if out := ok(alice, pw1+"\n"+pw2+"\n", "user", "passwd", "--password-stdin"); !strings.Contains(out, "user alice") {
		t.Fatalf("passwd: %q", out)
	}
	fails(ExitError, "invalid user name, password or code", alice, pw1+"\n", "login", "--user", "alice", "--password-stdin", "--totp", next())
	ok(alice, pw2+"\n"+next()+"\n", "login", "--user", "alice", "--password-stdin")

	// Disabled: the saved session is revoked at once (and the error says
	// what to do); no login; enabled again, a login works.
	ok(root, "", "user", "disable", "alice")
	fails(ExitError, "401", alice, "", "token", "renew")
	fails(ExitError, "warden login", alice, "", "token", "renew")
	fails(ExitError, "invalid user name, password or code", alice, pw2+"\n", "login", "--user", "alice", "--password-stdin", "--totp", next())
	ok(root, "", "user", "enable", "alice")
	ok(alice, pw2+"\n"+next()+"\n", "login", "--user", "alice", "--password-stdin")

	// Five wrong passwords, then the right one: refused at once, with
	// when to try again, and not waited out in silence (the client
	// retries other 429s up to 8 times, a second or more apart). (The
	// server also backs off an address after 20 failed logins, which it
	// never forgets within a day: this test makes 12 from 127.0.0.1.)
	for range 5 {
		fails(ExitError, "invalid user name, password or code", alice, "wrong password!\n", "login", "--user", "alice", "--password-stdin")
	}
	start := time.Now()
	r = fails(ExitError, "too many failed logins; retry in 1 s", alice, pw2+"\n", "login", "--user", "alice", "--password-stdin", "--totp", code())
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the refused login took %v", d)
	}
	if locked := mustJSON(t, cli(root, "", "user", "show", "alice", "--format", "json"), append(userViewKeys, "locked_until")...); locked["locked"] != true ||
		locked["locked_until"] == "" {
		t.Fatalf("user show while locked: %v", locked)
	}
	// One more failure (a second later) doubles the wait; the error
	// still says how long.
	clk.Advance(time.Second)
	fails(ExitError, "invalid user name, password or code", alice, "wrong password!\n", "login", "--user", "alice", "--password-stdin")
	fails(ExitError, "too many failed logins; retry in 2 s", alice, pw2+"\n", "login", "--user", "alice", "--password-stdin", "--totp", code())
	// The answer's Retry-After says the same as its message.
	c, err := client.New(client.Config{Address: base["WARDEN_ADDR"], CACertFile: base["WARDEN_CACERT"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	var rl *client.RateLimitError
	if _, err := c.Login(ctx, client.LoginRequest{User: "alice", Password: pw2}); !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("login under backoff: %v (Retry-After %v), want a 429 with Retry-After 2 s", err, rl)
	}
	// Unlocked, alice logs in at once (with a recovery code: a new TOTP
	// step would be 30 s later, past the wait).
	ok(root, "", "user", "unlock", "alice")
	ok(alice, pw2+"\n"+recovery[1][1]+"\n", "login", "--user", "alice", "--password-stdin")

	// The list and a user, as JSON: what the API answers, field for
	// field ("next" and "locked_until" only when there is one).
	apiGet := func(path string) any {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "GET", base["WARDEN_ADDR"]+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+root["WARDEN_TOKEN"])
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		return v
	}
	list := mustJSON(t, cli(root, "", "user", "list", "--format", "json"), "users")
	if want := apiGet("/v1/users"); !reflect.DeepEqual(any(list), want) {
		t.Fatalf("user list --format json:\n%v\nthe API:\n%v", list, want)
	}
	shown := mustJSON(t, cli(root, "", "user", "show", "alice", "--format", "json"), userViewKeys...)
	if want := apiGet("/v1/users/alice"); !reflect.DeepEqual(any(shown), want) {
		t.Fatalf("user show --format json:\n%v\nthe API:\n%v", shown, want)
	}
	if us := list["users"].([]any); len(us) != 1 || !reflect.DeepEqual(us[0], any(shown)) {
		t.Fatalf("user list: %v", list)
	}
	if shown["locked"] != false || shown["disabled"] != false || !reflect.DeepEqual(shown["groups"], []any{"admins"}) ||
		!reflect.DeepEqual(shown["mfa"], []any{"totp"}) || shown["recovery_codes_left"] != 8.0 || !reflect.DeepEqual(shown["passkeys"], []any{}) {
		t.Fatalf("user show: %v", shown)
	}

	// Logout revokes the session and removes the file; the token no
	// longer works.
	saved, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if out := ok(alice, "", "logout"); !strings.Contains(out, "Revoked") || !strings.Contains(out, tokenFile) {
		t.Fatalf("logout: %q", out)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Fatalf("token file after logout: %v", err)
	}
	withToken := env{"WARDEN_TOKEN": strings.TrimSpace(string(saved))}
	for k, v := range base {
		withToken[k] = v
	}
	if r := fails(ExitError, "401", withToken, "", "token", "renew"); strings.Contains(r.stderr, "saved") {
		t.Fatalf("a hint about a saved session for WARDEN_TOKEN: %q", r.stderr)
	}
	fails(ExitError, "not logged in", alice, "", "logout")

	// No single sign-on configured: show says so.
	fails(ExitError, "404 Not Found: OpenID Connect is not configured (warden auth oidc config sets it up)", root, "", "auth", "oidc", "show")
}
