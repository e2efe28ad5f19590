package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// docSigner holds the key this server signs compliance documents with
// (reports, the check policies sent to agents) when it has no cluster
// certificate: a standalone server. The key lives only in memory; its
// certificate, issued by the cluster's CA for the server's identity
// (spiffe://<td>/server/<node id>), lasts signerTTL and is replaced at
// half its life. A standalone server has no cluster port, so that
// certificate opens nothing; in cluster mode the server signs with its
// cluster certificate, which is recorded, renewed and revoked with its
// membership (docs/security.md).
type docSigner struct {
	mu    sync.Mutex
	key   crypto.Signer
	chain []*x509.Certificate
}

const signerTTL = 24 * time.Hour

// DocumentSigner returns the key and certificate chain (leaf first) this
// server signs compliance documents with.
func (s *Server) DocumentSigner() (crypto.Signer, []*x509.Certificate, error) {
	if s.cn != nil {
		c := s.cn.cert()
		if c == nil {
			return nil, nil, errors.New("this server has no cluster certificate yet")
		}
		key, ok := c.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, nil, errors.New("the cluster certificate's key cannot sign")
		}
		chain := make([]*x509.Certificate, 0, len(c.Certificate))
		for _, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, nil, err
			}
			chain = append(chain, x)
		}
		return key, chain, nil
	}
	d := &s.docSigner
	d.mu.Lock()
	defer d.mu.Unlock()
	now := s.now()
	if d.key != nil {
		leaf := d.chain[0]
		if now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)) {
			return d.key, d.chain, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	sc, err := s.nodes.IssueServer(s.st.NodeID(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil, signerTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("document signer: %w", err)
	}
	var chain []*x509.Certificate
	for rest := sc.Chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, x)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("document signer: the CA returned no certificate")
	}
	d.key, d.chain = key, chain
	return key, chain, nil
}
