package pki

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSSL checks issued certificates, CRLs and OCSP responses with
// openssl, the tool operators use. It requires openssl on PATH (CI installs
// it: apt-get install openssl) and fails, rather than skips, without it.
// openssl reads the real clock, so these certificates are issued at
// time.Now().
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required for this test (apt-get install openssl)")
	}
	for _, tc := range []struct {
		name        string
		kt          KeyType
		trustDomain string
	}{
		{"ec-p256", KeyECP256, ""},
		{"ed25519", KeyEd25519, ""},
		{"ec-p256 with name constraints", KeyECP256, "warden.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := time.Now()
			root, inter := chainAt(t, tc.kt, at, tc.trustDomain)
			key := ecKey(t, elliptic.P256())
			issue := func() *x509.Certificate {
				t.Helper()
				c, err := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: id, TTL: time.Hour, Now: at})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			good, revoked := issue(), issue()
			dir := t.TempDir()
			write := func(name string, b []byte) string {
				t.Helper()
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			openssl := func(wantOK bool, args ...string) string {
				t.Helper()
				out, err := exec.Command("openssl", args...).CombinedOutput()
				if (err == nil) != wantOK {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			rootPEM, interPEM := write("root.pem", Bundle(root.Cert)), write("inter.pem", Bundle(inter.Cert))
			goodPEM, revokedPEM := write("good.pem", Bundle(good)), write("revoked.pem", Bundle(revoked))

			// The trust bundle is the root; the agent's chain carries the intermediate.
			openssl(true, "verify", "-CAfile", rootPEM, "-untrusted", interPEM, "-purpose", "sslclient", goodPEM)
			openssl(true, "verify", "-CAfile", rootPEM, "-untrusted", interPEM, "-purpose", "sslserver", goodPEM)
			bundlePEM := write("bundle.pem", Bundle(root.Cert, inter.Cert))
			openssl(true, "verify", "-CAfile", bundlePEM, goodPEM)
			openssl(false, "verify", "-CAfile", rootPEM, goodPEM) // no path without the intermediate
			if tc.trustDomain != "" {
				// openssl enforces the URI name constraint on a certificate made behind Issue's back.
				out := openssl(false, "verify", "-CAfile", rootPEM, "-untrusted", interPEM, write("outside.pem", Bundle(outsideConstraints(t, inter, key, at))))
				if !strings.Contains(out, "permitted subtree violation") {
					t.Errorf("openssl verify of a certificate outside the name constraints:\n%s", out)
				}
			}

			// CRLs: the intermediate's lists the revoked serial; -crl_check_all also needs the root's.
			interCRL, err := inter.CRL([]Revoked{{Serial: revoked.SerialNumber, RevokedAt: at, ExpiresAt: revoked.NotAfter}}, big.NewInt(1), at, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			rootCRL, err := root.CRL(nil, big.NewInt(1), at, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			crls := write("crls.pem", append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: interCRL}),
				pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL})...))
			for _, check := range []string{"-crl_check", "-crl_check_all"} {
				openssl(true, "verify", check, "-CAfile", rootPEM, "-untrusted", interPEM, "-CRLfile", crls, goodPEM)
				if out := openssl(false, "verify", check, "-CAfile", rootPEM, "-untrusted", interPEM, "-CRLfile", crls, revokedPEM); !strings.Contains(out, "certificate revoked") {
					t.Errorf("openssl verify %s of the revoked certificate:\n%s", check, out)
				}
			}
			if out := openssl(true, "crl", "-inform", "DER", "-in", write("inter.crl", interCRL), "-CAfile", bundlePEM, "-noout", "-verify"); !strings.Contains(out, "verify OK") {
				t.Errorf("openssl crl -verify:\n%s", out)
			}

			// OCSP: x/crypto/ocsp signs only with ECDSA and RSA (see ErrOCSPUnsupportedKey).
			if tc.kt != KeyECP256 {
				return
			}
			status := func(s *big.Int) (OCSPStatus, time.Time) {
				if s.Cmp(revoked.SerialNumber) == 0 {
					return OCSPRevoked, at
				}
				return OCSPGood, time.Time{}
			}
			for _, c := range []struct{ name, certPEM, want string }{{"good", goodPEM, "good"}, {"revoked", revokedPEM, "revoked"}} {
				for _, nonce := range []string{"-no_nonce", "-nonce"} {
					reqFile := filepath.Join(dir, c.name+nonce+".req")
					openssl(true, "ocsp", "-issuer", interPEM, "-cert", c.certPEM, nonce, "-reqout", reqFile)
					req, err := os.ReadFile(reqFile)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := inter.OCSPRespond(req, status, at, time.Hour)
					if err != nil {
						t.Fatalf("%s %s: %v", c.name, nonce, err)
					}
					out := openssl(true, "ocsp", "-issuer", interPEM, "-cert", c.certPEM, "-CAfile", rootPEM, "-no_nonce",
						"-respin", write(c.name+nonce+".resp", resp))
					if testing.Verbose() {
						t.Logf("openssl ocsp, %s certificate, request %s:\n%s", c.name, nonce, out)
					}
					if !strings.Contains(out, "Response verify OK") || !strings.Contains(out, c.certPEM+": "+c.want) {
						t.Errorf("openssl ocsp, %s certificate, request %s:\n%s", c.name, nonce, out)
					}
				}
			}
		})
	}
}
