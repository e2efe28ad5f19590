package pki

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func FuzzParseCSR(f *testing.F) {
	p256 := csrDER(f, ecKey(f, elliptic.P256()))
	f.Add(p256)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: p256}))
	f.Add(csrDER(f, edKey(f)))
	f.Add(csrDER(f, ecKey(f, elliptic.P224())))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err != nil {
			return
		}
		if len(b) > MaxCSRBytes || csr.CheckSignature() != nil || checkKey(csr.PublicKey) != nil {
			t.Fatal("accepted an oversized CSR, a CSR whose signature does not verify, or an unsupported key")
		}
	})
}

func FuzzOCSPRequest(f *testing.F) {
	_, inter := chain(f, KeyECP256)
	cert := mustIssue(f, inter, ecKey(f, elliptic.P256()))
	for _, o := range []*ocsp.RequestOptions{nil, {Hash: crypto.SHA256}, {Hash: crypto.SHA512}} {
		req, err := ocsp.CreateRequest(cert, inter.Cert, o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req)
	}
	status := func(s *big.Int) (OCSPStatus, time.Time) {
		if s.Sign() <= 0 {
			panic("status asked about a serial no certificate can have")
		}
		return OCSPStatus(s.Bit(0)), now
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := inter.OCSPRespond(b, status, now, time.Hour)
		if err != nil {
			if !errors.Is(err, ErrOCSPMalformed) {
				t.Fatalf("error %v about a request is not ErrOCSPMalformed", err)
			}
			return
		}
		if bytes.Equal(resp, ocsp.UnauthorizedErrorResponse) {
			return
		}
		r, err := ocsp.ParseResponse(resp, inter.Cert)
		if err != nil {
			t.Fatalf("our response does not parse: %v", err)
		}
		if req, _ := ocsp.ParseRequest(b); req == nil || r.SerialNumber.Cmp(req.SerialNumber) != 0 {
			t.Fatal("response is about another serial")
		}
	})
}

// BenchmarkIssue measures server-side issuance: checking the CSR's
// signature again and signing an ECDSA P-256 X.509-SVID with an ECDSA P-256
// intermediate. The CSR is parsed once, outside the loop.
func BenchmarkIssue(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	csr := csrFor(b, ecKey(b, elliptic.P256()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: id, TTL: time.Hour, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCSRAndIssue is the whole enrollment path through pki: a PEM
// CSR in, a certificate out.
func BenchmarkParseCSRAndIssue(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER(b, ecKey(b, elliptic.P256()))})
	b.ReportAllocs()
	for b.Loop() {
		csr, err := ParseCSR(csrPEM)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: id, TTL: time.Hour, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRL100k signs a CRL of 100,000 unexpired revoked certificates
// with random 128-bit serials (a seeded generator, so runs repeat).
func BenchmarkCRL100k(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	rng := rand.New(rand.NewChaCha8([32]byte{'w', 'a', 'r', 'd', 'e', 'n'}))
	rev := make([]Revoked, 100_000)
	for i := range rev {
		var s [16]byte
		for j := range s {
			s[j] = byte(rng.Uint32())
		}
		s[0] |= 1 // positive, 128 bits
		rev[i] = Revoked{Serial: new(big.Int).SetBytes(s[:]), RevokedAt: now.Add(-time.Duration(i) * time.Second), ExpiresAt: now.Add(time.Hour)}
	}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		der, err := inter.CRL(rev, big.NewInt(2), now, 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		size = len(der)
	}
	b.ReportMetric(float64(size), "CRL-bytes")
	if crl, err := x509.ParseRevocationList(mustCRL(b, inter, rev)); err != nil || len(crl.RevokedCertificateEntries) != len(rev) {
		b.Fatalf("CRL: %v", err)
	}
}

func mustCRL(b *testing.B, ca *CA, rev []Revoked) []byte {
	der, err := ca.CRL(rev, big.NewInt(2), now, 24*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return der
}

// BenchmarkOCSPRespond answers one OCSP request.
func BenchmarkOCSPRespond(b *testing.B) {
	_, inter := chain(b, KeyECP256)
	cert := mustIssue(b, inter, ecKey(b, elliptic.P256()))
	req, err := ocsp.CreateRequest(cert, inter.Cert, nil)
	if err != nil {
		b.Fatal(err)
	}
	status := func(*big.Int) (OCSPStatus, time.Time) { return OCSPGood, time.Time{} }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inter.OCSPRespond(req, status, now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
