package compliance

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGoldenJSON checks the JSON report of the seeded cluster byte for
// byte; run with -update to rewrite it, and review the diff.
func TestGoldenJSON(t *testing.T) {
	for _, c := range []struct {
		name string
		fw   Framework
		zone string
	}{
		{"iso27001", ISO27001, ""},
		{"iec62443-3-3", IEC62443, ""},
		{"iec62443-3-3-control", IEC62443, "control"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Evaluate(seededState(t), c.fw, c.zone)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RenderJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Evaluate(seededState(t), c.fw, c.zone)
			if b, _ := RenderJSON(again); !bytes.Equal(b, got) {
				t.Fatal("two evaluations of the same state render differently")
			}
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(got, '\n'), want) {
				t.Errorf("%s differs from the rendered report; run go test -run TestGoldenJSON -update and review the diff", path)
			}
		})
	}
}
