package transit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPure enforces what the package documentation says transit must not
// do: no network, files, Raft or storage among its imports, no global
// entropy, no clock, and no Warden package but the error type.
func TestPure(t *testing.T) {
	forbidden := map[string]string{
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
	allowed := map[string]bool{"github.com/warden-sec/warden/internal/errs": true}
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbidden[p]; bad || strings.HasPrefix(p, "github.com/warden-sec/warden/") && !allowed[p] {
				if !bad {
					why = "the core depends on no other Warden package but internal/errs"
				}
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
}
