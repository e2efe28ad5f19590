package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/warden-sec/warden/internal/agent/ship"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/pkg/client"
)

// RunConfig configures the renewal loop.
type RunConfig struct {
	Server string // server URL
	// Servers, when set, are all the servers: Run starts with Server (or
	// the first) and moves to the next after each failed attempt.
	Servers []string
	CACert  string // CA of the server's TLS certificate
	DataDir string
	Logger  *slog.Logger
	// OnRenew, if set, is called after every successful renewal.
	OnRenew func(expires time.Time)
	// OnReenroll, if set, is called instead of OnRenew when the renewal
	// was a re-enrollment (the certificate had expired).
	OnReenroll func(expires time.Time)
	// OnFailure, if set, is called after every failed renewal attempt.
	OnFailure func(err error)
	// Now is the clock that decides when to renew and whether the
	// certificate has expired; nil means time.Now.
	Now func() time.Time
}

func (cfg *RunConfig) now() time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

// MaxBackoff bounds the wait between failed renewal attempts.
const MaxBackoff = 30 * time.Second

// Run keeps the node's certificate fresh until ctx ends. It renews over
// mutual TLS, with the current certificate, once 50–60% (jittered) of the
// time between receiving the certificate and its expiry has passed. When the
// servers cannot be reached it keeps the current files — the node keeps
// serving with them — and retries with exponential backoff up to
// MaxBackoff. If the certificate expired meanwhile (a long outage), it
// re-enrolls with proof of possession of the node key instead (see
// RenewOnce). It returns only when ctx ends.
func Run(ctx context.Context, cfg RunConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	next := 0
	if cfg.Server == "" && len(cfg.Servers) > 0 {
		cfg.Server = cfg.Servers[0]
	}
	for {
		at, err := renewAt(cfg.DataDir)
		if err != nil {
			return err
		}
		if !ship.Sleep(ctx, at.Sub(cfg.now())) {
			return nil
		}
		for attempt := 0; ; attempt++ {
			exp, reenrolled, err := renewOnce(ctx, cfg)
			if err == nil {
				log.Info("certificate renewed", "expires", exp, "reenrolled", reenrolled)
				if reenrolled && cfg.OnReenroll != nil {
					cfg.OnReenroll(exp)
				} else if cfg.OnRenew != nil {
					cfg.OnRenew(exp)
				}
				break
			}
			if cfg.OnFailure != nil {
				cfg.OnFailure(err)
			}
			if len(cfg.Servers) > 1 {
				next = (next + 1) % len(cfg.Servers)
				cfg.Server = cfg.Servers[next]
			}
			wait := min(time.Second<<min(attempt, 5), MaxBackoff)
			log.Warn("renewal failed; keeping the current certificate", "err", err, "retry_in", wait)
			if !ship.Sleep(ctx, wait) {
				return nil
			}
		}
	}
}

// renewAt is when the current certificate should be renewed: between 50%
// and 60% of the way from when it was written to its expiry.
func renewAt(dir string) (time.Time, error) {
	path := filepath.Join(dir, SVIDFile)
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("agent: %w (enroll first)", err)
	}
	cert, err := loadLeaf(path)
	if err != nil {
		return time.Time{}, err
	}
	got := fi.ModTime()
	life := cert.NotAfter.Sub(got)
	frac := 0.5 + 0.1*mrand.Float64()
	return got.Add(time.Duration(float64(life) * frac)), nil
}

func loadLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("agent: svid.pem holds no certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// RenewOnce renews now, for the node's existing key, and replaces svid.pem
// and bundle.pem. While the certificate is valid it renews over mutual TLS
// with it; once it has expired (by cfg.Now), TLS would refuse it, so the
// agent re-enrolls instead: it sends the expired certificate and a CSR
// signed by the node key (POST /v1/pki/reenroll), which the server honours
// for the node's current key unless the node was revoked.
func RenewOnce(ctx context.Context, cfg RunConfig) (time.Time, error) {
	exp, _, err := renewOnce(ctx, cfg)
	return exp, err
}

// renewOnce is RenewOnce, also telling whether it re-enrolled.
func renewOnce(ctx context.Context, cfg RunConfig) (exp time.Time, reenrolled bool, err error) {
	if cfg.Server == "" && len(cfg.Servers) > 0 {
		cfg.Server = cfg.Servers[0]
	}
	exp, err = renew(ctx, cfg, &reenrolled)
	return exp, reenrolled, err
}

func renew(ctx context.Context, cfg RunConfig, reenrolled *bool) (time.Time, error) {
	certPath, keyPath := filepath.Join(cfg.DataDir, SVIDFile), filepath.Join(cfg.DataDir, KeyFile)
	leaf, err := loadLeaf(certPath)
	if err != nil {
		return time.Time{}, err
	}
	expired := !cfg.now().Before(leaf.NotAfter)
	*reenrolled = expired
	cc := client.Config{Address: cfg.Server, CACertFile: cfg.CACert, Timeout: 10 * time.Second}
	if !expired {
		cc.ClientCertFile, cc.ClientKeyFile = certPath, keyPath
	}
	c, err := client.New(cc)
	if err != nil {
		return time.Time{}, err
	}
	defer c.CloseIdleConnections()
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return time.Time{}, err
	}
	blk, _ := pem.Decode(kb)
	clear(kb)
	if blk == nil {
		return time.Time{}, errors.New("agent: svid-key.pem holds no key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	clear(blk.Bytes)
	if err != nil {
		return time.Time{}, errors.New("agent: svid-key.pem is not a PKCS #8 key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return time.Time{}, errors.New("agent: the key cannot sign")
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, signer)
	if err != nil {
		return time.Time{}, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	var en client.Enrollment
	if expired {
		certPEM, err := os.ReadFile(certPath)
		if err != nil {
			return time.Time{}, err
		}
		en, err = c.Reenroll(ctx, certPEM, csrPEM)
		if err != nil {
			return time.Time{}, fmt.Errorf("agent: re-enroll (the certificate expired at %s): %w", leaf.NotAfter.UTC().Format(time.RFC3339), err)
		}
	} else if en, err = c.Renew(ctx, csrPEM, LocalAddresses()...); err != nil {
		return time.Time{}, err
	}
	if err := fsutil.WriteFileAtomic(certPath, []byte(en.Certificate), 0o644); err != nil {
		return time.Time{}, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(cfg.DataDir, BundleFile), []byte(en.Bundle), 0o644); err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, en.ExpiresAt)
}
