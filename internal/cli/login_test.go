package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// apiCall is one request as the stand-in server received it.
type apiCall struct {
	method, path, query, auth string
	body                      map[string]any // nil: no body
}

// route answers one request: status and JSON body ("" for none).
type route func(c apiCall) (int, string)

// standIn is a stand-in Warden server (the real one is built elsewhere):
// it records every request and answers from its routes, keyed by
// "METHOD /path".
type standIn struct {
	t      *testing.T
	mu     sync.Mutex
	calls  []apiCall
	routes map[string]route
}

// newStandIn starts a stand-in server and returns it with the environment
// of a CLI that trusts it and has a home directory of its own.
func newStandIn(t *testing.T, routes map[string]route) (*standIn, env) {
	t.Helper()
	s := &standIn{t: t, routes: routes}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return s, env{"WARDEN_ADDR": srv.URL, "WARDEN_CACERT": caFile(t, srv), "HOME": t.TempDir()}
}

func (s *standIn) serve(w http.ResponseWriter, r *http.Request) {
	c := apiCall{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
	b, _ := io.ReadAll(r.Body)
	if len(b) > 0 {
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &c.body) != nil {
			s.t.Errorf("%s %s: body %q is not a JSON object sent as application/json", r.Method, r.URL.Path, b)
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	h := s.routes[r.Method+" "+r.URL.Path]
	s.mu.Unlock()
	status, body := http.StatusNotFound, `{"errors":["no such route in the stand-in"]}`
	if h != nil {
		status, body = h(c)
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// requests returns the requests received so far.
func (s *standIn) requests() []apiCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apiCall(nil), s.calls...)
}

// answer is a route that always answers status and body.
func answer(status int, body string) route {
	return func(apiCall) (int, string) { return status, body }
}

// jsonBody is v as the map a JSON request body decodes to.
func jsonBody(t *testing.T, v string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// saveToken writes a token file in the home of e with the given mode.
func saveToken(t *testing.T, e env, content string, mode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(e["HOME"], ".warden")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

const lookupSelfJSON = `{"accessor":"acc","display_name":"","policies":[],"parent_accessor":"","created_time":"2026-01-01T00:00:00Z",
"expire_time":"","ttl":"","root":false,"user":"alice","groups":["ops"],"principal":"User::\"alice\""}`

// TestTokenFileResolution: --token, else WARDEN_TOKEN, else the trimmed
// content of ~/.warden/token; a token file others may read is refused
// with the fix, before anything is sent; without any, no token is sent.
func TestTokenFileResolution(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string
		mode     os.FileMode
		envToken string
		argv     []string
		wantAuth string // "": no header
		wantErr  string
	}{
		{"file", "  wdn_file \n", 0o600, "", nil, "Bearer wdn_file", ""},
		{"env wins over file", "wdn_file\n", 0o600, "wdn_env", nil, "Bearer wdn_env", ""},
		{"flag wins over env and file", "wdn_file\n", 0o600, "wdn_env", []string{"--token", "wdn_flag"}, "Bearer wdn_flag", ""},
		{"an empty --token sends none", "wdn_file\n", 0o600, "", []string{"--token", ""}, "", ""},
		{"env wins over a refused file", "wdn_file\n", 0o644, "wdn_env", nil, "Bearer wdn_env", ""},
		{"no file", "", 0, "", nil, "", ""},
		{"readable by others", "wdn_file\n", 0o644, "", nil, "", "chmod 600"},
		{"readable by the group", "wdn_file\n", 0o640, "", nil, "", "mode 0640"},
		{"writable by others", "wdn_file\n", 0o602, "", nil, "", "chmod 600"},
		{"empty file", " \n", 0o600, "", nil, "", "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := newStandIn(t, map[string]route{"GET /v1/auth/token/lookup-self": answer(200, lookupSelfJSON)})
			if tc.mode != 0 {
				saveToken(t, e, tc.file, tc.mode)
			}
			if tc.envToken != "" {
				e["WARDEN_TOKEN"] = tc.envToken
			}
			r := runCLI(t, e, "", append(tc.argv, "token", "lookup")...)
			if tc.wantErr != "" {
				checkErr(t, r, 1, tc.wantErr)
				if !strings.Contains(r.stderr, filepath.Join(e["HOME"], ".warden", "token")) {
					t.Fatalf("the error does not name the file: %q", r.stderr)
				}
				if len(s.requests()) != 0 {
					t.Fatalf("requests sent: %+v", s.requests())
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := s.requests(); len(got) != 1 || got[0].auth != tc.wantAuth {
				t.Fatalf("requests %+v, want one with Authorization %q", got, tc.wantAuth)
			}
		})
	}
}

// TestTokenFileRedacted: a token read from the file is scrubbed from error
// output like one from the flag or the environment.
func TestTokenFileRedacted(t *testing.T) {
	const secret = "wdn_savedSecretTokenValue0123456789"
	_, e := newStandIn(t, map[string]route{"GET /v1/auth/token/lookup-self": func(c apiCall) (int, string) {
		return 403, `{"errors":["permission denied for ` + c.auth + `"]}`
	}})
	saveToken(t, e, secret+"\n", 0o600)
	r := runCLI(t, e, "", "token", "lookup")
	checkErr(t, r, 1, "403 Forbidden")
	if strings.Contains(r.stderr, secret) {
		t.Fatalf("token leaked: %q", r.stderr)
	}
}

// TestTokenFileWrite: the saved token is in a 0600 file in a 0700
// directory, replaced whole, with no temporary file left behind.
func TestTokenFileWrite(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, ".warden", "token")
	var warn bytes.Buffer
	for _, tok := range []string{"wdn_first", "wdn_second"} {
		if err := writeTokenFile(path, tok, &warn); err != nil {
			t.Fatal(err)
		}
		got, ok, err := readTokenFile(path)
		if err != nil || !ok || got != tok {
			t.Fatalf("read back %q, %v, %v; want %q", got, ok, err, tok)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, %v", di.Mode(), err)
	}
	if names, _ := os.ReadDir(filepath.Dir(path)); len(names) != 1 {
		t.Fatalf("directory holds %v", names)
	}
	if warn.Len() != 0 {
		t.Fatalf("warning: %s", warn.String())
	}
	// A directory others may write to: saved, with a warning.
	if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(path, "wdn_third", &warn); err != nil || !strings.Contains(warn.String(), "chmod 700") {
		t.Fatalf("%v; warning %q", err, warn.String())
	}
}

const loginJSON = `{"token":"wdn_newSessionToken","accessor":"acc-1","user":"alice","groups":["ops"],
"expire_time":"2026-01-01T08:00:00Z","max_expire_time":"2026-01-02T00:00:00Z",
"auth":{"method":"password","mfa":true,"mfa_method":"totp","time":"2026-01-01T00:00:00Z"},"scope":""}`

// loginServer answers a login with mfa_required until the body has the
// code 123456 (and 401 for any other code).
func loginServer(t *testing.T) (*standIn, env) {
	return newStandIn(t, map[string]route{"POST /v1/auth/login": func(c apiCall) (int, string) {
		switch {
		case c.body["user"] != "alice" || c.body["password"] != "correct horse":
			return 401, `{"errors":["invalid user name, password or code"]}`
		case c.body["totp"] == nil:
			return 200, `{"mfa_required":true,"methods":["totp","webauthn"]}`
		case c.body["totp"] == "123456":
			return 200, loginJSON
		}
		return 401, `{"errors":["invalid user name, password or code"]}`
	}})
}

// checkSaved checks that the token file of e holds token, mode 0600.
func checkSaved(t *testing.T, e env, token string) {
	t.Helper()
	p := filepath.Join(e["HOME"], ".warden", "token")
	got, ok, err := readTokenFile(p)
	if err != nil || !ok || got != token {
		t.Fatalf("token file: %q, %v, %v; want %q", got, ok, err, token)
	}
}

// TestLoginPasswordMFA: the password is refused or answered with
// mfa_required; the code then comes from --totp or the next stdin line, the
// login is sent again with it, and the token is saved, not printed (but
// with --print-token). No token is sent with the login, even when one is
// configured, and a set WARDEN_TOKEN is warned about.
func TestLoginPasswordMFA(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		argv  []string
	}{
		{"code on stdin", "correct horse\n123456\n", nil},
		{"--totp", "correct horse\n", []string{"--totp", "123456"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := loginServer(t)
			e["WARDEN_TOKEN"] = "wdn_old"
			saveToken(t, e, "wdn_file\n", 0o644) // refused if read: login must not read it
			r := runCLI(t, e, tc.stdin, append([]string{"login", "--user", "alice", "--password-stdin"}, tc.argv...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			calls := s.requests()
			want := []map[string]any{
				jsonBody(t, `{"user":"alice","password":"correct horse"}`),
				jsonBody(t, `{"user":"alice","password":"correct horse","totp":"123456"}`),
			}
			if len(calls) != 2 {
				t.Fatalf("requests: %+v", calls)
			}
			for i, c := range calls {
				if c.method != "POST" || c.path != "/v1/auth/login" || c.auth != "" || !reflect.DeepEqual(c.body, want[i]) {
					t.Fatalf("request %d: %+v", i, c)
				}
			}
			checkSaved(t, e, "wdn_newSessionToken")
			for _, want := range []string{"Logged in as alice", "password", "totp", "2026-01-01T08:00:00Z"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "wdn_newSessionToken") || strings.Contains(r.stdout+r.stderr, "correct horse") {
				t.Fatalf("a secret was printed:\n%s\n%s", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "WARDEN_TOKEN is set") {
				t.Fatalf("no warning about WARDEN_TOKEN: %q", r.stderr)
			}
		})
	}
	t.Run("--print-token and json", func(t *testing.T) {
		_, e := loginServer(t)
		r := runCLI(t, e, "correct horse\n", "login", "--user", "alice", "--password-stdin", "--totp", "123456", "--print-token", "--format", "json")
		m := mustJSON(t, r, "token", "accessor", "user", "groups", "expire_time", "max_expire_time", "auth")
		if m["token"] != "wdn_newSessionToken" || r.stderr != "" {
			t.Fatalf("%+v", r)
		}
		r = runCLI(t, e, "correct horse\n", "login", "--user", "alice", "--password-stdin", "--totp", "123456", "--format", "json")
		mustJSON(t, r, "accessor", "user", "groups", "expire_time", "max_expire_time", "auth")
	})
	t.Run("refusals", func(t *testing.T) {
		s, e := loginServer(t)
		checkErr(t, runCLI(t, e, "wrong\n", "login", "--user", "alice", "--password-stdin"), 1, "401 Unauthorized: invalid user name, password or code")
		checkErr(t, runCLI(t, e, "correct horse\n", "login", "--user", "alice", "--password-stdin", "--totp", "000000"), 1, "invalid user name, password or code")
		checkErr(t, runCLI(t, e, "correct horse\n", "login", "--user", "alice", "--password-stdin"), 1, "give --totp, or the code on the line after the password")
		n := len(s.requests())
		checkErr(t, runCLI(t, e, "", "login", "--password-stdin"), 2, "--user is required")
		checkErr(t, runCLI(t, e, "", "login", "--user", "alice"), 2, "give --password-stdin")
		checkErr(t, runCLI(t, e, "\n", "login", "--user", "alice", "--password-stdin"), 2, "password: empty")
		checkErr(t, runCLI(t, e, "", "login", "--method", "oidc", "--user", "alice"), 2, "--user does not apply to --method oidc")
		checkErr(t, runCLI(t, e, "", "login", "--method", "password", "--device"), 2, "--device does not apply to --method password")
		checkErr(t, runCLI(t, e, "", "login", "--method", "saml"), 2, "--method: want password or oidc")
		checkErr(t, runCLI(t, e, "", "login", "--device", "--listen-port", "9000"), 2, "--listen-port does not apply to --device")
		checkErr(t, runCLI(t, e, "", "login", "--listen-port", "70000"), 2, "--listen-port: want 0")
		if len(s.requests()) != n {
			t.Fatal("a usage error sent a request")
		}
		if _, err := os.Stat(filepath.Join(e["HOME"], ".warden")); !os.IsNotExist(err) {
			t.Fatalf("a failed login saved something: %v", err)
		}
	})
	t.Run("only a factor the CLI cannot give", func(t *testing.T) {
		_, e := newStandIn(t, map[string]route{"POST /v1/auth/login": answer(200, `{"mfa_required":true,"methods":["webauthn"]}`)})
		checkErr(t, runCLI(t, e, "pw\n", "login", "--user", "alice", "--password-stdin"), 1, "cannot give (webauthn)")
	})
	t.Run("mfa-enroll scope", func(t *testing.T) {
		_, e := newStandIn(t, map[string]route{"POST /v1/auth/login": answer(200,
			strings.Replace(loginJSON, `"scope":""`, `"scope":"mfa-enroll"`, 1))})
		r := runCLI(t, e, "pw\n", "login", "--user", "alice", "--password-stdin")
		if r.code != 0 || !strings.Contains(r.stderr, "warden user mfa enroll totp") || !strings.Contains(r.stdout, "mfa-enroll") {
			t.Fatalf("%+v", r)
		}
	})
}

// checkLastErr is checkErr for a command that printed instructions to
// stderr before failing: the last line is the one "Error: " line.
func checkLastErr(t *testing.T, r result, code int, contains string) {
	t.Helper()
	lines := strings.SplitAfter(r.stderr, "\n")
	if len(lines) < 2 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	r.stderr = lines[len(lines)-2] + lines[len(lines)-1]
	checkErr(t, r, code, contains)
}

// runAsync runs the CLI in a goroutine; the returned function waits for it.
func runAsync(ctx context.Context, e env, stdin string, argv ...string) func() result {
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, argv, strings.NewReader(stdin), &out, &errb, e.get)
		done <- result{out.String(), errb.String(), code}
	}()
	return func() result { return <-done }
}

// browserVisit is what the test's "browser" saw at the redirect listener.
type browserVisit struct {
	status int
	page   string
	err    error
}

// TestLoginOIDCCode: the CLI listens on 127.0.0.1, asks the server for the
// login URL with its redirect URI and a random client nonce, and prints the
// URL; the test, acting as the browser, comes back to the redirect URI with
// a code and the state, and the CLI sends them with the nonce to the
// callback, answers the browser, and saves the token.
func TestLoginOIDCCode(t *testing.T) {
	redirects := make(chan string, 1)
	s, e := newStandIn(t, map[string]route{
		"POST /v1/auth/oidc/auth_url": func(c apiCall) (int, string) {
			ru, _ := c.body["redirect_uri"].(string)
			redirects <- ru
			q := url.Values{"redirect_uri": {ru}, "state": {"idp-state"}}
			return 200, `{"auth_url":"https://idp.example/authorize?` + q.Encode() + `","state":"st-1"}`
		},
		"POST /v1/auth/oidc/callback": answer(200, strings.Replace(loginJSON, `"method":"password"`, `"method":"oidc"`, 1)),
	})
	wait := runAsync(context.Background(), e, "", "login", "--method", "oidc", "--no-browser", "--listen-port", "0")
	ru := <-redirects
	u, err := url.Parse(ru)
	if err != nil || u.Scheme != "http" || u.Hostname() != "localhost" || u.Port() == "" || u.Port() == "0" || u.Path != "/oidc/callback" {
		t.Fatalf("redirect URI %q", ru)
	}
	v := visit(ru + "?" + url.Values{"code": {"code-1"}, "state": {"st-1"}}.Encode())
	r := wait()
	if r.code != 0 || v.err != nil {
		t.Fatalf("exit %d, stderr %q; browser: %v", r.code, r.stderr, v.err)
	}
	if v.status != 200 || !strings.Contains(v.page, "Logged in to Warden as alice") {
		t.Fatalf("the browser's page: %d %q", v.status, v.page)
	}
	calls := s.requests()
	if len(calls) != 2 || calls[0].auth != "" || calls[1].auth != "" {
		t.Fatalf("requests: %+v", calls)
	}
	nonce, _ := calls[0].body["client_nonce"].(string)
	if len(nonce) < 32 {
		t.Fatalf("client nonce %q", nonce)
	}
	if want := map[string]any{"state": "st-1", "code": "code-1", "client_nonce": nonce}; !reflect.DeepEqual(calls[1].body, want) {
		t.Fatalf("callback body %v, want %v", calls[1].body, want)
	}
	if !strings.Contains(r.stderr, "https://idp.example/authorize?redirect_uri=") || !strings.Contains(r.stdout, "oidc") {
		t.Fatalf("output: %q %q", r.stdout, r.stderr)
	}
	checkSaved(t, e, "wdn_newSessionToken")
	// The listener is closed once the login is over.
	if v := visit(ru); v.err == nil {
		t.Fatalf("the listener still answers: %d", v.status)
	}
}

// visit GETs u as a browser would.
func visit(u string) browserVisit {
	resp, err := http.Get(u)
	if err != nil {
		return browserVisit{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return browserVisit{resp.StatusCode, string(b), err}
}

// TestLoginOIDCCodeRefused: a provider's error or a foreign state in the
// redirect fails the login with a short message, shown to the browser too,
// and nothing is sent to the callback.
func TestLoginOIDCCodeRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query url.Values
		want  string
	}{
		{"provider error", url.Values{"error": {"access_denied"}, "error_description": {"the user said no\nthanks"}, "state": {"st-1"}},
			"the identity provider refused the login: access_denied: the user said no thanks"},
		{"foreign state", url.Values{"code": {"code-1"}, "state": {"st-other"}}, "another login's state"},
		{"no code", url.Values{"state": {"st-1"}}, "without an authorization code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redirects := make(chan string, 1)
			s, e := newStandIn(t, map[string]route{
				"POST /v1/auth/oidc/auth_url": func(c apiCall) (int, string) {
					redirects <- c.body["redirect_uri"].(string)
					return 200, `{"auth_url":"https://idp.example/authorize","state":"st-1"}`
				},
			})
			wait := runAsync(context.Background(), e, "", "login", "--method", "oidc", "--no-browser", "--listen-port", "0")
			v := visit(<-redirects + "?" + tc.query.Encode())
			r := wait()
			checkLastErr(t, r, 1, tc.want)
			if v.err != nil || !strings.Contains(v.page, tc.want) {
				t.Fatalf("browser: %+v", v)
			}
			if n := len(s.requests()); n != 1 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

// TestLoginOIDCCodeCanceled: the wait for the browser ends with the
// command's context.
func TestLoginOIDCCodeCanceled(t *testing.T) {
	_, e := newStandIn(t, map[string]route{
		"POST /v1/auth/oidc/auth_url": answer(200, `{"auth_url":"https://idp.example/authorize","state":"st-1"}`),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &watchWriter{want: "Waiting for it to come back", seen: make(chan struct{})}
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"login", "--method", "oidc", "--no-browser", "--listen-port", "0"},
			strings.NewReader(""), &out, stderr, e.get)
	}()
	<-stderr.seen // the CLI waits for the browser now
	cancel()
	if code := <-done; code != 1 || !strings.Contains(stderr.String(), "Error: login canceled: context canceled\n") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// watchWriter is a stderr that closes seen once want has been written.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLoginOIDCDevice: the device flow prints where to go and the code,
// polls with the state while the server answers authorization_pending, and
// saves the token when it answers with a session; another error is final.
func TestLoginOIDCDevice(t *testing.T) {
	const start = `{"user_code":"ABCD-EFGH","verification_uri":"https://idp.example/device",
"verification_uri_complete":"https://idp.example/device?user_code=ABCD-EFGH","expires_in":600,"interval":0,"state":"dev-st"}`
	var mu sync.Mutex
	polls := 0
	s, e := newStandIn(t, map[string]route{
		"POST /v1/auth/oidc/device": answer(200, start),
		"POST /v1/auth/oidc/device/poll": func(c apiCall) (int, string) {
			mu.Lock()
			defer mu.Unlock()
			if polls++; polls <= 2 {
				return 412, `{"errors":["authorization_pending: not yet"]}`
			}
			return 200, loginJSON
		},
	})
	r := runCLI(t, e, "", "login", "--device")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Open https://idp.example/device and enter ABCD-EFGH\n") {
		t.Fatalf("stderr %q", r.stderr)
	}
	calls := s.requests()
	if len(calls) != 4 || !reflect.DeepEqual(calls[0].body, map[string]any{}) {
		t.Fatalf("requests: %+v", calls)
	}
	for _, c := range calls[1:] {
		if c.path != "/v1/auth/oidc/device/poll" || c.body["state"] != "dev-st" || c.auth != "" {
			t.Fatalf("poll: %+v", c)
		}
	}
	checkSaved(t, e, "wdn_newSessionToken")

	_, e = newStandIn(t, map[string]route{
		"POST /v1/auth/oidc/device":      answer(200, start),
		"POST /v1/auth/oidc/device/poll": answer(412, `{"errors":["access_denied: the user refused"]}`),
	})
	checkLastErr(t, runCLI(t, e, "", "login", "--device"), 1, "412 Precondition Failed: access_denied: the user refused")
}

// TestLoginLogout: logout revokes the current token and removes the saved
// one when it is that token; a token that is already invalid still clears
// the file; a saved token that is not the one used is kept.
func TestLoginLogout(t *testing.T) {
	s, e := newStandIn(t, map[string]route{"POST /v1/auth/logout": func(c apiCall) (int, string) {
		if c.auth == "Bearer wdn_gone" {
			return 401, `{"errors":["token expired"]}`
		}
		return 204, ""
	}})
	p := saveToken(t, e, "wdn_saved\n", 0o600)
	r := runCLI(t, e, "", "logout")
	if r.code != 0 || !strings.Contains(r.stdout, "Revoked") || !strings.Contains(r.stdout, "Removed "+p) {
		t.Fatalf("%+v", r)
	}
	if c := s.requests(); len(c) != 1 || c[0].auth != "Bearer wdn_saved" || c[0].body != nil {
		t.Fatalf("requests %+v", c)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("token file not removed: %v", err)
	}

	saveToken(t, e, "wdn_saved\n", 0o600)
	e["WARDEN_TOKEN"] = "wdn_env"
	r = runCLI(t, e, "", "logout")
	if r.code != 0 || strings.Contains(r.stdout, "Removed") || !strings.Contains(r.stderr, "WARDEN_TOKEN still holds") {
		t.Fatalf("%+v", r)
	}
	checkSaved(t, e, "wdn_saved")

	delete(e, "WARDEN_TOKEN")
	saveToken(t, e, "wdn_gone\n", 0o600)
	r = runCLI(t, e, "", "logout")
	if r.code != 0 || !strings.Contains(r.stdout, "already expired") || !strings.Contains(r.stdout, "Removed") {
		t.Fatalf("%+v", r)
	}
	checkErr(t, runCLI(t, e, "", "logout"), 1, "not logged in")
}

// rateLimitServer answers 429 with Retry-After retryAfter to the first
// refusals requests, then with ok; it counts the requests.
func rateLimitServer(t *testing.T, refusals int, retryAfter, ok string) (*atomic.Int32, env) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(n.Add(1)) <= refusals {
			w.Header().Set("Retry-After", retryAfter)
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"errors":["too many failed logins; retry in `+retryAfter+` s"]}`)
			return
		}
		io.WriteString(w, ok)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &n, env{"WARDEN_ADDR": srv.URL, "WARDEN_CACERT": caFile(t, srv), "HOME": t.TempDir()}
}

// TestLoginRateLimited: a password login refused under the server's
// backoff fails at once (one request, not retried) and says when to try
// again, from Retry-After, and how an administrator ends the wait.
func TestLoginRateLimited(t *testing.T) {
	n, e := rateLimitServer(t, 100, "42", loginJSON)
	checkErr(t, runCLI(t, e, "correct horse\n", "login", "--user", "alice", "--password-stdin"), ExitError,
		"too many failed logins; retry in 42 s (or an administrator can end the wait: warden user unlock alice)")
	if n.Load() != 1 {
		t.Fatalf("%d requests, want 1", n.Load())
	}
	if _, err := os.Stat(filepath.Join(e["HOME"], ".warden")); !os.IsNotExist(err) {
		t.Fatalf("a token directory after a refused login: %v", err)
	}
}

// TestLoginOIDCDeviceRateLimited: a device poll refused with 429 is polled
// again after the wait (at least a second), within the code's lifetime.
func TestLoginOIDCDeviceRateLimited(t *testing.T) {
	const start = `{"user_code":"ABCD-EFGH","verification_uri":"https://idp.example/device","expires_in":600,"interval":0,"state":"dev-st"}`
	var polls atomic.Int32
	_, e := newStandIn(t, map[string]route{
		"POST /v1/auth/oidc/device": answer(200, start),
		"POST /v1/auth/oidc/device/poll": func(apiCall) (int, string) {
			if polls.Add(1) == 1 {
				return 429, `{"errors":["too many failed authentications from this address; retry in 1 s"]}`
			}
			return 200, loginJSON
		},
	})
	if r := runCLI(t, e, "", "login", "--device"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if polls.Load() != 2 {
		t.Fatalf("%d polls, want 2", polls.Load())
	}
	checkSaved(t, e, "wdn_newSessionToken")
}

// TestTokenFileSessionOver: a 401 to a command that sent the saved session
// says that session is over and to log in again; with the token from
// WARDEN_TOKEN, or another error, the message is the server's alone.
func TestTokenFileSessionOver(t *testing.T) {
	_, e := newStandIn(t, map[string]route{
		"GET /v1/users/alice": answer(401, `{"errors":["invalid token: unknown, revoked or malformed"]}`),
		"GET /v1/users/bob":   answer(404, `{"errors":["no such user"]}`),
	})
	p := saveToken(t, e, "wdn_saved\n", 0o600)
	checkErr(t, runCLI(t, e, "", "user", "show", "alice"), ExitError,
		"401 Unauthorized: invalid token: unknown, revoked or malformed (the session saved in "+p+" has expired or was revoked: run warden login)")
	if r := runCLI(t, e, "", "user", "show", "bob"); strings.Contains(r.stderr, "warden login") {
		t.Fatalf("a 404 with a hint: %q", r.stderr)
	}
	e["WARDEN_TOKEN"] = "wdn_env"
	if r := runCLI(t, e, "", "user", "show", "alice"); r.code != ExitError || strings.Contains(r.stderr, "saved") {
		t.Fatalf("WARDEN_TOKEN: %+v", r)
	}
}

// TestLoginTokenRenew: token renew renews the current session and prints
// its new expiry (or the token view as JSON).
func TestLoginTokenRenew(t *testing.T) {
	const renewed = `{"accessor":"acc","display_name":"password login","policies":[],"parent_accessor":"","created_time":"2026-01-01T00:00:00Z",
"expire_time":"2026-01-01T01:30:00Z","ttl":"1h0m0s","root":false,"user":"alice","groups":["ops"],"principal":"User::\"alice\""}`
	s, e := newStandIn(t, map[string]route{"POST /v1/auth/token/renew-self": answer(200, renewed)})
	saveToken(t, e, "wdn_saved\n", 0o600)
	r := runCLI(t, e, "", "token", "renew")
	if r.code != 0 || !strings.Contains(r.stdout, "Renewed the session of alice") || !strings.Contains(r.stdout, "2026-01-01T01:30:00Z") ||
		!strings.Contains(r.stdout, "1h0m0s") {
		t.Fatalf("%+v", r)
	}
	if calls := s.requests(); len(calls) != 1 || calls[0].auth != "Bearer wdn_saved" || calls[0].body != nil {
		t.Fatalf("requests %+v", calls)
	}
	if m := mustJSON(t, runCLI(t, e, "", "token", "renew", "--format", "json"), "accessor", "display_name", "policies", "parent_accessor",
		"created_time", "expire_time", "ttl", "root", "user", "groups", "principal"); m["expire_time"] != "2026-01-01T01:30:00Z" {
		t.Fatalf("json: %v", m)
	}
}
