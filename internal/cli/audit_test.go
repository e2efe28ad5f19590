package cli

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/store"
)

// TestAuditVerifyDetectsTampering: `warden audit verify` accepts an honest
// log, proves consistency with a saved checkpoint, and names the entry when
// one stored entry is rewritten (even re-encrypted with the right key).
func TestAuditVerifyDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{DataDir: dir, Listen: "127.0.0.1:0", RateLimit: -1}
	boot := func() *server.Server {
		srv, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Store().WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := boot()
	defer func() { srv.Close() }()
	e := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile()}
	in := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"), "root_token", "unseal_keys")
	key := in["unseal_keys"].([]any)[0].(string)
	runCLI(t, e, "", "operator", "unseal", key)
	e["WARDEN_TOKEN"] = in["root_token"].(string)
	for i := 0; i < 6; i++ {
		if r := runCLI(t, e, "", "kv", "put", "app/db", "v=x"); r.code != 0 {
			t.Fatalf("put: %+v", r)
		}
	}
	saved := filepath.Join(dir, "cp.txt")
	if r := runCLI(t, e, "", "audit", "verify", "--save", saved); r.code != 0 || !strings.Contains(r.stdout, "signature verified") {
		t.Fatalf("verify: %+v", r)
	}
	runCLI(t, e, "", "kv", "get", "app/db")
	if r := runCLI(t, e, "", "audit", "verify", "--checkpoint", saved); r.code != 0 || !strings.Contains(r.stdout, "only appended to") {
		t.Fatalf("verify --checkpoint: %+v", r)
	}
	s := mustJSON(t, runCLI(t, e, "", "audit", "search", "--action", "kv.write", "--format", "json"), "entries")
	if n := len(s["entries"].([]any)); n != 6 {
		t.Fatalf("search found %d kv.write entries, want 6", n)
	}
	if r := runCLI(t, e, "", "audit", "tail", "-n", "2"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("tail: %+v", r)
	}

	// Rewrite entry 3 as an attacker holding the keys would: a valid,
	// re-encrypted entry with a different principal.
	const victim = 3
	var leaves []store.StoredLeaf
	var leafHash []byte
	err := srv.Store().ViewAudit(func(v store.AuditView) (err error) {
		if leaves, err = v.Leaves(victim, 1); err != nil {
			return err
		}
		leafHash, err = v.GetNode(0, victim)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The attacker re-encrypts under the stored leaf hash, so the forged
	// leaf opens; it no longer hashes to that hash.
	plain, err := srv.Core().Decrypt(audit.LeafAAD(leafHash), leaves[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	ent, _ := audit.DecodeEntry(plain)
	ent.Principal = `User::"mallory"`
	forged, _ := ent.Canonical()
	ct, err := srv.Core().Encrypt(audit.LeafAAD(leafHash), forged)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	db, err := bolt.Open(filepath.Join(dir, "store", "fsm.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		v := binary.BigEndian.AppendUint64(nil, leaves[0].RaftIndex)
		return tx.Bucket([]byte("audit_leaves")).Put(binary.BigEndian.AppendUint64(nil, victim), append(v, ct...))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv = boot()
	e["WARDEN_ADDR"], e["WARDEN_CACERT"] = srv.Addr(), srv.CAFile()
	runCLI(t, e, "", "operator", "unseal", key)
	r := runCLI(t, e, "", "audit", "verify")
	checkErr(t, r, 1, "entry 3 was altered")
}
