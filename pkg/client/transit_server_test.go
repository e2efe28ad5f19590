package client_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/pkg/client"
)

// realTransit starts a real server on a 127.0.0.1:0 port, initialized and
// unsealed, and returns a client with its root token.
func realTransit(t *testing.T) *client.Client {
	t.Helper()
	srv, root := servertest.Running(t, func(c *server.Config) { c.Logger = slog.New(slog.DiscardHandler) })
	ca, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Address: srv.Addr(), CACertPEM: ca, Token: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestTransitSDKAgainstRealServer checks the SDK's batch methods (mixed good
// and bad items), derived keys, HMAC verification and the typed key view
// against the real API.
func TestTransitSDKAgainstRealServer(t *testing.T) {
	c := realTransit(t)
	ctx := context.Background()
	k, err := c.TransitCreateKey(ctx, "tenants", client.TransitKeyOptions{Derived: true, AutoRotate: 720 * time.Hour, AutoRetire: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !k.Derived || k.KDF != "hkdf_sha256" || time.Duration(k.AutoRotatePeriod) != 720*time.Hour ||
		time.Duration(k.AutoRetireAfter) != 48*time.Hour || len(k.Keys) != 1 || k.Keys["1"].CreationTime.IsZero() {
		t.Fatalf("key view: %+v", k)
	}
	if ks, err := c.TransitListKeys(ctx); err != nil || len(ks) != 1 || ks[0] != "tenants" {
		t.Fatalf("list: %v %v", ks, err)
	}

	res, err := c.TransitEncryptBatch(ctx, "tenants", []client.TransitEncryptItem{
		{Plaintext: []byte("one"), Context: []byte("a")},
		{Plaintext: []byte("two")}, // no context for a derived key
		{Plaintext: []byte("three"), Context: []byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Error != "" || res[1].Error == "" || !strings.Contains(res[1].Error, "context") || res[2].Ciphertext == "" {
		t.Fatalf("encrypt batch: %+v", res)
	}
	dec, err := c.TransitDecryptBatch(ctx, "tenants", []client.TransitDecryptItem{
		{Ciphertext: res[0].Ciphertext, Context: []byte("a")},
		{Ciphertext: res[2].Ciphertext, Context: []byte("a")}, // the wrong context
		{Ciphertext: res[2].Ciphertext, Context: []byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(dec[0].Plaintext) != "one" || dec[1].Error != "cannot decrypt" || dec[1].Plaintext != nil || string(dec[2].Plaintext) != "three" {
		t.Fatalf("decrypt batch: %+v", dec)
	}
	many := make([]client.TransitDecryptItem, client.MaxTransitBatch+1)
	if _, err := c.TransitDecryptBatch(ctx, "tenants", many); !client.IsStatus(err, 400) || !strings.Contains(err.Error(), "batch_input") {
		t.Fatalf("oversized batch: %v", err)
	}

	if _, err := c.TransitCreateKey(ctx, "mac", client.TransitKeyOptions{Type: "hmac"}); err != nil {
		t.Fatal(err)
	}
	h, v, err := c.TransitHMAC(ctx, "mac", []byte("msg"))
	if err != nil || v != 1 {
		t.Fatalf("hmac: %v", err)
	}
	if ok, err := c.TransitVerifyHMAC(ctx, "mac", []byte("msg"), h); err != nil || !ok {
		t.Fatalf("verify hmac: %v %v", ok, err)
	}
	if ok, err := c.TransitVerifyHMAC(ctx, "mac", []byte("other"), h); err != nil || ok {
		t.Fatalf("verify hmac of other input: %v %v", ok, err)
	}
	no := false
	if _, err := c.TransitConfig(ctx, "mac", client.TransitConfig{DeletionAllowed: &no}); err != nil {
		t.Fatal(err)
	}
	if err := c.TransitDeleteKey(ctx, "mac"); !client.IsStatus(err, 400) || !strings.Contains(err.Error(), "deletion_allowed") {
		t.Fatalf("delete: %v", err)
	}
}
