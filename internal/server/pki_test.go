package server_test

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/server"
)

// TestTrustBundle: init creates a root and an intermediate CA in the trust
// domain; the bundle is public while unsealed and refused while sealed.
func TestTrustBundle(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.TrustDomain = "prod.example" })
	_, root := h.initUnseal(1, 1)
	r := h.want(h.do("GET", "/v1/pki/ca", "", nil), 200)
	if ct := r.header.Get("Content-Type"); ct != "application/x-pem-file" {
		t.Fatalf("content type %q", ct)
	}
	var certs []*x509.Certificate
	for rest := r.body; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || !certs[0].IsCA || !certs[1].IsCA || !strings.Contains(certs[0].Subject.CommonName, "prod.example") {
		t.Fatalf("bundle: %d certificates", len(certs))
	}
	if err := certs[1].CheckSignatureFrom(certs[0]); err != nil {
		t.Fatalf("intermediate not signed by root: %v", err)
	}
	if strings.Contains(string(r.body), "PRIVATE KEY") {
		t.Fatal("a key in the bundle")
	}
	h.want(h.do("POST", "/v1/sys/seal", root, nil), 204)
	h.want(h.do("GET", "/v1/pki/ca", "", nil), 503)
}
