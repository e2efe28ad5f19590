package assess

import (
	"context"
	"testing"
)

// BenchmarkRunBuiltin runs the built-in policy on the bad-host fixture
// (every rule kind reads files; no command runs).
func BenchmarkRunBuiltin(b *testing.B) {
	root := badHost(b)
	p := builtin(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if rs := Run(ctx, p, Env{Root: root}); len(rs) != len(p.Checks) {
			b.Fatal(len(rs))
		}
	}
}

// BenchmarkParseBuiltin parses the built-in policy.
func BenchmarkParseBuiltin(b *testing.B) {
	data := Builtin()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("linux-baseline", data); err != nil {
			b.Fatal(err)
		}
	}
}
