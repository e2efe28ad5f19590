package cli

import (
	"slices"
	"strings"
	"testing"
)

// TestServerRequireMFAGroup: --require-mfa-group takes group names as
// user create does (Admins is admins); a name that has no canonical form
// is refused with the flag's name, before the server starts (it used to
// panic in users.New).
func TestServerRequireMFAGroup(t *testing.T) {
	got, err := canonicalGroupFlag("--require-mfa-group", []string{"Admins", "admins", "Ops"})
	if err != nil || !slices.Equal(got, []string{"admins", "ops"}) {
		t.Fatalf("canonicalGroupFlag = %q, %v", got, err)
	}
	// (An empty flag value is no group at all, as pflag reads a list.)
	for _, g := range []string{"ad min", "-admins", "admïns", "a..b"} {
		// --dev with --data-dir is refused too, after the flag's check: a
		// name the check let through fails the test rather than start a
		// server.
		r := runCLI(t, env{}, "", "server", "--dev", "--data-dir", t.TempDir(), "--require-mfa-group", g)
		if r.code == 0 || !strings.Contains(r.stderr, `--require-mfa-group "`+g+`": not a group name`) {
			t.Errorf("%q: exit %d, stderr %q", g, r.code, r.stderr)
		}
	}
}
