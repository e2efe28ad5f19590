package auditcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/witness"
)

// TestStateFile: a state round-trips through its file (0600, directory
// made 0700); unknown fields, another version and a bad key are refused
// naming the file; a missing file is no state.
func TestStateFile(t *testing.T) {
	_, vkey, err := witness.GenerateKey("warden-witness/n1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", StateFileName("warden.local/audit/abc"))
	if filepath.Base(path) != "warden.local_audit_abc.json" {
		t.Fatalf("file name %s", filepath.Base(path))
	}
	if st, err := LoadState(path); st != nil || err != nil {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	st := &State{Version: StateVersion, Origin: "o", LogKey: "k", Witnesses: []PinnedWitness{{VerifierKey: vkey, Kind: KindServer, Name: "n1"}},
		Checkpoint: "o\n1\nroot\n"}
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes %v %v", fi.Mode(), di.Mode())
	}
	got, err := LoadState(path)
	if err != nil || got.Witnesses[0].VerifierKey != vkey || got.Checkpoint != st.Checkpoint {
		t.Fatalf("%+v %v", got, err)
	}
	for name, body := range map[string]string{
		"unknown field": `{"version":1,"extra":1}`,
		"version":       `{"version":2}`,
		"bad key":       `{"version":1,"witnesses":[{"verifier_key":"x+00000000+AQ==","kind":"server"}]}`,
		"not JSON":      `nope`,
	} {
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"origin":"o","log_key":"k","witnesses":[],"checkpoint":""}`))
	f.Add([]byte(`{"version":1,"witnesses":[{"verifier_key":"a+00000000+BA==","kind":"given"}]}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := LoadState(path)
		if err == nil && (st == nil || st.Version != StateVersion) {
			t.Fatalf("accepted %q as %+v", b, st)
		}
	})
}
