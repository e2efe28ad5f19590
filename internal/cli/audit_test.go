package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	a := startAuditServer(t, dir)
	srv, e := a.srv, a.env
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
	a.stop()
	a.updateDB(func(tx *bolt.Tx) error {
		v := binary.BigEndian.AppendUint64(nil, leaves[0].RaftIndex)
		return tx.Bucket([]byte("audit_leaves")).Put(binary.BigEndian.AppendUint64(nil, victim), append(v, ct...))
	})
	a.restart()
	r := runCLI(t, a.env, "", "audit", "verify")
	checkErr(t, r, 1, "entry 3 was altered")
}

// auditServer is a real server over a persistent data directory, initialized
// and unsealed, that a test stops, alters on disk and starts again.
type auditServer struct {
	t   *testing.T
	dir string
	key string // the unseal key
	srv *server.Server
	env env
}

func startAuditServer(t *testing.T, dir string) *auditServer {
	a := &auditServer{t: t, dir: dir}
	a.boot()
	t.Cleanup(func() { a.srv.Close() })
	a.env = env{"WARDEN_ADDR": a.srv.Addr(), "WARDEN_CACERT": a.srv.CAFile()}
	in := mustJSON(t, runCLI(t, a.env, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"), "root_token", "unseal_keys")
	a.key = in["unseal_keys"].([]any)[0].(string)
	runCLI(t, a.env, "", "operator", "unseal", a.key)
	a.env["WARDEN_TOKEN"] = in["root_token"].(string)
	return a
}

func (a *auditServer) boot() {
	t := a.t
	srv, err := server.New(server.Config{DataDir: a.dir, Listen: "127.0.0.1:0", RateLimit: -1})
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
	a.srv = srv
}

func (a *auditServer) stop() {
	if err := a.srv.Close(); err != nil {
		a.t.Fatal(err)
	}
}

// restart starts the server again on its data directory and unseals it.
func (a *auditServer) restart() {
	a.boot()
	a.env["WARDEN_ADDR"], a.env["WARDEN_CACERT"] = a.srv.Addr(), a.srv.CAFile()
	if r := runCLI(a.t, a.env, "", "operator", "unseal", a.key); r.code != 0 {
		a.t.Fatalf("unseal: %+v", r)
	}
}

func (a *auditServer) dbPath() string { return filepath.Join(a.dir, "store", "fsm.db") }

// updateDB changes the stopped server's state machine database directly.
func (a *auditServer) updateDB(fn func(*bolt.Tx) error) {
	a.t.Helper()
	db, err := bolt.Open(a.dbPath(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		a.t.Fatal(err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.t.Fatal(err)
	}
}

// flipLast flips the last bit of a stored value.
func flipLast(bucket string, key []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		v := bytes.Clone(b.Get(key))
		if v == nil {
			return fmt.Errorf("%s %x is not stored", bucket, key)
		}
		v[len(v)-1] ^= 1
		return b.Put(key, v)
	}
}

// TestAuditDamageOnStoppedServer is the done-when: on a stopped
// server, alter a stored Merkle node, a leaf, or a page of the database
// file; after the restart the check (the one run at start and by the
// scrub, called directly here) finds it, no checkpoint is signed, and
// `warden audit verify --full` names it.
func TestAuditDamageOnStoppedServer(t *testing.T) {
	tests := []struct {
		name  string
		alter func(a *auditServer)
		want  string
	}{
		{"merkle node", func(a *auditServer) {
			a.updateDB(flipLast("audit_nodes", binary.BigEndian.AppendUint64([]byte{1}, 2)))
		}, "stored Merkle node (1, 2) altered"},
		{"leaf", func(a *auditServer) {
			a.updateDB(flipLast("audit_leaves", binary.BigEndian.AppendUint64(nil, 7)))
		}, "entry 7 was altered"},
		{"database page", corruptLeavesPage, "database page check failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := startAuditServer(t, dir)
			for i := 0; i < 40; i++ {
				if r := runCLI(t, a.env, "", "kv", "put", fmt.Sprintf("app/k%d", i), "v=x"); r.code != 0 {
					t.Fatalf("put: %+v", r)
				}
			}
			saved := filepath.Join(dir, "cp.txt")
			if r := runCLI(t, a.env, "", "audit", "verify", "--full", "--save", saved); r.code != 0 || !strings.Contains(r.stdout, "inclusion proofs verified") {
				t.Fatalf("verify --full of a healthy log: %+v", r)
			}
			a.stop()
			tc.alter(a)
			a.restart()

			err := a.srv.Audit().Scrub(context.Background())
			if !errors.Is(err, audit.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("scrub: %v, want %q", err, tc.want)
			}
			if _, err := a.srv.Audit().Checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("a checkpoint was signed over a damaged log (err %v)", err)
			}
			r := runCLI(t, a.env, "", "audit", "verify", "--full", "--checkpoint", saved)
			t.Logf("verify --full: %s", r.stderr)
			checkErr(t, r, 1, tc.want)
			r = runCLI(t, a.env, "", "audit", "verify")
			checkErr(t, r, 1, tc.want)
		})
	}
}

// corruptLeavesPage overwrites the header of the page at the root of the
// audit leaves' b-tree in the database file: its type becomes invalid.
func corruptLeavesPage(a *auditServer) {
	t := a.t
	var page, pageSize int64
	db, err := bolt.Open(a.dbPath(), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		page, pageSize = int64(tx.Bucket([]byte("audit_leaves")).RootPage()), int64(db.Info().PageSize)
		return nil
	})
	db.Close()
	if err != nil || page == 0 {
		t.Fatalf("root page of audit_leaves: %d, %v", page, err)
	}
	f, err := os.OpenFile(a.dbPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A page starts with its id (8 bytes), then its flags (2 bytes).
	if _, err := f.WriteAt([]byte{0xee, 0xee}, page*pageSize+8); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// lineWaiter is an io.Writer that lets a test wait, without sleeping, for
// the output to contain a string.
type lineWaiter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.wake)
	w.wake = make(chan struct{})
	return w.buf.Write(p)
}

func (w *lineWaiter) wait(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		has, wake := strings.Contains(w.buf.String(), s), w.wake
		w.mu.Unlock()
		if has {
			return
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %q in the output:\n%s", s, w.String())
		}
	}
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestAuditTailFollowLeavesOutItsOwnReads: reading the log is recorded, so
// a follower that printed the records of its own polls would print one a
// second forever. It prints what others did, and not its own reads.
func TestAuditTailFollowLeavesOutItsOwnReads(t *testing.T) {
	e := unsealedServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWaiter{wake: make(chan struct{})}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"audit", "tail", "--follow", "-n", "1"}, strings.NewReader(""), out, io.Discard, e.get)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("tail exited %d", code)
		}
	}()
	for _, p := range []string{"marker/one", "marker/two", "marker/three"} {
		if r := runCLI(t, e, "", "kv", "put", p, "k=v"); r.code != 0 {
			t.Fatalf("kv put: %+v", r)
		}
		// Each of these is printed by a poll after the one that printed
		// the previous, whose own read was recorded in between.
		out.wait(t, p)
	}
	if strings.Contains(out.String(), "audit.read") {
		t.Fatalf("tail --follow printed its own reads:\n%s", out.String())
	}
}
