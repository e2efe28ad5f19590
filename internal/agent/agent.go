// Package agent is the node side of Warden: it enrolls the node with a
// one-time join token and keeps its identity files. The private key is made
// here and never leaves the node: the server only ever sees a CSR.
//
// Files in the data dir, each written atomically (temp file, fsync, rename):
// svid.pem (the certificate, then the intermediate), svid-key.pem (PKCS #8,
// mode 0600) and bundle.pem (the trust bundle).
//
// Run renews over mutual TLS before expiry and rides out server outages with
// the current files. If the certificate expired during an outage, it
// re-enrolls with proof of possession of the node key (the expired
// certificate and a CSR signed by the same key), unless the node was
// revoked.
package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/pkg/client"
)

// File names in the data dir.
const (
	SVIDFile   = "svid.pem"
	KeyFile    = "svid-key.pem"
	BundleFile = "bundle.pem"
)

// Config configures an enrollment.
type Config struct {
	Client    *client.Client
	JoinToken string
	DataDir   string
}

// Result describes the identity the node holds.
type Result struct {
	SPIFFEID  string
	ExpiresAt string
}

// Enroll makes a key pair, enrolls with the join token, and writes the
// identity files.
func Enroll(ctx context.Context, cfg Config) (Result, error) {
	if cfg.JoinToken == "" {
		return Result{}, errors.New("agent: a join token is required to enroll")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return Result{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Result{}, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return Result{}, err
	}
	en, err := cfg.Client.Enroll(ctx, "", cfg.JoinToken, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
		LocalAddresses()...)
	if err != nil {
		return Result{}, fmt.Errorf("agent: enroll: %w", err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Result{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	clear(kd)
	// The key first: a crash after it leaves a key without a certificate
	// (harmless), never a certificate without its key.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {SVIDFile, []byte(en.Certificate), 0o644}, {BundleFile, []byte(en.Bundle), 0o644}} {
		if err := fsutil.WriteFileAtomic(filepath.Join(cfg.DataDir, f.name), f.data, f.mode); err != nil {
			return Result{}, fmt.Errorf("agent: write %s: %w", f.name, err)
		}
	}
	clear(keyPEM)
	return Result{SPIFFEID: en.SPIFFEID, ExpiresAt: en.ExpiresAt}, nil
}

// maxAddresses is how many addresses a node reports (the server's bound).
const maxAddresses = 32

// LocalAddresses returns the addresses of this host's interfaces that
// other hosts may see traffic from: neither loopback, link-local,
// multicast nor unspecified; at most 32. The node reports them at
// enrollment and renewal, so that while it is quarantined other agents
// drop its traffic. Nil when the interfaces cannot be read.
func LocalAddresses() []string {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, ia := range ifas {
		pn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(pn.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() || a.IsUnspecified() ||
			slices.Contains(out, a.String()) {
			continue
		}
		out = append(out, a.String())
		if len(out) == maxAddresses {
			break
		}
	}
	return out
}
