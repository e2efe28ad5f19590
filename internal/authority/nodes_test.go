package authority

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/store/kv"
)

// memStorage is NodeStorage in memory (the decrypted view), with lookups
// under failPrefix failing as a broken store would.
type memStorage struct {
	mu         sync.Mutex
	m          map[string]kv.Entry
	ver        uint64
	failPrefix string
}

func (s *memStorage) GetStale(key string) (kv.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPrefix != "" && strings.HasPrefix(key, s.failPrefix) {
		return kv.Entry{}, errors.New("disk on fire")
	}
	e, ok := s.m[key]
	if !ok {
		return kv.Entry{}, errs.E(errs.NotFound, "not found")
	}
	e.Value = slices.Clone(e.Value) // callers clear key material after use
	return e, nil
}

func (s *memStorage) Get(_ context.Context, key string) (kv.Entry, error) { return s.GetStale(key) }

func (s *memStorage) List(_ context.Context, prefix string, _ int) ([]kv.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kv.Entry
	for k, e := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b kv.Entry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *memStorage) Txn(_ context.Context, t kv.Txn) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range t.Conds {
		if s.m[c.Key].Version != c.Version {
			return 0, errs.E(errs.Conflict, "version conflict")
		}
	}
	s.ver++
	for _, op := range t.Ops {
		switch op.Type {
		case kv.OpPut:
			s.m[op.Key] = kv.Entry{Key: op.Key, Value: op.Value, Version: s.ver}
		case kv.OpDelete:
			delete(s.m, op.Key)
		}
	}
	return s.ver, nil
}

// newTestNodes returns Nodes over a fresh CA in memory and an active node
// "web-1" enrolled with its certificate.
func newTestNodes(t *testing.T, now func() time.Time) (*Nodes, *memStorage, *x509.Certificate, *x509.Certificate) {
	t.Helper()
	st := &memStorage{m: map[string]kv.Entry{}}
	root, err := pki.NewRootCA(pki.CAOptions{CommonName: "test root"})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewIntermediateCA(root, pki.CAOptions{CommonName: "test issuing"})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, _ := root.MarshalPEM()
	ic, ik, _ := inter.MarshalPEM()
	for k, v := range map[string][]byte{keyRootCert: rc, keyInterCert: ic, keyInterKey: ik, keyDomain: []byte("warden.local")} {
		st.m[k] = kv.Entry{Key: k, Value: v, Version: 1}
	}
	n := NewNodes(st, New(st), now)
	ctx := context.Background()
	tok, _, err := n.CreateToken(ctx, TokenRequest{Name: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	e, err := n.Enroll(ctx, "", tok, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.ParseLeaf(e.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return n, st, leaf, inter.Cert
}

// TestOCSPFailsClosed: a status that cannot be looked up is never "good".
func TestOCSPFailsClosed(t *testing.T) {
	n, st, leaf, issuer := newTestNodes(t, nil)
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		failPrefix string
		req        []byte
		want       int // ocsp.Good/Revoked/Unknown, or -1 for an error status
		respStatus ocsp.ResponseStatus
	}{
		{"lookup works", "", req, ocsp.Good, 0},
		{"revocation lookup fails", prefixRevoked, req, -1, ocsp.InternalError},
		{"issuer unreadable", keyInterKey, req, -1, ocsp.InternalError},
		{"malformed request", "", []byte("not DER"), -1, ocsp.Malformed},
		{"empty request", "", nil, -1, ocsp.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st.mu.Lock()
			st.failPrefix = tc.failPrefix
			st.mu.Unlock()
			der, err := n.OCSP(tc.req)
			if (err != nil) != (tc.want == -1) {
				t.Fatalf("err = %v", err)
			}
			resp, perr := ocsp.ParseResponseForCert(der, leaf, issuer)
			if tc.want == -1 {
				var re ocsp.ResponseError
				if !errors.As(perr, &re) || re.Status != tc.respStatus {
					t.Fatalf("response: %v, %v; want error status %v", resp, perr, tc.respStatus)
				}
				return
			}
			if perr != nil || resp.Status != tc.want {
				t.Fatalf("response: %v, %v", resp, perr)
			}
		})
	}
	// A corrupt revocation record is not "good" either.
	st.failPrefix = ""
	st.m[prefixRevoked+hex.EncodeToString(leaf.SerialNumber.Bytes())] = kv.Entry{Value: []byte("{"), Version: 1}
	der, err := n.OCSP(req)
	var re ocsp.ResponseError
	if _, perr := ocsp.ParseResponse(der, issuer); err == nil || !errors.As(perr, &re) || re.Status != ocsp.InternalError {
		t.Fatalf("corrupt record: err %v, parse %v", err, perr)
	}
}

func TestListCertsAndNodes(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	n, _, leaf, _ := newTestNodes(t, clock)
	ctx := context.Background()
	certs, err := n.ListCerts(ctx, "", 0)
	if err != nil || len(certs) != 1 || certs[0].State != CertValid || certs[0].Name != "web-1" ||
		!certs[0].NotAfter.Equal(leaf.NotAfter) {
		t.Fatalf("certs: %+v, %v", certs, err)
	}
	filter := func(f string, within time.Duration) int {
		t.Helper()
		cs, err := n.ListCerts(ctx, f, within)
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	if filter(FilterExpiring, 0) != 1 || filter(FilterExpiring, time.Minute) != 0 || filter(FilterRevoked, 0) != 0 {
		t.Fatal("filters before revocation")
	}
	if _, err := n.ListCerts(ctx, "bogus", 0); !errs.Is(err, errs.Invalid) {
		t.Fatalf("bad filter: %v", err)
	}
	ns, err := n.List(ctx)
	if err != nil || len(ns) != 1 || ns[0].State != NodeActive || ns[0].Serial != certs[0].Serial {
		t.Fatalf("nodes: %+v, %v", ns, err)
	}
	if err := n.Revoke(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if filter(FilterRevoked, 0) != 1 || filter(FilterExpiring, 0) != 0 {
		t.Fatal("filters after revocation")
	}
	now = now.Add(48 * time.Hour)
	cs, _ := n.ListCerts(ctx, FilterIssued, 0)
	if len(cs) != 1 || cs[0].State != CertRevoked || cs[0].RevokedAt.IsZero() {
		t.Fatalf("after expiry: %+v", cs)
	}
	if _, err := n.Node(ctx, "nope"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("unknown node: %v", err)
	}
}

// TestListNodeCerts: a node's certificates, read through its record, are
// exactly those ListCerts lists with its name, under every filter; an
// unknown node is errs.NotFound, a bad name or filter errs.Invalid.
func TestListNodeCerts(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	n, _, _, _ := newTestNodes(t, clock)
	ctx := context.Background()
	tok, _, err := n.CreateToken(ctx, TokenRequest{Name: "web-2"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if _, err := n.Enroll(ctx, "", tok, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})); err != nil {
		t.Fatal(err)
	}
	check := func(stage string) {
		t.Helper()
		for _, f := range []string{"", FilterIssued, FilterExpiring, FilterRevoked} {
			all, err := n.ListCerts(ctx, f, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"web-1", "web-2"} {
				var want []CertInfo
				for _, c := range all {
					if c.Name == name {
						want = append(want, c)
					}
				}
				got, err := n.ListNodeCerts(ctx, name, f, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: %s, filter %q: got %+v, want %+v", stage, name, f, got, want)
				}
			}
		}
	}
	check("both valid")
	if cs, _ := n.ListNodeCerts(ctx, "Web-1", "", 0); len(cs) != 1 || cs[0].Name != "web-1" {
		t.Fatalf("web-1 by a name made canonical: %+v", cs)
	}
	if err := n.Revoke(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	check("web-1 revoked")
	now = now.Add(48 * time.Hour)
	check("both expired")
	if _, err := n.ListNodeCerts(ctx, "nope", "", 0); !errs.Is(err, errs.NotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := n.ListNodeCerts(ctx, "wеb-1", "", 0); !errs.Is(err, errs.Invalid) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := n.ListNodeCerts(ctx, "web-1", "bogus", 0); !errs.Is(err, errs.Invalid) {
		t.Fatalf("bad filter: %v", err)
	}
}

// TestIssuerCache: the parsed intermediate is reused while the stored one
// is unchanged, parsed again when its key or certificate changes, and
// dropped on seal (Forget).
func TestIssuerCache(t *testing.T) {
	n, st, _, _ := newTestNodes(t, nil)
	a, err := n.issuer()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := n.issuer(); b != a {
		t.Fatal("an unchanged intermediate was parsed again")
	}
	n.ca.Forget()
	if n.ca.inter.ca != nil {
		t.Fatal("Forget kept the parsed intermediate")
	}
	b, err := n.issuer()
	if err != nil || b == a {
		t.Fatalf("after Forget: %v, same CA: %v", err, b == a)
	}
	// A rotated intermediate (new key, new certificate) replaces it.
	root, _ := pki.NewRootCA(pki.CAOptions{CommonName: "other root"})
	inter, _ := pki.NewIntermediateCA(root, pki.CAOptions{CommonName: "other issuing"})
	ic, ik, _ := inter.MarshalPEM()
	st.m[keyInterCert] = kv.Entry{Key: keyInterCert, Value: ic, Version: 7}
	st.m[keyInterKey] = kv.Entry{Key: keyInterKey, Value: ik, Version: 7}
	c, err := n.issuer()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cert.Equal(inter.Cert) {
		t.Fatalf("issuer is %s after rotation, want %s", c.Cert.Subject, inter.Cert.Subject)
	}
}

// TestNodeListPage reads the nodes a page at a time: each page after the
// previous one's last name, "" as next on the last, limits checked.
func TestNodeListPage(t *testing.T) {
	n, _, _, _ := newTestNodes(t, nil) // web-1
	ctx := context.Background()
	for _, name := range []string{"db-1", "db-2", "app-1", "zz-1"} {
		if _, _, err := n.CreateToken(ctx, TokenRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after, pages := "", 0
	for {
		ns, next, err := n.ListPage(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, nd := range ns {
			got = append(got, nd.Name)
		}
		if next == "" {
			break
		}
		if next != ns[len(ns)-1].Name {
			t.Fatalf("next %q, want the page's last name %q", next, ns[len(ns)-1].Name)
		}
		after = next
	}
	if want := []string{"app-1", "db-1", "db-2", "web-1", "zz-1"}; !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("pages %d: %q, want %q", pages, got, want)
	}
	ns, next, err := n.ListPage(ctx, "", 0)
	if err != nil || len(ns) != 5 || next != "" {
		t.Fatalf("default limit: %d nodes, next %q, %v", len(ns), next, err)
	}
	ns, next, err = n.ListPage(ctx, "db-2", 2) // a full last page: no next
	if err != nil || len(ns) != 2 || ns[0].Name != "web-1" || next != "" {
		t.Fatalf("after db-2: %+v, next %q, %v", ns, next, err)
	}
	if ns, next, err = n.ListPage(ctx, "zzz", 2); err != nil || len(ns) != 0 || next != "" {
		t.Fatalf("past the end: %+v, next %q, %v", ns, next, err)
	}
	for _, l := range []int{-1, MaxNodePage + 1} {
		if _, _, err := n.ListPage(ctx, "", l); !errs.Is(err, errs.Invalid) {
			t.Fatalf("limit %d: %v", l, err)
		}
	}
}

// TestNodeCount counts the nodes by state and zone: every node once.
func TestNodeCount(t *testing.T) {
	n, _, _, _ := newTestNodes(t, nil) // web-1, enrolled
	ctx := context.Background()
	for _, name := range []string{"db-1", "db-2", "app-1"} {
		if _, _, err := n.CreateToken(ctx, TokenRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := n.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	web, err := n.Node(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{NodePending: 3}
	want[web.State]++
	if c.Total != 4 || !maps.Equal(c.ByState, want) || c.NoZone != 4 || len(c.ByZone) != 0 {
		t.Fatalf("counts %+v, want 4 nodes, states %v, none in a zone", c, want)
	}
}
