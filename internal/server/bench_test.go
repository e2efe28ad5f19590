package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warden-sec/warden/internal/server"
)

// benchHarness starts a real server and returns it with a token for
// User::"bench" that a policy allows to read and write secrets and to call
// the decision API, so requests pay authentication and authorization.
func benchHarness(b *testing.B) (*harness, string) { return benchHarnessWith(b, nil) }

func benchHarnessWith(b *testing.B, mod func(*server.Config)) (*harness, string) {
	h := start(b, b.TempDir(), mod)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "bench",
		`permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write", Action::"authz.check"], resource);`), 200)
	tok := h.token(root, "bench", "bench")
	h.want(h.do("POST", "/v1/authz/stores", root, map[string]string{"name": "bench"}), 204)
	var pol strings.Builder
	for i := 1; i <= 998; i++ {
		fmt.Fprintf(&pol, "permit (principal == User::\"u%d\", action == Action::\"read\", resource) when { resource.team == \"team-%d\" && context.amount < %d };\n", i, i%50, i*10)
	}
	pol.WriteString("permit (principal in Group::\"admins\", action, resource);\nforbid (principal, action, resource) when { resource has frozen && resource.frozen };\n")
	h.want(h.writePolicy(root, "bench", "rules", pol.String()), 200)
	for i := 0; i < 100; i++ {
		h.want(h.do("PUT", fmt.Sprintf("/v1/kv/data/bench/k%d", i), tok, map[string]any{"data": map[string]string{"v": strings.Repeat("x", 1000)}}), 200)
	}
	return h, tok
}

func runParallel(b *testing.B, h *harness, mk func(n int64) *http.Request) {
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := h.http.Do(mk(n.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

func BenchmarkKVGetTLS(b *testing.B) {
	h, tok := benchHarness(b)
	runParallel(b, h, func(n int64) *http.Request {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/kv/data/bench/k%d", h.srv.Addr(), n%100), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	})
}

func BenchmarkKVPutTLS(b *testing.B) {
	h, tok := benchHarness(b)
	body := []byte(`{"data":{"v":"` + strings.Repeat("x", 1000) + `"}}`)
	runParallel(b, h, func(n int64) *http.Request {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/kv/data/bench/k%d", h.srv.Addr(), n%100), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	})
}

func BenchmarkCheckTLS(b *testing.B) {
	h, tok := benchHarness(b)
	runParallel(b, h, func(n int64) *http.Request {
		u := n%998 + 1
		body := fmt.Sprintf(`{"principal":"User::\"u%d\"","action":"Action::\"read\"","resource":"Doc::\"d%d\"","context":{"amount":%d},`+
			`"entities":[{"uid":{"type":"Doc","id":"d%d"},"attrs":{"team":"team-%d"},"parents":[]}]}`, u, n, n%20000, n, u%50)
		req, _ := http.NewRequest("POST", h.srv.Addr()+"/v1/authz/stores/bench/check", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	})
}

// checkBody is the body of bench/authz-check.lua's n-th request: every
// request names a different resource entity, as the wrk load does.
func checkBody(n int64) string {
	u := n%998 + 1
	return fmt.Sprintf(`{"principal":"User::\"u%d\"","action":"Action::\"read\"","resource":"Doc::\"d%d\"","context":{"amount":%d},`+
		`"entities":[{"uid":{"type":"Doc","id":"d%d"},"attrs":{"team":"team-%d"},"parents":[]}]}`, u, n, n%20000, n, u%50)
}

// serveInProcess runs requests through the API handler without TLS or
// sockets (the whole pipeline: limits, authentication, authorization of
// the caller, the decision, the response), so that profiles show the
// decision path and not the network.
func serveInProcess(b *testing.B, h *harness, mk func(n int64) *http.Request) {
	handler := h.srv.API()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			w.status = 0
			handler.ServeHTTP(w, mk(n.Add(1)))
			if w.status != 200 {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

// discardWriter is a reusable http.ResponseWriter that keeps only the
// status, so the benchmark measures the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.status = code }

func checkRequest(tok, path, body string) *http.Request {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// BenchmarkCheckHandler is one check per request, each with its own
// entity (the wrk load of docs/BENCHMARKS.md), in process.
func BenchmarkCheckHandler(b *testing.B) {
	h, tok := benchHarness(b)
	runtime.GC()
	serveInProcess(b, h, func(n int64) *http.Request {
		return checkRequest(tok, "/v1/authz/stores/bench/check", checkBody(n))
	})
}

// BenchmarkCheckHandlerDecisionLog is BenchmarkCheckHandler with every
// decision written to a decision log.
func BenchmarkCheckHandlerDecisionLog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "decisions.log")
	h, tok := benchHarnessWith(b, func(c *server.Config) { c.DecisionLog, c.DecisionLogSample = path, 1 })
	serveInProcess(b, h, func(n int64) *http.Request {
		return checkRequest(tok, "/v1/authz/stores/bench/check", checkBody(n))
	})
}

// BenchmarkCheckHandlerRepeatedEntities sends the same few entity sets
// again and again, as a service that attaches its user's groups does.
func BenchmarkCheckHandlerRepeatedEntities(b *testing.B) {
	h, tok := benchHarness(b)
	serveInProcess(b, h, func(n int64) *http.Request {
		u := n%998 + 1
		d := n % 16
		body := fmt.Sprintf(`{"principal":"User::\"u%d\"","action":"Action::\"read\"","resource":"Doc::\"d%d\"","context":{"amount":%d},`+
			`"entities":[{"uid":{"type":"Doc","id":"d%d"},"attrs":{"team":"team-%d","owner":{"__entity":{"type":"User","id":"u1"}}},"parents":[{"type":"Folder","id":"f%d"}]},`+
			`{"uid":{"type":"Folder","id":"f%d"},"attrs":{"name":"folder %d"},"parents":[]}]}`, u, d, n%20000, d, d%50, d, d, d)
		return checkRequest(tok, "/v1/authz/stores/bench/check", body)
	})
}

// BenchmarkCheckBatchHandler is check-batch with 10 checks per request.
func BenchmarkCheckBatchHandler(b *testing.B) {
	h, tok := benchHarness(b)
	serveInProcess(b, h, func(n int64) *http.Request {
		var body strings.Builder
		body.WriteString(`{"requests":[`)
		for i := range int64(10) {
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(checkBody(n*10 + i))
		}
		body.WriteString(`]}`)
		return checkRequest(tok, "/v1/authz/stores/bench/check-batch", body.String())
	})
}
