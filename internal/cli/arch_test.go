package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoInitNoMutableGlobals enforces that the CLI, its main and the SDK have
// no init functions and no package-level variables other than sentinel
// errors (Err...), so that tests can run commands in-process side by side.
func TestNoInitNoMutableGlobals(t *testing.T) {
	for _, dir := range []string{".", "../../cmd/warden", "../../pkg/client"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil && d.Name.Name == "init" {
						t.Errorf("%s: init function", name)
					}
				case *ast.GenDecl:
					if d.Tok != token.VAR {
						continue
					}
					for _, s := range d.Specs {
						for _, n := range s.(*ast.ValueSpec).Names {
							if !strings.HasPrefix(n.Name, "Err") {
								t.Errorf("%s: package-level variable %s", name, n.Name)
							}
						}
					}
				}
			}
		}
	}
}
