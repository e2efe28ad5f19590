package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/audit"
)

// TestAuditArchiveLifecycle runs the lifecycle of docs/audit.md on a real
// server: archive, verify the file offline (no server address), prune
// only up to the archive, online verify and the integrity check after the
// prune, a second archive with --prune that chains with the first, a
// flipped byte that fails naming its entry, a restart, and a snapshot
// taken before the prune restored after it; an archive whose file never
// landed prunes nothing and is made again from the same entry.
func TestAuditArchiveLifecycle(t *testing.T) {
	dir := t.TempDir()
	a := startAuditServer(t, dir)
	e := a.env
	for range 6 {
		if r := runCLI(t, e, "", "kv", "put", "app/db", "v=x"); r.code != 0 {
			t.Fatalf("put: %+v", r)
		}
	}
	snap := filepath.Join(dir, "before-prune.snap")
	if r := runCLI(t, e, "", "operator", "raft", "snapshot", "save", snap); r.code != 0 {
		t.Fatalf("snapshot save: %+v", r)
	}
	saved := filepath.Join(dir, "cp.txt")
	if r := runCLI(t, e, "", "audit", "verify", "--save", saved); r.code != 0 {
		t.Fatalf("verify: %+v", r)
	}

	checkErr(t, runCLI(t, e, "", "audit", "prune", "--before", "3"), 1, "run warden audit archive first")
	// The server hands out an archive and records its bound, and the file
	// never lands (here: its directory is missing; as after a crash):
	// nothing is pruned, and the next archive exports the same range.
	lost := filepath.Join(dir, "missing", "a0.json")
	checkErr(t, runCLI(t, e, "", "audit", "archive", "--out", lost, "--before", "5", "--prune"), 1, "no such file or directory")
	checkErr(t, runCLI(t, e, "", "audit", "prune", "--archive", lost), 1, "no such file or directory")
	// Every entry is younger than an hour: nothing to archive by age.
	checkErr(t, runCLI(t, e, "", "audit", "archive", "--out", filepath.Join(dir, "none.json"), "--older-than", "1h"), 1, "nothing to archive")
	f1 := filepath.Join(dir, "a1.json")
	r := runCLI(t, e, "", "audit", "archive", "--out", f1, "--before", "5")
	if r.code != 0 || !strings.Contains(r.stdout, "Archived entries 0 to 4 (5)") {
		t.Fatalf("archive: %+v", r)
	}
	if fi, err := os.Stat(f1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive file mode: %v %v", fi.Mode(), err)
	}
	checkErr(t, runCLI(t, e, "", "audit", "archive", "--out", f1, "--before", "5"), 1, "exists")

	// Offline: no server in the environment.
	r = runCLI(t, env{}, "", "audit", "verify", "--archive", f1)
	if r.code != 0 || !strings.Contains(r.stdout, "entries 0 to 4 verified") {
		t.Fatalf("offline verify: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "audit", "prune", "--before", "6"), 1, "beyond the archived entries")
	if r := runCLI(t, e, "", "audit", "prune", "--archive", f1); r.code != 0 || !strings.Contains(r.stdout, "below 5") {
		t.Fatalf("prune: %+v", r)
	}
	// Online verification and proofs after the prune.
	r = runCLI(t, e, "", "audit", "verify", "--full", "--checkpoint", saved)
	if r.code != 0 || !strings.Contains(r.stdout, "Entries 0 to 4 are archived") || !strings.Contains(r.stdout, "only appended to") {
		t.Fatalf("verify --full after the prune: %+v", r)
	}
	if err := a.srv.Audit().Scrub(context.Background()); err != nil {
		t.Fatalf("scrub after the prune: %v", err)
	}

	// The next archive, pruned at once, chains with the first.
	f2 := filepath.Join(dir, "a2.json")
	r = runCLI(t, e, "", "audit", "archive", "--out", f2, "--before", "9", "--prune")
	if r.code != 0 || !strings.Contains(r.stdout, "Archived entries 5 to 8") || !strings.Contains(r.stdout, "below 9") {
		t.Fatalf("archive --prune: %+v", r)
	}
	b1, _ := os.ReadFile(f1)
	a1, _ := audit.ParseArchive(b1)
	r = runCLI(t, env{}, "", "audit", "verify", "--archive", f2, "--archive", f1, "--verifier-key", a1.VerifierKey)
	if r.code != 0 || !strings.Contains(r.stdout, "The 2 archives chain: entries 0 to 8") {
		t.Fatalf("verify two archives: %+v", r)
	}
	// Without the first, the second still verifies on its own.
	if r := runCLI(t, env{}, "", "audit", "verify", "--archive", f2); r.code != 0 {
		t.Fatalf("verify the second alone: %+v", r)
	}

	// One flipped byte in entry 2's leaf fails, naming entry 2.
	leaf := []byte(`"leaf":"`)
	at := 0
	for range 3 {
		at += bytes.Index(b1[at:], leaf) + len(leaf)
	}
	bad := bytes.Clone(b1)
	bad[at+20] = 'A' // a base64 digit inside the leaf: still base64, other bytes
	if b1[at+20] == 'A' {
		bad[at+20] = 'B'
	}
	fb := filepath.Join(dir, "bad.json")
	os.WriteFile(fb, bad, 0o600)
	checkErr(t, runCLI(t, env{}, "", "audit", "verify", "--archive", fb), 1, "entry 2 was altered")

	// A restart checks the log again (the pruned range is not damage),
	// and a snapshot from before the prune restores without bringing the
	// pruned bodies back.
	a.stop()
	a.restart()
	if r := runCLI(t, a.env, "", "audit", "verify", "--full"); r.code != 0 {
		t.Fatalf("verify after restart: %+v", r)
	}
	if r := runCLI(t, a.env, "", "operator", "raft", "snapshot", "restore", snap); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	r = runCLI(t, a.env, "", "audit", "verify", "--full")
	if r.code != 0 || !strings.Contains(r.stdout, "Entries 0 to 8 are archived") {
		t.Fatalf("verify after restore: %+v", r)
	}
}
