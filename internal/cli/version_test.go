package cli

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/version"
)

func TestVersionJSON(t *testing.T) {
	m := mustJSON(t, runCLI(t, env{}, "", "version", "--format", "json"), "version", "go_version")
	if m["version"] != version.Get().Version {
		t.Fatalf("version = %v, want %q", m["version"], version.Get().Version)
	}
}

func TestVersionFlag(t *testing.T) {
	r := runCLI(t, env{}, "", "--version")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if want := "warden " + version.String() + "\n"; r.stdout != want {
		t.Fatalf("--version printed %q, want %q", r.stdout, want)
	}
}

// TestStatusVersion checks that a server reports the version string that
// "warden --version" prints for the same build.
func TestStatusVersion(t *testing.T) {
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	st := mustJSON(t, runCLI(t, e, "", "status", "--format", "json"),
		"type", "initialized", "sealed", "shares", "threshold", "progress", "version", "cluster_id")
	if st["version"] != version.String() {
		t.Fatalf("status version = %v, want %q", st["version"], version.String())
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "# bash completion V2 for warden",
		"zsh":  "#compdef warden",
		"fish": "complete -c warden",
	} {
		t.Run(shell, func(t *testing.T) {
			r := runCLI(t, env{}, "", "completion", shell)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("completion %s lacks %q:\n%.300s", shell, want, r.stdout)
			}
		})
	}
	// The scripts call back into the binary; it must answer with the
	// commands and flags of its own tree.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "k"}, "kv\t"},
		{[]string{"__complete", "kv", "p"}, "put\t"},
		{[]string{"__complete", "kv", "put", "--"}, "--allow-empty"},
		{[]string{"__complete", "comp"}, "completion\t"},
	} {
		r := runCLI(t, env{}, "", tc.args...)
		if r.code != 0 || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("%v: exit %d, stdout %q lacks %q", tc.args, r.code, r.stdout, tc.want)
		}
	}
	checkErr(t, runCLI(t, env{}, "", "completion", "tcsh"), ExitUsage, "tcsh")
}
