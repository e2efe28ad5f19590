package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func chain(t testing.TB, kt KeyType) (*CA, *CA) {
	t.Helper()
	root, err := NewRootCA(CAOptions{CommonName: "Warden root", KeyType: kt, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediateCA(root, CAOptions{CommonName: "Warden issuing", KeyType: kt, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

func csrFor(t testing.TB, key crypto.Signer, sans ...string) *x509.CertificateRequest {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}, DNSNames: sans}
	for _, s := range sans {
		u, _ := url.Parse("spiffe://evil/" + s)
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestIssueVerifies(t *testing.T) {
	for _, kt := range []KeyType{KeyECP256, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			root, inter := chain(t, kt)
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cert, err := inter.Issue(IssueRequest{CSR: csrFor(t, key, "other"), SPIFFEID: "spiffe://warden.local/node/web-1",
				TTL: time.Hour, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(root.Cert)
			inters.AddCert(inter.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://warden.local/node/web-1" || len(cert.DNSNames) != 0 || cert.IsCA {
				t.Fatalf("SANs: %v %v", cert.URIs, cert.DNSNames)
			}
			if !cert.NotAfter.Equal(now.Add(time.Hour).Truncate(time.Second)) {
				t.Fatalf("not after %v", cert.NotAfter)
			}
			// TTL is capped at the issuer's expiry.
			long, _ := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://warden.local/node/x", TTL: 100 * 365 * 24 * time.Hour, Now: now})
			if long.NotAfter.After(inter.Cert.NotAfter) {
				t.Fatal("certificate outlives its issuer")
			}
		})
	}
}

func TestParseCSR(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	bad := append([]byte(nil), der...)
	bad[len(bad)-5] ^= 0xff // break the signature
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, weak)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p224)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, edKey)
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"der", der, true},
		{"ed25519", edDER, true},
		{"bad signature", bad, false},
		{"rsa 1024", weakDER, false},
		{"p224", p224DER, false},
		{"garbage", []byte("nope"), false},
		{"too large", make([]byte, MaxCSRBytes+1), false},
		{"two blocks", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCSR(tc.in); (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func TestCRLAndOCSP(t *testing.T) {
	_, inter := chain(t, KeyECP256)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://w/node/a", TTL: time.Hour, Now: now})
	bad, _ := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://w/node/b", TTL: time.Hour, Now: now})
	expired := big.NewInt(7)
	der, err := inter.CRL([]Revoked{
		{Serial: bad.SerialNumber, RevokedAt: now, ExpiresAt: bad.NotAfter},
		{Serial: expired, RevokedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
	}, big.NewInt(1), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(inter.Cert); err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bad.SerialNumber) != 0 {
		t.Fatalf("CRL entries: %v", crl.RevokedCertificateEntries)
	}
	status := func(s *big.Int) (OCSPStatus, time.Time) {
		if s.Cmp(bad.SerialNumber) == 0 {
			return OCSPRevoked, now
		}
		return OCSPGood, time.Time{}
	}
	for _, tc := range []struct {
		cert *x509.Certificate
		want int
	}{{good, ocsp.Good}, {bad, ocsp.Revoked}} {
		req, _ := ocsp.CreateRequest(tc.cert, inter.Cert, nil)
		resp, err := inter.OCSPRespond(req, status, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ocsp.ParseResponseForCert(resp, tc.cert, inter.Cert)
		if err != nil || r.Status != tc.want {
			t.Fatalf("status %v, want %d: %v", r, tc.want, err)
		}
	}
	// A request about another issuer is unauthorized.
	_, other := chain(t, KeyECP256)
	req, _ := ocsp.CreateRequest(good, other.Cert, nil)
	if resp, err := inter.OCSPRespond(req, status, now, time.Hour); err != nil || string(resp) != string(ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("foreign issuer: %v", err)
	}
}

func TestParseCA(t *testing.T) {
	root, inter := chain(t, KeyECP256)
	c, k, _ := inter.MarshalPEM()
	back, err := ParseCA(c, k, Bundle(root.Cert))
	if err != nil || len(back.Chain) != 1 {
		t.Fatalf("%v", err)
	}
	_, k2, _ := root.MarshalPEM()
	if _, err := ParseCA(c, k2, nil); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if s := fmt.Sprint(inter); strings.Contains(s, "PRIVATE") || !strings.Contains(s, "REDACTED") {
		t.Fatalf("String: %s", s)
	}
}

// TestOpenSSL checks issued certificates and the CRL with openssl, the tool
// operators will use (CI installs it).
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required for this test (apt-get install openssl)")
	}
	root, inter := chain(t, KeyECP256)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	realNow := time.Now()
	cert, _ := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://w/node/a", TTL: time.Hour, Now: realNow})
	revoked, _ := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://w/node/b", TTL: time.Hour, Now: realNow})
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	bundle := write("bundle.pem", Bundle(root.Cert, inter.Cert))
	crlDER, _ := inter.CRL([]Revoked{{Serial: revoked.SerialNumber, RevokedAt: realNow, ExpiresAt: revoked.NotAfter}}, big.NewInt(1), realNow.Add(-time.Minute), time.Hour)
	rootCRL, _ := root.CRL(nil, big.NewInt(1), realNow.Add(-time.Minute), time.Hour)
	crls := write("crl.pem", append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}),
		pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL})...))
	run := func(args ...string) (string, error) {
		out, err := exec.Command("openssl", args...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("verify", "-CAfile", bundle, write("c.pem", Bundle(cert))); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("openssl verify: %v %s", err, out)
	}
	if out, err := run("verify", "-crl_check_all", "-CAfile", bundle, "-CRLfile", crls, write("c2.pem", Bundle(cert))); err != nil {
		t.Fatalf("openssl verify -crl_check of a good cert: %v %s", err, out)
	}
	if out, err := run("verify", "-crl_check_all", "-CAfile", bundle, "-CRLfile", crls, write("r.pem", Bundle(revoked))); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("openssl accepted a revoked cert: %s", out)
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err == nil && csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
	})
}

func FuzzOCSPRequest(f *testing.F) {
	_, inter := chain(f, KeyECP256)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	cert, _ := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: "spiffe://w/node/a", TTL: time.Hour, Now: now})
	req, _ := ocsp.CreateRequest(cert, inter.Cert, nil)
	f.Add(req)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = inter.OCSPRespond(b, func(*big.Int) (OCSPStatus, time.Time) { return OCSPGood, time.Time{} }, now, time.Hour)
	})
}

func BenchmarkIssue(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := csrFor(b, key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: "spiffe://w/node/a", TTL: time.Hour, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCRL100k(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	rev := make([]Revoked, 100000)
	for i := range rev {
		rev[i] = Revoked{Serial: big.NewInt(int64(i + 1000)), RevokedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inter.CRL(rev, big.NewInt(2), now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
