package sigma

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

// ruleYAML wraps a detection section (indented by 2) into a rule on the
// "test" dataset.
func ruleYAML(detection string) string {
	return "title: t\nid: t-1\nlogsource:\n  product: test\n  service: unit\ndetection:\n" + detection
}

var testMapping = &Mapping{
	Logsources: []LogsourceMapping{{Product: "test", Service: "unit", Datasets: []string{"test"}}},
	Fields:     map[string]string{"c-ip": "source.ip", "CommandLine": "process.command_line"},
}

func compileOne(t *testing.T, detection string, cfg Config) *Set {
	t.Helper()
	rules, err := Parse("t.yml", []byte(ruleYAML(detection)))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if cfg.Mapping == nil {
		cfg.Mapping = testMapping
	}
	s, err := Compile(rules, cfg)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func ev(kv ...any) events.Event {
	e := events.Event{"event.dataset": "test"}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i].(string)] = kv[i+1]
	}
	return e
}

// TestModifiersAndConditions: every modifier and condition form, with
// events that match and events that do not (Sigma specification v2,
// "Modifiers" and "Condition").
func TestModifiersAndConditions(t *testing.T) {
	ph := map[string][]string{"admins": {"root", "adm*"}}
	tests := []struct {
		name      string
		detection string
		match     []events.Event
		nomatch   []events.Event
	}{
		{"exact, case-insensitive", "  sel:\n    user.name: Root\n  condition: sel\n",
			[]events.Event{ev("user.name", "root"), ev("user.name", "ROOT")},
			[]events.Event{ev("user.name", "rooty"), ev("user.name", "xroot"), ev(), {"user.name": "root", "event.dataset": "other"}}},
		{"value list is OR", "  sel:\n    user.name: [alice, bob]\n  condition: sel\n",
			[]events.Event{ev("user.name", "alice"), ev("user.name", "Bob")},
			[]events.Event{ev("user.name", "carol")}},
		{"map is AND", "  sel:\n    user.name: alice\n    source.ip: 10.0.0.1\n  condition: sel\n",
			[]events.Event{ev("user.name", "alice", "source.ip", "10.0.0.1")},
			[]events.Event{ev("user.name", "alice"), ev("user.name", "alice", "source.ip", "10.0.0.2")}},
		{"list of maps is OR", "  sel:\n    - user.name: alice\n    - source.ip: 10.0.0.1\n  condition: sel\n",
			[]events.Event{ev("user.name", "alice"), ev("source.ip", "10.0.0.1")},
			[]events.Event{ev("user.name", "bob", "source.ip", "10.0.0.2")}},
		{"mapped field name", "  sel:\n    c-ip: 10.0.0.1\n  condition: sel\n",
			[]events.Event{ev("source.ip", "10.0.0.1")},
			[]events.Event{ev("c-ip", "10.0.0.1")}},
		{"null", "  sel:\n    user.name: null\n  condition: sel\n",
			[]events.Event{ev(), ev("user.name", nil)},
			[]events.Event{ev("user.name", "x")}},
		{"null or value", "  sel:\n    user.name: [null, bob]\n  condition: sel\n",
			[]events.Event{ev(), ev("user.name", "bob")},
			[]events.Event{ev("user.name", "x")}},
		{"empty string", "  sel:\n    user.name: ''\n  condition: sel\n",
			[]events.Event{ev("user.name", "")},
			[]events.Event{ev(), ev("user.name", "x")}},
		{"wildcard *", "  sel:\n    url.original: /admin*.php\n  condition: sel\n",
			[]events.Event{ev("url.original", "/admin.php"), ev("url.original", "/ADMIN/x.PHP")},
			[]events.Event{ev("url.original", "/admin.phps"), ev("url.original", "x/admin.php")}},
		{"wildcard ?", "  sel:\n    user.name: r??t\n  condition: sel\n",
			[]events.Event{ev("user.name", "root"), ev("user.name", "RAAT")},
			[]events.Event{ev("user.name", "rot"), ev("user.name", "roots")}},
		{"escaped wildcards", "  sel:\n    msg: 'a\\*b\\?c\\\\d'\n  condition: sel\n",
			[]events.Event{ev("msg", `a*b?c\d`)},
			[]events.Event{ev("msg", `axb?c\d`), ev("msg", `a*bxc\d`)}},
		{"other backslash is literal", "  sel:\n    - path: 'C:\\Windows\\\\*'\n    - path: 'D:\\Temp\\X'\n  condition: sel\n",
			[]events.Event{ev("path", `c:\windows\system32`), ev("path", `d:\temp\x`)},
			[]events.Event{ev("path", `c:/windows/system32`)}},
		{"middle globs", "  sel:\n    cmd: 'a*b*c'\n  condition: sel\n",
			[]events.Event{ev("cmd", "abc"), ev("cmd", "aXXbYYc")},
			[]events.Event{ev("cmd", "acb"), ev("cmd", "abcX")}},
		{"contains", "  sel:\n    CommandLine|contains: wget\n  condition: sel\n",
			[]events.Event{ev("process.command_line", "sh -c WGET http://x"), ev("process.command_line", "wget")},
			[]events.Event{ev("process.command_line", "curl http://x")}},
		{"contains with wildcard inside", "  sel:\n    cmd|contains: 'a*z'\n  condition: sel\n",
			[]events.Event{ev("cmd", "xx a to z yy")},
			[]events.Event{ev("cmd", "z then a")}},
		{"startswith", "  sel:\n    path|startswith: /etc/\n  condition: sel\n",
			[]events.Event{ev("path", "/etc/passwd"), ev("path", "/ETC/x")},
			[]events.Event{ev("path", "/usr/etc/x"), ev("path", "/et")}},
		{"endswith", "  sel:\n    path|endswith: .sh\n  condition: sel\n",
			[]events.Event{ev("path", "/tmp/x.sh"), ev("path", "/tmp/X.SH")},
			[]events.Event{ev("path", "/tmp/x.shx")}},
		{"contains|all", "  sel:\n    cmd|contains|all: [curl, '| sh']\n  condition: sel\n",
			[]events.Event{ev("cmd", "curl http://x | sh")},
			[]events.Event{ev("cmd", "curl http://x"), ev("cmd", "cat x | sh")}},
		{"cased", "  sel:\n    cmd|cased: Root\n  condition: sel\n",
			[]events.Event{ev("cmd", "Root")},
			[]events.Event{ev("cmd", "root"), ev("cmd", "ROOT")}},
		{"contains|cased", "  sel:\n    cmd|contains|cased: ABC\n  condition: sel\n",
			[]events.Event{ev("cmd", "xxABCxx")},
			[]events.Event{ev("cmd", "xxabcxx")}},
		{"non-ASCII case-insensitive", "  sel:\n    name|contains: ÉTÉ\n  condition: sel\n",
			[]events.Event{ev("name", "un été chaud")},
			[]events.Event{ev("name", "un ete chaud")}},
		{"re", "  sel:\n    cmd|re: '^ab+c$'\n  condition: sel\n",
			[]events.Event{ev("cmd", "abbbc")},
			[]events.Event{ev("cmd", "ABBC"), ev("cmd", "ac")}},
		{"re|i", "  sel:\n    cmd|re|i: '^ab+c$'\n  condition: sel\n",
			[]events.Event{ev("cmd", "ABBC")},
			[]events.Event{ev("cmd", "ac")}},
		{"re|m", "  sel:\n    cmd|re|m: '^second$'\n  condition: sel\n",
			[]events.Event{ev("cmd", "first\nsecond\nthird")},
			[]events.Event{ev("cmd", "first second")}},
		{"re|s", "  sel:\n    cmd|re|s: 'a.b'\n  condition: sel\n",
			[]events.Event{ev("cmd", "a\nb")},
			[]events.Event{ev("cmd", "ab")}},
		{"cidr", "  sel:\n    source.ip|cidr: [10.0.0.0/8, '2001:db8::/32']\n  condition: sel\n",
			[]events.Event{ev("source.ip", "10.1.2.3"), ev("source.ip", "2001:db8::1"), ev("source.ip", "::ffff:10.0.0.1")},
			[]events.Event{ev("source.ip", "11.0.0.1"), ev("source.ip", "not an ip"), ev("source.ip", "2001:db9::1")}},
		{"base64", "  sel:\n    data|base64: secret\n  condition: sel\n",
			[]events.Event{ev("data", "c2VjcmV0")},
			[]events.Event{ev("data", "secret")}},
		{"base64|contains", "  sel:\n    data|base64|contains: secret\n  condition: sel\n",
			[]events.Event{ev("data", "xx c2VjcmV0 yy")},
			[]events.Event{ev("data", "xx secret yy")}},
		{"base64offset|contains", "  sel:\n    data|base64offset|contains: /bin/sh\n  condition: sel\n",
			[]events.Event{ev("data", "ZWNobyAvYmluL3No"), ev("data", "L2Jpbi9zaA=="), ev("data", "eCAvYmluL3No")},
			[]events.Event{ev("data", "/bin/sh"), ev("data", "L2Jpbi9iYXNo")}},
		{"wide|base64offset|contains", "  sel:\n    data|wide|base64offset|contains: ping\n  condition: sel\n",
			[]events.Event{ev("data", "cABpAG4AZwA=")},
			[]events.Event{ev("data", "cGluZw==")}},
		{"windash", "  sel:\n    cmd|windash|contains: ' -enc '\n  condition: sel\n",
			[]events.Event{ev("cmd", "powershell -enc AAA"), ev("cmd", "powershell /enc AAA"), ev("cmd", "powershell \u2013enc AAA")},
			[]events.Event{ev("cmd", "powershell enc AAA")}},
		{"exists true", "  sel:\n    user.name|exists: true\n  condition: sel\n",
			[]events.Event{ev("user.name", "x"), ev("user.name", "")},
			[]events.Event{ev()}},
		{"exists false", "  sel:\n    user.name|exists: false\n  condition: sel\n",
			[]events.Event{ev()},
			[]events.Event{ev("user.name", "x")}},
		{"gt", "  sel:\n    n|gt: 10\n  condition: sel\n",
			[]events.Event{ev("n", 11.0), ev("n", "12"), ev("n", int64(100))},
			[]events.Event{ev("n", 10.0), ev("n", "abc"), ev()}},
		{"gte", "  sel:\n    n|gte: 10\n  condition: sel\n",
			[]events.Event{ev("n", 10.0)},
			[]events.Event{ev("n", 9.5)}},
		{"lt", "  sel:\n    n|lt: 10\n  condition: sel\n",
			[]events.Event{ev("n", 9.0)},
			[]events.Event{ev("n", 10.0)}},
		{"lte", "  sel:\n    n|lte: 10\n  condition: sel\n",
			[]events.Event{ev("n", 10.0)},
			[]events.Event{ev("n", 10.5)}},
		{"number equals number or string", "  sel:\n    http.response.status_code: 404\n  condition: sel\n",
			[]events.Event{ev("http.response.status_code", 404.0), ev("http.response.status_code", "404"), ev("http.response.status_code", int64(404))},
			[]events.Event{ev("http.response.status_code", 200.0), ev("http.response.status_code", "4040")}},
		{"bool", "  sel:\n    tls: true\n  condition: sel\n",
			[]events.Event{ev("tls", true), ev("tls", "true")},
			[]events.Event{ev("tls", false)}},
		{"multi-valued field", "  sel:\n    tags: b\n  condition: sel\n",
			[]events.Event{ev("tags", []any{"a", "b"})},
			[]events.Event{ev("tags", []any{"a", "c"})}},
		{"fieldref", "  sel:\n    user.name|fieldref: user.target.name\n  condition: sel\n",
			[]events.Event{ev("user.name", "bob", "user.target.name", "BOB")},
			[]events.Event{ev("user.name", "bob", "user.target.name", "alice"), ev("user.name", "bob")}},
		{"fieldref|startswith", "  sel:\n    file.path|fieldref|startswith: dir\n  condition: sel\n",
			[]events.Event{ev("file.path", "/home/bob/x", "dir", "/home/bob")},
			[]events.Event{ev("file.path", "/tmp/x", "dir", "/home/bob")}},
		{"expand", "  sel:\n    user.name|expand: '%admins%'\n  condition: sel\n",
			[]events.Event{ev("user.name", "root"), ev("user.name", "admin")},
			[]events.Event{ev("user.name", "bob")}},
		{"keywords", "  keywords:\n    - 'Failed password'\n    - segfault\n  condition: keywords\n",
			[]events.Event{ev("message", "sshd[1]: failed password for root"), ev("message", "kernel: SEGFAULT at 0")},
			[]events.Event{ev("message", "Accepted password"), ev()}},
		{"keyword scalar with wildcard", "  keywords: 'error*disk'\n  condition: keywords\n",
			[]events.Event{ev("message", "an error on disk sda")},
			[]events.Event{ev("message", "disk error")}},
		{"keywords with all", "  keywords:\n    '|all': [foo, bar]\n  condition: keywords\n",
			[]events.Event{ev("message", "bar then foo")},
			[]events.Event{ev("message", "only foo")}},
		{"and", "  a:\n    x: 1\n  b:\n    y: 2\n  condition: a and b\n",
			[]events.Event{ev("x", 1.0, "y", 2.0)},
			[]events.Event{ev("x", 1.0), ev("y", 2.0)}},
		{"or", "  a:\n    x: 1\n  b:\n    y: 2\n  condition: a or b\n",
			[]events.Event{ev("x", 1.0), ev("y", 2.0)},
			[]events.Event{ev("x", 2.0, "y", 1.0)}},
		{"not", "  a:\n    x: 1\n  b:\n    y: 2\n  condition: a and not b\n",
			[]events.Event{ev("x", 1.0), ev("x", 1.0, "y", 3.0)},
			[]events.Event{ev("x", 1.0, "y", 2.0), ev("y", 3.0)}},
		{"precedence: not > and > or", "  a:\n    x: 1\n  b:\n    y: 1\n  c:\n    z: 1\n  condition: a or b and not c\n",
			[]events.Event{ev("x", 1.0, "z", 1.0), ev("y", 1.0)},
			[]events.Event{ev("y", 1.0, "z", 1.0)}},
		{"parentheses", "  a:\n    x: 1\n  b:\n    y: 1\n  c:\n    z: 1\n  condition: (a or b) and not c\n",
			[]events.Event{ev("x", 1.0), ev("y", 1.0)},
			[]events.Event{ev("x", 1.0, "z", 1.0)}},
		{"1 of X*", "  sel_a:\n    x: 1\n  sel_b:\n    y: 1\n  other:\n    z: 1\n  condition: 1 of sel_*\n",
			[]events.Event{ev("x", 1.0), ev("y", 1.0)},
			[]events.Event{ev("z", 1.0)}},
		{"all of X*", "  sel_a:\n    x: 1\n  sel_b:\n    y: 1\n  other:\n    z: 1\n  condition: all of sel_*\n",
			[]events.Event{ev("x", 1.0, "y", 1.0)},
			[]events.Event{ev("x", 1.0), ev("y", 1.0, "z", 1.0)}},
		{"1 of them", "  a:\n    x: 1\n  b:\n    y: 1\n  condition: 1 of them\n",
			[]events.Event{ev("x", 1.0), ev("y", 1.0)},
			[]events.Event{ev("z", 1.0)}},
		{"all of them", "  a:\n    x: 1\n  b:\n    y: 1\n  condition: all of them\n",
			[]events.Event{ev("x", 1.0, "y", 1.0)},
			[]events.Event{ev("x", 1.0)}},
		{"not 1 of", "  a:\n    x: 1\n  f_1:\n    y: 1\n  f_2:\n    z: 1\n  condition: a and not 1 of f_*\n",
			[]events.Event{ev("x", 1.0)},
			[]events.Event{ev("x", 1.0, "z", 1.0)}},
		{"list of conditions is OR", "  a:\n    x: 1\n  b:\n    y: 1\n  condition:\n    - a\n    - b\n",
			[]events.Event{ev("x", 1.0), ev("y", 1.0)},
			[]events.Event{ev("z", 1.0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := compileOne(t, tc.detection, Config{Placeholders: ph})
			var dst []*Rule
			for _, e := range tc.match {
				if dst = s.Match(e, dst); len(dst) != 1 {
					t.Errorf("does not match %v", e)
				}
			}
			for _, e := range tc.nomatch {
				if dst = s.Match(e, dst); len(dst) != 0 {
					t.Errorf("matches %v", e)
				}
			}
		})
	}
}

// TestRefused: what Warden does not support is refused, naming the
// feature and the line; invalid rules are refused naming the problem.
func TestRefused(t *testing.T) {
	tests := []struct {
		name, yaml, want, feature string
	}{
		{"unknown modifier", ruleYAML("  sel:\n    x|windows-foo: 1\n  condition: sel\n"), `t.yml:8: modifier "windows-foo" is not supported`, `modifier "windows-foo"`},
		{"aggregation", ruleYAML("  sel:\n    x: 1\n  condition: sel | count() > 5\n"), "t.yml:9: condition: condition aggregation (|) is not supported", "condition aggregation (|)"},
		{"N of", ruleYAML("  sel:\n    x: 1\n  condition: 2 of sel*\n"), `condition "2 of" is not supported`, `condition "2 of"`},
		{"near", ruleYAML("  sel:\n    x: 1\n  condition: sel near sel\n"), `condition syntax "near"`, `condition syntax "near"`},
		{"timeframe", ruleYAML("  sel:\n    x: 1\n  timeframe: 1m\n  condition: sel\n"), "timeframe (use a correlation rule) is not supported", "timeframe (use a correlation rule)"},
		{"collection", "action: global\ntitle: t\n", "rule collections (action) is not supported", "rule collections (action)"},
		{"correlation type", "title: c\nid: c\ncorrelation:\n  type: value_sum\n  rules: [a]\n  timespan: 1m\n", `t.yml:4: correlation type "value_sum" is not supported`, `correlation type "value_sum"`},
		{"correlation aliases", "title: c\nid: c\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  aliases: {}\n  timespan: 1m\n", "correlation aliases is not supported", "correlation aliases"},
		{"lookahead", ruleYAML("  sel:\n    x|re: 'a(?!b)'\n  condition: sel\n"), "regular expression syntax outside RE2 is not supported", "regular expression syntax outside RE2"},
		{"unknown identifier", ruleYAML("  sel:\n    x: 1\n  condition: sel and other\n"), `t.yml:9: condition: unknown search identifier "other"`, ""},
		{"unbalanced", ruleYAML("  sel:\n    x: 1\n  condition: (sel\n"), "missing )", ""},
		{"no condition", ruleYAML("  sel:\n    x: 1\n"), "detection has no condition", ""},
		{"bad cidr", ruleYAML("  sel:\n    x|cidr: 10.0.0.0/33\n  condition: sel\n"), "cidr", ""},
		{"unknown placeholder", ruleYAML("  sel:\n    x|expand: '%nope%'\n  condition: sel\n"), "placeholder %nope% is not defined", ""},
		{"bad regexp", ruleYAML("  sel:\n    x|re: 'a('\n  condition: sel\n"), "regular expression", ""},
		{"i without re", ruleYAML("  sel:\n    x|i: a\n  condition: sel\n"), `modifier "i" applies only after re`, ""},
		{"two of contains/startswith", ruleYAML("  sel:\n    x|contains|startswith: a\n  condition: sel\n"), "at most one of contains", ""},
		{"gt not a number", ruleYAML("  sel:\n    x|gt: abc\n  condition: sel\n"), "is not a number", ""},
		{"bad YAML", "title: [\n", "t.yml:1: invalid YAML", ""},
		{"no title", "id: x\nlogsource: {product: a}\ndetection: {sel: {x: 1}, condition: sel}\n", "rule has no title", ""},
		{"bad timespan", "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 5x\n  condition: {gte: 1}\n", "timespan", ""},
		{"value_count without field", "title: c\nid: c\ncorrelation:\n  type: value_count\n  rules: [a]\n  timespan: 5m\n  condition: {gte: 1}\n", "value_count condition has no field", ""},
		{"unknown reference", "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 5m\n  condition: {gte: 1}\n", `rule "a" is not in the set`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := Parse("t.yml", []byte(tc.yaml))
			if err == nil {
				_, err = Compile(rules, Config{Mapping: testMapping})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			se, ok := err.(*Error)
			if !ok {
				t.Fatalf("error is %T, not *Error", err)
			}
			if se.Feature != tc.feature {
				t.Errorf("feature %q, want %q", se.Feature, tc.feature)
			}
		})
	}
}

func TestIndexFoldASCII(t *testing.T) {
	for _, s := range []string{"", "a", "abc", "xxABCxx", "aaaaAAAAb", "a-b/c", "A-B/C d", "nothing here", "abab-ABAB-abab"} {
		for _, p := range []string{"", "a", "b", "abc", "-b", "b/c", "/c d", "ab-a", "aab", "c d", "zz", "ab"} {
			want := strings.Index(strings.ToLower(s), p)
			if got := indexFoldASCII(s, p); got != want {
				t.Errorf("indexFoldASCII(%q, %q) = %d, want %d", s, p, got, want)
			}
		}
	}
}

func FuzzIndexFoldASCII(f *testing.F) {
	f.Add("xxABCxx", "abc")
	f.Fuzz(func(t *testing.T, s, p string) {
		if !isASCII(s) || !isASCII(p) {
			return
		}
		p = strings.ToLower(p)
		if got, want := indexFoldASCII(s, p), strings.Index(strings.ToLower(s), p); got != want {
			t.Fatalf("indexFoldASCII(%q, %q) = %d, want %d", s, p, got, want)
		}
	})
}

func TestMultiContains(t *testing.T) {
	s := compileOne(t, "  sel:\n    cmd|contains: [a, 'Bc', xyz, '-e /bin/sh', 'WGET ', '*mid*dle*']\n  condition: sel\n", Config{})
	for _, tc := range []struct {
		v    string
		want bool
	}{{"A", true}, {"zzBCzz", true}, {"nc -E /BIN/SH", true}, {"wget x", true}, {"xy", false}, {"b c", false}, {"wget", false}, {"a middle", true}, {"midle", false}, {"", false}, {"X-E /bin/s", false}} {
		if got := len(s.Match(ev("cmd", tc.v), nil)) == 1; got != tc.want {
			t.Errorf("%q: %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestMultiContainsGlobs(t *testing.T) {
	s := compileOne(t, "  sel:\n    cmd|endswith: ['ab*yz', 'cd*wx', 'ef*gh', 'ij*k*l', 'm*n']\n  condition: sel\n", Config{})
	if _, ok := s.index["test"].rest[0].m.(*fieldM).vals[1].(*multiContains); !ok {
		t.Fatalf("patterns not grouped: %#v", s.index["test"].rest[0].m)
	}
	for _, tc := range []struct {
		v    string
		want bool
	}{{"xxAB--YZ", true}, {"ab yz yz", true}, {"abyzq", false}, {"ab then cd then wx", true}, {"xefgh", true}, {"efghx", false}, {"IJ1K2L", true}, {"ij k l x", false}, {"ab ab cd yz", true}, {"m-n", true}, {"m-nx", false}} {
		if got := len(s.Match(ev("cmd", tc.v), nil)) == 1; got != tc.want {
			t.Errorf("%q: %v, want %v", tc.v, got, tc.want)
		}
	}
}
