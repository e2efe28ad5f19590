package agent

import (
	"bytes"
	"context"
	"crypto"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
)

// TestRenewalAndOutage: a certificate with a 20 s lifetime is replaced
// within its lifetime without restarting the agent; while the server is
// down the agent keeps its last certificate, and it renews by itself once
// the server is back.
func TestRenewalAndOutage(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	data := t.TempDir()
	cfg := server.Config{DataDir: data, Listen: addr, RateLimit: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	boot := func() *server.Server {
		srv, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Store().WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := boot()
	c, dir, unsealKey := initAndEnroll(t, ctx, srv, "20s")
	first, err := loadLeaf(filepath.Join(dir, SVIDFile))
	if err != nil {
		t.Fatal(err)
	}

	renewed := make(chan time.Time, 4)
	failed := make(chan error, 64)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, RunConfig{Server: srv.Addr(), CACert: srv.CAFile(), DataDir: dir,
			OnRenew:   func(e time.Time) { renewed <- e },
			OnFailure: func(err error) { failed <- err }})
	}()
	defer func() { stop(); <-done }()

	select {
	case <-renewed:
	case err := <-failed:
		t.Fatalf("renewal failed: %v", err)
	case <-time.After(time.Until(first.NotAfter)):
		t.Fatal("the certificate was not renewed within its lifetime")
	}
	second, _ := loadLeaf(filepath.Join(dir, SVIDFile))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || !second.NotAfter.After(first.NotAfter) {
		t.Fatal("svid.pem was not replaced by a newer certificate")
	}

	// Outage: the agent fails to renew and keeps serving the current files.
	srv.Close()
	select {
	case <-failed:
	case <-time.After(time.Until(second.NotAfter)):
		t.Fatal("no renewal attempt during the outage")
	}
	kept, err := loadLeaf(filepath.Join(dir, SVIDFile))
	if err != nil || kept.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("the agent lost its certificate during the outage: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}

	// Recovery: the server comes back, and the agent renews by itself.
	srv = boot()
	defer srv.Close()
	if _, err := c.Unseal(ctx, unsealKey); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case <-renewed:
			third, _ := loadLeaf(filepath.Join(dir, SVIDFile))
			if third.SerialNumber.Cmp(second.SerialNumber) == 0 {
				t.Fatal("renewed but the file is unchanged")
			}
			return
		case <-failed: // still in backoff; keep waiting
		case <-time.After(time.Until(second.NotAfter)):
			t.Fatal("the agent did not recover after the server returned")
		}
	}
}

// TestReenrollAfterExpiry: once the certificate has expired (by the
// agent's clock, here two hours ahead), renewal over mutual TLS is
// impossible and the agent re-enrolls with proof of possession of its key;
// after the node is revoked, re-enrollment is refused.
func TestReenrollAfterExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	c, dir, _ := initAndEnroll(t, ctx, srv, "1h")
	first, _ := loadLeaf(filepath.Join(dir, SVIDFile))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	cfg := RunConfig{Server: srv.Addr(), CACert: srv.CAFile(), DataDir: dir, Now: later}
	if _, err := RenewOnce(ctx, cfg); err != nil {
		t.Fatalf("re-enrollment: %v", err)
	}
	second, err := loadLeaf(filepath.Join(dir, SVIDFile))
	if err != nil || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("svid.pem not replaced: %v", err)
	}
	if !second.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Fatal("re-enrolled for another key")
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, KeyFile)); !bytes.Equal(keyAfter, keyBefore) {
		t.Fatal("the node key changed")
	}
	if err := c.NodeRevoke(ctx, "edge-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := RenewOnce(ctx, cfg); err == nil || !strings.Contains(err.Error(), "re-enroll") {
		t.Fatalf("re-enrollment of a revoked node: %v", err)
	}
}

// initAndEnroll initializes and unseals a fresh server, then enrolls node
// edge-1 with certificates of certTTL into a new data dir. It returns the
// root client, the dir and the unseal key.
func initAndEnroll(t *testing.T, ctx context.Context, srv *server.Server, certTTL string) (*client.Client, string, string) {
	t.Helper()
	c, err := client.New(client.Config{Address: srv.Addr(), CACertFile: srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, in.UnsealKeys[0]); err != nil {
		t.Fatal(err)
	}
	c.SetToken(in.RootToken)
	tok, err := c.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "edge-1", CertTTL: certTTL})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Enroll(ctx, Config{Client: c, JoinToken: tok.Token, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	// The node reported its addresses (quarantines drop them).
	n, err := c.NodeRead(ctx, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(n.Addresses, ","), strings.Join(LocalAddresses(), ","); got != want {
		t.Fatalf("reported addresses %q, want %q", got, want)
	}
	return c, dir, in.UnsealKeys[0]
}
