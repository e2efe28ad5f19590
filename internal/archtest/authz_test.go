package archtest

import (
	"strings"
	"testing"
)

// TestAuthzIsPure enforces internal/authz's contract: a pure policy engine.
// It must not reach the network, Raft or storage, even indirectly (through
// any module, as go list computes it), and must not import packages that do
// I/O, read the clock or use unsafe directly.
func TestAuthzIsPure(t *testing.T) {
	out, err := goList("-f", `{{join .Deps " "}}`, module+"internal/authz")
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(out)
	// "net" itself (sockets) is forbidden; net/netip (addresses, used by
	// Cedar's ip extension) is pure data and fine.
	forbiddenDeps := []string{
		"net", "net/http", "net/rpc", "os/exec", "database/sql",
		"github.com/hashicorp/raft", "go.etcd.io/bbolt",
		module + "internal/store",
		module + "internal/api",
	}
	for _, dep := range deps {
		for _, bad := range forbiddenDeps {
			if dep == bad || (bad != "net" && strings.HasPrefix(dep, bad+"/")) {
				t.Errorf("authz depends on %s", dep)
			}
		}
	}
	out, err = goList("-f", `{{join .Imports " "}}`, module+"internal/authz")
	if err != nil {
		t.Fatal(err)
	}
	forbiddenImports := []string{"os", "io/ioutil", "io/fs", "log", "log/slog", "time", "math/rand", "math/rand/v2", "syscall", "unsafe"}
	for _, imp := range strings.Fields(out) {
		for _, bad := range forbiddenImports {
			if imp == bad {
				t.Errorf("authz imports %s directly", imp)
			}
		}
	}
	// The lists are not vacuous: the engine is built on Cedar.
	if !strings.Contains(" "+out+" ", " github.com/cedar-policy/cedar-go ") {
		t.Errorf("go list does not show authz importing cedar-go: %s", out)
	}
}
