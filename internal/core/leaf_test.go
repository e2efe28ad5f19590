package core

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/barrier"
	"github.com/warden-sec/warden/internal/store"
)

// TestLeafCheck: the leader takes a leaf only if its value opens under the
// additional data its own hash names and hashes to that hash, so neither a
// forged hash nor a value moved from another leaf gets into the tree.
func TestLeafCheck(t *testing.T) {
	kr, err := barrier.NewKeyring(rand.Reader, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	other, err := barrier.NewKeyring(rand.Reader, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(enc *barrier.Keyring, aadOf, hashOf, plain string) store.AuditLeaf {
		ct, err := enc.Encrypt(audit.LeafAAD(audit.LeafHash([]byte(aadOf))), []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return store.AuditLeaf{Hash: audit.LeafHash([]byte(hashOf)), Value: ct}
	}
	check := leafCheck(kr.Decrypt)
	entry := `{"action":"kv.read","auth_method":"token","outcome":200,"principal":"User::\"bench\"","raft_index":0,"request_id":"r-1","resource":"Secret::\"bench/a\"","source_addr":"127.0.0.1","time":"2026-12-02T13:17:04.260933719Z"}`
	for _, tc := range []struct {
		name string
		leaf store.AuditLeaf
		ok   bool
	}{
		{"its own entry", leaf(kr, "a", "a", "a"), true},
		{"another leaf's value", leaf(kr, "b", "a", "b"), false},
		{"a hash not of the value", leaf(kr, "a", "a", "b"), false},
		{"another cluster's key", leaf(other, "a", "a", "a"), false},
		{"garbage", store.AuditLeaf{Hash: audit.LeafHash([]byte("a")), Value: []byte("not a ciphertext")}, false},
		// Issue 11: values are packed (compressed) before encryption; the
		// hash stays the hash of the canonical bytes.
		{"a packed entry", leaf(kr, entry, entry, string(audit.PackLeaf([]byte(entry)))), true},
		{"an unpacked entry (before packing)", leaf(kr, entry, entry, entry), true},
		{"a packed entry under another's hash", leaf(kr, "a", "a", string(audit.PackLeaf([]byte(entry)))), false},
		{"a packed form that does not unpack", leaf(kr, entry, entry, "\x01\xff\xff"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(tc.leaf); (err == nil) != tc.ok {
				t.Fatalf("check: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
