// Package authority keeps the cluster's certificate authority — the issuing
// intermediate's key, and the root's and intermediate's certificates, created
// or imported at init — behind the barrier, with the trust domain fixed at
// init, and serves the trust bundle. The root's private key is never stored:
// at init it signs the intermediate and is dropped (docs/pki.md). Issuance,
// enrollment and revocation build on it (internal/pki has the algorithms).
// authority knows nothing about HTTP or Raft.
package authority

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/store/kv"
)

const (
	keyRootCert  = "pki/root/cert"
	keyInterCert = "pki/intermediate/cert"
	keyInterKey  = "pki/intermediate/key"
	keyDomain    = "pki/trust-domain"
	// DefaultTrustDomain is used when --trust-domain is not given at init.
	DefaultTrustDomain = "warden.local"
)

// Encrypter encrypts a value for a storage key.
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// Storage is the encrypted view (core.Core).
type Storage interface {
	GetStale(key string) (kv.Entry, error)
}

// InitOptions say how init makes the cluster's CA. The zero value: a new
// ECDSA P-256 root and issuing intermediate for warden.local, the root's key
// used once to sign the intermediate and then dropped, never stored.
type InitOptions struct {
	TrustDomain string      // "" means DefaultTrustDomain
	KeyType     pki.KeyType // for new CAs: "" (ECDSA P-256) or pki.KeyEd25519
	// An operator's CA instead of a new root (PEM; key unencrypted PKCS #8):
	//   - a self-signed root with its key: Warden makes the issuing
	//     intermediate under it, and stores the root's certificate but not
	//     its key, which stays with the operator;
	//   - an intermediate with its key and ImportChain up to and including
	//     the root: Warden issues with it, and the root's key never reaches
	//     Warden.
	ImportCert, ImportKey, ImportChain []byte
}

// caPair is the CA material init stores: the trust anchors (PEM, one or
// more certificates) and the issuing CA. It holds no root key.
type caPair struct {
	rootsPEM []byte
	issuer   *pki.CA
}

// makeCA creates or imports the CA per o and checks that it can issue for
// the trust domain.
func makeCA(o InitOptions) (*caPair, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if err := names.ValidateTrustDomain(o.TrustDomain); err != nil {
		return nil, err
	}
	switch o.KeyType {
	case "", pki.KeyECP256, pki.KeyEd25519:
	default:
		return nil, fmt.Errorf("CA key type %q: want %s or %s", o.KeyType, pki.KeyECP256, pki.KeyEd25519)
	}
	var p caPair
	interOpts := pki.CAOptions{CommonName: "Warden issuing CA " + o.TrustDomain, KeyType: o.KeyType}
	switch {
	case len(o.ImportCert) == 0 && len(o.ImportKey) == 0 && len(o.ImportChain) == 0:
		root, err := pki.NewRootCA(pki.CAOptions{CommonName: "Warden root CA " + o.TrustDomain, KeyType: o.KeyType})
		if err != nil {
			return nil, err
		}
		p.issuer, err = pki.NewIntermediateCA(root, interOpts)
		// The root's key has signed the intermediate, its one use: drop it
		// (never marshaled, never stored). Go gives no guaranteed wipe of
		// key memory; nothing references it after this.
		root.Key = nil
		if err != nil {
			return nil, err
		}
		p.rootsPEM = pki.Bundle(root.Cert)
	case len(o.ImportCert) == 0 || len(o.ImportKey) == 0:
		return nil, fmt.Errorf("import CA: give the certificate and its key")
	default:
		ca, err := pki.ParseCA(o.ImportCert, o.ImportKey, o.ImportChain)
		if err != nil {
			return nil, fmt.Errorf("import CA: %w", err)
		}
		selfSigned := ca.Cert.CheckSignatureFrom(ca.Cert) == nil
		switch {
		case selfSigned && len(ca.Chain) > 0:
			return nil, fmt.Errorf("import CA: a self-signed root takes no chain")
		case selfSigned:
			p.issuer, err = pki.NewIntermediateCA(ca, interOpts)
			ca.Key = nil // the operator keeps the root's key; Warden does not
			if err != nil {
				return nil, fmt.Errorf("import CA: %w", err)
			}
			p.rootsPEM = pki.Bundle(ca.Cert)
		case len(ca.Chain) == 0:
			return nil, fmt.Errorf("import CA: an intermediate needs its chain up to the root (--import-ca-chain)")
		default:
			last := ca.Chain[len(ca.Chain)-1]
			if last.CheckSignatureFrom(last) != nil {
				return nil, fmt.Errorf("import CA: the chain must end with the self-signed root")
			}
			p.issuer = ca
			// Anchors: the chain from the root down, so verifiers with the
			// bundle can build the path from an SVID's issuer.
			for i := len(ca.Chain) - 1; i >= 0; i-- {
				p.rootsPEM = append(p.rootsPEM, pki.Bundle(ca.Chain[i])...)
			}
		}
	}
	// The issuing CA must be able to issue in this trust domain (name
	// constraints, validity): try it with a throwaway key.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		return nil, err
	}
	csr, _ := x509.ParseCertificateRequest(der)
	if _, err := p.issuer.Issue(pki.IssueRequest{CSR: csr, SPIFFEID: "spiffe://" + o.TrustDomain + "/node/check", TTL: time.Minute}); err != nil {
		return nil, fmt.Errorf("CA cannot issue for trust domain %q: %w", o.TrustDomain, err)
	}
	return &p, nil
}

// CheckInitOptions checks o without storing anything, so a server can
// refuse a bad --import-ca-* or --ca-key-type at start.
func CheckInitOptions(o InitOptions) error {
	_, err := makeCA(o)
	return err
}

// Bootstrap creates (or imports) the CA per o and returns the ops that
// store it, encrypted, with the trust domain.
func Bootstrap(enc Encrypter, o InitOptions) ([]kv.Op, error) {
	p, err := makeCA(o)
	if err != nil {
		return nil, err
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	ic, ik, err := p.issuer.MarshalPEM()
	if err != nil {
		return nil, err
	}
	defer clear(ik)
	kvs := []struct {
		k string
		v []byte
	}{{keyRootCert, p.rootsPEM}, {keyInterCert, ic}, {keyInterKey, ik}, {keyDomain, []byte(o.TrustDomain)}}
	var ops []kv.Op
	for _, x := range kvs {
		ct, err := enc.Encrypt(x.k, x.v)
		if err != nil {
			return nil, err
		}
		ops = append(ops, kv.Op{Type: kv.OpPut, Key: x.k, Value: ct})
	}
	return ops, nil
}

// Service serves the CA. Safe for concurrent use.
type Service struct {
	st Storage

	mu     sync.Mutex
	bundle []byte
	domain string
	inter  issuerCache
}

// issuerCache is the parsed intermediate CA between issuances: parsing it
// (its key is checked with a scalar multiplication) cost about 5% of a
// renewal. It is valid while the stored certificate is the same and the
// stored key has the same version, and dropped on seal.
type issuerCache struct {
	cert   []byte
	keyVer uint64
	ca     *pki.CA
}

// New returns a Service.
func New(st Storage) *Service { return &Service{st: st} }

// Forget drops cached material (called on seal).
func (s *Service) Forget() {
	s.mu.Lock()
	s.bundle, s.domain = nil, ""
	s.inter = issuerCache{}
	s.mu.Unlock()
}

// issuer returns the intermediate CA that signs node and server
// certificates, parsed once per stored version.
func (s *Service) issuer() (*pki.CA, error) {
	c, err := s.st.GetStale(keyInterCert)
	if err != nil {
		return nil, err
	}
	k, err := s.st.GetStale(keyInterKey)
	if err != nil {
		return nil, err
	}
	defer clear(k.Value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inter.ca != nil && s.inter.keyVer == k.Version && bytes.Equal(s.inter.cert, c.Value) {
		return s.inter.ca, nil
	}
	ca, err := pki.ParseCA(c.Value, k.Value, nil)
	if err != nil {
		return nil, err
	}
	s.inter = issuerCache{cert: bytes.Clone(c.Value), keyVer: k.Version, ca: ca}
	return ca, nil
}

// Bundle returns the trust bundle: the root and intermediate certificates,
// PEM.
func (s *Service) Bundle() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundle != nil {
		return s.bundle, nil
	}
	var b []byte
	for _, k := range []string{keyRootCert, keyInterCert} {
		e, err := s.st.GetStale(k)
		if err != nil {
			return nil, fmt.Errorf("authority: %s: %w", k, err)
		}
		b = append(b, e.Value...)
	}
	s.bundle = b
	return b, nil
}

// TrustDomain returns the trust domain fixed at init.
func (s *Service) TrustDomain() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.domain != "" {
		return s.domain, nil
	}
	e, err := s.st.GetStale(keyDomain)
	if err != nil {
		return "", fmt.Errorf("authority: trust domain: %w", err)
	}
	s.domain = string(e.Value)
	return s.domain, nil
}
