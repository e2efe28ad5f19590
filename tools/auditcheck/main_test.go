package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
)

// TestIndependentVerifier runs the independent verifier against a real
// server: a fresh log, then an older checkpoint and consistency with it,
// after a prune of the oldest entries.
func TestIndependentVerifier(t *testing.T) {
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
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
	for i := 0; i < 30; i++ {
		if _, err := c.KVPut(ctx, fmt.Sprintf("a/%d", i), map[string]any{"i": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	old, err := c.AuditCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldFile := filepath.Join(t.TempDir(), "old.txt")
	os.WriteFile(oldFile, old, 0o600)
	for i := 0; i < 17; i++ {
		if _, err := c.KVGet(ctx, fmt.Sprintf("a/%d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	// The oldest entries archived and pruned: they count by their leaf
	// hashes, and everything still verifies.
	if _, err := c.AuditArchive(ctx, 20, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuditPrune(ctx, 20); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&out, srv.Addr(), srv.CAFile(), in.RootToken, oldFile); err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if !strings.Contains(out.String(), "consistent with the checkpoint of size") {
		t.Fatalf("output: %s", out.String())
	}
}

func TestMTH(t *testing.T) {
	// Cross-check the recursive MTH against itself for small sizes by
	// splitting rules: size 3 = H(H(l0,l1), l2).
	l := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	want := mthRef(l)
	h := rfc6962.DefaultHasher
	if !bytes.Equal(mth([][]byte{h.HashLeaf(l[0]), h.HashLeaf(l[1]), h.HashLeaf(l[2])}), want) {
		t.Fatal("mth of 3 leaves")
	}
}

func mthRef(l [][]byte) []byte {
	h := rfc6962.DefaultHasher
	return h.HashChildren(h.HashChildren(h.HashLeaf(l[0]), h.HashLeaf(l[1])), h.HashLeaf(l[2]))
}
