package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/inventory"
	"github.com/warden-sec/warden/internal/compliance/signed"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/pkg/client"
)

// complianceCA is a cluster CA with a server certificate (which signs
// bundles and serves TLS) and a node certificate in a data dir.
type complianceCA struct {
	now         time.Time // when the fixture was made: the certificates are valid for a day from it, the CAs from a day before
	root, inter *pki.CA
	caFile      string
	dataDir     string
	serverKey   crypto.Signer
	serverChain []*x509.Certificate
	nodeKey     crypto.Signer
	nodeChain   []*x509.Certificate
}

// issue makes a key and a certificate for id, valid from now (less
// pki.Backdate) for ttl.
func issue(t *testing.T, ca *pki.CA, id string, now time.Time, ttl time.Duration, ips ...net.IP) (crypto.Signer, []*x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: id, IPs: ips, TTL: ttl, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return key, []*x509.Certificate{c, ca.Cert}
}

func newComplianceCA(t *testing.T, td string) *complianceCA {
	t.Helper()
	// The TLS certificates are checked at the real clock; the fixture's
	// clocks start from it.
	now := time.Now().UTC().Truncate(time.Second)
	root, err := pki.NewRootCA(pki.CAOptions{CommonName: "root", TrustDomain: td, Now: now.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewIntermediateCA(root, pki.CAOptions{CommonName: "inter", TrustDomain: td, Now: now.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f := &complianceCA{now: now, root: root, inter: inter, dataDir: t.TempDir()}
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.caFile, pki.Bundle(root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	f.serverKey, f.serverChain = issue(t, inter, "spiffe://"+td+"/server/s1", now, 24*time.Hour, net.ParseIP("127.0.0.1"))
	f.nodeKey, f.nodeChain = issue(t, inter, "spiffe://"+td+"/node/web-1", now, 24*time.Hour)
	keyDER, err := x509.MarshalPKCS8PrivateKey(f.nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dataDir, SVIDFile), pki.Bundle(f.nodeChain...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dataDir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// signBundle signs policies with key and chain as a server does, issued
// and signed at the same time at.
func signBundle(t *testing.T, key crypto.Signer, chain []*x509.Certificate, at time.Time, policies ...client.AssessmentPolicy) *client.SignedAssessment {
	t.Helper()
	return signBundleAt(t, key, chain, at, at, policies...)
}

// signBundleAt signs policies issued at issuedAt with key and chain, the
// signature made at signedAt.
func signBundleAt(t *testing.T, key crypto.Signer, chain []*x509.Certificate, signedAt, issuedAt time.Time, policies ...client.AssessmentPolicy) *client.SignedAssessment {
	t.Helper()
	payload, err := json.Marshal(client.AssessmentPolicies{Policies: policies, IssuedAt: issuedAt})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signed.Sign(key, chain, payload, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	return &client.SignedAssessment{Payload: payload, Signature: sig}
}

// complianceServer serves the three compliance endpoints over mutual TLS
// as the contract describes, recording what it was sent.
type complianceServer struct {
	*httptest.Server
	t *testing.T

	mu          sync.Mutex
	bundle      *client.SignedAssessment
	inventories []*inventory.Inventory
	peers       []string // URI SAN of each request's client certificate
	results     []client.AssessmentResults
	limit       int // answer this many inventory posts with 429
	retryAfter  int
}

func newComplianceServer(t *testing.T, ca *complianceCA) *complianceServer {
	cs := &complianceServer{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/inventory", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		cs.peer(r)
		if cs.limit > 0 {
			cs.limit--
			w.Header().Set("Retry-After", strconv.Itoa(cs.retryAfter))
			http.Error(w, `{"errors":["at most one inventory a minute"]}`, http.StatusTooManyRequests)
			return
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		var inv inventory.Inventory
		if err := dec.Decode(&inv); err != nil {
			http.Error(w, `{"errors":["bad json"]}`, http.StatusBadRequest)
			return
		}
		if err := inventory.Validate(&inv); err != nil {
			http.Error(w, `{"errors":["invalid"]}`, http.StatusBadRequest)
			return
		}
		stored := len(cs.inventories) == 0 || cs.inventories[len(cs.inventories)-1].Fingerprint() != inv.Fingerprint()
		cs.inventories = append(cs.inventories, &inv)
		fmt.Fprintf(w, `{"stored":%v,"fingerprint":%q}`, stored, inv.Fingerprint())
	})
	mux.HandleFunc("GET /v1/compliance/assessment", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		cs.peer(r)
		if cs.bundle == nil {
			http.Error(w, `{"errors":["no bundle"]}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(cs.bundle) //nolint:errcheck
	})
	mux.HandleFunc("POST /v1/compliance/results", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		cs.peer(r)
		var rs client.AssessmentResults
		if err := json.NewDecoder(r.Body).Decode(&rs); err != nil {
			http.Error(w, `{"errors":["bad json"]}`, http.StatusBadRequest)
			return
		}
		cs.results = append(cs.results, rs)
		w.Write([]byte(`{}`)) //nolint:errcheck
	})
	cs.Server = httptest.NewUnstartedServer(mux)
	pool := x509.NewCertPool()
	pool.AddCert(ca.root.Cert)
	cs.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{ca.serverChain[0].Raw, ca.serverChain[1].Raw}, PrivateKey: ca.serverKey}}}
	cs.StartTLS()
	t.Cleanup(cs.Close)
	return cs
}

// peer records the client certificate's SPIFFE ID; mu is held.
func (cs *complianceServer) peer(r *http.Request) {
	if len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) == 1 {
		cs.peers = append(cs.peers, r.TLS.PeerCertificates[0].URIs[0].String())
	}
}

func (cs *complianceServer) setBundle(b *client.SignedAssessment) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.bundle = b
}

func (cs *complianceServer) gotResults() []client.AssessmentResults {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]client.AssessmentResults(nil), cs.results...)
}

func (cs *complianceServer) gotInventories() []*inventory.Inventory {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*inventory.Inventory(nil), cs.inventories...)
}

// deadAddress is an https address where nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// fakeAssessor records the policies it ran; each result's message says
// which run it came from.
type fakeAssessor struct {
	mu   sync.Mutex
	runs []string // "name: yaml"
}

func (f *fakeAssessor) Assess(_ context.Context, name string, policy []byte) ([]client.AssessmentResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, name+": "+string(policy))
	return []client.AssessmentResult{{Check: "c1", Title: "t", Severity: "high", Controls: []string{"iso27001:8.5"},
		Status: "pass", Message: fmt.Sprintf("run %d", len(f.runs))}}, nil
}

func (f *fakeAssessor) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.runs...)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newRunner(t *testing.T, ca *complianceCA, fa *fakeAssessor, clock *fakeClock, servers ...string) *assessRunner {
	return &assessRunner{servers: servers, dataDir: ca.dataDir, roots: caRoots(ca.caFile),
		newClient: nodeClient(ca.caFile, ca.dataDir), assessor: fa, now: clock.now, log: slog.New(slog.DiscardHandler)}
}

var _ assessor = (*fakeAssessor)(nil)

func policy(name, yaml string) client.AssessmentPolicy {
	return client.AssessmentPolicy{Name: name, YAML: yaml}
}

// TestAssessBundleVerifiedCachedAndRun: a bundle signed by a server's
// cluster certificate is verified against the CA file, cached 0600, run,
// and the results are sent as the node (mutual TLS).
func TestAssessBundleVerifiedCachedAndRun(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	issued := ca.now
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, issued, policy("linux-baseline", "policy: linux-baseline\n"), policy("extra", "policy: extra\n")))
	fa := &fakeAssessor{}
	clock := &fakeClock{t: issued.Add(time.Minute)}
	a := newRunner(t, ca, fa, clock, cs.URL)
	a.loadCached()
	a.step(context.Background())

	if got := fa.ran(); len(got) != 2 || got[0] != "linux-baseline: policy: linux-baseline\n" || got[1] != "extra: policy: extra\n" {
		t.Fatalf("ran %q", got)
	}
	rs := cs.gotResults()
	if len(rs) != 2 || rs[0].Policy != "extra" || rs[1].Policy != "linux-baseline" || !rs[0].RanAt.Equal(clock.now()) || rs[1].Results[0].Check != "c1" {
		t.Fatalf("results sent: %+v", rs)
	}
	fi, err := os.Stat(filepath.Join(ca.dataDir, AssessmentBundleFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cached bundle: %v %v", fi, err)
	}
	cs.mu.Lock()
	for _, p := range cs.peers {
		if p != "spiffe://example.org/node/web-1" {
			t.Errorf("request as %q, want the node", p)
		}
	}
	cs.mu.Unlock()
	if len(a.pending) != 0 {
		t.Errorf("pending after sending: %v", a.pending)
	}
}

// TestAssessBadSignatureRefused: a bundle whose payload was changed after
// signing, one signed by a node's certificate, and one signed under
// another CA are refused and not run, and nothing is cached.
func TestAssessBadSignatureRefused(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	other := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	issued := ca.now
	tampered := signBundle(t, ca.serverKey, ca.serverChain, issued, policy("linux-baseline", "policy: linux-baseline\n"))
	tampered.Payload = bytes.Replace(tampered.Payload, []byte("linux-baseline\\n"), []byte("evil\\n"), 1)
	for name, b := range map[string]*client.SignedAssessment{
		"tampered payload": tampered,
		"signed by a node": signBundle(t, ca.nodeKey, ca.nodeChain, issued, policy("linux-baseline", "x")),
		"another CA":       signBundle(t, other.serverKey, other.serverChain, issued, policy("linux-baseline", "x")),
		"no signature":     {Payload: tampered.Payload},
	} {
		t.Run(name, func(t *testing.T) {
			cs.setBundle(b)
			fa := &fakeAssessor{}
			a := newRunner(t, ca, fa, &fakeClock{t: issued}, cs.URL)
			a.step(context.Background())
			if got := fa.ran(); len(got) != 0 {
				t.Errorf("a refused bundle ran: %q", got)
			}
			if _, err := os.Stat(filepath.Join(ca.dataDir, AssessmentBundleFile)); !os.IsNotExist(err) {
				t.Errorf("a refused bundle was cached: %v", err)
			}
			if len(cs.gotResults()) != 0 {
				t.Errorf("results sent for a refused bundle")
			}
		})
	}
}

// TestAssessOlderBundleRefused: once a bundle ran, one issued before it is
// refused (even with a valid signature) and the newer one runs on.
func TestAssessOlderBundleRefused(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	issued := ca.now
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, issued, policy("linux-baseline", "new\n")))
	fa := &fakeAssessor{}
	clock := &fakeClock{t: issued}
	a := newRunner(t, ca, fa, clock, cs.URL)
	a.step(context.Background())
	cached, err := os.ReadFile(filepath.Join(ca.dataDir, AssessmentBundleFile))
	if err != nil {
		t.Fatal(err)
	}

	// Within MaxBundleSkew of the agent's clock (a server whose clock is
	// behind), but older than the bundle the agent runs.
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, issued.Add(-5*time.Minute), policy("linux-baseline", "old\n")))
	a.step(context.Background())
	if got := fa.ran(); len(got) != 2 || got[1] != "linux-baseline: new\n" {
		t.Fatalf("ran %q, want the newer bundle twice", got)
	}
	if again, _ := os.ReadFile(filepath.Join(ca.dataDir, AssessmentBundleFile)); !bytes.Equal(again, cached) {
		t.Error("the older bundle replaced the cached one")
	}
	// A restarted agent remembers what it ran: the cache.
	b := newRunner(t, ca, fa, clock, cs.URL)
	b.loadCached()
	b.step(context.Background())
	if got := fa.ran(); len(got) != 3 || got[2] != "linux-baseline: new\n" {
		t.Fatalf("after a restart ran %q", got)
	}
	// A newer one is adopted.
	clock.add(time.Hour)
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, clock.now(), policy("linux-baseline", "newer\n")))
	b.step(context.Background())
	if got := fa.ran(); got[len(got)-1] != "linux-baseline: newer\n" {
		t.Fatalf("ran %q, want the newer bundle", got)
	}
}

// TestAssessUnreachableRunsCached: with no server answering, a restarted
// agent runs the cached bundle, keeps only the latest results per policy,
// and sends them once a server answers.
func TestAssessUnreachableRunsCached(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	issued := ca.now
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, issued, policy("linux-baseline", "p\n")))
	fa := &fakeAssessor{}
	clock := &fakeClock{t: issued}
	a := newRunner(t, ca, fa, clock, cs.URL)
	a.step(context.Background())
	if len(cs.gotResults()) != 1 {
		t.Fatalf("results %v", cs.gotResults())
	}

	dead := deadAddress(t)
	b := newRunner(t, ca, fa, clock, dead)
	b.loadCached()
	if b.cached == nil {
		t.Fatal("the cached bundle did not load")
	}
	for range 3 {
		clock.add(time.Hour)
		b.step(context.Background())
	}
	if got := fa.ran(); len(got) != 4 {
		t.Fatalf("ran %d times, want 1 + 3 from the cache", len(got))
	}
	if len(b.pending) != 1 || b.pending["linux-baseline"].Results[0].Message != "run 4" {
		t.Fatalf("pending %+v, want the latest run only", b.pending)
	}
	b.servers = []string{dead, cs.URL}
	clock.add(time.Hour)
	// The server signs the bundle when it serves it.
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, clock.now(), policy("linux-baseline", "p\n")))
	b.step(context.Background())
	rs := cs.gotResults()
	if len(rs) != 2 || rs[1].Results[0].Message != "run 5" || len(b.pending) != 0 {
		t.Fatalf("after the server came back: %+v, pending %v", rs, b.pending)
	}
}

// TestAssessTamperedCacheRefused: a cached file changed on disk does not
// verify and is not run.
func TestAssessTamperedCacheRefused(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	b := signBundle(t, ca.serverKey, ca.serverChain, ca.now, policy("linux-baseline", "p\n"))
	b.Payload = bytes.Replace(b.Payload, []byte(`p\n`), []byte(`q\n`), 1)
	raw, _ := json.Marshal(b)
	if err := os.WriteFile(filepath.Join(ca.dataDir, AssessmentBundleFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	fa := &fakeAssessor{}
	a := newRunner(t, ca, fa, &fakeClock{t: ca.now}, deadAddress(t))
	a.loadCached()
	a.step(context.Background())
	if a.cached != nil || len(fa.ran()) != 0 {
		t.Fatalf("a tampered cache ran: %q", fa.ran())
	}
}

// TestAssessBundleExpiredSignerRefused: a fetched bundle is verified at
// the agent's clock, not at its SignedAt: one signed by a server
// certificate that expired 5 minutes ago is refused although SignedAt
// (6 minutes ago, within MaxBundleSkew) was inside the certificate's life.
func TestAssessBundleExpiredSignerRefused(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	// Valid until 5 minutes before now.
	oldKey, oldChain := issue(t, ca.inter, "spiffe://example.org/server/s2", ca.now.Add(-65*time.Minute), time.Hour)
	b := signBundle(t, oldKey, oldChain, ca.now.Add(-6*time.Minute), policy("linux-baseline", "evil\n"))
	roots, err := caRoots(ca.caFile)()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyBundle(b, roots); err != nil {
		t.Fatalf("at its SignedAt the bundle verifies, or this test proves nothing: %v", err)
	}

	cs.setBundle(b)
	fa := &fakeAssessor{}
	a := newRunner(t, ca, fa, &fakeClock{t: ca.now}, cs.URL)
	a.step(context.Background())
	if got := fa.ran(); len(got) != 0 {
		t.Fatalf("a bundle signed by an expired certificate ran: %q", got)
	}
	if _, err := os.Stat(filepath.Join(ca.dataDir, AssessmentBundleFile)); !os.IsNotExist(err) {
		t.Errorf("a refused bundle was cached: %v", err)
	}
	if err := a.adopt(b); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("adopt: %v, want the certificate expired", err)
	}
}

// TestAssessBundleClockSkewRefused: a fetched bundle signed more than
// MaxBundleSkew from the agent's clock, or issued more than that ahead of
// it, is refused, saying which time and by how much; the cached bundle
// keeps running, and a later genuine bundle is still adopted (one dated in
// the future would have made the agent refuse it as older).
func TestAssessBundleClockSkewRefused(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	now := ca.now
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, now, policy("linux-baseline", "genuine\n")))
	fa := &fakeAssessor{}
	clock := &fakeClock{t: now}
	a := newRunner(t, ca, fa, clock, cs.URL)
	a.step(context.Background())
	cached, err := os.ReadFile(filepath.Join(ca.dataDir, AssessmentBundleFile))
	if err != nil {
		t.Fatal(err)
	}

	evil := policy("linux-baseline", "evil\n")
	for _, tc := range []struct {
		name               string
		signedAt, issuedAt time.Time
		want               string
	}{
		{"signed an hour ahead", now.Add(time.Hour), now, "signed_at " + now.Add(time.Hour).Format(time.RFC3339) + " is 1h0m0s ahead of the agent's clock"},
		{"signed an hour behind", now.Add(-time.Hour), now, "signed_at " + now.Add(-time.Hour).Format(time.RFC3339) + " is 1h0m0s behind the agent's clock"},
		{"issued an hour ahead", now, now.Add(time.Hour), "issued_at " + now.Add(time.Hour).Format(time.RFC3339) + " is 1h0m0s ahead of the agent's clock"},
		{"both an hour ahead", now.Add(time.Hour), now.Add(time.Hour), "1h0m0s ahead of the agent's clock"},
		{"signed just over the bound", now.Add(MaxBundleSkew + time.Second), now, "10m1s ahead"},
		{"issued just over the bound", now, now.Add(MaxBundleSkew + time.Second), "issued_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := signBundleAt(t, ca.serverKey, ca.serverChain, tc.signedAt, tc.issuedAt, evil)
			cs.setBundle(b)
			a.step(context.Background())
			if got := fa.ran(); got[len(got)-1] != "linux-baseline: genuine\n" {
				t.Fatalf("ran %q, want the cached bundle", got)
			}
			if again, _ := os.ReadFile(filepath.Join(ca.dataDir, AssessmentBundleFile)); !bytes.Equal(again, cached) {
				t.Fatal("the refused bundle replaced the cached one")
			}
			if err := a.adopt(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("adopt: %v, want %q", err, tc.want)
			}
		})
	}

	// At the bound, either way for signed_at, is accepted.
	roots, err := caRoots(ca.caFile)()
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range [][2]time.Time{{now.Add(MaxBundleSkew), now.Add(MaxBundleSkew)}, {now.Add(-MaxBundleSkew), now.Add(-time.Hour)}} {
		if _, err := verifyFetchedBundle(signBundleAt(t, ca.serverKey, ca.serverChain, at[0], at[1], evil), roots, now); err != nil {
			t.Errorf("signed at %s, issued at %s: %v", at[0], at[1], err)
		}
	}

	// Later, a genuine bundle is adopted.
	clock.add(5 * time.Minute)
	cs.setBundle(signBundle(t, ca.serverKey, ca.serverChain, clock.now(), policy("linux-baseline", "genuine 2\n")))
	a.step(context.Background())
	if got := fa.ran(); got[len(got)-1] != "linux-baseline: genuine 2\n" {
		t.Fatalf("ran %q, want the later genuine bundle", got)
	}
}

// TestAssessCachedBundleExpiredSignerLoads: the cached bundle is verified
// at its SignedAt when loaded: a bundle fetched while its server's
// certificate was valid still runs offline after the certificate expired,
// though fetched now it would be refused.
func TestAssessCachedBundleExpiredSignerLoads(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	cs := newComplianceServer(t, ca)
	// Valid from 3 hours before now until 2 hours before now.
	oldKey, oldChain := issue(t, ca.inter, "spiffe://example.org/server/s2", ca.now.Add(-3*time.Hour), time.Hour)
	then := ca.now.Add(-150 * time.Minute)
	b := signBundle(t, oldKey, oldChain, then, policy("linux-baseline", "p\n"))
	cs.setBundle(b)
	fa := &fakeAssessor{}
	a := newRunner(t, ca, fa, &fakeClock{t: then}, cs.URL)
	a.step(context.Background())
	if got := fa.ran(); len(got) != 1 {
		t.Fatalf("fetched while the certificate was valid: ran %q", got)
	}

	clock := &fakeClock{t: ca.now}
	r := newRunner(t, ca, fa, clock, deadAddress(t))
	r.loadCached()
	if r.cached == nil {
		t.Fatal("the cached bundle did not load")
	}
	r.step(context.Background())
	if got := fa.ran(); len(got) != 2 || got[1] != "linux-baseline: p\n" {
		t.Fatalf("offline after the certificate expired: ran %q", got)
	}
	if err := r.adopt(b); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("the same bundle fetched now: %v, want refused", err)
	}
}

func TestVerifyBundlePayload(t *testing.T) {
	ca := newComplianceCA(t, "example.org")
	roots, err := caRoots(ca.caFile)()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(payload string) *client.SignedAssessment {
		sig, err := signed.Sign(ca.serverKey, ca.serverChain, []byte(payload), ca.now)
		if err != nil {
			t.Fatal(err)
		}
		return &client.SignedAssessment{Payload: []byte(payload), Signature: sig}
	}
	for _, p := range []string{
		`{"policies":[],"issued_at":"2026-03-01T10:00:00Z","extra":1}`,
		`{"policies":[]}`,
		`{"policies":[{"name":"Bad Name","yaml":""}],"issued_at":"2026-03-01T10:00:00Z"}`,
		`{"policies":[{"name":"a","yaml":""},{"name":"a","yaml":""}],"issued_at":"2026-03-01T10:00:00Z"}`,
		`{"policies":[],"issued_at":"2026-03-01T10:00:00Z"} {}`,
	} {
		if _, err := verifyBundle(sign(p), roots); err == nil {
			t.Errorf("%s: verified", p)
		}
	}
	if _, err := verifyBundle(sign(`{"policies":[{"name":"linux-baseline","yaml":"x"}],"issued_at":"2026-03-01T10:00:00Z"}`), roots); err != nil {
		t.Errorf("a good payload: %v", err)
	}
}
