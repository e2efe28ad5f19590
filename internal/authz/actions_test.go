package authz

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"path/filepath"
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

// TestActionsListsEveryDeclaredAction: Actions is the complete list.
func TestActionsListsEveryDeclaredAction(t *testing.T) {
	if got, want := Actions(), declaredActions(t); !slices.Equal(got, want) {
		t.Errorf("Actions() = %q\ndeclared   %q", got, want)
	}
}

// TestActionsDocumented: docs/authorization.md has a row for every declared
// action in its actions table, and no row for an action that does not exist.
func TestActionsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "authorization.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := docSection(t, string(doc), "## Warden's actions and resources")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				rows = append(rows, name)
			}
		}
	}
	declared := declaredActions(t)
	for _, a := range declared {
		if !slices.Contains(rows, a) {
			t.Errorf("docs/authorization.md: no row for action %s", a)
		}
	}
	for _, r := range rows {
		if !slices.Contains(declared, r) {
			t.Errorf("docs/authorization.md: row for %s, which actions.go does not declare", r)
		}
	}
}

// docSection returns the text of a markdown section, from its heading to
// the next heading of the same level.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/authorization.md has no %q section", heading)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}
