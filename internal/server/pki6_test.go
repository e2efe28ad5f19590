package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/server"
)

// enrolled is a node enrolled through the API.
type enrolled struct {
	name  string
	key   *ecdsa.PrivateKey
	chain string // PEM: leaf, intermediate
	leaf  *x509.Certificate
}

func csrFor(t testing.TB, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func (h *harness) enroll(root, name, certTTL string) enrolled {
	h.t.Helper()
	return h.enrollToken(root, map[string]any{"name": name, "cert_ttl": certTTL})
}

// enrollZone enrolls node name in zone.
func (h *harness) enrollZone(root, name, zone string) enrolled {
	h.t.Helper()
	return h.enrollToken(root, map[string]any{"name": name, "zone": zone})
}

// enrollToken makes a join token with the body's settings and enrolls
// with it.
func (h *harness) enrollToken(root string, body map[string]any) enrolled {
	h.t.Helper()
	name := body["name"].(string)
	tok := h.want(h.do("POST", "/v1/nodes/tokens", root, body), 200).json(h.t)["token"]
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	en := h.want(h.do("POST", "/v1/pki/enroll", "", map[string]any{"token": tok, "csr": csrFor(h.t, key)}), 200).json(h.t)
	chain := en["certificate"].(string)
	leaf, err := pki.ParseLeaf([]byte(chain))
	if err != nil {
		h.t.Fatal(err)
	}
	return enrolled{name: name, key: key, chain: chain, leaf: leaf}
}

// serialHex is a serial as the API writes it: hex of its bytes (an even
// number of digits, a leading zero kept).
func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// TestNodeAndCertListings: node list/show and the certificate listing with
// its filters, and that no join token hash is shown.
func TestNodeAndCertListings(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 2}), 200)
	a := h.enroll(root, "web-1", "1h")
	b := h.enroll(root, "web-2", "72h")
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "db-1", "zone": "dmz"}), 200)
	h.want(h.do("POST", "/v1/nodes/web-2/revoke", root, nil), 204)

	r := h.want(h.do("GET", "/v1/nodes", root, nil), 200)
	if strings.Contains(string(r.body), "token_hash") {
		t.Fatalf("listing shows token hashes: %s", r.body)
	}
	nodes := r.json(t)["nodes"].([]any)
	states := map[string]string{}
	for _, n := range nodes {
		m := n.(map[string]any)
		states[m["name"].(string)] = m["state"].(string)
	}
	if len(nodes) != 3 || states["web-1"] != "active" || states["web-2"] != "revoked" || states["db-1"] != "pending" {
		t.Fatalf("nodes: %s", r.body)
	}
	n := h.want(h.do("GET", "/v1/nodes/Web-1", root, nil), 200).json(t)
	if n["serial"] != serialHex(a.leaf) || n["spiffe_id"] != "spiffe://warden.local/node/web-1" ||
		n["not_after"] != a.leaf.NotAfter.UTC().Format(time.RFC3339) || n["created_time"] == "" || n["updated_time"] == "" {
		t.Fatalf("node: %v", n)
	}
	if d := h.want(h.do("GET", "/v1/nodes/db-1", root, nil), 200).json(t); d["zone"] != "dmz" || d["serial"] != nil {
		t.Fatalf("pending node: %v", d)
	}
	h.want(h.do("GET", "/v1/nodes/nope", root, nil), 404)

	certs := func(query string) map[string]map[string]any {
		t.Helper()
		out := map[string]map[string]any{}
		for _, c := range h.want(h.do("GET", "/v1/pki/certs"+query, root, nil), 200).json(t)["certificates"].([]any) {
			m := c.(map[string]any)
			out[m["serial"].(string)] = m
		}
		return out
	}
	all := certs("")
	if len(all) != 2 || all[serialHex(a.leaf)]["state"] != "valid" || all[serialHex(b.leaf)]["state"] != "revoked" ||
		all[serialHex(b.leaf)]["revoked_at"] == nil || all[serialHex(a.leaf)]["name"] != "web-1" {
		t.Fatalf("certs: %v", all)
	}
	if len(certs("?state=issued")) != 2 {
		t.Fatal("issued")
	}
	if c := certs("?state=revoked"); len(c) != 1 || c[serialHex(b.leaf)] == nil {
		t.Fatalf("revoked: %v", c)
	}
	if c := certs("?state=expiring"); len(c) != 1 || c[serialHex(a.leaf)] == nil {
		t.Fatalf("expiring within 24h: %v", c)
	}
	if c := certs("?state=expiring&within=10m"); len(c) != 0 {
		t.Fatalf("expiring within 10m: %v", c)
	}
	h.clk.Add(2 * time.Hour)
	if c := certs(""); c[serialHex(a.leaf)]["state"] != "expired" {
		t.Fatalf("after expiry: %v", c)
	}
	for _, q := range []string{"?state=bogus", "?state=expiring&within=soon", "?within=1h", "?state=expiring&within=-1h"} {
		h.want(h.do("GET", "/v1/pki/certs"+q, root, nil), 400)
	}
}

// TestOCSPMalformedRequest: a request that cannot be parsed gets an RFC
// 6960 malformedRequest response, not a JSON error.
func TestOCSPMalformedRequest(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	h.initUnseal(1, 1)
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"POST garbage", "POST", "/v1/pki/ocsp", []byte("not an OCSP request")},
		{"POST empty", "POST", "/v1/pki/ocsp", []byte{}},
		{"POST oversized", "POST", "/v1/pki/ocsp", make([]byte, 64<<10)},
		{"GET bad base64", "GET", "/v1/pki/ocsp/%21%21%21", nil},
		{"GET garbage", "GET", "/v1/pki/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString([]byte("nope"))), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.want(h.do(tc.method, tc.path, "", tc.body), 200)
			if ct := r.header.Get("Content-Type"); ct != "application/ocsp-response" {
				t.Fatalf("content type %q: %s", ct, r.body)
			}
			_, err := ocsp.ParseResponse(r.body, nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != ocsp.Malformed {
				t.Fatalf("want malformedRequest, got %v", err)
			}
		})
	}
}

func (h *harness) reenroll(cert, csr string) resp {
	h.t.Helper()
	return h.do("POST", "/v1/pki/reenroll", "", map[string]string{"certificate": cert, "csr": csr})
}

// TestReenroll: a node whose certificate expired re-enrolls with proof of
// possession of its key, unless it was revoked; another key or a
// certificate of another CA is refused.
func TestReenroll(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	a := h.enroll(root, "web-1", "1h")
	b := h.enroll(root, "web-2", "1h")
	// web-3 renews for a new key: its first certificate's key is no longer
	// the node's.
	c := h.enroll(root, "web-3", "1h")
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	code, body := h.nodePost(c, "/v1/pki/renew", map[string]string{"csr": csrFor(t, newKey)})
	if code != 200 {
		t.Fatalf("renew: %d %s", code, body)
	}
	var renewed map[string]any
	if err := json.Unmarshal(body, &renewed); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(3 * time.Hour) // an outage: every certificate expired

	// Renewal over mutual TLS is impossible now: TLS refuses the expired
	// certificate. Re-enrollment is the way back.
	en := h.want(h.reenroll(a.chain, csrFor(t, a.key)), 200).json(t)
	leaf, err := pki.ParseLeaf([]byte(en["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&a.key.PublicKey) || leaf.SerialNumber.Cmp(a.leaf.SerialNumber) == 0 ||
		en["spiffe_id"] != "spiffe://warden.local/node/web-1" || !leaf.NotAfter.After(h.clk.Now()) {
		t.Fatalf("re-enrollment: %v", en)
	}
	if n := h.want(h.do("GET", "/v1/nodes/web-1", root, nil), 200).json(t); n["serial"] != serialHex(leaf) {
		t.Fatalf("node record: %v", n)
	}

	// Another CA issuing the same SPIFFE ID for the same key.
	otherRoot, _ := pki.NewRootCA(pki.CAOptions{CommonName: "other root"})
	otherInter, _ := pki.NewIntermediateCA(otherRoot, pki.CAOptions{CommonName: "other issuing"})
	csrParsed, _ := pki.ParseCSR([]byte(csrFor(t, b.key)))
	forged, err := otherInter.Issue(pki.IssueRequest{CSR: csrParsed, SPIFFEID: "spiffe://warden.local/node/web-2", TTL: time.Hour, Serial: b.leaf.SerialNumber})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		name, cert, csr string
		status          int
	}{
		{"CSR for another key", b.chain, csrFor(t, otherKey), 401},
		{"certificate of another CA", string(pki.Bundle(forged, otherInter.Cert)), csrFor(t, b.key), 401},
		{"not PEM", "hello", csrFor(t, b.key), 400},
		{"no CSR", b.chain, "", 400},
		{"a key in the certificate field", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), csrFor(t, b.key), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.want(h.reenroll(tc.cert, tc.csr), tc.status)
		})
	}
	h.want(h.do("POST", "/v1/pki/reenroll", "", `{"certificate": "x", "csr": "y", "extra": 1}`), 400)

	// Revoked: refused, for the expired certificate and for the new one.
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	h.want(h.reenroll(a.chain, csrFor(t, a.key)), 401)
	h.want(h.reenroll(en["certificate"].(string), csrFor(t, a.key)), 401)

	// A node that renewed for a new key comes back with that key only.
	h.want(h.reenroll(c.chain, csrFor(t, c.key)), 401)
	h.want(h.reenroll(renewed["certificate"].(string), csrFor(t, newKey)), 200)
	h.want(h.reenroll(b.chain, csrFor(t, b.key)), 200)

	// Every granted re-enrollment is in the audit log, with the node as
	// principal; the refused ones, made before any credential was proven,
	// are one aggregated record for the address, naming no principal.
	if err := h.srv.API().FlushAuthFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := h.want(h.do("GET", "/v1/audit/entries?start=0&count=1000", root, nil), 200).json(t)
	outcomes := map[string]int{}
	var refused uint64
	for _, e := range r["entries"].([]any) {
		ent := e.(map[string]any)["entry"].(map[string]any)
		switch {
		case ent["action"] == "pki.reenroll":
			if ent["auth_method"] != "proof-of-possession" {
				t.Errorf("auth method %v", ent["auth_method"])
			}
			outcomes[fmt.Sprint(ent["outcome"], " ", ent["principal"])]++
		case ent["action"] == "auth.failed" && ent["resource"] == "pki.reenroll":
			if ent["principal"] != "" || ent["source_addr"] != "127.0.0.1" {
				t.Errorf("aggregated record %v", ent)
			}
			refused += uint64(ent["count"].(float64))
		}
	}
	if outcomes[`200 Node::"web-1"`] != 1 || outcomes[`200 Node::"web-2"`] != 1 || outcomes[`200 Node::"web-3"`] != 1 || len(outcomes) != 3 {
		t.Fatalf("audit outcomes: %v", outcomes)
	}
	if refused != 9 {
		t.Fatalf("%d refused re-enrollments counted, want 9", refused)
	}
}

// nodePost calls the server over mutual TLS with the node's certificate.
func (h *harness) nodePost(e enrolled, path string, body any) (int, []byte) {
	h.t.Helper()
	r := h.nodeDo(e, "POST", path, body)
	return r.status, r.body
}

// TestOpenSSLOCSPRevoked is a done-when check: `openssl ocsp` asks the
// server about a revoked node's certificate and reports it revoked.
func TestOpenSSLOCSPRevoked(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is required (CI installs it): ", err)
	}
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	a := h.enroll(root, "web-1", "1h")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := h.want(h.do("GET", "/v1/pki/ca", "", nil), 200).body
	issuer := write("issuer.pem", pki.Bundle(issuerOf(t, a.chain)))
	cert := write("cert.pem", pki.Bundle(a.leaf))
	bundleFile := write("bundle.pem", bundle)
	run := func() string {
		t.Helper()
		cmd := exec.Command(openssl, "ocsp", "-issuer", issuer, "-cert", cert, "-url", h.srv.Addr()+"/v1/pki/ocsp",
			"-CAfile", bundleFile, "-no_nonce")
		// The server's TLS certificate is the bootstrap one: openssl ocsp
		// verifies the HTTPS peer against -CAfile too, so give it both.
		caTLS, _ := os.ReadFile(h.srv.CAFile())
		if err := os.WriteFile(bundleFile, append(append([]byte{}, bundle...), caTLS...), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, cert+": good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("before revocation:\n%s", out)
	}
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	if out := run(); !strings.Contains(out, cert+": revoked") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("after revocation:\n%s", out)
	}
}

// TestCurlRevokedClientCert is a done-when check: curl presenting a node's
// client certificate is let in, and refused once the node is revoked.
func TestCurlRevokedClientCert(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required (CI installs it): ", err)
	}
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "nodes", `permit (principal is Node, action == Action::"auth.whoami", resource);`), 200)
	a := h.enroll(root, "web-1", "1h")
	dir := t.TempDir()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(a.key)
	certFile, keyFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	if err := os.WriteFile(certFile, []byte(a.chain), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (string, string) {
		t.Helper()
		out, err := exec.Command(curl, "-sS", "--cacert", h.srv.CAFile(), "--cert", certFile, "--key", keyFile,
			"-w", "\n%{http_code}", h.srv.Addr()+"/v1/auth/whoami").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		s := strings.TrimSpace(string(out))
		i := strings.LastIndex(s, "\n")
		return s[i+1:], s[:max(i, 0)]
	}
	if code, body := run(); code != "200" || !strings.Contains(body, `"principal":"Node::\"web-1\""`) {
		t.Fatalf("before revocation: %s %s", code, body)
	}
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	if code, body := run(); code != "401" || !strings.Contains(body, "revoked") {
		t.Fatalf("after revocation: %s %s", code, body)
	}
}

// TestCAOptionsEndToEnd: a server whose CA is Ed25519, and one that issues
// with an operator's imported intermediate, both enroll a node whose SVID
// verifies against the published bundle (and, imported, chains to the
// operator's root). A bad import is refused when the server starts.
func TestCAOptionsEndToEnd(t *testing.T) {
	opRoot, _ := pki.NewRootCA(pki.CAOptions{CommonName: "Operator root"})
	opInter, _ := pki.NewIntermediateCA(opRoot, pki.CAOptions{CommonName: "Operator issuing"})
	rootPEM, _, _ := opRoot.MarshalPEM()
	interPEM, interKey, _ := opInter.MarshalPEM()
	for _, tc := range []struct {
		name string
		mod  func(*server.Config)
	}{
		{"ed25519", func(c *server.Config) { c.CAKeyType = "ed25519" }},
		{"imported intermediate", func(c *server.Config) {
			c.CAImportCert, c.CAImportKey, c.CAImportChain = interPEM, interKey, rootPEM
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, t.TempDir(), tc.mod)
			_, root := h.initUnseal(1, 1)
			n := h.enroll(root, "web-1", "1h")
			bundle := h.want(h.do("GET", "/v1/pki/ca", "", nil), 200).body
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(bundle) {
				t.Fatal("empty bundle")
			}
			inter := x509.NewCertPool()
			rest := []byte(n.chain)
			for {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				c, _ := x509.ParseCertificate(b.Bytes)
				inter.AddCert(c)
			}
			_, err := n.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "imported intermediate" {
				// It verifies with the operator's root alone as the anchor.
				only := x509.NewCertPool()
				only.AddCert(opRoot.Cert)
				if _, err := n.leaf.Verify(x509.VerifyOptions{Roots: only, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Fatalf("the SVID does not chain to the operator's root: %v", err)
				}
			}
		})
	}
	if _, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", CAImportCert: interPEM, CAImportKey: interKey}); err == nil ||
		!strings.Contains(err.Error(), "chain") {
		t.Fatalf("a server with an intermediate and no chain started: %v", err)
	}
}
