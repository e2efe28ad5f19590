package signed

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/pki"
)

type fixture struct {
	root, inter *pki.CA
	roots       *x509.CertPool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// The CAs start a day back, so that leaves issued in the past are not
	// clamped to the CAs' start.
	caNow := time.Now().Add(-24 * time.Hour)
	root, err := pki.NewRootCA(pki.CAOptions{CommonName: "root", TrustDomain: "example.org", Now: caNow})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := pki.NewIntermediateCA(root, pki.CAOptions{CommonName: "inter", TrustDomain: "example.org", Now: caNow})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	return &fixture{root: root, inter: inter, roots: roots}
}

// leaf issues a certificate for key with the SPIFFE ID id, valid for ttl
// from now.
func (f *fixture) leaf(t *testing.T, key crypto.Signer, id string, now time.Time, ttl time.Duration) []*x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.inter.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: id, TTL: ttl, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c, f.inter.Cert}
}

func TestSignVerify(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"ecdsa": ec, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			chain := f.leaf(t, key, "spiffe://example.org/server/n1", now, time.Hour)
			payload := []byte(`{"report":"x"}`)
			sig, err := Sign(key, chain, payload, now)
			if err != nil {
				t.Fatal(err)
			}
			// Through JSON, as documents carry it.
			b, _ := json.Marshal(sig)
			var back Signature
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			leaf, err := Verify(payload, &back, f.roots, ServerSigner)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if leaf.URIs[0].String() != "spiffe://example.org/server/n1" {
				t.Fatalf("signer %v", leaf.URIs)
			}
			// One byte changed in the document.
			if _, err := Verify([]byte(`{"report":"y"}`), &back, f.roots, ServerSigner); err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Fatalf("altered payload: %v", err)
			}
			// The signature's time moved, even inside the certificate's
			// life: it is signed.
			nudged := back
			nudged.SignedAt = back.SignedAt.Add(time.Minute)
			if _, err := Verify(payload, &nudged, f.roots, ServerSigner); err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Fatalf("signed_at moved by a minute: %v", err)
			}
			// The signature's time moved outside the certificate's life.
			moved := back
			moved.SignedAt = now.Add(48 * time.Hour)
			if _, err := Verify(payload, &moved, f.roots, ServerSigner); err == nil || !strings.Contains(err.Error(), "chain") {
				t.Fatalf("signed_at outside the certificate: %v", err)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	payload := []byte("document")

	// A node's certificate is not a server's.
	node := f.leaf(t, key, "spiffe://example.org/node/web-1", now, time.Hour)
	sig, err := Sign(key, node, payload, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(payload, sig, f.roots, ServerSigner); err == nil || !strings.Contains(err.Error(), "not a server") {
		t.Fatalf("node signer: %v", err)
	}

	// Another CA's server.
	other := newFixture(t)
	stranger := other.leaf(t, key, "spiffe://example.org/server/n9", now, time.Hour)
	sig, err = Sign(key, stranger, payload, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(payload, sig, f.roots, ServerSigner); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("another CA: %v", err)
	}

	// A key that is not the certificate's.
	wrong, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Sign(wrong, f.leaf(t, key, "spiffe://example.org/server/n1", now, time.Hour), payload, now); err == nil {
		t.Fatal("signed with a key that is not the certificate's")
	}

	// Malformed signatures.
	good, err := Sign(key, f.leaf(t, key, "spiffe://example.org/server/n1", now, time.Hour), payload, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(s *Signature){
		"no chain":      func(s *Signature) { s.Chain = nil },
		"garbage chain": func(s *Signature) { s.Chain = [][]byte{[]byte("x")} },
		"no time":       func(s *Signature) { s.SignedAt = time.Time{} },
		"algorithm":     func(s *Signature) { s.Algorithm = "md5" },
		"wrong alg":     func(s *Signature) { s.Algorithm = Ed25519 },
		"value":         func(s *Signature) { s.Value = append([]byte{}, s.Value[:len(s.Value)-1]...) },
	} {
		s := *good
		mutate(&s)
		if _, err := Verify(payload, &s, f.roots, ServerSigner); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Verify(payload, nil, f.roots, ServerSigner); err == nil {
		t.Error("nil signature accepted")
	}
}

// TestVerifyAt: VerifyAt checks the chain at the time it is given, not at
// SignedAt (which the signer chooses): a certificate that expired before
// at is refused although the signature was made inside its life, and
// one not yet valid at at is refused too.
func TestVerifyAt(t *testing.T) {
	f := newFixture(t)
	now := time.Now().UTC().Truncate(time.Second)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	payload := []byte("document")
	// Valid from 3h before now (less Backdate) until 2h before now.
	chain := f.leaf(t, key, "spiffe://example.org/server/n1", now.Add(-3*time.Hour), time.Hour)
	signedAt := now.Add(-150 * time.Minute)
	sig, err := Sign(key, chain, payload, signedAt)
	if err != nil {
		t.Fatal(err)
	}

	// Inside the certificate's life: both verify.
	if _, err := Verify(payload, sig, f.roots, ServerSigner); err != nil {
		t.Fatalf("Verify at signed_at: %v", err)
	}
	leaf, err := VerifyAt(payload, sig, f.roots, ServerSigner, signedAt)
	if err != nil || leaf.URIs[0].String() != "spiffe://example.org/server/n1" {
		t.Fatalf("VerifyAt signed_at: %v, %v", leaf, err)
	}
	// Expired at now, signed_at notwithstanding.
	if _, err := VerifyAt(payload, sig, f.roots, ServerSigner, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("VerifyAt now, the certificate expired 2h ago: %v", err)
	}
	// Not yet valid.
	if _, err := VerifyAt(payload, sig, f.roots, ServerSigner, now.Add(-4*time.Hour)); err == nil || !strings.Contains(err.Error(), "chain") {
		t.Fatalf("VerifyAt before the certificate's life: %v", err)
	}
	// The other checks are VerifyAt's too.
	if _, err := VerifyAt([]byte("documenT"), sig, f.roots, ServerSigner, signedAt); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("VerifyAt, altered payload: %v", err)
	}
	if _, err := VerifyAt(payload, sig, f.roots, ServerSigner, time.Time{}); err == nil {
		t.Fatal("VerifyAt at the zero time accepted")
	}
	if _, err := VerifyAt(payload, nil, f.roots, ServerSigner, now); err == nil {
		t.Fatal("VerifyAt, nil signature accepted")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"algorithm":"ecdsa-sha256","value":"AA==","chain":["AA=="],"signed_at":"2026-12-03T00:00:00Z"}`), []byte("p"))
	roots := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, sigJSON, payload []byte) {
		var s Signature
		if json.Unmarshal(sigJSON, &s) != nil {
			return
		}
		if _, err := Verify(payload, &s, roots, ServerSigner); err == nil {
			t.Fatal("verified against an empty pool")
		}
	})
}
