package api

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warden-sec/warden/internal/authz"
)

// TestRoutesDocumented: docs/authorization.md names every registered route,
// the public ones (no token, no policy) in its public routes table and the
// others with their action, so that no route is public or guarded without
// the operator being told.
func TestRoutesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "authorization.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	guarded := section(t, doc, "## Warden's actions and resources")
	public := section(t, doc, "## Public routes")
	routes := New(Config{}).Routes()
	if len(routes) == 0 {
		t.Fatal("no routes registered")
	}
	var publicRoutes []string
	for _, rt := range routes {
		// The doc writes a wildcard {path...} as {path}.
		name := "`" + rt.Method + " " + strings.ReplaceAll(rt.Pattern, "...}", "}") + "`"
		switch {
		case !rt.Auth:
			publicRoutes = append(publicRoutes, name)
			if !strings.Contains(public, name) {
				t.Errorf("public route %s is not in the public routes table of docs/authorization.md", name)
			}
		case !strings.Contains(guarded, name):
			t.Errorf("route %s is not in the actions table of docs/authorization.md", name)
		}
	}
	// And the public table lists no route that needs a token (or that does
	// not exist). /metrics is served outside the route table.
	for _, m := range regexp.MustCompile("`(GET|POST|PUT|DELETE|LIST) /v1/[^`]*`").FindAllString(public, -1) {
		if !slices.Contains(publicRoutes, m) {
			t.Errorf("docs/authorization.md lists %s as public; it is not a registered public route", m)
		}
	}
}

// TestActionsDocumented: docs/authorization.md has a row for every action
// of internal/authz (authz.Actions, which authz's own test holds equal to
// the constants of actions.go) and no row for an action that does not exist.
func TestActionsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "authorization.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(section(t, string(b), "## Warden's actions and resources"), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				rows = append(rows, name)
			}
		}
	}
	declared := authz.Actions()
	for _, a := range declared {
		if !slices.Contains(rows, a) {
			t.Errorf("docs/authorization.md: no row for action %s", a)
		}
	}
	for _, r := range rows {
		if !slices.Contains(declared, r) {
			t.Errorf("docs/authorization.md: row for %s, which internal/authz does not declare", r)
		}
	}
}

// section returns a markdown section, from its heading to the next heading
// of the same level.
func section(t *testing.T, doc, heading string) string {
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

// TestRouteTableDocumented: docs/api.md lists every route with its access,
// audit class and success status, and no route that does not exist.
func TestRouteTableDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for l := range strings.Lines(string(doc)) {
		if strings.HasPrefix(l, "| `") && strings.Count(l, "|") == 6 {
			rows[strings.TrimSpace(l)] = true
		}
	}
	s := New(Config{RateLimit: -1, Gather: prometheus.NewRegistry()})
	defer s.Close()
	for _, r := range s.Routes() {
		access := "policy"
		if !r.Auth {
			access = "public"
		}
		row := fmt.Sprintf("| `%s %s` | `%s` | %s | %s | %d |", r.Method, r.Pattern, r.Name, access, r.Audit, r.Status)
		if !rows[row] {
			t.Errorf("docs/api.md lacks the row\n%s", row)
		}
		delete(rows, row)
	}
	for row := range rows {
		t.Errorf("docs/api.md lists a route that is not registered:\n%s", row)
	}
}
