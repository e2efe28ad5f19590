package cosign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/witness"
)

func TestCheckVerifierKey(t *testing.T) {
	_, cosigKey, err := witness.GenerateKey("example.com/w1")
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := audit.GenerateKey("example.com/log", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, good := range []string{cosigKey, edKey} {
		if name, err := CheckVerifierKey(good); err != nil || !strings.HasPrefix(good, name+"+") {
			t.Fatalf("%s: %q %v", good, name, err)
		}
	}
	parts := strings.Split(cosigKey, "+")
	h, k := parts[1], parts[2]
	cases := map[string]string{
		"empty":          "",
		"no hash":        "example.com/w1+" + k,
		"space in name":  "example com+" + h + "+" + k,
		"upper hash":     "example.com/w1+" + strings.ToUpper(h) + "+" + k,
		"wrong hash":     "example.com/w1+00000000+" + k,
		"renamed":        "example.com/w2+" + h + "+" + k,
		"bad base64":     "example.com/w1+" + h + "+" + k[:len(k)-2] + "!!",
		"short key":      "example.com/w1+" + h + "+BAAA",
		"too long":       strings.Repeat("a", 600),
		"ecdsa alg byte": "example.com/w1+" + h + "+Ag" + k[2:],
	}
	for name, v := range cases {
		if _, err := CheckVerifierKey(v); err == nil {
			t.Errorf("%s: %q accepted", name, v)
		}
	}
}

func FuzzCheckVerifierKey(f *testing.F) {
	_, cosigKey, _ := witness.GenerateKey("example.com/w1")
	f.Add(cosigKey)
	f.Add("a+00000000+AQ==")
	f.Fuzz(func(t *testing.T, s string) {
		name, err := CheckVerifierKey(s)
		if err == nil && !strings.HasPrefix(s, name+"+") {
			t.Fatalf("accepted %q with name %q", s, name)
		}
	})
}

func testCA(t *testing.T) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestCheckExternal: every bad field is refused as Invalid, naming it.
func TestCheckExternal(t *testing.T) {
	_, vkey, _ := witness.GenerateKey("example.com/w1")
	good := ExternalWitness{Name: "w1", URL: "https://witness.example/tlog/", VerifierKey: vkey, CACert: testCA(t)}
	got, err := CheckExternal(good)
	if err != nil || got.URL != "https://witness.example/tlog" {
		t.Fatalf("%+v %v", got, err)
	}
	cases := []struct {
		name, field string
		edit        func(*ExternalWitness)
	}{
		{"upper-case name", "name", func(w *ExternalWitness) { w.Name = "W1" }},
		{"empty name", "name", func(w *ExternalWitness) { w.Name = "" }},
		{"http", "url", func(w *ExternalWitness) { w.URL = "http://witness.example" }},
		{"credentials", "url", func(w *ExternalWitness) { w.URL = "https://u:p@witness.example" }},
		{"query", "url", func(w *ExternalWitness) { w.URL = "https://witness.example/?a=b" }},
		{"no host", "url", func(w *ExternalWitness) { w.URL = "https:///x" }},
		{"long url", "url", func(w *ExternalWitness) { w.URL = "https://w.example/" + strings.Repeat("a", MaxURLBytes) }},
		{"bad key", "verifier_key", func(w *ExternalWitness) { w.VerifierKey = "w1+00000000+AQ==" }},
		{"not PEM", "ca_cert", func(w *ExternalWitness) { w.CACert = "hello" }},
		{"a key, not a certificate", "ca_cert", func(w *ExternalWitness) {
			w.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))
		}},
	}
	for _, tc := range cases {
		w := good
		tc.edit(&w)
		_, err := CheckExternal(w)
		if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want Invalid naming %s", tc.name, err, tc.field)
		}
	}
}
