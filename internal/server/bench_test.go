package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// benchHarness starts a real server and returns it with a token for
// User::"bench" that a policy allows to read and write secrets and to call
// the decision API, so requests pay authentication and authorization.
func benchHarness(b *testing.B) (*harness, string) {
	h := start(b, b.TempDir(), nil)
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
