package server_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/server"
)

// TestRootKeyNotStored: after init, no value in the store (decrypted where
// the barrier opens it, raw otherwise) holds a private key whose public key
// is the root certificate's, for a root Warden made and for an operator's
// imported root. The issuing intermediate's key is stored, and the scan
// finds it, so the scan is not blind.
func TestRootKeyNotStored(t *testing.T) {
	opRoot, err := pki.NewRootCA(pki.CAOptions{CommonName: "Operator root"})
	if err != nil {
		t.Fatal(err)
	}
	opRootPEM, opRootKey, err := opRoot.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*server.Config)
	}{
		{"generated ec-p256", nil},
		{"generated ed25519", func(c *server.Config) { c.CAKeyType = "ed25519" }},
		{"imported root", func(c *server.Config) { c.CAImportCert, c.CAImportKey = opRootPEM, opRootKey }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, t.TempDir(), tc.mod)
			h.initUnseal(1, 1)
			bundle := h.want(h.do("GET", "/v1/pki/ca", "", nil), 200).body
			certs, err := pki.ParseCertificates(bundle)
			if err != nil {
				t.Fatal(err)
			}
			var root, inter *x509.Certificate
			for _, c := range certs {
				if c.CheckSignatureFrom(c) == nil {
					root = c
				} else {
					inter = c
				}
			}
			if root == nil || inter == nil {
				t.Fatalf("bundle lacks the root or the intermediate:\n%s", bundle)
			}
			es, err := h.srv.Store().List(context.Background(), "", 0)
			if err != nil {
				t.Fatal(err)
			}
			foundInter := false
			for _, e := range es {
				values := [][]byte{e.Value}
				if pt, err := h.srv.Core().Decrypt(e.Key, e.Value); err == nil {
					values = append(values, pt)
				}
				for _, v := range values {
					for _, k := range privateKeys(v) {
						if samePublic(k, root.PublicKey) {
							t.Errorf("%s holds the root CA's private key", e.Key)
						}
						if samePublic(k, inter.PublicKey) {
							foundInter = true
						}
					}
				}
			}
			if !foundInter {
				t.Fatalf("the scan of %d entries did not find the intermediate's key", len(es))
			}
		})
	}
}

// privateKeys returns the private keys in v: v itself as PKCS #8 DER, and
// every PEM block of v that parses as PKCS #8, SEC 1 or PKCS #1.
func privateKeys(v []byte) []crypto.PrivateKey {
	var out []crypto.PrivateKey
	parse := func(der []byte) {
		if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
			out = append(out, k)
		} else if k, err := x509.ParseECPrivateKey(der); err == nil {
			out = append(out, k)
		} else if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
			out = append(out, k)
		}
	}
	parse(v)
	for rest := v; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		parse(b.Bytes)
	}
}

func samePublic(k crypto.PrivateKey, pub crypto.PublicKey) bool {
	s, ok := k.(crypto.Signer)
	if !ok {
		return false
	}
	e, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(pub)
}
