// Package authority keeps the cluster's certificate authority — a root and
// an issuing intermediate, created at init — behind the barrier, with the
// trust domain fixed at init, and serves the trust bundle. Issuance,
// enrollment and revocation build on it (internal/pki has the algorithms).
// authority knows nothing about HTTP or Raft.
package authority

import (
	"fmt"
	"sync"

	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/pki"
	"github.com/warden-sec/warden/internal/store"
)

const (
	keyRootCert  = "pki/root/cert"
	keyRootKey   = "pki/root/key"
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
	GetStale(key string) (store.Entry, error)
}

// Bootstrap creates the root and intermediate CAs (ECDSA P-256) and returns
// the ops that store them, encrypted, with the trust domain.
func Bootstrap(enc Encrypter, trustDomain string) ([]store.Op, error) {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	if err := names.ValidateTrustDomain(trustDomain); err != nil {
		return nil, err
	}
	root, err := pki.NewRootCA(pki.CAOptions{CommonName: "Warden root CA " + trustDomain})
	if err != nil {
		return nil, err
	}
	inter, err := pki.NewIntermediateCA(root, pki.CAOptions{CommonName: "Warden issuing CA " + trustDomain})
	if err != nil {
		return nil, err
	}
	rc, rk, err := root.MarshalPEM()
	if err != nil {
		return nil, err
	}
	ic, ik, err := inter.MarshalPEM()
	if err != nil {
		return nil, err
	}
	defer clear(rk)
	defer clear(ik)
	var ops []store.Op
	for _, kv := range []struct {
		k string
		v []byte
	}{{keyRootCert, rc}, {keyRootKey, rk}, {keyInterCert, ic}, {keyInterKey, ik}, {keyDomain, []byte(trustDomain)}} {
		ct, err := enc.Encrypt(kv.k, kv.v)
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.Op{Type: store.OpPut, Key: kv.k, Value: ct})
	}
	return ops, nil
}

// Service serves the CA. Safe for concurrent use.
type Service struct {
	st Storage

	mu     sync.Mutex
	bundle []byte
	domain string
}

// New returns a Service.
func New(st Storage) *Service { return &Service{st: st} }

// Forget drops cached material (called on seal).
func (s *Service) Forget() {
	s.mu.Lock()
	s.bundle, s.domain = nil, ""
	s.mu.Unlock()
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
