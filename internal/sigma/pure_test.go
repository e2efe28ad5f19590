package sigma

import (
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure: the engine does no I/O and reads no clock or randomness: its
// files import none of the packages that would, and call no time.Now.
func TestPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "os/exec": true, "net": true, "net/http": true, "syscall": true,
		"math/rand": true, "math/rand/v2": true, "crypto/rand": true, "io/ioutil": true, "log": true, "log/slog": true}
	files, _ := filepath.Glob("*.go")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		n++
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := goparser.ParseFile(token.NewFileSet(), f, src, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[p] || strings.Contains(p, "nats-io") {
				t.Errorf("%s imports %s", f, p)
			}
		}
		for _, call := range []string{"time.Now(", "time.Since(", "go func"} {
			if strings.Contains(string(src), call) {
				t.Errorf("%s calls %s", f, call)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d source files", n)
	}
}
