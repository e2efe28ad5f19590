package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/crypto/ocsp"

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

func TestEnrollAndRevoke(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 3}), 200)
	tok := h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "Web-1", "zone": "dmz", "cert_ttl": "1h"}), 200).json(t)
	if !strings.HasPrefix(tok["token"].(string), "wjt_") || tok["expires_at"] == "" {
		t.Fatalf("token: %v", tok)
	}
	// A confusable name is refused with the code point; a duplicate too.
	r := h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "wеb-2"}), 400)
	if !strings.Contains(r.errorText(t), "U+0435") {
		t.Fatalf("confusable: %s", r.body)
	}
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "web-1"}), 409)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	body := map[string]any{"name": "web-1", "token": tok["token"], "csr": csr}
	// The private key never crosses the wire: the request carries only the CSR.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	reqJSON, _ := json.Marshal(body)
	if bytes.Contains(reqJSON, mustBytes(t, key)) || bytes.Contains(reqJSON, []byte(base64.StdEncoding.EncodeToString(keyDER)[:40])) {
		t.Fatal("the enrollment request contains the private key")
	}
	en := h.want(h.do("POST", "/v1/pki/enroll", "", body), 200).json(t)
	if en["spiffe_id"] != "spiffe://warden.local/node/web-1" {
		t.Fatalf("enroll: %v", en)
	}
	h.want(h.do("POST", "/v1/pki/enroll", "", body), 401) // one time only

	leaf, _ := pem.Decode([]byte(en["certificate"].(string)))
	cert, err := x509.ParseCertificate(leaf.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(en["bundle"].(string)))
	inters := x509.NewCertPool()
	inters.AppendCertsFromPEM([]byte(en["certificate"].(string)))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://warden.local/node/web-1" {
		t.Fatalf("URI SANs %v", cert.URIs)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("certificate is not for the node's key")
	}
	// go-spiffe, the SPIFFE reference library, accepts it as an X.509-SVID.
	keyDERForSVID, _ := x509.MarshalPKCS8PrivateKey(key)
	svid, err := x509svid.Parse([]byte(en["certificate"].(string)), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDERForSVID}))
	if err != nil || svid.ID.String() != "spiffe://warden.local/node/web-1" {
		t.Fatalf("go-spiffe x509svid.Parse: %v", err)
	}

	// Revocation: the CRL lists the serial and OCSP says revoked.
	crl := func() *x509.RevocationList {
		r := h.want(h.do("GET", "/v1/pki/crl", "", nil), 200)
		l, err := x509.ParseRevocationList(r.body)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if n := len(crl().RevokedCertificateEntries); n != 0 {
		t.Fatalf("%d revoked before revocation", n)
	}
	ocspStatus := func() int {
		ocspReq, _ := ocsp.CreateRequest(cert, issuerOf(t, en["certificate"].(string)), nil)
		r := h.want(h.do("POST", "/v1/pki/ocsp", "", ocspReq), 200)
		resp, err := ocsp.ParseResponseForCert(r.body, cert, issuerOf(t, en["certificate"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	if ocspStatus() != ocsp.Good {
		t.Fatal("OCSP before revocation")
	}
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	l := crl()
	if len(l.RevokedCertificateEntries) != 1 || l.RevokedCertificateEntries[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("CRL after revocation: %v", l.RevokedCertificateEntries)
	}
	if ocspStatus() != ocsp.Revoked {
		t.Fatal("OCSP after revocation")
	}
	// The name can be reused once the old identity is revoked.
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "web-1"}), 200)
}

func issuerOf(t *testing.T, chainPEM string) *x509.Certificate {
	t.Helper()
	_, rest := pem.Decode([]byte(chainPEM))
	b, _ := pem.Decode(rest)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustBytes(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNodeMTLS: a node authenticates with its certificate, is authorized by
// policy as Node::"<name>" with its zone, and is refused at once after
// revocation.
func TestNodeMTLS(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "nodes", `permit (principal is Node, action in [Action::"auth.whoami", Action::"kv.read"], resource)
when { principal.zone == "dmz" };`), 200)
	h.want(h.do("PUT", "/v1/kv/data/app/cfg", root, map[string]any{"data": map[string]string{"k": "v"}}), 200)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 3}), 200)
	tok := h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "web-1", "zone": "dmz"}), 200).json(t)["token"]
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	en := h.want(h.do("POST", "/v1/pki/enroll", "", map[string]any{"name": "web-1", "token": tok,
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))}), 200).json(t)

	node := enrolled{name: "web-1", key: key, chain: en["certificate"].(string)}
	get := func(path string) (int, []byte) {
		r := h.nodeDo(node, "GET", path, nil)
		return r.status, r.body
	}
	code, body := get("/v1/auth/whoami")
	var who map[string]any
	json.Unmarshal(body, &who)
	if code != 200 || who["principal"] != `Node::"web-1"` || who["auth_method"] != "mtls" ||
		who["attributes"].(map[string]any)["spiffe_id"] != "spiffe://warden.local/node/web-1" {
		t.Fatalf("whoami: %d %s", code, body)
	}
	if code, body := get("/v1/kv/data/app/cfg"); code != 200 {
		t.Fatalf("node read: %d %s", code, body)
	}
	if code, _ := get("/v1/kv/metadata/app/cfg"); code != 403 {
		t.Fatalf("node metadata (no policy): %d", code)
	}
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	if code, body := get("/v1/auth/whoami"); code != 401 || !strings.Contains(string(body), "revoked") {
		t.Fatalf("after revocation: %d %s", code, body)
	}
}

// TestConduits: flows between zones are denied until a conduit allows them,
// and then only on its port and direction.
func TestConduits(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 3}), 200)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "plant", "level": 2}), 200)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "bad", "level": 5}), 400)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 1}), 409)
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "gw-1", "zone": "dmz"}), 200)
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "plc-1", "zone": "plant"}), 200)
	h.want(h.do("POST", "/v1/nodes/tokens", root, map[string]any{"name": "x-1", "zone": "nowhere"}), 400)
	check := func(from, to string, port int) string {
		t.Helper()
		d := h.want(h.do("POST", "/v1/conduits/check", root, map[string]any{"from_node": from, "to_node": to, "port": port}), 200).json(t)
		return d["decision"].(string)
	}
	if check("gw-1", "plc-1", 502) != "deny" {
		t.Fatal("allowed with no conduit")
	}
	c := h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "dmz", "to": "plant", "port": 502}), 200).json(t)
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "dmz", "to": "nowhere", "port": 502}), 400)
	for _, tc := range []struct {
		from, to string
		port     int
		want     string
	}{
		{"gw-1", "plc-1", 502, "allow"},
		{"gw-1", "plc-1", 503, "deny"},
		{"plc-1", "gw-1", 502, "deny"},
	} {
		if got := check(tc.from, tc.to, tc.port); got != tc.want {
			t.Fatalf("%s -> %s:%d = %s, want %s", tc.from, tc.to, tc.port, got, tc.want)
		}
	}
	// The conduit is a visible, generated policy in the warden store.
	p := h.want(h.do("GET", "/v1/authz/stores/warden/policies/"+c["policy"].(string), root, nil), 200).json(t)
	if !strings.Contains(p["policy"].(string), `context.port == 502`) {
		t.Fatalf("conduit policy: %v", p["policy"])
	}
}

// TestConduitList: GET /v1/conduits reads the conduits back from their
// generated policies, sorted by policy name; a policy named like a
// conduit whose text is not Warden's (written by hand) is not one.
func TestConduitList(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	empty := h.want(h.do("GET", "/v1/conduits", root, nil), 200)
	if got := strings.TrimSpace(string(empty.body)); got != `{"conduits":[]}` {
		t.Fatalf("no conduits: %s", got)
	}
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "dmz", "level": 3}), 200)
	h.want(h.do("POST", "/v1/zones", root, map[string]any{"name": "plant", "level": 2}), 200)
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "plant", "to": "dmz", "port": 161, "protocol": "udp"}), 200)
	h.want(h.do("POST", "/v1/conduits", root, map[string]any{"from": "dmz", "to": "plant", "port": 443, "mtls": true}), 200)
	h.want(h.writePolicy(root, "warden", "conduit.dmz.plant.tcp.22",
		`permit (principal, action == Action::"conduit.connect", resource);`), 200)
	h.want(h.writePolicy(root, "warden", "other", `permit (principal == User::"bob", action == Action::"zone.list", resource);`), 200)
	got := strings.TrimSpace(string(h.want(h.do("GET", "/v1/conduits", root, nil), 200).body))
	want := `{"conduits":[` +
		`{"from":"dmz","to":"plant","port":443,"protocol":"tcp","mtls":true,"policy":"conduit.dmz.plant.tcp.443"},` +
		`{"from":"plant","to":"dmz","port":161,"protocol":"udp","policy":"conduit.plant.dmz.udp.161"}]}`
	if got != want {
		t.Fatalf("GET /v1/conduits:\n got %s\nwant %s", got, want)
	}
}
