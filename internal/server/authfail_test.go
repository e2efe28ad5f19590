package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
)

// TestBadTokensCannotGrowTheLog: 100,000 requests with bad tokens from one
// address leave the Raft log and the audit tree growing by at most a few
// entries (one aggregated record per address and reason per window), are
// throttled to 429, and a client with a valid token is served throughout:
// from the same address when only the failure budget throttles, from
// another one under the default per-address rate limit (which applies to
// every request of an address). The requests go to the API handler
// in-process (the pipeline a TLS connection reaches), so that the test
// takes seconds.
func TestBadTokensCannotGrowTheLog(t *testing.T) {
	cases := []struct {
		name      string
		rateLimit float64
		validAddr string
	}{
		{"failure budget, valid client at the same address", -1, "192.0.2.7:40001"},
		{"default rate limit, valid client at another address", 0, "192.0.2.8:40000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, t.TempDir(), func(c *server.Config) { c.RateLimit = tc.rateLimit })
			_, root := h.initUnseal(1, 1)
			api := h.srv.API()
			call := func(addr, path, token string) *httptest.ResponseRecorder {
				req := httptest.NewRequest("GET", path, nil)
				req.RemoteAddr = addr
				req.Header.Set("Authorization", "Bearer "+token)
				w := httptest.NewRecorder()
				api.ServeHTTP(w, req)
				return w
			}
			h.mergeAudit()
			st, err := h.srv.Store().AuditState()
			if err != nil {
				t.Fatal(err)
			}
			index0, size0 := h.srv.Store().Status().AppliedIndex, st.Size

			const n = 100_000
			bad := "wdn_" + strings.Repeat("x", 43) // well formed, so every request is looked up
			codes := map[int]int{}
			for i := range n {
				w := call("192.0.2.7:40000", "/v1/kv/data/app/db", bad)
				codes[w.Code]++
				if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
				if i%1000 == 0 {
					// The valid client, in the middle of it.
					if c := call(tc.validAddr, "/v1/auth/whoami", root).Code; c != http.StatusOK {
						t.Fatalf("valid token refused with %d after %d bad requests", c, i)
					}
				}
			}
			if codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != n || codes[http.StatusTooManyRequests] < n*9/10 {
				t.Fatalf("answers %v: want 401 until the budget is spent, then 429", codes)
			}
			if st, err = h.srv.Store().AuditState(); err != nil {
				t.Fatal(err)
			}
			if grew := h.srv.Store().Status().AppliedIndex - index0; grew != 0 || st.Size != size0 {
				t.Fatalf("before the window ends, the log grew by %d commands and %d records", grew, st.Size-size0)
			}
			// The window ends: its one aggregated record is committed.
			if err := api.FlushAuthFailures(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.mergeAudit()
			if st, err = h.srv.Store().AuditState(); err != nil {
				t.Fatal(err)
			}
			if grew, records := h.srv.Store().Status().AppliedIndex-index0, st.Size-size0; grew > 2 || records != 1 {
				t.Fatalf("100,000 bad requests grew the Raft log by %d commands and the audit tree by %d records", grew, records)
			}
			es := h.want(h.do("GET", "/v1/audit/entries?start="+strconv.FormatUint(size0, 10)+"&count=1", root, nil), 200).json(t)["entries"].([]any)
			ent := es[0].(map[string]any)["entry"].(map[string]any)
			if ent["action"] != "auth.failed" || ent["source_addr"] != "192.0.2.7" || ent["principal"] != "" ||
				ent["count"].(float64) < float64(codes[http.StatusUnauthorized]) || ent["count"].(float64) > n {
				t.Fatalf("aggregated record %v after %v", ent, codes)
			}
			m := string(h.want(h.do("GET", "/metrics", root, nil), 200).body)
			if want := `warden_http_auth_failures_total{reason="authenticate"} ` + strconv.Itoa(int(ent["count"].(float64))); !strings.Contains(m, want) {
				t.Fatalf("metrics lack %s:\n%s", want, grepLines(m, "warden_http_auth"))
			}
			if tc.rateLimit < 0 && ent["count"] != float64(n) {
				t.Fatalf("without a rate limit every failure is counted: %v", ent)
			}
			// Over TLS too, the valid client is served.
			h.want(h.do("GET", "/v1/auth/whoami", root, nil), 200)
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestMetricsAccess: /metrics needs metrics.read unless the server runs
// with --metrics-public.
func TestMetricsAccess(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("GET", "/metrics", "", nil), 401)
	reader := h.token(root, "prometheus", "scrapers")
	h.want(h.do("GET", "/metrics", reader, nil), 403)
	h.want(h.writePolicy(root, "warden", "scrape",
		`permit (principal in Group::"scrapers", action == Action::"metrics.read", resource == System::"warden");`), 200)
	if m := h.want(h.do("GET", "/metrics", reader, nil), 200).body; !strings.Contains(string(m), "warden_sealed 0") {
		t.Fatalf("metrics: %.200s", m)
	}

	p := start(t, t.TempDir(), func(c *server.Config) { c.MetricsPublic = true })
	p.initUnseal(1, 1)
	p.want(p.do("GET", "/metrics", "", nil), 200)
}

// TestSlowBodyOverTLS: a body that stalls halfway is cut at the request
// deadline with a JSON 408 the client reads (not a hang until the
// connection's read timeout and a broken connection), and the failure's
// audit record is committed.
func TestSlowBodyOverTLS(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.RequestTimeout = 2 * time.Second })
	_, root := h.initUnseal(1, 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	body := `{"data": {"k": "v"}}`
	go func() { _, _ = io.WriteString(pw, body[:8]) }() // and then nothing
	req, _ := http.NewRequest("PUT", h.srv.Addr()+"/v1/kv/data/app/slow", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+root)
	res, err := h.http.Do(req)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "request deadline") {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	h.want(h.do("GET", "/v1/kv/data/app/slow", root, nil), 404)
	h.mergeAudit()
	st, err := h.srv.Store().AuditState()
	if err != nil {
		t.Fatal(err)
	}
	es := h.want(h.do("GET", "/v1/audit/entries?start=0&count="+strconv.FormatUint(st.Size, 10), root, nil), 200).json(t)["entries"].([]any)
	found := false
	for _, e := range es {
		ent := e.(map[string]any)["entry"].(map[string]any)
		found = found || ent["action"] == "kv.write" && ent["outcome"] == float64(408)
	}
	if !found {
		t.Fatal("no record of the timed-out write")
	}
}
