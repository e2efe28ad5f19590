package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/identity"
	"github.com/warden-sec/warden/internal/server"
)

// clock is a settable clock for token expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t    testing.TB
	dir  string
	srv  *server.Server
	http *http.Client
	clk  *clock
	cfg  server.Config
}

// audited returns ctx carrying the record of a change the test makes
// through a service directly: the store refuses a change without one.
func (h *harness) audited(ctx context.Context, action string) context.Context {
	ctx, _ = h.srv.Audit().Pending(ctx, auditlog.SystemEntry(h.clk.Now(), h.srv.Store().NodeID(), action, "test"))
	return ctx
}

// mergeAudit merges the records of reads, denies and failures waiting in
// the server's journal into the replicated log.
func (h *harness) mergeAudit() {
	h.t.Helper()
	if err := h.srv.Audit().Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// start runs a real server on a 127.0.0.1:0 port over TLS in dir.
func start(t testing.TB, dir string, mod func(*server.Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, clk: &clock{t: time.Now()}}
	// The compliance loop is off: a background evaluation would commit
	// records in the middle of tests that count them; tests evaluate with
	// (*server.Server).EvaluateCompliance.
	h.cfg = server.Config{DataDir: dir, Listen: "127.0.0.1:0", Now: h.clk.Now, RateLimit: -1, ComplianceInterval: -1}
	if mod != nil {
		mod(&h.cfg)
	}
	h.boot()
	return h
}

func (h *harness) boot() {
	t := h.t
	t.Helper()
	srv, err := server.New(h.cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatalf("WaitLeader: %v", err)
	}
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	h.srv = srv
	h.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(func() { h.stop() })
}

func (h *harness) stop() {
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
}

func (h *harness) restart() {
	h.stop()
	h.boot()
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %q: %v", r.body, err)
	}
	return m
}

// errorText returns the single error message of an error response.
func (r resp) errorText(t testing.TB) string {
	t.Helper()
	var e struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("not an error body: %q", r.body)
	}
	return e.Errors[0]
}

func (h *harness) do(method, path, token string, body any) resp {
	h.t.Helper()
	return h.doWith(method, path, token, body, nil)
}

// doWith is do with more request headers.
func (h *harness) doWith(method, path, token string, body any, header http.Header) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, h.srv.Addr()+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	res, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b, header: res.Header}
}

func (h *harness) want(r resp, status int) resp {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// initUnseal initializes with n shares, threshold k, unseals with the first k
// shares and returns the keys and root token.
func (h *harness) initUnseal(n, k int) ([]string, string) {
	h.t.Helper()
	r := h.want(h.do("POST", "/v1/sys/init", "", map[string]int{"key_shares": n, "key_threshold": k}), 200)
	var out struct {
		UnsealKeys []string `json:"unseal_keys"`
		RootToken  string   `json:"root_token"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		h.t.Fatal(err)
	}
	if len(out.UnsealKeys) != n || out.RootToken == "" {
		h.t.Fatalf("init returned %d keys, root token %v", len(out.UnsealKeys), out.RootToken != "")
	}
	h.unseal(out.UnsealKeys[:k])
	return out.UnsealKeys, out.RootToken
}

func (h *harness) unseal(keys []string) {
	h.t.Helper()
	for _, k := range keys {
		h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": k}), 200)
	}
	if st := h.want(h.do("GET", "/v1/sys/seal-status", "", nil), 200).json(h.t); st["sealed"] != false {
		h.t.Fatalf("still sealed after %d keys: %v", len(keys), st)
	}
}

func TestUnsealThreshold(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	h.want(h.do("GET", "/v1/sys/health", "", nil), 501)
	r := h.want(h.do("POST", "/v1/sys/init", "", map[string]int{"key_shares": 5, "key_threshold": 3}), 200)
	var out struct {
		UnsealKeys []string `json:"unseal_keys"`
		RootToken  string   `json:"root_token"`
	}
	json.Unmarshal(r.body, &out)
	h.want(h.do("GET", "/v1/sys/health", "", nil), 503)
	h.want(h.do("POST", "/v1/sys/init", "", map[string]int{"key_shares": 1, "key_threshold": 1}), 400)

	wrong := make([]byte, 33)
	wrong[32] = 7
	progress := func(want int, sealed bool) {
		t.Helper()
		st := h.want(h.do("GET", "/v1/sys/seal-status", "", nil), 200).json(t)
		if st["progress"] != float64(want) || st["sealed"] != sealed || st["shares"] != float64(5) || st["threshold"] != float64(3) {
			t.Fatalf("seal status %v, want progress %d sealed %v", st, want, sealed)
		}
	}
	bad := []struct {
		name, key, msg string
	}{
		{"empty", "", "key: required"},
		{"not base64", "!!!not-base64!!!", "not valid base64"},
		{"too short", base64.StdEncoding.EncodeToString([]byte("short")), "an unseal key is 33 bytes"},
		{"not a share of this server", base64.StdEncoding.EncodeToString(wrong), "does not match any share"},
		{"truncated real share", out.UnsealKeys[0][:20], "this one is 15"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": tc.key}), 400)
			if msg := r.errorText(t); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not say %q", msg, tc.msg)
			}
			progress(0, true)
		})
	}
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": out.UnsealKeys[0]}), 200)
	progress(1, true)
	r = h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": out.UnsealKeys[0]}), 400)
	if !strings.Contains(r.errorText(t), "already given") {
		t.Fatalf("repeated share: %s", r.body)
	}
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": base64.StdEncoding.EncodeToString(wrong)}), 400)
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": out.UnsealKeys[3]}), 200)
	progress(2, true) // T-1 valid shares: still sealed
	h.want(h.do("GET", "/v1/kv/data/x", out.RootToken, nil), 503)
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": out.UnsealKeys[4]}), 200)
	progress(0, false)
	hl := h.want(h.do("GET", "/v1/sys/health", "", nil), 200).json(t)
	if hl["role"] != "leader" || hl["standby"] != false || hl["applied_index"].(float64) < 1 {
		t.Fatalf("health: %v", hl)
	}

	// Reset discards progress.
	h.want(h.do("POST", "/v1/sys/seal", out.RootToken, nil), 204)
	h.want(h.do("GET", "/v1/sys/health", "", nil), 503)
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]string{"key": out.UnsealKeys[1]}), 200)
	progress(1, true)
	h.want(h.do("POST", "/v1/sys/unseal", "", map[string]any{"reset": true}), 200)
	progress(0, true)
	h.unseal(out.UnsealKeys[2:5])
}

func TestKVVersionsAndCAS(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	r := h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]any{"password": "p1"}}), 200).json(t)
	if r["version"] != float64(1) || r["created_time"] == "" {
		t.Fatalf("put: %v", r)
	}
	h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]any{"password": "p2", "n": 2}}), 200)
	got := h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 200).json(t)
	if got["version"] != float64(2) || got["data"].(map[string]any)["password"] != "p2" {
		t.Fatalf("get latest: %v", got)
	}
	got = h.want(h.do("GET", "/v1/kv/data/app/db?version=1", root, nil), 200).json(t)
	if got["version"] != float64(1) || got["data"].(map[string]any)["password"] != "p1" {
		t.Fatalf("get v1: %v", got)
	}
	h.want(h.do("GET", "/v1/kv/data/app/db?version=9", root, nil), 404)
	h.want(h.do("GET", "/v1/kv/data/app/db?version=x", root, nil), 400)
	h.want(h.do("GET", "/v1/kv/data/app/none", root, nil), 404)

	cases := []struct {
		name   string
		cas    uint64
		status int
	}{
		{"stale cas", 1, 409},
		{"must not exist", 0, 409},
		{"current cas", 2, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.want(h.do("PUT", "/v1/kv/data/app/db", root, map[string]any{"data": map[string]any{"password": "p3"}, "cas": tc.cas}), tc.status)
		})
	}
	h.want(h.do("PUT", "/v1/kv/data/app/new", root, map[string]any{"data": map[string]any{}, "cas": 0}), 200)

	// Soft delete of the latest version.
	h.want(h.do("DELETE", "/v1/kv/data/app/db", root, nil), 204)
	h.want(h.do("GET", "/v1/kv/data/app/db", root, nil), 404)
	h.want(h.do("GET", "/v1/kv/data/app/db?version=2", root, nil), 200)
	md := h.want(h.do("GET", "/v1/kv/metadata/app/db", root, nil), 200).json(t)
	vers := md["versions"].(map[string]any)
	if md["current_version"] != float64(3) || len(vers) != 3 || vers["3"].(map[string]any)["deletion_time"] == "" {
		t.Fatalf("metadata: %v", md)
	}
	h.want(h.do("DELETE", "/v1/kv/data/app/none", root, nil), 404)

	h.want(h.do("PUT", "/v1/kv/data/app/sub/x", root, map[string]any{"data": map[string]any{"a": "b"}}), 200)
	h.want(h.do("PUT", "/v1/kv/data/top", root, map[string]any{"data": map[string]any{"a": "b"}}), 200)
	for _, tc := range []struct {
		method, path string
		keys         string
	}{
		{"LIST", "/v1/kv/metadata/app", `["db","new","sub/"]`},
		{"GET", "/v1/kv/metadata/app/?list=true", `["db","new","sub/"]`},
		{"GET", "/v1/kv/metadata/?list=true", `["app/","top"]`},
	} {
		l := h.want(h.do(tc.method, tc.path, root, nil), 200).json(t)
		if b, _ := json.Marshal(l["keys"]); string(b) != tc.keys {
			t.Fatalf("%s %s: keys %s, want %s", tc.method, tc.path, b, tc.keys)
		}
	}
	h.want(h.do("LIST", "/v1/kv/metadata/nothing", root, nil), 404)

	// Version retention: only max_versions are kept.
	for i := 0; i < 12; i++ {
		h.want(h.do("PUT", "/v1/kv/data/many", root, map[string]any{"data": map[string]any{"i": i}}), 200)
	}
	md = h.want(h.do("GET", "/v1/kv/metadata/many", root, nil), 200).json(t)
	if md["oldest_version"] != float64(3) || len(md["versions"].(map[string]any)) != 10 {
		t.Fatalf("retention: %v", md)
	}
	h.want(h.do("GET", "/v1/kv/data/many?version=2", root, nil), 404)
}

func TestErrorStatuses(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.MaxRequestBytes = 4096 })
	_, root := h.initUnseal(1, 1)
	child := h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "1h"}), 200).json(t)["token"].(string)

	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		msg          string
	}{
		{"malformed json", "PUT", "/v1/kv/data/a", root, `{"data": {`, 400, "truncated"},
		{"syntax error", "PUT", "/v1/kv/data/a", root, `{"data": nope}`, 400, "malformed JSON"},
		{"unknown field", "PUT", "/v1/kv/data/a", root, `{"data": {}, "extra": 1}`, 400, `unknown field "extra"`},
		{"wrong type", "PUT", "/v1/kv/data/a", root, `{"data": {}, "cas": "x"}`, 400, "cas"},
		{"data not object", "PUT", "/v1/kv/data/a", root, `{"data": [1]}`, 400, "data"},
		{"missing data", "PUT", "/v1/kv/data/a", root, `{}`, 400, "data: required"},
		{"trailing data", "PUT", "/v1/kv/data/a", root, `{"data": {}} {}`, 400, "after the JSON object"},
		{"dot-dot path", "PUT", "/v1/kv/data/a/../b", root, `{"data": {}}`, 400, "not canonical"},
		{"empty segment", "PUT", "/v1/kv/data/a//b", root, `{"data": {}}`, 400, "not canonical"},
		{"bad path char", "GET", "/v1/kv/data/a%20b", root, nil, 400, "not allowed"},
		{"too large", "PUT", "/v1/kv/data/a", root, `{"data": {"v": "` + strings.Repeat("x", 5000) + `"}}`, 413, "larger than"},
		{"no token", "GET", "/v1/kv/data/a", "", nil, 401, "missing token"},
		{"bad token", "GET", "/v1/kv/data/a", "wdn_" + strings.Repeat("A", 43), nil, 401, "invalid token"},
		{"malformed token", "GET", "/v1/kv/data/a", "nonsense", nil, 401, "invalid token"},
		{"non-root token denied", "GET", "/v1/kv/data/a", child, nil, 403, "permission denied"},
		{"not found", "GET", "/v1/kv/data/a", root, nil, 404, "not found"},
		{"no such endpoint", "GET", "/v1/nope", root, nil, 404, "no API endpoint"},
		{"method not allowed", "PATCH", "/v1/kv/data/a", root, nil, 405, "not allowed"},
		{"bad ttl", "POST", "/v1/auth/token/create", root, `{"ttl": "soon"}`, 400, "ttl"},
		{"bad init", "POST", "/v1/sys/init", "", `{"key_shares": 3, "key_threshold": 5}`, 400, "key_threshold"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.want(h.do(tc.method, tc.path, tc.token, tc.body), tc.status)
			if msg := r.errorText(t); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not contain %q", msg, tc.msg)
			}
			if strings.Contains(string(r.body), root) || strings.Contains(string(r.body), child) {
				t.Fatal("a token appears in an error body")
			}
		})
	}
	// A rejected write changed nothing.
	h.want(h.do("GET", "/v1/kv/data/a", root, nil), 404)

	// Sealed: 503 for everything but status, init, unseal, health.
	h.want(h.do("POST", "/v1/sys/seal", root, nil), 204)
	r := h.want(h.do("GET", "/v1/kv/data/a", root, nil), 503)
	if !strings.Contains(r.errorText(t), "sealed") {
		t.Fatalf("sealed error: %s", r.body)
	}
	h.want(h.do("GET", "/v1/sys/seal-status", "", nil), 200)
}

func TestRateLimit(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.RateLimit = 1 }) // burst 2
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		codes[h.do("GET", "/v1/sys/seal-status", "", nil).status]++
	}
	if codes[429] == 0 {
		t.Fatalf("no 429 after 5 requests at 1 req/s: %v", codes)
	}
	r := h.do("GET", "/v1/sys/seal-status", "", nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
}

func TestTokens(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	self := h.want(h.do("GET", "/v1/auth/token/lookup-self", root, nil), 200).json(t)
	if self["root"] != true || self["expire_time"] != "" || self["token"] != nil {
		t.Fatalf("root lookup-self: %v", self)
	}
	c := h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "1h", "display_name": "ci"}), 200).json(t)
	tok, acc := c["token"].(string), c["accessor"].(string)
	if !strings.HasPrefix(tok, "wdn_") || len(tok) != 47 || c["display_name"] != "ci" || c["parent_accessor"] != self["accessor"] {
		t.Fatalf("create: %v", c)
	}
	// Deny by default: a non-root token may do nothing yet but look at
	// itself (builtin/user-self).
	h.want(h.do("GET", "/v1/auth/token/lookup-self", tok, nil), 200)
	h.want(h.do("GET", "/v1/auth/whoami", tok, nil), 200)
	h.want(h.do("POST", "/v1/auth/token/create", tok, nil), 403)

	l := h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"token": tok}), 200).json(t)
	if l["accessor"] != acc || l["token"] != nil {
		t.Fatalf("lookup: %v", l)
	}
	h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"accessor": acc}), 200)
	h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"accessor": strings.Repeat("0", 32)}), 404)
	h.want(h.do("POST", "/v1/auth/token/lookup", root, map[string]string{"token": tok, "accessor": acc}), 400)
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"token": root}), 400)

	// TTL expiry is enforced on every request.
	short := h.want(h.do("POST", "/v1/auth/token/create", root, map[string]any{"ttl": "30s"}), 200).json(t)["token"].(string)
	h.want(h.do("GET", "/v1/kv/data/x", short, nil), 403)
	h.clk.Add(31 * time.Second)
	r := h.want(h.do("GET", "/v1/kv/data/x", short, nil), 401)
	if !strings.Contains(r.errorText(t), "expired") {
		t.Fatalf("expired: %s", r.body)
	}

	// Revoking a token revokes its descendants.
	parent, err := h.srv.Tokens().LookupAccessor(acc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gsecret, grand, err := h.srv.Tokens().Create(h.audited(ctx, "token.create"), parent, identity.CreateRequest{TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if grand.ExpireTime.After(parent.ExpireTime) {
		t.Fatalf("child outlives parent: %v > %v", grand.ExpireTime, parent.ExpireTime)
	}
	ggsecret, _, err := h.srv.Tokens().Create(h.audited(ctx, "token.create"), grand, identity.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h.want(h.do("GET", "/v1/kv/data/x", ggsecret.Reveal(), nil), 403)
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": acc}), 204)
	for _, s := range []string{tok, gsecret.Reveal(), ggsecret.Reveal()} {
		h.want(h.do("GET", "/v1/kv/data/x", s, nil), 401)
	}
	h.want(h.do("POST", "/v1/auth/token/revoke", root, map[string]string{"accessor": acc}), 404)
	h.want(h.do("GET", "/v1/kv/data/x", root, nil), 404)
}

func TestRotateKeepsOldData(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	keys, root := h.initUnseal(3, 2)
	h.want(h.do("PUT", "/v1/kv/data/before", root, map[string]any{"data": map[string]any{"v": "old"}}), 200)
	ks := h.want(h.do("GET", "/v1/sys/key-status", root, nil), 200).json(t)
	rot := h.want(h.do("POST", "/v1/sys/rotate", root, nil), 200).json(t)
	if ks["term"] != float64(1) || rot["term"] != float64(2) {
		t.Fatalf("terms: before %v after %v", ks, rot)
	}
	h.want(h.do("PUT", "/v1/kv/data/after", root, map[string]any{"data": map[string]any{"v": "new"}}), 200)
	h.restart()
	h.unseal(keys[1:3])
	for path, want := range map[string]string{"before": "old", "after": "new"} {
		got := h.want(h.do("GET", "/v1/kv/data/"+path, root, nil), 200).json(t)
		if got["data"].(map[string]any)["v"] != want {
			t.Fatalf("%s: %v", path, got)
		}
	}
	if ks := h.want(h.do("GET", "/v1/sys/key-status", root, nil), 200).json(t); ks["term"] != float64(2) {
		t.Fatalf("term after restart: %v", ks)
	}
}

// TestAtRestAndRestart writes secrets, snapshots, restarts, and checks that
// the data dir holds neither the values nor the root token, that the server
// comes back sealed, and that every acknowledged write is there.
func TestAtRestAndRestart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	keys, root := h.initUnseal(3, 2)
	const marker = "s3cr3t-marker-value-7f1c2a"
	for i := 0; i < 50; i++ {
		h.want(h.do("PUT", fmt.Sprintf("/v1/kv/data/app/k%d", i), root,
			map[string]any{"data": map[string]any{"password": fmt.Sprintf("%s-%d", marker, i)}}), 200)
	}
	if err := h.srv.Store().Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := 50; i < 60; i++ {
		h.want(h.do("PUT", fmt.Sprintf("/v1/kv/data/app/k%d", i), root,
			map[string]any{"data": map[string]any{"password": fmt.Sprintf("%s-%d", marker, i)}}), 200)
	}
	h.restart()
	st := h.want(h.do("GET", "/v1/sys/seal-status", "", nil), 200).json(t)
	if st["sealed"] != true {
		t.Fatalf("not sealed after restart: %v", st)
	}
	h.want(h.do("GET", "/v1/kv/data/app/k1", root, nil), 503)
	h.unseal(keys[:2])
	for i := 0; i < 60; i++ {
		got := h.want(h.do("GET", fmt.Sprintf("/v1/kv/data/app/k%d", i), root, nil), 200).json(t)
		if got["data"].(map[string]any)["password"] != fmt.Sprintf("%s-%d", marker, i) {
			t.Fatalf("k%d: %v", i, got)
		}
	}
	h.stop()

	needles := [][]byte{[]byte(marker), []byte(root), []byte(root[4:])}
	for _, k := range keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		needles = append(needles, []byte(k), raw[:16])
	}
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s contains a secret (%d bytes matched)", p, len(n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Fatalf("only %d files in the data dir", files)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls", "server-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server key mode: %v %v", fi.Mode(), err)
	}
}
