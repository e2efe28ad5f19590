package authority

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/pki"
)

func pemOf(t *testing.T, ca *pki.CA) (cert, key []byte) {
	t.Helper()
	c, k, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TestInitOptions: new CAs of both key types, an imported root (Warden makes
// the intermediate; the root key stays with the operator), an imported
// intermediate with its chain (the root key never reaches Warden), and
// refusals.
func TestInitOptions(t *testing.T) {
	opRoot, err := pki.NewRootCA(pki.CAOptions{CommonName: "Operator root"})
	if err != nil {
		t.Fatal(err)
	}
	opInter, err := pki.NewIntermediateCA(opRoot, pki.CAOptions{CommonName: "Operator issuing"})
	if err != nil {
		t.Fatal(err)
	}
	rootCert, rootKey := pemOf(t, opRoot)
	interCert, interKey := pemOf(t, opInter)
	otherDomain, err := pki.NewRootCA(pki.CAOptions{CommonName: "Other", TrustDomain: "other.example"})
	if err != nil {
		t.Fatal(err)
	}
	odInter, err := pki.NewIntermediateCA(otherDomain, pki.CAOptions{CommonName: "Other issuing", TrustDomain: "other.example"})
	if err != nil {
		t.Fatal(err)
	}
	odCert, odKey := pemOf(t, odInter)
	odRoot, _ := pemOf(t, otherDomain)

	t.Run("ed25519", func(t *testing.T) {
		p, err := makeCA(InitOptions{KeyType: pki.KeyEd25519})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.issuer.Key.(ed25519.PrivateKey); !ok {
			t.Fatalf("issuer key %T", p.issuer.Key)
		}
	})
	t.Run("imported root", func(t *testing.T) {
		p, err := makeCA(InitOptions{ImportCert: rootCert, ImportKey: rootKey})
		if err != nil {
			t.Fatal(err)
		}
		if string(p.rootsPEM) != string(rootCert) || p.issuer.Cert.CheckSignatureFrom(opRoot.Cert) != nil {
			t.Fatal("the intermediate is not under the imported root")
		}
	})
	t.Run("imported intermediate", func(t *testing.T) {
		p, err := makeCA(InitOptions{ImportCert: interCert, ImportKey: interKey, ImportChain: rootCert})
		if err != nil {
			t.Fatal(err)
		}
		if !p.issuer.Cert.Equal(opInter.Cert) {
			t.Fatal("the imported intermediate is not the issuer")
		}
		blk, _ := pem.Decode(p.rootsPEM)
		if c, _ := x509.ParseCertificate(blk.Bytes); c == nil || !c.Equal(opRoot.Cert) {
			t.Fatal("the bundle does not start with the operator's root")
		}
	})
	for _, tc := range []struct {
		name string
		o    InitOptions
		want string
	}{
		{"unknown key type", InitOptions{KeyType: "rsa"}, "CA key type"},
		{"cert without key", InitOptions{ImportCert: rootCert}, "certificate and its key"},
		{"wrong key", InitOptions{ImportCert: rootCert, ImportKey: interKey}, "does not match"},
		{"intermediate without chain", InitOptions{ImportCert: interCert, ImportKey: interKey}, "chain"},
		{"chain without root", InitOptions{ImportCert: interCert, ImportKey: interKey, ImportChain: interCert}, "chain"},
		{"root with chain", InitOptions{ImportCert: rootCert, ImportKey: rootKey, ImportChain: rootCert}, "no chain"},
		{"name constraints of another trust domain", InitOptions{ImportCert: odCert, ImportKey: odKey, ImportChain: odRoot}, "trust domain"},
		{"bad trust domain", InitOptions{TrustDomain: "Bad Domain"}, "trust domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckInitOptions(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}
