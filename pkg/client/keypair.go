package client

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// KeyPair serves a certificate and key from PEM files that another process
// replaces (the agent's svid.pem and svid-key.pem, renewed well before
// expiry): each handshake checks the files' modification times and sizes,
// and reads them again when either changed. A pair that does not load (for
// example the key was replaced and the certificate not yet) keeps the
// previous one in use. The zero value is not usable: set both file names.
// It is safe for concurrent use.
type KeyPair struct {
	CertFile, KeyFile string

	mu   sync.Mutex
	cert *tls.Certificate
	seen [2]fileStamp // of CertFile, KeyFile when cert was loaded
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// Certificate returns the current pair, loading it if the files changed
// since the last load. It fails only if no pair was ever loaded.
func (k *KeyPair) Certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, err1 := stamp(k.CertFile)
	ks, err2 := stamp(k.KeyFile)
	if err1 == nil && err2 == nil && k.cert != nil && k.seen == [2]fileStamp{cs, ks} {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
	if err == nil {
		k.cert, k.seen = &c, [2]fileStamp{cs, ks}
		return k.cert, nil
	}
	if k.cert != nil {
		return k.cert, nil
	}
	return nil, fmt.Errorf("warden: key pair %s, %s: %w", k.CertFile, k.KeyFile, err)
}

// GetCertificate is for tls.Config.GetCertificate (the service's server
// certificate).
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate()
}

// GetClientCertificate is for tls.Config.GetClientCertificate (a node's
// or service's client certificate towards Warden; New uses it for
// Config.ClientCertFile and ClientKeyFile).
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate()
}
