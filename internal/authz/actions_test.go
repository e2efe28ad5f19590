package authz

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declaredActions returns the values of the Action... string constants of
// actions.go, in source order: what the code declares, read from the source
// so that a constant left out of Actions is noticed.
func declaredActions(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(gotoken.NewFileSet(), "actions.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != gotoken.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Type != nil { // ActionType and the entity types are typed
				continue
			}
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !strings.HasPrefix(n.Name, "Action") || !ok || lit.Kind != gotoken.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Action constants found in actions.go")
	}
	return out
}

// TestActionsListsEveryDeclaredAction: Actions is the complete list (what
// internal/api's test holds docs/authorization.md to).
func TestActionsListsEveryDeclaredAction(t *testing.T) {
	if got, want := Actions(), declaredActions(t); !slices.Equal(got, want) {
		t.Errorf("Actions() = %q\ndeclared   %q", got, want)
	}
}
