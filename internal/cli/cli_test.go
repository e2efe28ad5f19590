package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
)

// env is a fake environment for run.
type env map[string]string

func (e env) get(k string) string { return e[k] }

type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, e env, stdin string, argv ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, strings.NewReader(stdin), &out, &errb, e.get)
	return result{out.String(), errb.String(), code}
}

// caFile writes the stand-in's certificate as a PEM CA file.
func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tempFile writes text to a file called name in a new temporary directory
// and returns its path.
func tempFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustJSON decodes stdout as one JSON object and checks its keys.
func mustJSON(t *testing.T, r result, keys ...string) map[string]any {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, r.stdout)
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if !reflect.DeepEqual(got, keys) {
		t.Fatalf("JSON keys = %v, want %v\n%s", got, keys, r.stdout)
	}
	return m
}

// checkErr checks a failed run: the exit code and one "Error: " line.
func checkErr(t *testing.T, r result, code int, contains string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", r.code, code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "Error: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("stderr is not one Error: line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, contains) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, contains)
	}
}

// realServer starts a real Warden server on a 127.0.0.1:0 port and returns
// its address and CA file.
func realServer(t *testing.T) (addr, ca string) {
	t.Helper()
	srv := startServer(t)
	return srv.Addr(), srv.CAFile()
}

// startServer starts a real server on a 127.0.0.1:0 port, stopped when the
// test ends, and waits until it leads its store.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with the config changed by mod first.
func startServerWith(t *testing.T, mod func(*server.Config)) *server.Server {
	t.Helper()
	return servertest.Started(t, mod)
}

// unsealedServer starts a real server, initializes it with one key share,
// unseals it and returns the environment of its root token.
func unsealedServer(t *testing.T) env {
	t.Helper()
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	in := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"),
		"unseal_keys", "root_token")
	if r := runCLI(t, e, "", "operator", "unseal", in["unseal_keys"].([]any)[0].(string)); r.code != 0 {
		t.Fatalf("unseal: %+v", r)
	}
	e["WARDEN_TOKEN"] = in["root_token"].(string)
	return e
}

func TestEndToEnd(t *testing.T) {
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	seal := []string{"type", "initialized", "sealed", "shares", "threshold", "progress", "version", "cluster_id"}

	st := mustJSON(t, runCLI(t, e, "", "status", "--format", "json"), seal...)
	if st["initialized"] != false || st["sealed"] != true {
		t.Fatalf("status before init: %v", st)
	}
	init := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "3", "--key-threshold", "2", "--format", "json"),
		"unseal_keys", "root_token")
	keys := init["unseal_keys"].([]any)
	root, _ := init["root_token"].(string)
	if len(keys) != 3 || !strings.HasPrefix(root, "wdn_") {
		t.Fatalf("init: %d keys", len(keys))
	}
	if r := runCLI(t, e, "", "status"); r.code != 0 || !strings.Contains(r.stdout, "Sealed") {
		t.Fatalf("status of a sealed server must exit 0 with a table: %+v", r)
	}
	mustJSON(t, runCLI(t, e, "", "operator", "unseal", keys[0].(string), "--format", "json"), seal...)
	st = mustJSON(t, runCLI(t, e, keys[1].(string)+"\n", "operator", "unseal", "--format", "json"), seal...)
	if st["sealed"] != false {
		t.Fatalf("not unsealed after threshold shares: %v", st)
	}

	e["WARDEN_TOKEN"] = root
	tokenKeys := []string{"accessor", "display_name", "policies", "parent_accessor", "created_time", "expire_time", "ttl", "root", "user", "groups", "principal"}
	created := mustJSON(t, runCLI(t, e, "", "token", "create", "--ttl", "1h", "--display-name", "ci", "--format", "json"),
		append([]string{"token"}, tokenKeys...)...)
	mustJSON(t, runCLI(t, e, "", "token", "lookup", "--format", "json"), tokenKeys...)
	mustJSON(t, runCLI(t, e, "", "token", "lookup", "--accessor", created["accessor"].(string), "--format", "json"), tokenKeys...)

	file := filepath.Join(t.TempDir(), "v")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	r := runCLI(t, e, "from-stdin", "kv", "put", "app/db", "user=admin", "pass=a=b", "cert=@"+file, "in=-")
	if r.code != 0 || !strings.Contains(r.stdout, "Version") || !strings.Contains(r.stdout, "1") {
		t.Fatalf("kv put: %+v", r)
	}
	got := mustJSON(t, runCLI(t, e, "", "kv", "get", "--format", "json", "app/db"), "data", "version", "created_time", "deletion_time")
	want := map[string]any{"user": "admin", "pass": "a=b", "cert": "from-file\n", "in": "from-stdin"}
	if !reflect.DeepEqual(got["data"], want) || got["version"] != 1.0 {
		t.Fatalf("kv get: %v", got)
	}
	if r := runCLI(t, e, "", "kv", "get", "--field", "pass", "app/db"); r.stdout != "a=b\n" {
		t.Fatalf("--field: %q", r.stdout)
	}
	checkErr(t, runCLI(t, e, "", "kv", "put", "--cas", "0", "app/db", "x=y"), 1, "warden: 409 Conflict: cas:")
	mustJSON(t, runCLI(t, e, "", "kv", "put", "--cas", "1", "--format", "json", "app/db", "x=y"), "version", "created_time")
	runCLI(t, e, "", "kv", "put", "app/api", "k=v")
	// A put without pairs is refused before it reaches the server, and
	// written when asked for.
	checkErr(t, runCLI(t, e, "", "kv", "put", "app/api"), ExitUsage, "--allow-empty")
	if got := mustJSON(t, runCLI(t, e, "", "kv", "get", "--format", "json", "app/api"), "data", "version", "created_time", "deletion_time"); got["version"] != 1.0 {
		t.Fatalf("kv put without pairs wrote a version: %v", got)
	}
	if got := mustJSON(t, runCLI(t, e, "", "kv", "put", "--allow-empty", "--format", "json", "app/api"), "version", "created_time"); got["version"] != 2.0 {
		t.Fatalf("kv put --allow-empty: %v", got)
	}
	if got := mustJSON(t, runCLI(t, e, "", "kv", "get", "--format", "json", "app/api"), "data", "version", "created_time", "deletion_time"); got["version"] != 2.0 || len(got["data"].(map[string]any)) != 0 {
		t.Fatalf("kv get after put --allow-empty: %v", got)
	}
	runCLI(t, e, "", "kv", "put", "app/api", "k=v")
	lst := mustJSON(t, runCLI(t, e, "", "kv", "list", "--format", "json", "app"), "keys")
	if !reflect.DeepEqual(lst["keys"], []any{"api", "db"}) {
		t.Fatalf("kv list: %v", lst)
	}
	if r := runCLI(t, e, "", "kv", "list"); r.stdout != "app/\n" {
		t.Fatalf("kv list top level: %q", r.stdout)
	}
	mustJSON(t, runCLI(t, e, "", "kv", "metadata", "--format", "json", "app/db"),
		"path", "current_version", "oldest_version", "max_versions", "created_time", "updated_time", "versions")
	if r := runCLI(t, e, "", "kv", "delete", "app/db"); r.code != 0 {
		t.Fatalf("kv delete: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "kv", "get", "app/db"), 1, "warden: 404 Not Found")

	if r := runCLI(t, e, "", "token", "revoke", "--accessor", created["accessor"].(string)); r.code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	child := created["token"].(string)
	r = runCLI(t, e, "", "token", "lookup", child)
	checkErr(t, r, 1, "404")
	if strings.Contains(r.stderr, child) {
		t.Fatalf("token in error output: %q", r.stderr)
	}
	if r := runCLI(t, e, "", "operator", "seal"); r.code != 0 {
		t.Fatalf("seal: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "kv", "get", "app/api"), 1, "503 Service Unavailable")
}

func TestTokenNeverInErrorOutput(t *testing.T) {
	const secret = "wdn_thisIsASecretTokenValue0123456789abcdefgh"
	// A misbehaving server that echoes the Authorization header in its error.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 403, "permission denied for "+r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	ca := caFile(t, srv)
	for name, e := range map[string]env{
		"env":  {"WARDEN_ADDR": srv.URL, "WARDEN_CACERT": ca, "WARDEN_TOKEN": secret},
		"flag": {"WARDEN_ADDR": srv.URL, "WARDEN_CACERT": ca},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, e, "", "--token", secret, "kv", "get", "a")
			if name == "env" {
				r = runCLI(t, e, "", "kv", "get", "a")
			}
			checkErr(t, r, 1, "403 Forbidden")
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Fatalf("token leaked: %q", r.stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	e := env{}
	for _, tc := range []struct {
		args     []string
		contains string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"kv", "nope"}, `unknown command "nope"`},
		{[]string{"status", "--format", "yaml"}, "must be table or json"},
		{[]string{"status", "extra"}, "unknown command"},
		{[]string{"kv", "put"}, "requires at least 1 arg"},
		{[]string{"kv", "put", "p"}, "no KEY=VALUE pairs for p: the new version would have no keys; give --allow-empty"},
		{[]string{"kv", "put", "--cas", "1", "p"}, "--allow-empty"},
		{[]string{"kv", "put", "p", "novalue"}, `"novalue": expected key=value`},
		{[]string{"kv", "put", "p", "=v"}, "empty key"},
		{[]string{"kv", "put", "p", "a=1", "a=2"}, `key "a" given twice`},
		{[]string{"kv", "put", "p", "a=-", "b=-"}, "stdin can be read only once"},
		{[]string{"kv", "get", "--field", "x", "--format", "json", "p"}, "--field"},
		{[]string{"kv", "get", "--version", "-1", "p"}, "--version"},
		{[]string{"operator", "init", "--key-shares", "3"}, "key-threshold"},
		{[]string{"operator", "init", "--key-shares", "2", "--key-threshold", "3"}, "key-threshold"},
		{[]string{"operator", "unseal", "--reset", "k"}, "not both"},
		{[]string{"token", "revoke"}, "--accessor"},
		{[]string{"token", "lookup", "t", "--accessor", "a"}, "not both"},
		{[]string{"token", "create", "--ttl", "forever"}, "--ttl"},
		{[]string{"--bogus"}, "unknown flag"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			checkErr(t, runCLI(t, e, "", tc.args...), 2, tc.contains)
		})
	}
}

func TestEnvironment(t *testing.T) {
	addr, ca := realServer(t)
	// A plain-http address from the environment is refused before any request.
	checkErr(t, runCLI(t, env{"WARDEN_ADDR": "http://127.0.0.1:8200"}, "", "status"), 1, "must use https")
	// The flag wins over the environment.
	if r := runCLI(t, env{"WARDEN_ADDR": "http://bad", "WARDEN_CACERT": ca}, "", "--address", addr, "status"); r.code != 0 {
		t.Fatalf("--address did not override WARDEN_ADDR: %+v", r)
	}
	// Without the CA the server's bootstrap certificate is not trusted.
	checkErr(t, runCLI(t, env{"WARDEN_ADDR": addr}, "", "status"), 1, "certificate")
	// --ca-cert works like WARDEN_CACERT.
	if r := runCLI(t, env{}, "", "--address", addr, "--ca-cert", ca, "status", "--format", "json"); r.code != 0 {
		t.Fatalf("--ca-cert: %+v", r)
	}
	checkErr(t, runCLI(t, env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca, "WARDEN_CLIENT_CERT": "x.pem"}, "", "status"),
		1, "client certificate and client key")
}

func TestInitTableOutput(t *testing.T) {
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	r := runCLI(t, e, "", "operator", "init", "--key-shares", "2", "--key-threshold", "2")
	for _, want := range []string{"Unseal Key 1: ", "Unseal Key 2: ", "Initial Root Token: wdn_", "apart"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("init output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

// TestUnknownAuthorityHint checks that a TLS failure against a real server
// whose CA the client does not trust names the way to trust it, both with no
// CA given (system roots) and with the wrong CA file.
func TestUnknownAuthorityHint(t *testing.T) {
	addr, _ := realServer(t)
	other := httptest.NewTLSServer(http.NotFoundHandler())
	defer other.Close()
	for name, e := range map[string]env{
		"system roots": {"WARDEN_ADDR": addr},
		"another CA":   {"WARDEN_ADDR": addr, "WARDEN_CACERT": caFile(t, other)},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, e, "", "status")
			checkErr(t, r, ExitError, "certificate signed by unknown authority")
			checkErr(t, r, ExitError, "set WARDEN_CACERT or --ca-cert to the server's CA file")
		})
	}
	// Other errors carry no such hint.
	r := runCLI(t, env{"WARDEN_ADDR": "https://127.0.0.1:1"}, "", "status")
	if r.code != ExitError || strings.Contains(r.stderr, "hint") {
		t.Fatalf("connection refused: exit %d, stderr %q", r.code, r.stderr)
	}
}
