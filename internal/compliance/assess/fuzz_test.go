package assess

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts has a name, checks with
// unique ids, a rule each, and (when small) runs on a fixture root
// without panicking, one result per check, results that ValidateResults
// accepts.
func FuzzParse(f *testing.F) {
	f.Add(Builtin())
	b := Builtin()
	f.Add(b[:bytes.Index(b, []byte("  - id: sshd-protocol-2"))])
	f.Add([]byte(policyOf("file_exists: /etc", "any_of: [{sysctl: {key: a, equals: '1'}}, {service: {name: x, state: enabled}}]")))
	f.Add([]byte(policyOf(`file_contains: {path: /etc/ssh/sshd_config, include: ["/etc/ssh/sshd_config.d/*.conf"], first_match: true, pattern: '(?m)^PermitRootLogin no'}`)))
	f.Add([]byte(policyOf(`file_mode: {path: /etc/shadow, max_mode: "0640", owner: [root, "0"], group: shadow}`, "no_world_writable: {paths: /etc, max_files: 10}")))
	f.Add([]byte("policy: p\nchecks:\n  - &c {id: a, title: A, severity: low, file_exists: /x}\n  - *c\n"))
	root := fixture(f, "bad-host", nil)
	if err := os.WriteFile(filepath.Join(root, "etc", "x"), []byte("a\nb=c\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		if p.Name == "" || len(p.Checks) == 0 {
			t.Fatalf("accepted %+v", p)
		}
		seen := map[string]bool{}
		for _, c := range p.Checks {
			if seen[c.ID] || c.rule == nil || c.Title == "" {
				t.Fatalf("accepted check %+v", c)
			}
			seen[c.ID] = true
		}
		if len(data) > 4096 {
			return // a large policy takes milliseconds to run; the fixture tests run the built-in one
		}
		rs := Run(context.Background(), p, Env{Root: root, Run: func(context.Context, []string) ([]byte, error) { return []byte("x\n"), nil }})
		if len(rs) != len(p.Checks) {
			t.Fatalf("%d results for %d checks", len(rs), len(p.Checks))
		}
		if err := ValidateResults(rs); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzValidateResults: ValidateResults never panics, and what it accepts
// survives a JSON round trip unchanged and is accepted again.
func FuzzValidateResults(f *testing.F) {
	ok, _ := json.Marshal([]Result{okResult()})
	f.Add(ok)
	f.Add([]byte(`[{"check":"a","title":"t","severity":"low","controls":[],"status":"error","message":"x\u0000"}]`))
	f.Add([]byte(`[{"check":"a","title":"t","severity":"low","controls":["iec62443-3-3:SR 1.1 RE 1"],"status":"not_applicable","message":"","evidence":"é"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rs []Result
		if json.Unmarshal(data, &rs) != nil {
			return
		}
		if ValidateResults(rs) != nil {
			return
		}
		again, err := json.Marshal(rs)
		if err != nil {
			t.Fatal(err)
		}
		var back []Result
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatal(err)
		}
		if err := ValidateResults(back); err != nil {
			t.Fatalf("accepted, then after a round trip: %v", err)
		}
	})
}
