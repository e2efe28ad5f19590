package api

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

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
