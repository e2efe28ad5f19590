package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"go/parser"
	"go/token"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// now is the fixed clock of the tests that do not hand certificates to
// tools reading the real clock.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func chain(t testing.TB, kt KeyType) (root, inter *CA) {
	t.Helper()
	return chainAt(t, kt, now, "")
}

func chainAt(t testing.TB, kt KeyType, at time.Time, td string) (root, inter *CA) {
	t.Helper()
	root, err := NewRootCA(CAOptions{CommonName: "Warden root", KeyType: kt, Now: at, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	inter, err = NewIntermediateCA(root, CAOptions{CommonName: "Warden issuing", KeyType: kt, Now: at, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

// rsaKey is one RSA-2048 key for all tests: generating it is the slowest
// thing here.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrDER makes a CSR that asks for names the server must ignore.
func csrDER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	evil, _ := url.Parse("spiffe://evil.example/node/admin")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"Evil"}},
		DNSNames:       []string{"evil.example"},
		URIs:           []*url.URL{evil},
		IPAddresses:    []net.IP{net.ParseIP("10.6.6.6")},
		EmailAddresses: []string{"root@evil.example"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func csrFor(t testing.TB, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	csr, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER(t, key)}))
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

const id = "spiffe://warden.local/node/web-1"

// TestIssue checks an issued certificate against X.509-SVID sections 2, 3.1
// and 4 for every CA key type and every supported leaf key type.
func TestIssue(t *testing.T) {
	leafKeys := map[string]crypto.Signer{
		"p256": ecKey(t, elliptic.P256()), "p384": ecKey(t, elliptic.P384()),
		"ed25519": edKey(t), "rsa2048": rsaKey(),
	}
	for _, kt := range []KeyType{KeyECP256, KeyEd25519} {
		root, inter := chain(t, kt)
		for name, key := range leafKeys {
			t.Run(string(kt)+"/"+name, func(t *testing.T) {
				cert, err := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: id, TTL: time.Hour, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
					if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(root.Cert), Intermediates: pool(inter.Cert),
						CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
						t.Fatalf("verify for %v: %v", eku, err)
					}
				}
				// The server decided the identity: the CSR's names are ignored.
				if len(cert.URIs) != 1 || cert.URIs[0].String() != id {
					t.Errorf("URI SANs %v, want exactly %s", cert.URIs, id)
				}
				if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 || len(cert.RawSubject) != 2 {
					t.Errorf("CSR names leaked: subject %q, %v %v %v", cert.Subject, cert.DNSNames, cert.IPAddresses, cert.EmailAddresses)
				}
				if !publicKeysEqual(cert.PublicKey, key.Public()) {
					t.Error("certificate is not for the CSR's key")
				}
				wantKU := x509.KeyUsageDigitalSignature
				if name == "rsa2048" {
					wantKU |= x509.KeyUsageKeyEncipherment
				}
				if cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage != wantKU ||
					!slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
					t.Errorf("IsCA %v, KeyUsage %b (want %b), ExtKeyUsage %v", cert.IsCA, cert.KeyUsage, wantKU, cert.ExtKeyUsage)
				}
				// An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6, X.509-SVID 3.1);
				// key usage must be critical (X.509-SVID 4.3).
				for _, e := range cert.Extensions {
					if (e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) || e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15})) && !e.Critical {
						t.Errorf("extension %v is not critical", e.Id)
					}
				}
				ski, _ := keyID(key.Public())
				if !bytes.Equal(cert.SubjectKeyId, ski) || !bytes.Equal(cert.AuthorityKeyId, inter.Cert.SubjectKeyId) || len(cert.AuthorityKeyId) == 0 {
					t.Errorf("SKI %x AKI %x", cert.SubjectKeyId, cert.AuthorityKeyId)
				}
				if !cert.NotBefore.Equal(now.Add(-Backdate)) || !cert.NotAfter.Equal(now.Add(time.Hour)) {
					t.Errorf("validity %v – %v", cert.NotBefore, cert.NotAfter)
				}
				if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
					t.Errorf("serial %v", cert.SerialNumber)
				}
				// go-spiffe, the reference SPIFFE library, accepts it.
				td := spiffeid.RequireTrustDomainFromString("warden.local")
				got, _, err := x509svid.ParseAndVerify([][]byte{cert.Raw, inter.Cert.Raw},
					x509bundle.FromX509Authorities(td, []*x509.Certificate{root.Cert}), x509svid.WithTime(now))
				if err != nil || got.String() != id {
					t.Errorf("go-spiffe: %v, %v", got, err)
				}
			})
		}
	}
}

func TestIssueOptions(t *testing.T) {
	_, inter := chain(t, KeyECP256)
	key := ecKey(t, elliptic.P256())
	csr := csrFor(t, key)

	cert, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: id, TTL: time.Hour, Now: now, Serial: big.NewInt(42),
		DNSNames: []string{"server-1.warden.local", "localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}})
	if err != nil {
		t.Fatal(err)
	}
	if cert.SerialNumber.Int64() != 42 || len(cert.DNSNames) != 2 || len(cert.IPAddresses) != 2 || len(cert.URIs) != 1 {
		t.Errorf("serial %v, DNS %v, IPs %v, URIs %v", cert.SerialNumber, cert.DNSNames, cert.IPAddresses, cert.URIs)
	}

	// The TTL is capped at the issuer's expiry.
	long, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: id, TTL: 100 * 365 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !long.NotAfter.Equal(inter.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the issuer's %v", long.NotAfter, inter.Cert.NotAfter)
	}
	// Never valid before the issuer either.
	early, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: id, TTL: time.Hour, Now: inter.Cert.NotBefore})
	if err != nil {
		t.Fatal(err)
	}
	if early.NotBefore.Before(inter.Cert.NotBefore) {
		t.Errorf("NotBefore %v is before the issuer's %v", early.NotBefore, inter.Cert.NotBefore)
	}
	// A SPIFFE ID outside Warden's node/svc/user shape is still a SPIFFE ID.
	if _, err := inter.Issue(IssueRequest{CSR: csr, SPIFFEID: "spiffe://other_td/ns/prod/sa/API.v1", TTL: time.Hour, Now: now}); err != nil {
		t.Errorf("general SPIFFE ID: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	root, inter := chain(t, KeyECP256)
	key := ecKey(t, elliptic.P256())
	good := csrFor(t, key)
	forged := *good // same key and names, but a signature by another key
	other, _ := x509.ParseCertificateRequest(csrDER(t, ecKey(t, elliptic.P256())))
	forged.Signature = other.Signature
	weak := &x509.CertificateRequest{PublicKey: &ecKey(t, elliptic.P224()).PublicKey}
	base := IssueRequest{CSR: good, SPIFFEID: id, TTL: time.Hour, Now: now}
	for _, tc := range []struct {
		name string
		ca   *CA
		edit func(*IssueRequest)
		msg  string
	}{
		{"no CSR", inter, func(r *IssueRequest) { r.CSR = nil }, "no CSR"},
		{"forged CSR signature", inter, func(r *IssueRequest) { r.CSR = &forged }, "CSR signature"},
		{"unsupported CSR key", inter, func(r *IssueRequest) { r.CSR = weak }, "P-224"},
		{"no SPIFFE ID", inter, func(r *IssueRequest) { r.SPIFFEID = "" }, "spiffe://"},
		{"root path", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://warden.local" }, "needs a path"},
		{"root path slash", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://warden.local/" }, "needs a path"},
		{"http", inter, func(r *IssueRequest) { r.SPIFFEID = "https://warden.local/node/a" }, "spiffe://"},
		{"capital trust domain", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://Warden/node/a" }, "trust domain"},
		{"port", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w:1/node/a" }, "trust domain"},
		{"query", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/a?x" }, "not allowed"},
		{"fragment", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/a#x" }, "not allowed"},
		{"percent", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/%61" }, "not allowed"},
		{"dot dot", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/../a" }, "'..'"},
		{"empty segment", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node//a" }, "empty"},
		{"trailing slash", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/a/" }, "empty"},
		{"non-ASCII path", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/node/wеb" },
			`path segment 2: character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2 is not allowed`},
		{"non-ASCII trust domain", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://wаrden/node/a" },
			`character "а" (U+0430 CYRILLIC SMALL LETTER A) at position 2 is not allowed`},
		{"too long", inter, func(r *IssueRequest) { r.SPIFFEID = "spiffe://w/" + strings.Repeat("a", 2048) }, "2048"},
		{"zero TTL", inter, func(r *IssueRequest) { r.TTL = 0 }, "TTL"},
		{"wildcard DNS", inter, func(r *IssueRequest) { r.DNSNames = []string{"*.warden.local"} }, "DNS name"},
		{"capital DNS", inter, func(r *IssueRequest) { r.DNSNames = []string{"Server.local"} }, "DNS name"},
		{"confusable DNS", inter, func(r *IssueRequest) { r.DNSNames = []string{"wеb.local"} }, "DNS name"},
		{"bad IP", inter, func(r *IssueRequest) { r.IPs = []net.IP{{1, 2, 3}} }, "IP"},
		{"zero serial", inter, func(r *IssueRequest) { r.Serial = big.NewInt(0) }, "serial"},
		{"negative serial", inter, func(r *IssueRequest) { r.Serial = big.NewInt(-1) }, "serial"},
		{"21-octet serial", inter, func(r *IssueRequest) { r.Serial = new(big.Int).Lsh(big.NewInt(1), 160) }, "serial"},
		{"expired issuer", inter, func(r *IssueRequest) { r.Now = inter.Cert.NotAfter }, "expired"},
		{"nil CA", nil, func(*IssueRequest) {}, "no certificate"},
		{"CA without key", &CA{Cert: inter.Cert}, func(*IssueRequest) {}, "no key"},
		{"leaf as CA", &CA{Cert: mustIssue(t, inter, key), Key: key}, func(*IssueRequest) {}, "may not sign"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.edit(&r)
			cert, err := tc.ca.Issue(r)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Issue = %v, %v; want an error containing %q", cert != nil, err, tc.msg)
			}
		})
	}
	_ = root
}

func mustIssue(t testing.TB, ca *CA, key crypto.Signer) *x509.Certificate {
	t.Helper()
	cert, err := ca.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: id, TTL: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestNameConstraints checks CAOptions.TrustDomain: the CAs carry
// spiffe://<td> (X.509-SVID 3.2), the intermediate may only certify that
// trust domain (4.2), Issue refuses others, and verifiers enforce it even on
// a certificate made behind Issue's back.
func TestNameConstraints(t *testing.T) {
	for _, td := range []string{"warden.local", "my_td"} {
		t.Run(td, func(t *testing.T) {
			root, inter := chainAt(t, KeyECP256, now, td)
			for _, ca := range []*CA{root, inter} {
				if len(ca.Cert.URIs) != 1 || ca.Cert.URIs[0].String() != "spiffe://"+td {
					t.Errorf("%s URIs %v", ca.Cert.Subject.CommonName, ca.Cert.URIs)
				}
			}
			if !slices.Equal(inter.Cert.PermittedURIDomains, []string{td}) || len(root.Cert.PermittedURIDomains) != 0 {
				t.Errorf("constraints: root %v, intermediate %v", root.Cert.PermittedURIDomains, inter.Cert.PermittedURIDomains)
			}
			key := ecKey(t, elliptic.P256())
			opts := x509.VerifyOptions{Roots: pool(root.Cert), Intermediates: pool(inter.Cert), CurrentTime: now}
			inside, err := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: "spiffe://" + td + "/node/a", TTL: time.Hour, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := inside.Verify(opts); err != nil {
				t.Errorf("inside the trust domain: %v", err)
			}
			for _, other := range []string{"spiffe://evil/node/a", "spiffe://x" + td + "/node/a"} {
				if _, err := inter.Issue(IssueRequest{CSR: csrFor(t, key), SPIFFEID: other, TTL: time.Hour, Now: now}); err == nil ||
					!strings.Contains(err.Error(), "name constraints") {
					t.Errorf("%s: %v", other, err)
				}
			}
			if _, err := outsideConstraints(t, inter, key, now).Verify(opts); err == nil {
				t.Error("a certificate outside the name constraints verified")
			}
		})
	}
}

// outsideConstraints signs, bypassing Issue, a certificate for a SPIFFE ID
// in another trust domain.
func outsideConstraints(t *testing.T, inter *CA, key crypto.Signer, at time.Time) *x509.Certificate {
	t.Helper()
	u, _ := url.Parse("spiffe://evil/node/a")
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(9), URIs: []*url.URL{u},
		NotBefore: at.Add(-time.Hour), NotAfter: at.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature},
		inter.Cert, key.Public(), inter.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCSR(t *testing.T) {
	p256 := csrDER(t, ecKey(t, elliptic.P256()))
	toPEM := func(der []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	badSig := bytes.Clone(p256)
	badSig[len(badSig)-5] ^= 0xff
	for _, tc := range []struct {
		name string
		in   []byte
		msg  string // "" means accepted
	}{
		{"der p256", p256, ""},
		{"pem p256", toPEM(p256), ""},
		{"pem with surrounding space", append(append([]byte("\n "), toPEM(p256)...), "\n\n"...), ""},
		{"p384", csrDER(t, ecKey(t, elliptic.P384())), ""},
		{"ed25519", csrDER(t, edKey(t)), ""},
		{"rsa 2048", csrDER(t, rsaKey()), ""},
		{"bad signature", badSig, "signature"},
		{"p224", csrDER(t, ecKey(t, elliptic.P224())), "P-224"},
		{"p521", csrDER(t, ecKey(t, elliptic.P521())), "P-521"},
		{"empty", nil, "CSR"},
		{"garbage", []byte("nope"), "CSR"},
		{"der trailing data", append(bytes.Clone(p256), 0), "CSR"},
		{"pem trailing data", append(toPEM(p256), "junk"...), "after the PEM block"},
		{"two pem blocks", append(toPEM(p256), toPEM(p256)...), "after the PEM block"},
		{"pem wrong type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p256}), `"CERTIFICATE"`},
		{"pem headers", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: p256}), "headers"},
		{"too large", make([]byte, MaxCSRBytes+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSR(tc.in)
			if tc.msg == "" && err != nil || tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
				t.Fatalf("ParseCSR: %v; want %q", err, tc.msg)
			}
		})
	}
	// RSA-1024 is refused; a hand-made CSR object avoids generating the key.
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	if err := checkKey(small); err == nil || !strings.Contains(err.Error(), "1024 bits") {
		t.Errorf("RSA-1024: %v", err)
	}
}

func TestCAs(t *testing.T) {
	for _, kt := range []KeyType{KeyECP256, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			root, inter := chain(t, kt)
			if !root.Cert.IsCA || root.Cert.MaxPathLen != 1 || !inter.Cert.IsCA || inter.Cert.MaxPathLen != 0 || !inter.Cert.MaxPathLenZero {
				t.Errorf("basic constraints: root %v/%d, intermediate %v/%d", root.Cert.IsCA, root.Cert.MaxPathLen, inter.Cert.IsCA, inter.Cert.MaxPathLen)
			}
			for _, ca := range []*CA{root, inter} {
				if ca.Cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
					t.Errorf("%s key usage %b", ca.Cert.Subject.CommonName, ca.Cert.KeyUsage)
				}
			}
			if got := root.Cert.NotAfter.Sub(root.Cert.NotBefore); got != DefaultRootTTL+Backdate {
				t.Errorf("root lifetime %v", got)
			}
			if got := inter.Cert.NotAfter.Sub(now); got != DefaultIntermediateTTL {
				t.Errorf("intermediate lifetime %v", got)
			}
			if len(inter.Chain) != 1 || inter.Chain[0] != root.Cert || len(root.Chain) != 0 {
				t.Errorf("chain %v", inter.Chain)
			}
			if err := inter.Cert.CheckSignatureFrom(root.Cert); err != nil {
				t.Error(err)
			}
			if _, err := NewIntermediateCA(inter, CAOptions{Now: now}); err == nil || !strings.Contains(err.Error(), "path length") {
				t.Errorf("intermediate under a path-length-0 CA: %v", err)
			}
		})
	}
	root, _ := chain(t, KeyECP256)
	short, err := NewIntermediateCA(root, CAOptions{Now: now, TTL: 20 * 365 * 24 * time.Hour})
	if err != nil || !short.Cert.NotAfter.Equal(root.Cert.NotAfter) {
		t.Errorf("intermediate outlives its root: %v %v", short.Cert.NotAfter, err)
	}
	for _, o := range []CAOptions{{KeyType: "rsa"}, {TTL: -time.Hour}, {TrustDomain: "Bad"}} {
		if _, err := NewRootCA(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := NewIntermediateCA(nil, CAOptions{}); err == nil {
		t.Error("nil parent accepted")
	}
}

func TestParseCA(t *testing.T) {
	root, inter := chain(t, KeyECP256)
	ic, ik, err := inter.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	rc, rk, _ := root.MarshalPEM()
	back, err := ParseCA(ic, ik, Bundle(root.Cert))
	if err != nil || !back.Cert.Equal(inter.Cert) || len(back.Chain) != 1 || !back.Chain[0].Equal(root.Cert) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := back.Issue(IssueRequest{CSR: csrFor(t, ecKey(t, elliptic.P256())), SPIFFEID: id, TTL: time.Hour, Now: now}); err != nil {
		t.Fatalf("issue with a parsed CA: %v", err)
	}
	_, edInter := chain(t, KeyEd25519)
	ec, ek, _ := edInter.MarshalPEM()
	if _, err := ParseCA(ec, ek, nil); err != nil {
		t.Fatalf("Ed25519: %v", err)
	}

	leafKey := ecKey(t, elliptic.P256())
	leafPEM := Bundle(mustIssue(t, inter, leafKey))
	leafKeyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	sec1, _ := x509.MarshalECPrivateKey(inter.Key.(*ecdsa.PrivateKey))
	noCRLSign := caWithUsage(t, x509.KeyUsageCertSign)
	for _, tc := range []struct {
		name                string
		cert, key, chainPEM []byte
		msg                 string
	}{
		{"mismatched key", ic, rk, nil, "does not match"},
		{"leaf certificate", leafPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER}), nil, "not a CA"},
		{"no cRLSign", noCRLSign.cert, noCRLSign.key, nil, "cRLSign"},
		{"SEC 1 key", ic, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), nil, `want "PRIVATE KEY"`},
		{"two certificates", append(bytes.Clone(ic), rc...), ik, nil, "after the PEM block"},
		{"no certificate", nil, ik, nil, "no PEM block"},
		{"garbage key", ic, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), nil, "PKCS #8"},
		{"chain that did not sign", ic, ik, Bundle(inter.Cert), "did not sign"},
		{"chain garbage", ic, ik, []byte("junk"), "not a CERTIFICATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCA(tc.cert, tc.key, tc.chainPEM); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseCA: %v; want %q", err, tc.msg)
			}
		})
	}
}

type pemPair struct{ cert, key []byte }

// caWithUsage makes a self-signed CA certificate with the given key usage.
func caWithUsage(t *testing.T, ku x509.KeyUsage) pemPair {
	t.Helper()
	key := ecKey(t, elliptic.P256())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: ku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pemPair{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})}
}

// TestSecretsRedacted checks that no fmt verb and no slog handler prints a
// CA's private key or the PEM of one.
func TestSecretsRedacted(t *testing.T) {
	_, inter := chain(t, KeyECP256)
	_, keyPEM, _ := inter.MarshalPEM()
	scalar, err := inter.Key.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{hex.EncodeToString(scalar), new(big.Int).SetBytes(scalar).String(), "PRIVATE KEY", string(keyPEM[30:60])}
	var out strings.Builder
	for _, v := range []any{inter, *inter, keyPEM} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
	}
	fmt.Fprintf(&out, "%v %+v\n", []*CA{inter}, map[string]CA{"a": *inter})
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "ca", inter, "value", *inter, "pem", keyPEM)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "ca", inter, "pem", keyPEM)
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("output contains secret %q:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "REDACTED") || !strings.Contains(out.String(), "Warden issuing") {
		t.Fatalf("output:\n%s", out.String())
	}
	if s := (CA{}).String(); !strings.Contains(s, "no certificate") {
		t.Errorf("zero CA: %s", s)
	}
}

type zeroThenReader struct{ n int }

func (r *zeroThenReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0
		if r.n > 0 {
			p[i] = byte(i + 1)
		}
	}
	r.n++
	return len(p), nil
}

func TestSerial(t *testing.T) {
	s, err := Serial(&zeroThenReader{}) // the first 16 bytes are zero: retried
	if err != nil || s.Sign() <= 0 || s.BitLen() > 128 || s.Cmp(new(big.Int).SetBytes([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})) != 0 {
		t.Fatalf("Serial = %v, %v", s, err)
	}
	if _, err := Serial(bytes.NewReader(nil)); err == nil {
		t.Fatal("short read accepted")
	}
}

func TestParseLeaf(t *testing.T) {
	_, inter := chain(t, KeyECP256)
	leaf := mustIssue(t, inter, ecKey(t, elliptic.P256()))
	got, err := ParseLeaf(Bundle(leaf, inter.Cert))
	if err != nil || !got.Equal(leaf) {
		t.Fatalf("ParseLeaf: %v", err)
	}
	if _, err := ParseLeaf([]byte("x")); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestPure checks the package comment's promise: no file, network or
// process I/O, and no Warden dependency but names.
func TestPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "os/exec": true, "io/fs": true, "syscall": true, "net/http": true,
		"github.com/hashicorp/raft": true, "go.etcd.io/bbolt": true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[p] || strings.HasPrefix(p, "github.com/warden-sec/warden/") && p != "github.com/warden-sec/warden/internal/names" {
				t.Errorf("%s imports %s", e.Name(), p)
			}
		}
	}
}
