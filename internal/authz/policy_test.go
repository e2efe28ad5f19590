package authz

import (
	"errors"
	"strings"
	"testing"
)

// textAt returns the text of doc from line:col (1-based, col in
// characters) to the end of that line.
func textAt(doc string, line, col int) string {
	lines := strings.Split(doc, "\n")
	if line < 1 || line > len(lines) {
		return "<no such line>"
	}
	r := []rune(lines[line-1])
	if col < 1 || col > len(r)+1 {
		return "<no such column>"
	}
	return string(r[col-1:])
}

// TestPolicyErrorPositions feeds broken documents with the error at a known
// place and checks that the *PolicyError points at the offending token: at
// is what the document holds at the reported line and column ("" for the
// end of the document), msg a substring of the message.
func TestPolicyErrorPositions(t *testing.T) {
	tests := []struct {
		name      string
		doc       string
		line, col int
		at        string
		msg       string
	}{
		{"missing semicolon at end", "permit(principal, action, resource)", 1, 36, "", `expected ";", found end of input`},
		{"missing comma in second statement", "permit(principal, action, resource);\nforbid(principal, action resource);", 2, 26, "resource);", `expected ",", found "resource"`},
		{"unquoted entity id", `permit(principal == User::bob, action, resource);`, 1, 30, ", action", `expected "::"`},
		{"missing operand", "permit(principal, action, resource)\n  when { context.x > };", 2, 22, "};", `invalid primary, found "}"`},
		{"unterminated string", "permit(principal, action, resource)\nwhen { \"abc };", 2, 8, `"abc };`, "literal not terminated"},
		{"bad escape", `permit(principal, action, resource) when { resource.path like "a\q" };`, 1, 63, `"a\q"`, "invalid char escape"},
		{"bad unicode escape", "permit(principal, action, resource)\nwhen { context.a == \"\\u{110000}\" };", 2, 21, `"\u{110000}"`, "unicode escape"},
		{"unknown function", `permit(principal, action, resource) when { foo(1) };`, 1, 44, "foo(1)", "`foo` is not a function"},
		{"unknown namespaced function", `permit(principal, action, resource) when { a::b::foo(1) };`, 1, 44, "a::b::foo(1)", "`a::b::foo` is not a function"},
		{"unknown method", `permit(principal, action, resource) when { context.a.foo(1) };`, 1, 54, "foo(1)", "`foo` is not a method"},
		{"wrong argument count, outer call", `permit(principal, action, resource) when { context.a.contains(context.b.contains(1), 2) };`, 1, 54, "contains(context.b", "contains expects one argument"},
		{"integer out of range", "permit(principal, action, resource)\nwhen { 99999999999999999999 };", 2, 8, "99999999999999999999", "out of range"},
		{"bad effect", "// header\nallow(principal, action, resource);", 2, 1, "allow(", `expected "permit" or "forbid", found "allow"`},
		{"unterminated comment", "permit(principal, action, resource) /* x", 1, 37, "/* x", "comment not terminated"},
		{"duplicate annotation", `@id("a") @id("b") permit(principal, action, resource);`, 1, 11, `id("b")`, "duplicate annotation: @id"},
		{"duplicate record key", `permit(principal, action, resource) when { {a: 1, a: 2} == {} };`, 1, 51, "a: 2}", "duplicate key: a"},
		{"missing comma in set", `permit(principal, action, resource) when { [1, 2 3] == [] };`, 1, 50, "3]", `expected "," or the end of the list, found "3"`},
		{"like needs a string", `permit(principal, action, resource) when { context.a like 3 };`, 1, 59, "3 };", `expected string literal, found "3"`},
		{"unknown variable", `permit(principal, action, resource) when { x };`, 1, 44, "x };", `invalid primary, found "x"`},
		{"truncated", `permit(principal, action, resource) when { context.x`, 1, 53, "", `expected "}", found end of input`},
		{"extra closing brace", `permit(principal, action, resource) when { true } }`, 1, 51, "}", `expected ";", found "}"`},
		{"template slot", `permit(principal == ?principal, action, resource);`, 1, 21, "?principal", ""},
		{"characters count, not bytes", "permit(principal, action, resource) when { \"é\" == \"ü\" && é };", 1, 58, "é };", `invalid primary, found "é"`},
		{"tab counts as one column", "permit(principal, action, resource)\n\twhen { ~ };", 2, 9, "~ };", "invalid primary"},
		{"CRLF line ends", "permit(principal, action, resource)\r\nwhen { context.x > };\r\n", 2, 20, "};\r", "invalid primary"},
		{"empty document", "", 1, 1, "", "no policy statements"},
		{"only comments", "// nothing here\n", 1, 1, "// nothing", "no policy statements"},
		{"NUL byte", "permit(principal, action, resource)\nwhen { \"a\x00\" };", 2, 10, "\x00\" };", "NUL"},
		{"invalid UTF-8", "permit(principal, action, resource)\nwhen { \"\xff\" };", 2, 9, "\ufffd\" };", "UTF-8"},
		{"too deep", "permit(principal, action, resource) when {" + strings.Repeat("(", MaxNesting) + "true" + strings.Repeat(")", MaxNesting) + "};", 1, 42 + MaxNesting, "(true", "nests more than"},
		{"too many unary operators", "permit(principal, action, resource) when {" + strings.Repeat("!", MaxNesting) + "true };", 1, 42 + MaxNesting, "!true", "nests more than"},
		{"nested ifs", "permit(principal, action, resource) when {" + strings.Repeat(" if true then", MaxNesting) + " true" + strings.Repeat(" else false", MaxNesting) + " };", 1, 44 + 13*(MaxNesting-1), "if true then true", "nests more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePolicy("p.cedar", tc.doc)
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("ValidatePolicy = %v, want a *PolicyError", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if pe.Name != "p.cedar" || pe.Line != tc.line || pe.Column != tc.col {
				t.Errorf("error at %s:%d:%d, want p.cedar:%d:%d (%v)", pe.Name, pe.Line, pe.Column, tc.line, tc.col, err)
			}
			doc := strings.ToValidUTF8(tc.doc, "\ufffd")
			if got := textAt(doc, pe.Line, pe.Column); !strings.HasPrefix(got, tc.at) {
				t.Errorf("error points at %q, want %q", got, tc.at)
			}
			if !strings.Contains(pe.Message, tc.msg) {
				t.Errorf("message %q, want it to contain %q", pe.Message, tc.msg)
			}
			wantPrefix := "p.cedar:" + itoa(tc.line) + ":" + itoa(tc.col) + ": "
			if !strings.HasPrefix(err.Error(), wantPrefix) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), wantPrefix)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestValidatePolicyAccepts(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"one statement", `permit(principal, action, resource);`},
		{"several with comments", "// a\npermit(principal, action, resource); // b\n/* c */ forbid(principal, action, resource);"},
		{"everything", `@id("x") @advice
permit(
  principal is User in Group::"ops",
  action in [Action::"kv.read", Action::"kv.list"],
  resource is Secret
) when {
  resource.path like "team-1/*" && context.amount < 100 &&
  context.src.isInRange(ip("10.0.0.0/8")) && decimal("1.5") < decimal("2.0") &&
  (if context has mfa then context.mfa else false) && [1, 2].contains(1) &&
  {a: 1, "b c": 2}["b c"] == 2 && principal.tags.hasTag("x") && !(-1 > 0)
} unless { resource has "deny" };`},
		{"nesting at the limit", "permit(principal, action, resource) when {" + strings.Repeat("(", MaxNesting-1) + "true" + strings.Repeat(")", MaxNesting-1) + "};"},
		{"many sequential ifs in brackets", "permit(principal, action, resource) when {" + strings.Repeat("(if true then true else false) && ", 200) + "true };"},
		{"string with tab and escapes", "permit(principal, action, resource) when { resource.path like \"a\tb\\*\\u{e9}\" };"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidatePolicy("ok", tc.doc); err != nil {
				t.Fatalf("ValidatePolicy: %v", err)
			}
		})
	}
}

func TestPolicyNames(t *testing.T) {
	good := []string{"a", "ops.cedar", "team-1/ops_admins.cedar", "_x", "9"}
	for _, name := range good {
		if err := ValidatePolicy(name, `permit(principal, action, resource);`); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
	bad := []string{"", "a#1", "a b", ".hidden", "/abs", "a/../b", "a:b", "é", "a\n", strings.Repeat("a", MaxPolicyNameBytes+1)}
	for _, name := range bad {
		err := ValidatePolicy(name, `permit(principal, action, resource);`)
		var pe *PolicyError
		if !errors.As(err, &pe) || pe.Line != 0 || !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: err = %v, want a position-less *PolicyError", name, err)
		}
	}
}

func TestPolicyTooLarge(t *testing.T) {
	doc := strings.Repeat("permit(principal, action, resource);\n", MaxPolicyBytes/37+1)
	var pe *PolicyError
	if err := ValidatePolicy("big", doc); !errors.As(err, &pe) || !strings.Contains(pe.Message, "larger than") {
		t.Fatalf("err = %v, want size error", err)
	}
}

// TestLongButShallowPolicy checks that a document at the size limit made of
// one long flat expression parses and evaluates without trouble (cedar-go
// builds left-deep trees for chains of binary operators).
func TestLongButShallowPolicy(t *testing.T) {
	head := "permit(principal, action, resource) when { true"
	tail := " };"
	n := (MaxPolicyBytes - len(head) - len(tail)) / len(" && true")
	doc := head + strings.Repeat(" && true", n) + tail
	ps := mustCompile(t, map[string]string{"long": doc}, "")
	if d := ps.Authorize(Request{}, Entities{}); !d.Allow {
		t.Fatalf("decision %+v, want allow", d)
	}
}

// TestCompileErrors checks that Compile reports every bad document, by
// name, and builds nothing.
func TestCompileErrors(t *testing.T) {
	ps, err := Compile(map[string]string{
		"good": `permit(principal, action, resource);`,
		"bad2": `permit(principal, action, resource)`,
		"bad1": "permit(principal, action, resource);\nforbid(principal action, resource);",
	}, "")
	if ps != nil {
		t.Errorf("Compile returned a set despite errors")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	want := "bad1:2:18: expected \",\", found \"action\"\nbad2:1:36: expected \";\", found end of input"
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Name != "bad1" {
		t.Errorf("errors.As: %+v, want the bad1 error first", pe)
	}
}

func TestCompileErrorCap(t *testing.T) {
	docs := map[string]string{}
	for i := range maxReportedErrors + 5 {
		docs["p"+itoa(i+1)] = "nope"
	}
	_, err := Compile(docs, "")
	if err == nil || !strings.HasSuffix(err.Error(), "5 more errors") {
		t.Fatalf("err = %v, want capped errors", err)
	}
}
