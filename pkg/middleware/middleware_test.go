package middleware_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
	"github.com/warden-sec/warden/pkg/middleware"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// warden is a real Warden server on a loopback port, initialized and
// unsealed, with a root client.
type warden struct {
	srv   *server.Server
	addr  string
	caPEM []byte // the API's TLS CA
	root  *client.Client
	token string // the root token, to check it never reaches a log
	close func()
}

func startWarden(t *testing.T) *warden {
	t.Helper()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	w := &warden{srv: srv, addr: srv.Addr(), close: func() { once.Do(func() { srv.Close() }) }}
	t.Cleanup(w.close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, root, err := srv.DevInit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.caPEM, err = os.ReadFile(srv.CAFile()); err != nil {
		t.Fatal(err)
	}
	w.token = root.Reveal()
	if w.root, err = client.New(client.Config{Address: w.addr, CACertPEM: w.caPEM, Token: w.token}); err != nil {
		t.Fatal(err)
	}
	return w
}

// enroll creates node name in zone and enrolls it with a key made here; it
// returns the node's certificate chain and key.
func (w *warden) enroll(t *testing.T, name, zone string) tls.Certificate {
	t.Helper()
	ctx := context.Background()
	tok, err := w.root.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name, Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := client.New(client.Config{Address: w.addr, CACertPEM: w.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	en, err := anon.Enroll(ctx, "", tok.Token, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for rest := []byte(en.Certificate); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		chain = append(chain, b.Bytes)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}
}

// enrollAgent enrolls node name in zone as the agent does, into a data
// dir, and returns the agent's key pair files.
func (w *warden) enrollAgent(t *testing.T, name, zone string) *middleware.KeyPair {
	t.Helper()
	ctx := context.Background()
	tok, err := w.root.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name, Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := client.New(client.Config{Address: w.addr, CACertPEM: w.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := agent.Enroll(ctx, agent.Config{Client: anon, JoinToken: tok.Token, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	return &middleware.KeyPair{CertFile: filepath.Join(dir, agent.SVIDFile), KeyFile: filepath.Join(dir, agent.KeyFile)}
}

// serviceClient is the service's own Warden client: it authenticates with
// the service's SVID over mutual TLS.
func (w *warden) serviceClient(t *testing.T, svid *middleware.KeyPair) *client.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12,
		RootCAs: pool, GetClientCertificate: svid.GetClientCertificate}}}
	c, err := client.New(client.Config{Address: w.addr, HTTPClient: hc, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serve runs handler over TLS on a loopback port with the Authorizer's
// TLS configuration and the service's SVID as server certificate.
func serve(t *testing.T, a *middleware.Authorizer, svid *middleware.KeyPair, h http.Handler) (addr string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a.Handler(h), TLSConfig: a.TLSConfig(&tls.Config{GetCertificate: svid.GetCertificate}),
		ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() { hs.Close(); <-done })
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

// peer is a node calling the service: it presents its SVID and checks
// that the server presents the SVID of spiffe://warden.local/node/<self>,
// chained to the trust bundle (SPIFFE verification: no host names).
type peer struct {
	hc *http.Client
}

func newPeer(t *testing.T, w *warden, svid tls.Certificate, self string) *peer {
	t.Helper()
	bundle, err := w.root.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	want := "spiffe://warden.local/node/" + self
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return err
		}
		if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != want {
			return fmt.Errorf("server is %v, want %s", certs[0].URIs, want)
		}
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, VerifyPeerCertificate: verify}
	if svid.Certificate != nil {
		cfg.Certificates = []tls.Certificate{svid}
	}
	return &peer{hc: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}}
}

type answer struct {
	status int
	body   string
}

func (p *peer) get(t *testing.T, addr string) answer {
	t.Helper()
	res, err := p.hc.Get("https://" + addr + "/hello")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error answer of type %q: %s", ct, b)
		}
		var e struct {
			Errors []string `json:"errors"`
		}
		if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) != 1 {
			t.Fatalf("error answer is not {\"errors\": [msg]}: %s", b)
		}
	}
	return answer{res.StatusCode, string(b)}
}

// hello answers with the principal the middleware put in the context.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := middleware.PrincipalFrom(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%s zone=%s id=%s", p, p.Zone, p.SPIFFEID)
})

// servicePolicy lets the service read its policies and look zones up.
const servicePolicy = `permit (principal == Node::"api-1",
  action in [Action::"policy.list", Action::"policy.read", Action::"node.read", Action::"auth.whoami"], resource);`

// TestConduitsEndToEnd runs the middleware in front of a service against a
// real Warden server with real certificates: conduits decide (docs/pki.md,
// "Zones and conduits"), revocation is seen, and the cached copy keeps
// deciding after the cluster is gone, across a restart of the service too.
func TestConduitsEndToEnd(t *testing.T) {
	w := startWarden(t)
	ctx := context.Background()
	for _, z := range []string{"dmz", "plant", "office"} {
		if _, err := w.root.ZoneCreate(ctx, z, 2); err != nil {
			t.Fatal(err)
		}
	}
	svc := w.enrollAgent(t, "api-1", "plant")
	nodes := map[string]tls.Certificate{}
	for name, zone := range map[string]string{"gw-1": "dmz", "gw-2": "dmz", "gw-3": "dmz", "gw-4": "dmz", "pc-1": "office", "plc-2": "plant"} {
		nodes[name] = w.enroll(t, name, zone)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "svc-api-1", servicePolicy); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	cacheFile := filepath.Join(t.TempDir(), "policies.json")
	a, err := middleware.New(middleware.Config{Client: w.serviceClient(t, svc), TrustDomain: "warden.local", Self: "api-1",
		CacheFile: cacheFile, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Loaded(); ok {
		t.Fatal("loaded before any refresh")
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	if self, ok := a.Self(); !ok || self.Zone != "plant" || self.String() != `Node::"api-1"` {
		t.Fatalf("own zone from whoami: %+v %v", self, ok)
	}
	addr, port := serve(t, a, svc, hello)
	other, _ := serve(t, a, svc, hello) // same service on a port no conduit opens
	peers := map[string]*peer{}
	for name, c := range nodes {
		peers[name] = newPeer(t, w, c, "api-1")
	}

	if got := peers["gw-1"].get(t, addr); got.status != http.StatusForbidden || !strings.Contains(got.body, `no policy permits conduit.connect on Node::\"api-1\"`) {
		t.Fatalf("no conduit yet: %+v", got)
	}
	if _, err := w.root.ConduitCreate(ctx, client.Conduit{From: "dmz", To: "plant", Port: port}); err != nil {
		t.Fatal(err)
	}
	if got := peers["gw-1"].get(t, addr); got.status != http.StatusForbidden {
		t.Fatalf("the conduit is in force before a refresh: %+v", got)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer, addr string
		status           int
		body             string
	}{
		{"conduit's port", "gw-1", addr, 200, `Node::"gw-1" zone=dmz id=spiffe://warden.local/node/gw-1`},
		{"second node of the zone", "gw-2", addr, 200, `Node::"gw-2" zone=dmz`},
		{"another port", "gw-1", other, 403, "no policy permits"},
		{"another zone", "pc-1", addr, 403, "no policy permits"},
		{"same zone, no conduit", "plc-2", addr, 403, "no policy permits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := peers[tc.peer].get(t, tc.addr)
			if got.status != tc.status || !strings.Contains(got.body, tc.body) {
				t.Fatalf("%s -> %s: %+v, want %d %q", tc.peer, tc.addr, got, tc.status, tc.body)
			}
		})
	}

	// A forbid written by hand vetoes the conduit (forbid beats permit).
	if got := peers["gw-4"].get(t, addr); got.status != 200 {
		t.Fatalf("gw-4 before the forbid: %+v", got)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "no-gw-4", `forbid (principal == Node::"gw-4", action, resource);`); err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := peers["gw-4"].get(t, addr); got.status != 403 || !strings.Contains(got.body, "forbidden by no-gw-4") {
		t.Fatalf("forbid: %+v", got)
	}

	// Revocation: a node already seen stays allowed until the next
	// refresh (the cost of deciding locally), which brings the CRL.
	if got := peers["gw-3"].get(t, addr); got.status != 200 {
		t.Fatalf("gw-3 before the revocation: %+v", got)
	}
	if err := w.root.NodeRevoke(ctx, "gw-3"); err != nil {
		t.Fatal(err)
	}
	if got := peers["gw-3"].get(t, addr); got.status != 200 {
		t.Fatalf("gw-3 before the refresh: %+v", got)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := peers["gw-3"].get(t, addr); got.status != 401 || !strings.Contains(got.body, "revoked") {
		t.Fatalf("revoked gw-3: %+v", got)
	}

	// A node enrolled now but never seen, to show what an outage means for
	// a peer whose zone is unknown.
	late := newPeer(t, w, w.enroll(t, "gw-9", "dmz"), "api-1")

	// The cluster goes away: refreshes fail, the cached copy keeps
	// deciding, a peer never seen cannot be placed in a zone (503).
	w.close()
	if err := a.Refresh(ctx); err == nil {
		t.Fatal("refresh succeeded with the cluster down")
	}
	for _, tc := range cases {
		if got := peers[tc.peer].get(t, tc.addr); got.status != tc.status {
			t.Fatalf("cluster down: %s -> %s: %+v, want %d", tc.peer, tc.addr, got, tc.status)
		}
	}
	if got := peers["gw-3"].get(t, addr); got.status != 401 {
		t.Fatalf("cluster down: revoked gw-3: %+v", got)
	}
	if got := late.get(t, addr); got.status != http.StatusServiceUnavailable {
		t.Fatalf("cluster down: unseen gw-9: %+v", got)
	}

	// The service restarts during the outage: the cache file is all it has.
	fi, err := os.Stat(cacheFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v", fi.Mode().Perm())
	}
	b, err := middleware.New(middleware.Config{Client: w.serviceClient(t, svc), TrustDomain: "warden.local", Self: "api-1",
		CacheFile: cacheFile, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Loaded(); !ok {
		t.Fatal("restart: the cache file was not loaded")
	}
	addr2, _ := serve(t, b, svc, hello) // a new port: no conduit opens it
	if got := peers["gw-1"].get(t, addr2); got.status != 403 {
		t.Fatalf("restart, new port: %+v", got)
	}
	// The conduit's port is still held by the first listener: ask the
	// restarted Authorizer's Handler directly, as net/http would after a
	// verified handshake on that port.
	req := conduitRequest(t, nodes["gw-1"].Leaf, port)
	rec := record(b.Handler(hello), req)
	if rec.status != 200 || !strings.Contains(rec.body, `Node::"gw-1" zone=dmz`) {
		t.Fatalf("restart, conduit's port: %+v", rec)
	}
	if rec := record(b.Handler(hello), conduitRequest(t, nodes["gw-3"].Leaf, port)); rec.status != 401 {
		t.Fatalf("restart: revoked gw-3: %+v", rec)
	}

	for _, secret := range []string{w.token, "wjt_"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a credential reached the log")
		}
	}
}

// recorded is a Handler's answer.
type recorded struct {
	status int
	body   string
}

func record(h http.Handler, r *http.Request) recorded {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return recorded{rec.Code, rec.Body.String()}
}

// conduitRequest is a request as net/http hands it to a handler after a
// handshake that verified leaf, on local port port.
func conduitRequest(t *testing.T, leaf *x509.Certificate, port int) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", "https://127.0.0.1/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	if leaf != nil {
		r.TLS.PeerCertificates = []*x509.Certificate{leaf}
		r.TLS.VerifiedChains = [][]*x509.Certificate{{leaf}}
	}
	ctx := context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	return r.WithContext(ctx)
}

// TestDeniesBeforeLoad: with no policy ever loaded (the cluster was never
// reached, no cache file) every request is refused, 503, even one that the
// cluster's policies would allow; without a verified certificate it is 401.
func TestDeniesBeforeLoad(t *testing.T) {
	w := startWarden(t)
	ctx := context.Background()
	if _, err := w.root.ZoneCreate(ctx, "dmz", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "all", `permit (principal, action, resource);`); err != nil {
		t.Fatal(err)
	}
	svc := w.enrollAgent(t, "api-1", "dmz")
	gw := w.enroll(t, "gw-1", "dmz")
	a, err := middleware.New(middleware.Config{Client: w.serviceClient(t, svc), TrustDomain: "warden.local", Self: "api-1",
		CacheFile: filepath.Join(t.TempDir(), "absent.json"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		leaf   *x509.Certificate
		status int
	}{
		{"no certificate", nil, 401},
		{"node", gw.Leaf, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := record(a.Handler(hello), conduitRequest(t, tc.leaf, 8443)); got.status != tc.status {
				t.Fatalf("%+v, want %d", got, tc.status)
			}
		})
	}
	// The TLS configuration refuses handshakes until a bundle is loaded.
	addr, _ := serve(t, a, svc, hello)
	if _, err := newPeer(t, w, gw, "api-1").hc.Get("https://" + addr + "/"); err == nil {
		t.Fatal("handshake succeeded with no trust bundle loaded")
	}
	// Once loaded, the same request passes.
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := record(a.Handler(hello), conduitRequest(t, gw.Leaf, 8443)); got.status != 200 {
		t.Fatalf("after refresh: %+v", got)
	}
}

// TestRefreshKeepsLastGood: a refresh that fails (here: the service lost
// its permission to read policies) keeps the set in force; it is replaced
// only by a complete fetch.
func TestRefreshKeepsLastGood(t *testing.T) {
	w := startWarden(t)
	ctx := context.Background()
	if _, err := w.root.ZoneCreate(ctx, "dmz", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "svc", servicePolicy); err != nil {
		t.Fatal(err)
	}
	if _, err := w.root.PolicyWrite(ctx, "warden", "gw", `permit (principal == Node::"gw-1", action == Action::"conduit.connect", resource);`); err != nil {
		t.Fatal(err)
	}
	svc := w.enrollAgent(t, "api-1", "dmz")
	gw := w.enroll(t, "gw-1", "dmz")
	a, err := middleware.New(middleware.Config{Client: w.serviceClient(t, svc), TrustDomain: "warden.local", Self: "api-1",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := record(a.Handler(hello), conduitRequest(t, gw.Leaf, 1)); got.status != 200 {
		t.Fatalf("before: %+v", got)
	}
	loaded, _ := a.Loaded()
	if err := w.root.PolicyDelete(ctx, "warden", "svc"); err != nil {
		t.Fatal(err)
	}
	err = a.Refresh(ctx)
	if !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("refresh without permission: %v", err)
	}
	if again, _ := a.Loaded(); !again.Equal(loaded) {
		t.Fatal("a failed refresh replaced the set in force")
	}
	if got := record(a.Handler(hello), conduitRequest(t, gw.Leaf, 1)); got.status != 200 {
		t.Fatalf("after a failed refresh: %+v", got)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error is not an APIError: %v", err)
	}
}
