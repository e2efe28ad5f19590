package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var incidentKeys = []string{"alerts", "assignee", "created_by", "created_time", "decisions", "hosts", "id", "rules", "severity", "status", "timeline", "title", "updated_time", "version"}

// TestIncidentCLI: create, comment, update, list, show, report to a file
// (Markdown and JSON), verify it offline with the key (and, without one,
// with the server's, saying so), a changed byte and another key fail.
func TestIncidentCLI(t *testing.T) {
	srv, e := detectServer(t)
	dir := t.TempDir()
	inc := mustJSON(t, runCLI(t, e, "", "incident", "create", "--title", "Brute force on web-1", "--severity", "high",
		"--alert", "0123456789abcdef0123456789abcdef", "--format", "json"), incidentKeys...)
	id := inc["id"].(string)
	if r := runCLI(t, e, "", "incident", "comment", id, "looking"); r.code != 0 || !strings.Contains(r.stdout, "Success! Incident "+id+" commented") {
		t.Fatalf("comment: %+v", r)
	}
	up := mustJSON(t, runCLI(t, e, "", "incident", "update", id, "--status", "contained", "--assignee", "bob", "--format", "json"), incidentKeys...)
	if up["status"] != "contained" || up["assignee"] != "bob" {
		t.Fatalf("update: %v", up)
	}
	if r := runCLI(t, e, "", "incident", "update", id, "--status", "done"); r.code == 0 || !strings.Contains(r.stderr, "status") {
		t.Fatalf("bad status: %+v", r)
	}
	list := mustJSON(t, runCLI(t, e, "", "incident", "list", "--status", "contained", "--format", "json"), "incidents")
	if len(list["incidents"].([]any)) != 1 {
		t.Fatalf("list: %v", list)
	}
	if r := runCLI(t, e, "", "incident", "list"); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "contained") {
		t.Fatalf("list table: %+v", r)
	}
	if r := runCLI(t, e, "", "incident", "show", id); r.code != 0 || !strings.Contains(r.stdout, "Timeline:") || !strings.Contains(r.stdout, "looking") {
		t.Fatalf("show: %+v", r)
	}
	_, key, err := srv.Audit().Verifier()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"md", "json"} {
		file := filepath.Join(dir, "report."+format)
		if r := runCLI(t, e, "", "incident", "report", id, "--format", format, "-o", file); r.code != 0 {
			t.Fatalf("report: %+v", r)
		}
		offline := env{} // no server: the check is offline
		r := runCLI(t, offline, "", "incident", "verify", file, "--verifier-key", key)
		if r.code != 0 || !strings.Contains(r.stdout, "incident "+id+": 5 timeline items") {
			t.Fatalf("verify %s: %+v", format, r)
		}
		keyFile := filepath.Join(dir, "key")
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := runCLI(t, offline, "", "incident", "verify", file, "--verifier-key-file", keyFile, "--format", "json"); r.code != 0 {
			t.Fatalf("verify with a key file: %+v", r)
		}
		if r := runCLI(t, e, "", "incident", "verify", file); r.code != 0 || !strings.Contains(r.stderr, "No --verifier-key given") {
			t.Fatalf("verify with the server's key: %+v", r)
		}
		b, _ := os.ReadFile(file)
		for _, pos := range []int{3, len(b) / 4, len(b) / 2, len(b) - 10} {
			bad := []byte(string(b))
			bad[pos] ^= 0x08
			badFile := filepath.Join(dir, "bad")
			if err := os.WriteFile(badFile, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := runCLI(t, offline, "", "incident", "verify", badFile, "--verifier-key", key); r.code == 0 || !strings.Contains(r.stderr, "does not verify") {
				t.Fatalf("byte %d changed: %+v", pos, r)
			}
		}
		other := "warden.local/audit/other+3e6f43b1+AZ0wqTTFUIOIEBVGvf3cxl3ABDiPPsx7hCRD3nMfD8F8"
		if r := runCLI(t, offline, "", "incident", "verify", file, "--verifier-key", other); r.code == 0 {
			t.Fatalf("another key: %+v", r)
		}
	}
	if r := runCLI(t, e, "", "incident", "close", id, "--comment", "done"); r.code != 0 || !strings.Contains(r.stdout, "status closed") {
		t.Fatalf("close: %+v", r)
	}
}
