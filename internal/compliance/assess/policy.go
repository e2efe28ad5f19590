package assess

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bounds of a policy. A policy beyond them does not parse.
const (
	MaxPolicyBytes = 256 << 10
	MaxChecks      = 500
	maxText        = 4096 // description
	maxTitle       = 256
	maxPattern     = 2048
	maxPatternSize = 5000 // patternSize
	maxPathLen     = 1024
	maxList        = 64 // include globs, argv, names, paths, controls, any_of members
	maxDepth       = 4  // nesting of any_of / all_of
	maxWalkFiles   = 1_000_000
	defaultWalk    = 100_000
)

// Severities, lowest first.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Policy is a parsed check policy. It is made by Parse and read-only
// afterwards; Run may use one Policy from many goroutines.
type Policy struct {
	Name        string
	Description string
	Checks      []Check
}

// Check is one check of a policy. Its rule (and its optional applies
// condition) is kept unexported: a Check comes from Parse.
type Check struct {
	ID          string
	Title       string
	Description string
	Severity    string   // SeverityLow … SeverityCritical
	Controls    []string // "iso27001:8.5", "iec62443-3-3:SR 1.1 RE 1"
	Line        int      // of the check in the policy's YAML

	applies *rule // nil: always applies
	rule    *rule
}

// Rule kinds, the keys that introduce a rule in the YAML.
const (
	kindFileExists      = "file_exists"
	kindFileContains    = "file_contains"
	kindFileNotContains = "file_not_contains"
	kindCommand         = "command"
	kindFileMode        = "file_mode"
	kindSysctl          = "sysctl"
	kindService         = "service"
	kindNoWorldWritable = "no_world_writable"
	kindAnyOf           = "any_of"
	kindAllOf           = "all_of"
)

// ruleKinds lists the rule kinds, for messages.
const ruleKinds = kindFileExists + ", " + kindFileContains + ", " + kindFileNotContains + ", " + kindCommand + ", " +
	kindFileMode + ", " + kindSysctl + ", " + kindService + ", " + kindNoWorldWritable + ", " + kindAnyOf + ", " + kindAllOf

func isRuleKind(k string) bool {
	switch k {
	case kindFileExists, kindFileContains, kindFileNotContains, kindCommand,
		kindFileMode, kindSysctl, kindService, kindNoWorldWritable, kindAnyOf, kindAllOf:
		return true
	}
	return false
}

// rule is one parsed rule; which fields matter depends on kind.
type rule struct {
	kind string
	line int

	path    string   // file_exists, file_contains, file_not_contains, file_mode
	include []string // file_(not_)contains: absolute globs, wildcards in the last element only
	re      *regexp.Regexp
	first   bool // first_match: keyword-style file, the first assignment wins (sshd)
	last    bool // last_match: keyword-style file, the last assignment wins (systemd, apt)

	argv        []string // command
	expectMatch bool

	maxMode fs.FileMode // file_mode
	hasMax  bool
	owners  []string
	groups  []string

	key, equals string // sysctl

	names  []string // service: unit names
	active bool     // service: state active (else enabled)

	paths    []string // no_world_writable
	maxFiles int

	sub []*rule // any_of, all_of
}

// ParseError is a policy that does not parse. Its message names the
// policy, the YAML line (when known) and the field:
// "linux-baseline:12: checks[3].severity: …".
type ParseError struct {
	Name  string
	Line  int
	Field string
	Msg   string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.Name, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Name, e.Field, e.Msg)
}

// parser carries the policy's name into its errors.
type parser struct{ name string }

func (p *parser) errf(n *yaml.Node, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Name: p.name, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	validName    = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`)
	validControl = regexp.MustCompile(`^(?:iso27001:(?:[5-8])\.(?:[1-9][0-9]?)|iec62443-3-3:SR [1-7]\.(?:[1-9][0-9]?)(?: RE [1-9])?)$`)
	validSysctl  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:@-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.:@-]*)*$`)
	validUnit    = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]{1,200}$`)
	validUser    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?$`)
)

// Parse reads a check policy strictly: unknown or repeated keys, a check
// with no rule or with two, a repeated check id, a severity or control out
// of the documented set, a pattern that does not compile and a path that
// is not absolute and clean are errors. name is used in error messages
// ("<name>:<line>: <field>: why"); errors are *ParseError.
func Parse(name string, data []byte) (*Policy, error) {
	p := &parser{name: name}
	if len(data) > MaxPolicyBytes {
		return nil, p.errf(nil, "policy", "%d bytes, more than %d", len(data), MaxPolicyBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, p.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errf(&extra, "policy", "one policy per file; a second YAML document starts here")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errf(&doc, "policy", "want a mapping")
	}
	root := doc.Content[0]
	pol := &Policy{}
	var checksNode *yaml.Node
	err := p.eachKey(root, "", func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "policy":
			pol.Name, err = p.str(v, "policy")
			if err == nil && !validName.MatchString(pol.Name) {
				err = p.errf(v, "policy", "%q: want 1 to 64 of a-z 0-9 -, not starting or ending with -", pol.Name)
			}
		case "description":
			pol.Description, err = p.text(v, "description", maxText)
		case "checks":
			checksNode = v
		default:
			err = p.errf(k, key, "unknown key (want policy, description, checks)")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if pol.Name == "" {
		return nil, p.errf(root, "policy", "missing")
	}
	if checksNode == nil {
		return nil, p.errf(root, "checks", "missing")
	}
	if checksNode.Kind != yaml.SequenceNode || len(checksNode.Content) == 0 {
		return nil, p.errf(checksNode, "checks", "want a non-empty list of checks")
	}
	if len(checksNode.Content) > MaxChecks {
		return nil, p.errf(checksNode, "checks", "%d checks, more than %d", len(checksNode.Content), MaxChecks)
	}
	seen := map[string]int{}
	for i, n := range checksNode.Content {
		c, err := p.check(n, fmt.Sprintf("checks[%d]", i))
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[c.ID]; dup {
			return nil, p.errf(n, fmt.Sprintf("checks[%d].id", i), "%q is also the id of the check on line %d", c.ID, prev)
		}
		seen[c.ID] = c.Line
		pol.Checks = append(pol.Checks, c)
	}
	return pol, nil
}

func (p *parser) check(n *yaml.Node, field string) (Check, error) {
	c := Check{Line: n.Line}
	var ruleKey string
	err := p.eachKey(n, field, func(key string, k, v *yaml.Node) error {
		var err error
		f := field + "." + key
		switch key {
		case "id":
			c.ID, err = p.str(v, f)
			if err == nil && !validName.MatchString(c.ID) {
				err = p.errf(v, f, "%q: want 1 to 64 of a-z 0-9 -, not starting or ending with -", c.ID)
			}
		case "title":
			c.Title, err = p.text(v, f, maxTitle)
		case "description":
			c.Description, err = p.text(v, f, maxText)
		case "severity":
			c.Severity, err = p.str(v, f)
			switch c.Severity {
			case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
			default:
				if err == nil {
					err = p.errf(v, f, "%q: want low, medium, high or critical", c.Severity)
				}
			}
		case "controls":
			c.Controls, err = p.list(v, f)
			for i, s := range c.Controls {
				if !validControl.MatchString(s) {
					return p.errf(item(v, i), f, "%q: want \"iso27001:<clause>.<n>\" (Annex A, e.g. iso27001:8.5) or \"iec62443-3-3:SR <fr>.<n>[ RE <n>]\"", s)
				}
			}
		case "applies":
			c.applies, err = p.oneRule(v, f, 0)
		default:
			if !isRuleKind(key) {
				return p.errf(k, f, "unknown key (want id, title, description, severity, controls, applies, and one rule: %s)", ruleKinds)
			}
			if ruleKey != "" {
				return p.errf(k, f, "a check has exactly one rule; this one already has %s", ruleKey)
			}
			ruleKey = key
			c.rule, err = p.rule(key, k, v, f, 0)
		}
		return err
	})
	if err != nil {
		return c, err
	}
	for _, req := range []struct{ v, name string }{{c.ID, "id"}, {c.Title, "title"}, {c.Severity, "severity"}} {
		if req.v == "" {
			return c, p.errf(n, field+"."+req.name, "missing")
		}
	}
	if c.rule == nil {
		return c, p.errf(n, field, "no rule (want one of %s)", ruleKinds)
	}
	return c, nil
}

// oneRule reads a mapping that holds exactly one rule: {kind: settings}.
func (p *parser) oneRule(n *yaml.Node, field string, depth int) (*rule, error) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return nil, p.errf(n, field, "want a mapping with exactly one rule (%s)", ruleKinds)
	}
	var r *rule
	err := p.eachKey(n, field, func(key string, k, v *yaml.Node) error {
		if !isRuleKind(key) {
			return p.errf(k, field+"."+key, "unknown rule (want %s)", ruleKinds)
		}
		var err error
		r, err = p.rule(key, k, v, field+"."+key, depth)
		return err
	})
	return r, err
}

func (p *parser) rule(kind string, k, v *yaml.Node, field string, depth int) (*rule, error) {
	r := &rule{kind: kind, line: k.Line}
	switch kind {
	case kindFileExists:
		var err error
		r.path, err = p.path(v, field)
		return r, err
	case kindAnyOf, kindAllOf:
		if depth >= maxDepth {
			return nil, p.errf(v, field, "nested more than %d deep", maxDepth)
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			return nil, p.errf(v, field, "want a non-empty list of rules")
		}
		if len(v.Content) > maxList {
			return nil, p.errf(v, field, "%d rules, more than %d", len(v.Content), maxList)
		}
		for i, item := range v.Content {
			s, err := p.oneRule(item, fmt.Sprintf("%s[%d]", field, i), depth+1)
			if err != nil {
				return nil, err
			}
			r.sub = append(r.sub, s)
		}
		return r, nil
	}
	allowed := map[string][]string{
		kindFileContains:    {"path", "include", "pattern", "first_match", "last_match"},
		kindFileNotContains: {"path", "include", "pattern", "first_match", "last_match"},
		kindCommand:         {"run", "pattern", "expect"},
		kindFileMode:        {"path", "max_mode", "owner", "group"},
		kindSysctl:          {"key", "equals"},
		kindService:         {"name", "state"},
		kindNoWorldWritable: {"paths", "max_files"},
	}[kind]
	seen := map[string]*yaml.Node{}
	err := p.eachKey(v, field, func(key string, kk, vv *yaml.Node) error {
		f := field + "." + key
		ok := false
		for _, a := range allowed {
			ok = ok || a == key
		}
		if !ok {
			return p.errf(kk, f, "unknown key (%s takes %s)", kind, strings.Join(allowed, ", "))
		}
		seen[key] = vv
		var err error
		switch key {
		case "path":
			r.path, err = p.path(vv, f)
		case "include":
			var globs []string
			if globs, err = p.list(vv, f); err == nil {
				for i, g := range globs {
					if err = p.checkPath(item(vv, i), f, g); err != nil {
						return err
					}
					dir, base := path.Split(g)
					if strings.ContainsAny(dir, `*?[\`) {
						return p.errf(item(vv, i), f, "%q: wildcards only in the last element", g)
					}
					if _, merr := path.Match(base, ""); merr != nil {
						return p.errf(item(vv, i), f, "%q: not a valid glob", g)
					}
				}
				r.include = globs
			}
		case "pattern":
			var s string
			if s, err = p.str(vv, f); err == nil {
				switch {
				case s == "":
					err = p.errf(vv, f, "empty")
				case len(s) > maxPattern:
					err = p.errf(vv, f, "more than %d bytes", maxPattern)
				default:
					var cerr error
					if r.re, cerr = regexp.Compile(s); cerr != nil {
						err = p.errf(vv, f, "%v", cerr)
					} else if n := patternSize(s); n > maxPatternSize {
						err = p.errf(vv, f, "too complex (about %d steps per byte matched, at most %d): use fewer or smaller counted repetitions", n, maxPatternSize)
					}
				}
			}
		case "first_match":
			r.first, err = p.boolean(vv, f)
		case "last_match":
			r.last, err = p.boolean(vv, f)
		case "run":
			if r.argv, err = p.list(vv, f); err == nil && len(r.argv) == 0 {
				err = p.errf(vv, f, "want the program and its arguments")
			}
		case "expect":
			var s string
			if s, err = p.str(vv, f); err == nil {
				switch s {
				case "match":
					r.expectMatch = true
				case "no_match":
				default:
					err = p.errf(vv, f, "%q: want match or no_match", s)
				}
			}
		case "max_mode":
			var s string
			if s, err = p.str(vv, f); err == nil {
				m, perr := strconv.ParseUint(s, 8, 32)
				if perr != nil || m > 0o7777 || len(s) < 3 || len(s) > 5 {
					return p.errf(vv, f, "%q: want an octal mode such as \"0640\"", s)
				}
				r.maxMode, r.hasMax = fs.FileMode(m), true
			}
		case "owner", "group":
			var names []string
			if names, err = p.list(vv, f); err == nil {
				for i, s := range names {
					if !validUser.MatchString(s) {
						return p.errf(item(vv, i), f, "%q: want a user or group name or a numeric id", s)
					}
				}
				if key == "owner" {
					r.owners = names
				} else {
					r.groups = names
				}
			}
		case "key":
			if r.key, err = p.str(vv, f); err == nil && (!validSysctl.MatchString(r.key) || strings.Contains(r.key, "..") || len(r.key) > 256) {
				err = p.errf(vv, f, "%q: want a sysctl name such as net.ipv4.ip_forward", r.key)
			}
		case "equals":
			r.equals, err = p.str(vv, f)
			r.equals = strings.Join(strings.Fields(r.equals), " ")
		case "name":
			if r.names, err = p.list(vv, f); err == nil {
				for i, s := range r.names {
					if !validUnit.MatchString(s) || s == "." || s == ".." {
						return p.errf(item(vv, i), f, "%q: want a systemd unit name", s)
					}
				}
			}
		case "state":
			var s string
			if s, err = p.str(vv, f); err == nil {
				switch s {
				case "enabled":
				case "active":
					r.active = true
				default:
					err = p.errf(vv, f, "%q: want enabled or active", s)
				}
			}
		case "paths":
			var ps []string
			if ps, err = p.list(vv, f); err == nil {
				for i, s := range ps {
					if err = p.checkPath(item(vv, i), f, s); err != nil {
						return err
					}
				}
				r.paths = ps
			}
		case "max_files":
			if r.maxFiles, err = p.integer(vv, f); err == nil && (r.maxFiles < 1 || r.maxFiles > maxWalkFiles) {
				err = p.errf(vv, f, "%d: want 1 to %d", r.maxFiles, maxWalkFiles)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	need := map[string][]string{
		kindFileContains:    {"pattern"},
		kindFileNotContains: {"pattern"},
		kindCommand:         {"run", "pattern", "expect"},
		kindFileMode:        {"path"},
		kindSysctl:          {"key", "equals"},
		kindService:         {"name", "state"},
		kindNoWorldWritable: {"paths"},
	}[kind]
	for _, n := range need {
		if seen[n] == nil {
			return nil, p.errf(v, field+"."+n, "missing")
		}
	}
	switch {
	case (kind == kindFileContains || kind == kindFileNotContains) && r.path == "" && len(r.include) == 0:
		return nil, p.errf(v, field+".path", "missing (want path, include or both)")
	case r.first && r.path == "":
		return nil, p.errf(v, field+".path", "first_match needs path: the main file whose Include lines are followed")
	case r.first && r.last:
		return nil, p.errf(seen["last_match"], field+".last_match", "first_match and last_match exclude each other")
	case kind == kindFileMode && !r.hasMax && r.owners == nil && r.groups == nil:
		return nil, p.errf(v, field, "want at least one of max_mode, owner, group")
	case kind == kindNoWorldWritable && r.maxFiles == 0:
		r.maxFiles = defaultWalk
	}
	return r, nil
}

func (p *parser) yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, serr := strconv.Atoi(rest[:i]); serr == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &ParseError{Name: p.name, Line: line, Field: "yaml", Msg: msg}
}

// eachKey calls fn for each key of mapping n in order, refusing a node
// that is not a mapping, a key that is not a plain string, a repeated key
// and aliases.
func (p *parser) eachKey(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) error) error {
	name := func(k string) string {
		if field == "" {
			return k
		}
		return field + "." + k
	}
	if n.Kind == yaml.AliasNode {
		return p.errf(n, orPolicy(field), "aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n, orPolicy(field), "want a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return p.errf(k, orPolicy(field), "keys must be plain strings")
		}
		if seen[k.Value] {
			return p.errf(k, name(k.Value), "repeated key")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return p.errf(v, name(k.Value), "aliases are not supported")
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func orPolicy(field string) string {
	if field == "" {
		return "policy"
	}
	return field
}

func (p *parser) str(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool") {
		return "", p.errf(n, field, "want a string")
	}
	if strings.ContainsRune(n.Value, 0) {
		return "", p.errf(n, field, "contains a NUL byte")
	}
	return n.Value, nil
}

func (p *parser) text(n *yaml.Node, field string, limit int) (string, error) {
	s, err := p.str(n, field)
	if err == nil && len(s) > limit {
		err = p.errf(n, field, "more than %d bytes", limit)
	}
	return strings.TrimSpace(s), err
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errf(n, field, "want true or false")
	}
	return n.Value == "true", nil
}

func (p *parser) integer(n *yaml.Node, field string) (int, error) {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, p.errf(n, field, "want an integer")
	}
	return v, nil
}

// list reads a sequence of non-empty strings, or one string.
func (p *parser) list(n *yaml.Node, field string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := p.str(n, field)
		if err != nil || s == "" {
			return nil, p.errf(n, field, "want a list of strings")
		}
		return []string{s}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, field, "want a list of strings")
	}
	if len(n.Content) > maxList {
		return nil, p.errf(n, field, "%d values, more than %d", len(n.Content), maxList)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := p.str(c, field)
		if err != nil || s == "" {
			return nil, p.errf(c, field, "want a non-empty string")
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) path(n *yaml.Node, field string) (string, error) {
	s, err := p.str(n, field)
	if err != nil {
		return "", err
	}
	return s, p.checkPath(n, field, s)
}

// checkPath accepts an absolute, clean path: it names a file under the
// root and cannot climb out of it.
func (p *parser) checkPath(n *yaml.Node, field, s string) error {
	switch {
	case len(s) > maxPathLen:
		return p.errf(n, field, "more than %d bytes", maxPathLen)
	case !strings.HasPrefix(s, "/"):
		return p.errf(n, field, "%q: want an absolute path", s)
	case path.Clean(s) != s:
		return p.errf(n, field, "%q: not clean (want %q)", s, path.Clean(s))
	}
	return nil
}

// item returns the node of the i-th value of a list that list read: the
// sequence's element, or the node itself for a single string.
func item(n *yaml.Node, i int) *yaml.Node {
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// patternSize estimates the size of a pattern's compiled program, which
// bounds the work per byte of input: counted repetitions multiply it
// ("(a{100}){100}" is ten thousand states), and a policy must not be able
// to make an agent spin on every file it reads.
func patternSize(s string) int {
	re, err := syntax.Parse(s, syntax.Perl)
	if err != nil {
		return 0 // regexp.Compile reported it
	}
	var size func(re *syntax.Regexp) int
	size = func(re *syntax.Regexp) int {
		n := 1 + len(re.Rune)
		for _, sub := range re.Sub {
			n += size(sub)
		}
		if re.Op == syntax.OpRepeat {
			k := max(re.Max, re.Min, 1)
			n = min(n*k, 1<<30)
		}
		return n
	}
	return size(re)
}
