package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
)

// TestExamplePoliciesCompile keeps docs/policies valid, against Warden's own
// schema too.
func TestExamplePoliciesCompile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "policies", "*.cedar"))
	if err != nil || len(files) < 3 {
		t.Fatalf("example policies: %v %v", files, err)
	}
	all := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".cedar")
		if err := authz.ValidatePolicy(name, string(b)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		all[name] = string(b)
	}
	if _, err := authz.Compile(all, ""); err != nil {
		t.Fatalf("compile: %v", err)
	}
}

func TestValidateStoreName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"shop", true}, {"a", true}, {"shop-2_x", true},
		{"", false}, {"Shop", false}, {"2shop", false}, {"a/b", false}, {strings.Repeat("a", 64), false}, {"wаrden", false},
	} {
		err := ValidateStoreName(tc.name)
		if (err == nil) != tc.ok || (err != nil && errs.CodeOf(err) != errs.Invalid) {
			t.Errorf("%q: %v", tc.name, err)
		}
	}
}
