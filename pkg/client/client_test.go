package client

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// tlsServer starts an httptest TLS server and a Client that trusts only it.
func tlsServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := New(Config{Address: srv.URL, CACertPEM: ca, Token: "wdn_secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return srv, c
}

func TestAPIErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  *APIError
		want string
	}{
		{&APIError{StatusCode: 409, Errors: []string{"check-and-set failed", "current version is 3"}},
			"warden: 409 Conflict: check-and-set failed; current version is 3"},
		{&APIError{StatusCode: 503}, "warden: 503 Service Unavailable"},
		{&APIError{StatusCode: 400, Errors: []string{"multi\nline"}}, "warden: 400 Bad Request: multi line"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	wrapped := errors.Join(errors.New("x"), &APIError{StatusCode: 404})
	if !IsStatus(wrapped, 404) || IsStatus(wrapped, 400) || IsStatus(errors.New("404"), 404) {
		t.Error("IsStatus")
	}
}

func TestNewRefusesInsecureAddress(t *testing.T) {
	for _, addr := range []string{"http://127.0.0.1:8200", "127.0.0.1:8200", "https://", "https://u:p@h:1", "ftp://x"} {
		if _, err := New(Config{Address: addr}); err == nil {
			t.Errorf("New(%q) succeeded", addr)
		}
	}
	if _, err := New(Config{Address: "http://h"}); !errors.Is(err, ErrInsecureAddress) {
		t.Errorf("http address: %v", err)
	}
	if _, err := New(Config{CACertPEM: []byte("not pem")}); err == nil {
		t.Error("bad CA PEM accepted")
	}
	if _, err := New(Config{ClientCertFile: "c.pem"}); err == nil {
		t.Error("client cert without key accepted")
	}
}

func TestConfigFromEnv(t *testing.T) {
	cfg := configFrom(func(k string) string {
		return map[string]string{EnvToken: "t", EnvCACert: "ca", EnvClientCert: "c", EnvClientKey: "k"}[k]
	})
	want := Config{Address: DefaultAddress, Token: "t", CACertFile: "ca", ClientCertFile: "c", ClientKeyFile: "k"}
	if cfg.Address != want.Address || cfg.Token != want.Token || cfg.CACertFile != want.CACertFile ||
		cfg.ClientCertFile != want.ClientCertFile || cfg.ClientKeyFile != want.ClientKeyFile {
		t.Fatalf("configFrom = %+v", cfg)
	}
}

func TestErrorsAndAuth(t *testing.T) {
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer wdn_secret" {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":["denied for `+r.Header.Get("Authorization")+`"]}`)
	})
	_, err := c.KVGet(context.Background(), "a/b", 0)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 403 || !IsStatus(err, 403) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wdn_secret") {
		t.Fatalf("token in error: %v", err)
	}
}

func TestHealthNon200(t *testing.T) {
	for _, code := range []int{501, 503} {
		_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, `{"initialized":true,"sealed":true,"standby":false,"version":"0.1.0","server_time_utc":5}`)
		})
		h, err := c.Health(context.Background())
		if err != nil || !h.Sealed || h.ServerTimeUTC != 5 {
			t.Fatalf("Health with %d = %+v, %v", code, h, err)
		}
	}
}

func TestPathEscapingAndQuery(t *testing.T) {
	var got []string
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
		io.WriteString(w, `{"keys":["a"],"version":1}`)
	})
	ctx := context.Background()
	c.KVGet(ctx, "/a b/c?d/", 7)
	c.KVList(ctx, "")
	c.KVList(ctx, "app")
	c.KVPut(ctx, "x#y", nil, nil)
	want := []string{"GET /v1/kv/data/a%20b/c%3Fd?version=7", "GET /v1/kv/metadata/?list=true",
		"GET /v1/kv/metadata/app/?list=true", "PUT /v1/kv/data/x%23y?"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestResponseSizeLimit(t *testing.T) {
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"keys":["`)
		io.Copy(w, io.LimitReader(zeros{}, MaxResponseBytes))
		io.WriteString(w, `"]}`)
	})
	if _, err := c.KVList(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

func TestUntrustedServer(t *testing.T) {
	srv, _ := tlsServer(t, func(http.ResponseWriter, *http.Request) {})
	c, err := New(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SealStatus(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPClientConfig(t *testing.T) {
	var hits []string
	srv, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.URL.Path)
		if r.URL.Path == "/v1/sys/seal-status" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		io.WriteString(w, `{"initialized":true,"sealed":false,"standby":false,"version":"0.1.0","server_time_utc":5,`+
			`"role":"follower","last_contact":"12ms","applied_index":7,"commit_index":8}`)
	})
	own := srv.Client() // trusts the test server; follows redirects
	c, err := New(Config{Address: srv.URL, HTTPClient: own, Token: "wdn_secret"})
	if err != nil {
		t.Fatal(err)
	}
	if own.CheckRedirect != nil {
		t.Fatal("New modified the caller's http.Client")
	}
	h, err := c.Health(context.Background())
	want := Health{Initialized: true, Version: "0.1.0", ServerTimeUTC: 5, Role: "follower", LastContact: "12ms", AppliedIndex: 7, CommitIndex: 8}
	if err != nil || h != want {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	// A redirect is returned as an error, never followed.
	if _, err := c.SealStatus(context.Background()); !IsStatus(err, http.StatusTemporaryRedirect) {
		t.Fatalf("redirect: %v", err)
	}
	if strings.Join(hits, " ") != "/v1/sys/health /v1/sys/seal-status" {
		t.Fatalf("requests: %v", hits)
	}
	for _, cfg := range []Config{
		{Address: srv.URL, HTTPClient: own, CACertPEM: []byte("x")},
		{Address: srv.URL, HTTPClient: own, CACertFile: "ca.pem"},
		{Address: srv.URL, HTTPClient: own, ClientCertFile: "c", ClientKeyFile: "k"},
		{Address: "http://127.0.0.1:1", HTTPClient: own},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestConnectionReuse checks that successive requests, failed ones
// included, travel over one kept-alive connection: bodies are read to the
// end and closed.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/kv/data/missing" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":["no secret"]}`)
			return
		}
		io.WriteString(w, `{"type":"shamir","initialized":true}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := New(Config{Address: srv.URL, CACertPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	for range 3 {
		if _, err := c.SealStatus(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.KVGet(ctx, "missing", 0); !IsStatus(err, 404) {
			t.Fatalf("KVGet: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 6 requests, want 1", n)
	}
}

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	_, err := c.SealStatus(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), "wdn_secret") {
		t.Fatalf("token in error: %v", err)
	}
}

// TestRateLimitedRetried: a 429 (the server refused before doing anything)
// is sent again after Retry-After, body and all, a bounded number of times.
func TestRateLimitedRetried(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	var mu sync.Mutex
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"errors":["rate limit exceeded; retry later"]}`)
			return
		}
		io.WriteString(w, `{"data":{"k":"v"},"metadata":{"version":1}}`)
	})
	if _, err := c.KVPut(context.Background(), "app/x", map[string]any{"k": "v"}, nil); err != nil {
		t.Fatalf("put after two 429s: %v", err)
	}
	if calls.Load() != 3 || len(bodies) != 3 || bodies[0] == "" || bodies[2] != bodies[0] {
		t.Fatalf("%d calls, bodies %q", calls.Load(), bodies)
	}

	calls.Store(-100) // refuse every try from now on
	_, err := c.KVGet(context.Background(), "app/x", 0)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("err %v, want the 429 after the last retry", err)
	}
	if got := calls.Load(); got != -100+MaxRateLimitRetries+1 {
		t.Fatalf("%d tries after the first, want %d", got+100, MaxRateLimitRetries+1)
	}
}
