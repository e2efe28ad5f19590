package authz

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the package's contract: a pure policy engine.
// It must not reach the network, Raft or storage, even indirectly, and must
// not import packages that do I/O directly.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	// "net" itself (sockets) is forbidden; net/netip (addresses, used by
	// Cedar's ip extension) is pure data and fine.
	forbiddenDeps := []string{
		"net", "net/http", "net/rpc", "os/exec", "database/sql",
		"github.com/hashicorp/raft", "go.etcd.io/bbolt",
		"github.com/warden-sec/warden/internal/store",
		"github.com/warden-sec/warden/internal/api",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range forbiddenDeps {
			if dep == bad || (bad != "net" && strings.HasPrefix(dep, bad+"/")) {
				t.Errorf("authz depends on %s", dep)
			}
		}
	}
	out, err = exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbiddenImports := []string{"os", "io/ioutil", "io/fs", "log", "log/slog", "time", "math/rand", "math/rand/v2", "syscall", "unsafe"}
	for _, imp := range strings.Fields(string(out)) {
		for _, bad := range forbiddenImports {
			if imp == bad {
				t.Errorf("authz imports %s directly", imp)
			}
		}
	}
}
