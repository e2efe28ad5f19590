package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/pkg/client"
)

func certWithURIs(uris ...string) *x509.Certificate {
	c := &x509.Certificate{SerialNumber: big.NewInt(1)}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		c.URIs = append(c.URIs, p)
	}
	return c
}

// TestPrincipalOf: only one SPIFFE ID of the trust domain naming a node or a
// service makes a principal (docs/pki.md, "Trust model").
func TestPrincipalOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		uris []string
		want Principal
		err  bool
	}{
		{"node", []string{"spiffe://warden.local/node/web-1"}, Principal{Kind: KindNode, Name: "web-1", SPIFFEID: "spiffe://warden.local/node/web-1"}, false},
		{"service", []string{"spiffe://warden.local/svc/billing"}, Principal{Kind: KindService, Name: "billing", SPIFFEID: "spiffe://warden.local/svc/billing"}, false},
		{"user", []string{"spiffe://warden.local/user/alice"}, Principal{}, true},
		{"other trust domain", []string{"spiffe://evil.example/node/web-1"}, Principal{}, true},
		{"no URI", nil, Principal{}, true},
		{"two URIs", []string{"spiffe://warden.local/node/web-1", "spiffe://warden.local/node/web-2"}, Principal{}, true},
		{"not canonical", []string{"spiffe://warden.local/node/Web-1"}, Principal{}, true},
		{"percent-encoded", []string{"spiffe://warden.local/node/w%65b-1"}, Principal{}, true},
		{"extra segment", []string{"spiffe://warden.local/node/web-1/x"}, Principal{}, true},
		{"not spiffe", []string{"https://warden.local/node/web-1"}, Principal{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := principalOf(certWithURIs(tc.uris...), "warden.local")
			if tc.err {
				if !errors.Is(err, ErrIdentity) {
					t.Fatalf("err %v, want ErrIdentity", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestPrincipalEntity(t *testing.T) {
	n := Principal{Kind: KindNode, Name: "web-1", Zone: "dmz", SPIFFEID: "spiffe://warden.local/node/web-1"}
	if got := n.UID().String(); got != `Node::"web-1"` {
		t.Fatalf("UID %s", got)
	}
	if z, ok := n.Entity().Attributes.Get("zone"); !ok || z.String() != "dmz" {
		t.Fatalf("node zone attribute: %v %v", z, ok)
	}
	s := Principal{Kind: KindService, Name: "billing"}
	if got := s.UID().String(); got != `Service::"billing"` {
		t.Fatalf("UID %s", got)
	}
	if _, ok := s.Entity().Attributes.Get("zone"); ok {
		t.Fatal("a service has a zone attribute")
	}
}

// testCA is a CA that signs CRLs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca testCA) crl(t testing.TB, number int64, serials ...int64) []byte {
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newTestAuthorizer(t *testing.T, cacheFile string) *Authorizer {
	t.Helper()
	c, err := client.New(client.Config{Address: "https://127.0.0.1:1"}) // never reached
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Client: c, TrustDomain: "warden.local", Self: "api-1", CacheFile: cacheFile,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRevocationList: only a CRL signed by a CA of the bundle is taken, an
// older one (by CRL number) never replaces a newer one, and only serials of
// that issuer are revoked.
func TestRevocationList(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	a := newTestAuthorizer(t, "")
	if err := a.setPKI(ca.pem, other.crl(t, 1, 7)); err == nil {
		t.Fatal("took a CRL signed by a CA outside the bundle")
	}
	if err := a.setPKI(ca.pem, ca.crl(t, 2, 7)); err != nil {
		t.Fatal(err)
	}
	revoked := &x509.Certificate{SerialNumber: big.NewInt(7), RawIssuer: ca.cert.RawSubject}
	if !a.rev.Load().revoked(revoked) {
		t.Fatal("serial 7 not revoked")
	}
	if a.rev.Load().revoked(&x509.Certificate{SerialNumber: big.NewInt(8), RawIssuer: ca.cert.RawSubject}) {
		t.Fatal("serial 8 revoked")
	}
	if a.rev.Load().revoked(&x509.Certificate{SerialNumber: big.NewInt(7), RawIssuer: other.cert.RawSubject}) {
		t.Fatal("serial 7 of another issuer revoked")
	}
	if err := a.setPKI(ca.pem, ca.crl(t, 1)); err == nil {
		t.Fatal("an older CRL replaced a newer one")
	}
	if !a.rev.Load().revoked(revoked) {
		t.Fatal("the refused CRL un-revoked serial 7")
	}
	if err := a.setPKI([]byte("no PEM here"), ca.crl(t, 3)); err == nil {
		t.Fatal("took a CRL with an empty bundle")
	}
}

// TestCacheFile: New loads a cache file only if it is for the same store,
// trust domain and service and is well formed; otherwise it starts empty
// (denying), never failing open.
func TestCacheFile(t *testing.T) {
	ca := newTestCA(t, "ca")
	zone := "plant"
	good := cacheFile{Version: cacheVersion, Store: "warden", TrustDomain: "warden.local", Self: "api-1",
		Loaded:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Policies: map[string]string{"p": `permit (principal, action, resource);`},
		SelfZone: &zone, Zones: map[string]string{"gw-1": "dmz"}, Bundle: ca.pem, CRL: ca.crl(t, 1, 9)}
	for _, tc := range []struct {
		name   string
		mod    func(c *cacheFile)
		raw    []byte
		loaded bool
	}{
		{"good", func(*cacheFile) {}, nil, true},
		{"other store", func(c *cacheFile) { c.Store = "shop" }, nil, false},
		{"other service", func(c *cacheFile) { c.Self = "api-2" }, nil, false},
		{"other trust domain", func(c *cacheFile) { c.TrustDomain = "x.example" }, nil, false},
		{"bad policy", func(c *cacheFile) { c.Policies = map[string]string{"p": "permit ("} }, nil, false},
		{"null policies", nil, []byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":null}`), false},
		{"no policies", nil, []byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z"}`), false},
		{"crl without bundle", func(c *cacheFile) { c.Bundle = nil }, nil, false},
		{"forged crl", func(c *cacheFile) { c.CRL = newTestCA(t, "ca").crl(t, 1) }, nil, false},
		{"future version", func(c *cacheFile) { c.Version = 2 }, nil, false},
		{"unknown member", nil, []byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":{},"extra":1}`), false},
		{"duplicate member", nil, []byte(`{"version":1,"store":"warden","store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":{}}`), false},
		{"trailing data", nil, []byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":{}} {}`), false},
		{"minimal", nil, []byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":{}}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.raw
			if data == nil {
				c := good
				c.Policies, c.Zones = map[string]string{}, map[string]string{}
				for k, v := range good.Policies {
					c.Policies[k] = v
				}
				for k, v := range good.Zones {
					c.Zones[k] = v
				}
				tc.mod(&c)
				var err error
				if data, err = encodeCache(&c); err != nil {
					t.Fatal(err)
				}
			}
			file := filepath.Join(t.TempDir(), "cache.json")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			a := newTestAuthorizer(t, file)
			if _, ok := a.Loaded(); ok != tc.loaded {
				t.Fatalf("loaded %v, want %v", ok, tc.loaded)
			}
			if !tc.loaded {
				if a.rev.Load() != nil || len(a.zones) != 0 {
					t.Fatal("parts of a refused cache file are in force")
				}
				return
			}
			// What was loaded is what is saved again.
			if err := a.saveCache(); err != nil {
				t.Fatal(err)
			}
			again, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c1, err1 := decodeCache(data)
			c2, err2 := decodeCache(again)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			b1, _ := encodeCache(c1)
			b2, _ := encodeCache(c2)
			if string(b1) != string(b2) {
				t.Fatalf("saved differs from loaded:\n%s\n%s", b1, b2)
			}
		})
	}
}

// FuzzDecodeCache: decoding never panics, and whatever decodes re-encodes
// to a fixed point.
func FuzzDecodeCache(f *testing.F) {
	ca := newTestCA(f, "ca")
	zone := "plant"
	seed, err := encodeCache(&cacheFile{Version: cacheVersion, Store: "warden", TrustDomain: "warden.local", Self: "api-1",
		Policies: map[string]string{"p": `permit (principal, action, resource);`}, SelfZone: &zone,
		Zones: map[string]string{"gw-1": "dmz"}, Bundle: ca.pem, CRL: ca.crl(f, 1, 9)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1,"store":"warden","trust_domain":"warden.local","self":"api-1","loaded":"2026-01-02T03:04:05Z","policies":{}}`))
	f.Add([]byte(`{"version":1,"policies":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCache(data)
		if err != nil {
			return
		}
		b, err := encodeCache(c)
		if err != nil {
			t.Fatalf("encode of a decoded file: %v", err)
		}
		c2, err := decodeCache(b)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b)
		}
		b2, _ := encodeCache(c2)
		if string(b) != string(b2) {
			t.Fatalf("not a fixed point:\n%s\n%s", b, b2)
		}
	})
}

// TestRunStops: Run returns the context's error when it is done.
func TestRunStops(t *testing.T) {
	a := newTestAuthorizer(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if _, ok := a.Loaded(); ok {
		t.Fatal("loaded from an unreachable cluster")
	}
}

func TestNewChecksConfig(t *testing.T) {
	c, _ := client.New(client.Config{Address: "https://127.0.0.1:1"})
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no client", Config{TrustDomain: "warden.local", Self: "api-1"}},
		{"no trust domain", Config{Client: c, Self: "api-1"}},
		{"bad trust domain", Config{Client: c, TrustDomain: "Warden Local", Self: "api-1"}},
		{"no self", Config{Client: c, TrustDomain: "warden.local"}},
		{"self not canonical", Config{Client: c, TrustDomain: "warden.local", Self: "API-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// pairPEM makes a self-signed certificate and its key, PEM.
func pairPEM(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	ca := newTestCA(t, name)
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.pem, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestKeyPairReloads: a replaced pair is picked up at the next handshake; a
// half-replaced one (key and certificate do not match) keeps the previous.
func TestKeyPairReloads(t *testing.T) {
	dir := t.TempDir()
	k := &KeyPair{CertFile: filepath.Join(dir, "svid.pem"), KeyFile: filepath.Join(dir, "svid-key.pem")}
	if _, err := k.Certificate(); err == nil {
		t.Fatal("a pair from missing files")
	}
	clock := time.Now()
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second) // distinct modification times, whatever the file system's granularity
		if err := os.Chtimes(name, clock, clock); err != nil {
			t.Fatal(err)
		}
	}
	subject := func() string {
		t.Helper()
		c, err := k.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	c1, k1 := pairPEM(t, "one")
	write(k.KeyFile, k1)
	write(k.CertFile, c1)
	if got := subject(); got != "one" {
		t.Fatalf("first pair: %s", got)
	}
	c2, k2 := pairPEM(t, "two")
	write(k.KeyFile, k2) // the agent writes the key first
	if got := subject(); got != "one" {
		t.Fatalf("half-replaced pair: %s", got)
	}
	write(k.CertFile, c2)
	if got := subject(); got != "two" {
		t.Fatalf("replaced pair: %s", got)
	}
	if c, err := k.GetClientCertificate(nil); err != nil || c == nil {
		t.Fatalf("GetClientCertificate: %v", err)
	}
}

// TestHandlerCustomMap: a service's own question (Config.Map) over a
// service principal; a forbid that fails to evaluate still denies
// (docs/authorization.md, "Evaluation errors deny"); a Map error is 400.
func TestHandlerCustomMap(t *testing.T) {
	c, _ := client.New(client.Config{Address: "https://127.0.0.1:1"})
	mapper := func(r *http.Request, self Principal) (Target, error) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return Target{}, errors.New("unsupported method")
		}
		return Target{Action: "invoke." + strings.ToLower(r.Method),
			Resource: types.Entity{UID: types.NewEntityUID("Endpoint", types.String(r.URL.Path)),
				Attributes: types.NewRecord(types.RecordMap{"owner": types.String(self.Name)})},
			Context: types.RecordMap{"debug": types.Boolean(r.URL.Query().Has("debug"))}}, nil
	}
	a, err := New(Config{Client: c, TrustDomain: "warden.local", Self: "api-1", Store: "shop", Map: mapper,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a.selfZone, a.selfKnow = "plant", true
	if err := a.setPolicies(map[string]string{
		"billing": `permit (principal == Service::"billing", action == Action::"invoke.get", resource is Endpoint) when { resource.owner == "api-1" };`,
		"debug":   `forbid (principal, action, resource) when { context.debug && principal.zone == "dmz" };`,
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		w.Write([]byte(p.String()))
	}))
	billing := certWithURIs("spiffe://warden.local/svc/billing")
	other := certWithURIs("spiffe://warden.local/svc/reports")
	for _, tc := range []struct {
		name, method, target string
		leaf                 *x509.Certificate
		status               int
		body                 string
	}{
		{"permitted", "GET", "/invoices", billing, 200, `Service::"billing"`},
		{"other action", "POST", "/invoices", billing, 403, "no policy permits invoke.post"},
		{"other service", "GET", "/invoices", other, 403, "no policy permits"},
		// principal.zone does not exist on a service: the forbid errs, and an
		// error denies rather than being skipped.
		{"erring forbid", "GET", "/invoices?debug", billing, 403, "failed to evaluate"},
		{"unmapped", "DELETE", "/invoices", billing, 400, "cannot be mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "https://api-1"+tc.target, nil)
			r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{tc.leaf},
				VerifiedChains: [][]*x509.Certificate{{tc.leaf}}}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.body)
			}
		})
	}
}

// BenchmarkHandler: one conduit decision by the Handler, with the peer's
// zone cached, among n conduit policies.
func BenchmarkHandler(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("conduits=%d", n), func(b *testing.B) {
			c, _ := client.New(client.Config{Address: "https://127.0.0.1:1"})
			a, err := New(Config{Client: c, TrustDomain: "warden.local", Self: "api-1", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			a.selfZone, a.selfKnow = "plant", true
			a.zones["gw-1"] = "dmz"
			// Conduits as Warden generates them (zones in the scope), spread
			// over 40 zone pairs; the one asked about is dmz -> plant.
			docs := map[string]string{}
			for i := range n {
				from, to := fmt.Sprint("z", i%20), fmt.Sprint("y", i%40)
				if i == n/2 {
					from, to = "dmz", "plant"
				}
				cd := fmt.Sprintf(`permit (principal is Node in Zone::%q, action == Action::"conduit.connect", resource is Node in Zone::%q)
when { context.port == %d && context.protocol == "tcp" };`, from, to, 1000+i)
				docs[fmt.Sprintf("conduit.%s.%s.tcp.%d", from, to, 1000+i)] = cd
			}
			if err := a.setPolicies(docs, time.Now()); err != nil {
				b.Fatal(err)
			}
			leaf := certWithURIs("spiffe://warden.local/node/gw-1")
			r := httptest.NewRequest("GET", "https://api-1/", nil)
			r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf},
				VerifiedChains: [][]*x509.Certificate{{leaf}}}
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000 + n/2}))
			h := a.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		})
	}
}
