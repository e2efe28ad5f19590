package authz

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goList runs "go list" with args in this package's directory and returns
// the fields of its output. A failure is an error that carries the go
// command's own message: a dependency rule that cannot be checked must fail,
// never pass or skip silently.
func goList(args ...string) ([]string, error) {
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("go list %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("go list %s: %w", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out)), nil
}

// TestDependencies enforces the package's contract: a pure policy engine.
// It must not reach the network, Raft or storage, even indirectly, and must
// not import packages that do I/O directly.
func TestDependencies(t *testing.T) {
	deps, err := goList("-deps", ".")
	if err != nil {
		t.Fatal(err)
	}
	// "net" itself (sockets) is forbidden; net/netip (addresses, used by
	// Cedar's ip extension) is pure data and fine.
	forbiddenDeps := []string{
		"net", "net/http", "net/rpc", "os/exec", "database/sql",
		"github.com/hashicorp/raft", "go.etcd.io/bbolt",
		"github.com/warden-sec/warden/internal/store",
		"github.com/warden-sec/warden/internal/api",
	}
	for _, dep := range deps {
		for _, bad := range forbiddenDeps {
			if dep == bad || (bad != "net" && strings.HasPrefix(dep, bad+"/")) {
				t.Errorf("authz depends on %s", dep)
			}
		}
	}
	imports, err := goList("-f", `{{join .Imports "\n"}}`, ".")
	if err != nil {
		t.Fatal(err)
	}
	forbiddenImports := []string{"os", "io/ioutil", "io/fs", "log", "log/slog", "time", "math/rand", "math/rand/v2", "syscall", "unsafe"}
	for _, imp := range imports {
		for _, bad := range forbiddenImports {
			if imp == bad {
				t.Errorf("authz imports %s directly", imp)
			}
		}
	}
	// The lists are not vacuous: the engine is built on Cedar.
	if !slices.Contains(deps, "github.com/cedar-policy/cedar-go") {
		t.Errorf("go list -deps does not list cedar-go: %v", deps)
	}
}

// TestGoListFailureIsAnError: when go list fails, goList says why, so
// TestDependencies fails with the reason instead of skipping.
func TestGoListFailureIsAnError(t *testing.T) {
	_, err := goList("-deps", "./no-such-package")
	if err == nil || !strings.Contains(err.Error(), "no-such-package") {
		t.Fatalf("goList of a missing package: %v, want an error naming it", err)
	}
}
