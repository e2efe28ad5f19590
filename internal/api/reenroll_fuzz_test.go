package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/pki"
)

// FuzzParseReenroll: the re-enrollment request decoder never panics, and
// refuses what it cannot parse as bad input (400), never anything else.
func FuzzParseReenroll(f *testing.F) {
	root, err := pki.NewRootCA(pki.CAOptions{CommonName: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	csr, _ := pki.ParseCSR(csrPEM)
	leaf, err := root.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: "spiffe://warden.local/node/a", TTL: 3600e9})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(reenrollRequest{Certificate: string(pki.Bundle(leaf, root.Cert)), CSR: string(csrPEM)})
	f.Add(good)
	f.Add([]byte(`{"certificate": "", "csr": ""}`))
	f.Add([]byte(`{"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, r, err := parseReenroll(body)
		if err != nil {
			if c != nil || r != nil {
				t.Fatal("results with an error")
			}
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("error of code %s: %v", errs.CodeOf(err), err)
			}
			return
		}
		if c == nil || r == nil {
			t.Fatal("nil results without an error")
		}
	})
}
