// Package archtest enforces the dependency rules of ARCHITECTURE.md: which
// packages may depend, directly or through other Warden packages, on HTTP,
// Raft or encryption.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/warden-sec/warden/"

// imports returns the non-test imports of the package in dir.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []string
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// closure returns every import reachable from pkg through Warden packages,
// with the Warden package that imports it.
func closure(t *testing.T, pkg string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		for _, imp := range imports(t, filepath.Join("..", "..", strings.TrimPrefix(p, module))) {
			if _, done := out[imp]; done {
				continue
			}
			out[imp] = p
			if strings.HasPrefix(imp, module) {
				walk(imp)
			}
		}
	}
	walk(module + pkg)
	return out
}

func TestDependencyRules(t *testing.T) {
	rules := []struct {
		pkg       string
		forbidden []string
		why       string
	}{
		{"internal/authz", []string{"net/http", "github.com/hashicorp/raft", "go.etcd.io/bbolt"}, "the policy engine is pure"},
		{"internal/barrier", []string{"net/http", "github.com/hashicorp/raft", module + "internal/store"}, "the barrier knows nothing about Raft or storage"},
		{"internal/shamir", []string{"net/http", "github.com/hashicorp/raft"}, "secret sharing is pure"},
		{"internal/store", []string{"net/http", module + "internal/barrier", "crypto/aes", "crypto/cipher"}, "the store knows nothing about encryption"},
		{"internal/raftnet", []string{module + "internal/barrier", module + "internal/core", "crypto/aes", "crypto/cipher"}, "the cluster network carries the store's commands, never keys"},
		{"internal/core", []string{"net/http"}, "core has no HTTP"},
		{"internal/identity", []string{"net/http"}, "services have no HTTP"},
		{"internal/secrets", []string{"net/http"}, "services have no HTTP"},
		{"internal/policy", []string{"net/http"}, "services have no HTTP"},
		{"internal/approval", []string{"net/http"}, "services have no HTTP"},
		{"internal/cosign", []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", module + "internal/store", module + "internal/core"},
			"cosigning reaches storage through the narrow Storage interface (core implements it), never Raft or the store"},
		{"internal/auditcheck", []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", module + "internal/store", module + "internal/core",
			module + "internal/server"}, "a verifier trusts only what verifies with its pinned keys: it is a client, never server internals"},
		{"pkg/middleware", []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt", module + "internal/store", module + "internal/barrier",
			module + "internal/api", module + "internal/server", module + "internal/core"}, "the services' middleware is a client: it decides with the pure engine, never with server internals"},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			deps := closure(t, r.pkg)
			for _, f := range r.forbidden {
				if by, ok := deps[f]; ok {
					t.Errorf("%s depends on %s (imported by %s): %s", r.pkg, f, by, r.why)
				}
			}
		})
	}
}

// TestNoInitFunctions: no package runs code at import time.
func TestNoInitFunctions(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "\nfunc init()") {
			t.Errorf("%s has an init function", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClosureSeesTransitiveImports keeps the rule test honest: core reaches
// Raft through the store, and the walk must see that.
func TestClosureSeesTransitiveImports(t *testing.T) {
	deps := closure(t, "internal/core")
	if deps["github.com/hashicorp/raft"] != module+"internal/store" {
		t.Fatalf("core's closure misses raft via store: %q", deps["github.com/hashicorp/raft"])
	}
}
