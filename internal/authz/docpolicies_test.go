package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example policies the docs ship (docs/policies) compile as the warden
// store compiles them (with the schema stored for it, none by default): a
// user who copies them gets no error.
func TestDocPoliciesCompile(t *testing.T) {
	files, err := filepath.Glob("../../docs/policies/*.cedar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies under docs/policies: %v", err)
	}
	docs := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[strings.TrimSuffix(filepath.Base(f), ".cedar")] = string(b)
	}
	if _, err := Compile(docs, ""); err != nil {
		t.Fatalf("docs/policies do not compile: %v", err)
	}
}
