package archtest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// services are the packages of domain logic (ARCHITECTURE.md: "no HTTP, no
// Raft types"), the pure cores under them, and the plain store types they
// build transactions with.
var services = []string{
	"internal/identity", "internal/secrets", "internal/policy", "internal/authority", "internal/auditlog",
	"internal/authz", "internal/audit", "internal/pki", "internal/names", "internal/store/kv",
	"internal/transit", "internal/transit/engine", "internal/periodic", "internal/approval",
	"internal/compliance", "internal/compliance/signed", "internal/compliance/records", "internal/compliance/assess",
}

// TestServicesDoNotDependOnRaft: no service reaches Raft, its bolt log store
// or bbolt, directly or through any package (Warden's or a module's), as
// `go list` computes the dependencies the build uses; nor the store's
// implementation, whose types they take from internal/store/kv. They talk to
// storage through the narrow interfaces they declare (Storage, Core, Tree).
func TestServicesDoNotDependOnRaft(t *testing.T) {
	forbidden := []string{"github.com/hashicorp/raft", "github.com/hashicorp/raft-boltdb", "go.etcd.io/bbolt", "github.com/boltdb/bolt"}
	pkgs := make([]string, len(services))
	for i, s := range services {
		pkgs[i] = module + s
	}
	out, err := goList(append([]string{"-f", `{{.ImportPath}} {{join .Deps " "}}`}, pkgs...)...)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		seen++
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: services must not depend on Raft or bbolt", pkg, d)
				}
			}
			if d == module+"internal/store" {
				t.Errorf("%s depends on internal/store: take the types from internal/store/kv", pkg)
			}
		}
	}
	if seen != len(services) {
		t.Fatalf("go list described %d packages, want %d:\n%s", seen, len(services), out)
	}
}

// TestServiceRuleSeesRaft keeps the rule honest: the same query finds Raft
// under the store and under core, which reaches it through the store.
func TestServiceRuleSeesRaft(t *testing.T) {
	out, err := goList("-f", `{{join .Deps " "}}`, module+"internal/core")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+out+" ", " github.com/hashicorp/raft ") {
		t.Fatalf("go list -f .Deps of internal/core lacks hashicorp/raft: %s", out)
	}
}

// TestGoListFailureIsAnError: when go list fails, goList says why, so the
// rules above fail with the reason instead of passing or skipping.
func TestGoListFailureIsAnError(t *testing.T) {
	_, err := goList("-deps", module+"internal/no-such-package")
	if err == nil || !strings.Contains(err.Error(), "no-such-package") {
		t.Fatalf("goList of a missing package: %v, want an error naming it", err)
	}
}

// goList runs "go list" with args and returns its output. A failure is an
// error carrying the go command's message: a rule that cannot be checked
// fails, never passes or skips.
func goList(args ...string) (string, error) {
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", errors.New("go list " + strings.Join(args, " ") + ": " + err.Error() + ": " + strings.TrimSpace(string(ee.Stderr)))
		}
		return "", errors.New("go list " + strings.Join(args, " ") + ": " + err.Error())
	}
	return string(out), nil
}
