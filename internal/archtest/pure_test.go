package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pureForbidden are the imports a pure core may not have, with why.
var pureForbidden = map[string]string{
	"net":                       "no network",
	"net/http":                  "no HTTP",
	"os":                        "no files",
	"os/exec":                   "no processes",
	"io/ioutil":                 "no files",
	"path/filepath":             "no files",
	"syscall":                   "no system calls",
	"crypto/rand":               "entropy is passed in",
	"math/rand":                 "entropy is passed in",
	"math/rand/v2":              "entropy is passed in",
	"github.com/hashicorp/raft": "no Raft",
	"go.etcd.io/bbolt":          "no storage engine",
}

// TestPureCores enforces what the documentation of each pure core says it
// must not do: no network, files, Raft or storage engine among its
// imports, no global entropy, no clock, and no Warden package but those
// listed.
func TestPureCores(t *testing.T) {
	for _, c := range []struct {
		pkg     string
		allowed []string // Warden packages it may import
	}{
		{"internal/audit", nil},
		{"internal/transit", []string{module + "internal/errs"}},
		{"internal/compliance", []string{module + "internal/audit", module + "internal/compliance/signed"}},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			dir := filepath.Join("..", "..", c.pkg)
			files, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			fset := token.NewFileSet()
			for _, f := range files {
				name := f.Name()
				if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
					continue
				}
				file, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, imp := range file.Imports {
					p, _ := strconv.Unquote(imp.Path.Value)
					why, bad := pureForbidden[p]
					if !bad && strings.HasPrefix(p, module) && !slices.Contains(c.allowed, p) {
						bad, why = true, "the core depends on no other Warden package but "+strings.Join(c.allowed, ", ")
					}
					if bad {
						t.Errorf("%s imports %s: %s", name, p, why)
					}
				}
				ast.Inspect(file, func(n ast.Node) bool {
					sel, ok := n.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
						t.Errorf("%s: time.%s: the clock is the caller's", fset.Position(sel.Pos()), sel.Sel.Name)
					}
					return true
				})
			}
		})
	}
}
