package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Bounds on what Parse accepts, so that a hostile file cannot make the
// parser or the compiler work without limit.
const (
	maxFileBytes   = 4 << 20
	maxDocuments   = 10000
	maxConditionSz = 64 << 10
)

// detection is a parsed `detection:` section: named selections and the
// condition over them.
type detection struct {
	names []string              // in file order
	sels  map[string]*selection // by name
	cond  cond                  // the OR of the condition list
	line  int                   // of `condition:`
}

// selection is one named search identifier: an OR of AND-maps of field
// searches, or a list of keywords.
type selection struct {
	line     int
	maps     [][]*fieldSpec // OR over maps; each map is an AND
	keywords []value        // non-nil: a keyword list (OR)
}

// fieldSpec is `field|mod|mod: value(s)` as written.
type fieldSpec struct {
	line   int
	field  string // Sigma name as written ("" for keywords with modifiers)
	mods   []string
	values []value
}

// value is one scalar of a selection.
type value struct {
	line int
	kind valueKind
	s    string // the scalar as written (for numbers and booleans too)
}

type valueKind uint8

const (
	vString valueKind = iota
	vNumber
	vBool
	vNull
)

// Parse parses a YAML file of one or more Sigma rules (documents separated
// by `---`). file names the input in errors. A rule that uses something
// Warden does not support is refused with an *Error naming the feature.
func Parse(file string, data []byte) ([]*Rule, error) {
	if len(data) > maxFileBytes {
		return nil, &Error{File: file, Msg: fmt.Sprintf("file is %d bytes, more than %d", len(data), maxFileBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(file, err)
		}
		if len(docs) >= maxDocuments {
			return nil, &Error{File: file, Msg: fmt.Sprintf("more than %d documents", maxDocuments)}
		}
		docs = append(docs, &n)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	var rules []*Rule
	for i, d := range docs {
		if d.Kind != yaml.DocumentNode || len(d.Content) == 0 {
			continue
		}
		root := d.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document
		}
		r, err := parseRule(file, root)
		if err != nil {
			return nil, err
		}
		end := len(lines)
		if i+1 < len(docs) && len(docs[i+1].Content) > 0 {
			end = docs[i+1].Content[0].Line - 1
		}
		r.Source = docSource(lines, root.Line, end)
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil, &Error{File: file, Msg: "no rule in file"}
	}
	return rules, nil
}

// docSource returns lines [from, to) (1-based), without the trailing
// document markers.
func docSource(lines [][]byte, from, to int) []byte {
	if from < 1 {
		from = 1
	}
	if to > len(lines)+1 {
		to = len(lines) + 1
	}
	for to > from {
		l := strings.TrimSpace(string(lines[to-2]))
		if l == "---" || l == "..." || l == "" {
			to--
			continue
		}
		break
	}
	var b []byte
	for i := from; i < to; i++ {
		b = append(b, lines[i-1]...)
	}
	return b
}

func yamlError(file string, err error) error {
	msg := err.Error()
	line := 0
	// yaml.v3 reports "yaml: line N: ..."
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// parser carries the file name into errors.
type parser struct{ file string }

func (p parser) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// unsupported is the error for a feature Warden does not support.
func (p parser) unsupported(n *yaml.Node, feature string) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Feature: feature, Msg: feature + " is not supported"}
}

var levels = map[string]bool{"informational": true, "low": true, "medium": true, "high": true, "critical": true}

func parseRule(file string, root *yaml.Node) (*Rule, error) {
	p := parser{file}
	if root.Kind != yaml.MappingNode {
		return nil, p.errf(root, "a rule must be a YAML mapping")
	}
	r := &Rule{File: file, Line: root.Line}
	var det, corr, ls *yaml.Node
	seen := map[string]bool{}
	strs := map[string]*string{"title": &r.Title, "id": &r.ID, "name": &r.Name, "status": &r.Status, "description": &r.Description, "author": &r.Author}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		if seen[key] {
			return nil, p.errf(k, "key %q appears twice", key)
		}
		seen[key] = true
		var err error
		if dst, ok := strs[key]; ok {
			if *dst, err = p.str(v, key); err != nil {
				return nil, err
			}
			continue
		}
		switch key {
		case "level":
			r.Level, err = p.str(v, key)
			if err == nil && !levels[r.Level] {
				err = p.errf(v, "level %q is not one of informational, low, medium, high, critical", r.Level)
			}
		case "tags":
			r.Tags, err = p.strList(v, key)
		case "references":
			r.References, err = p.strList(v, key)
		case "falsepositives":
			r.Falsepositives, err = p.strList(v, key)
		case "logsource":
			ls = v
		case "detection":
			det = v
		case "correlation":
			corr = v
		case "action":
			return nil, p.unsupported(k, "rule collections (action)")
		case "filter":
			return nil, p.unsupported(k, "filter rules")
		default:
			// Other keys are metadata (the specification allows custom
			// attributes); they carry no semantics and stay in Source.
		}
		if err != nil {
			return nil, err
		}
	}
	if r.Title == "" {
		return nil, p.errf(root, "rule has no title")
	}
	if r.ID == "" && r.Name == "" {
		return nil, p.errf(root, "rule %q has neither id nor name", r.Title)
	}
	if r.ID == "" {
		r.ID = r.Name
	}
	switch {
	case corr != nil && det != nil:
		return nil, p.errf(corr, "a rule has either detection or correlation, not both")
	case corr != nil:
		if ls != nil {
			return nil, p.errf(ls, "a correlation rule has no logsource")
		}
		c, err := p.correlation(corr)
		if err != nil {
			return nil, err
		}
		r.Correlation = c
	case det != nil:
		if ls == nil {
			return nil, p.errf(root, "rule has no logsource")
		}
		if err := p.logsource(ls, &r.Logsource); err != nil {
			return nil, err
		}
		d, err := p.detection(det)
		if err != nil {
			return nil, err
		}
		r.detection = d
	default:
		return nil, p.errf(root, "rule has neither detection nor correlation")
	}
	return r, nil
}

func (p parser) str(v *yaml.Node, key string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", p.errf(v, "%s must be a string", key)
	}
	return v.Value, nil
}

func (p parser) strList(v *yaml.Node, key string) ([]string, error) {
	if v.Kind == yaml.ScalarNode {
		if v.Tag == "!!null" {
			return nil, nil
		}
		return []string{v.Value}, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, "%s must be a list of strings", key)
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		if e.Kind != yaml.ScalarNode {
			return nil, p.errf(e, "%s must be a list of strings", key)
		}
		out = append(out, e.Value)
	}
	return out, nil
}

func (p parser) logsource(v *yaml.Node, ls *Logsource) error {
	if v.Kind != yaml.MappingNode {
		return p.errf(v, "logsource must be a mapping")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		s, err := p.str(val, "logsource "+k.Value)
		if err != nil {
			return err
		}
		switch k.Value {
		case "product":
			ls.Product = s
		case "category":
			ls.Category = s
		case "service":
			ls.Service = s
		case "definition":
			ls.Definition = s
		default:
			return p.unsupported(k, fmt.Sprintf("logsource key %q", k.Value))
		}
	}
	return nil
}

func (p parser) detection(v *yaml.Node) (*detection, error) {
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, "detection must be a mapping")
	}
	d := &detection{sels: map[string]*selection{}}
	var condNode *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "condition":
			condNode = val
			d.line = val.Line
			continue
		case "timeframe":
			return nil, p.unsupported(k, "timeframe (use a correlation rule)")
		}
		if _, dup := d.sels[k.Value]; dup {
			return nil, p.errf(k, "search identifier %q appears twice", k.Value)
		}
		if !validIdent(k.Value) {
			return nil, p.errf(k, "search identifier %q: only letters, digits, _, . and - are allowed", k.Value)
		}
		s, err := p.selection(val)
		if err != nil {
			return nil, err
		}
		d.names = append(d.names, k.Value)
		d.sels[k.Value] = s
	}
	if condNode == nil {
		return nil, p.errf(v, "detection has no condition")
	}
	var conds []string
	var lines []int
	switch condNode.Kind {
	case yaml.ScalarNode:
		conds, lines = []string{condNode.Value}, []int{condNode.Line}
	case yaml.SequenceNode:
		for _, c := range condNode.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, p.errf(c, "condition must be a string or a list of strings")
			}
			conds = append(conds, c.Value)
			lines = append(lines, c.Line)
		}
	default:
		return nil, p.errf(condNode, "condition must be a string or a list of strings")
	}
	if len(conds) == 0 {
		return nil, p.errf(condNode, "condition is empty")
	}
	var alts []cond
	for i, c := range conds {
		ast, err := parseCondition(c, d.names)
		if err != nil {
			var ce *condError
			if errors.As(err, &ce) {
				return nil, &Error{File: p.file, Line: lines[i], Feature: ce.feature, Msg: "condition: " + ce.msg}
			}
			return nil, &Error{File: p.file, Line: lines[i], Msg: "condition: " + err.Error()}
		}
		alts = append(alts, ast)
	}
	if len(alts) == 1 {
		d.cond = alts[0]
	} else {
		d.cond = &condOr{alts}
	}
	return d, nil
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (p parser) selection(v *yaml.Node) (*selection, error) {
	s := &selection{line: v.Line}
	switch v.Kind {
	case yaml.MappingNode:
		m, err := p.fieldMap(v)
		if err != nil {
			return nil, err
		}
		s.maps = [][]*fieldSpec{m}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return nil, p.errf(v, "empty search identifier")
		}
		if v.Content[0].Kind == yaml.MappingNode {
			for _, e := range v.Content {
				if e.Kind != yaml.MappingNode {
					return nil, p.errf(e, "a list of maps cannot also hold %s", kindName(e))
				}
				m, err := p.fieldMap(e)
				if err != nil {
					return nil, err
				}
				s.maps = append(s.maps, m)
			}
		} else {
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, p.errf(e, "a keyword list holds only strings, not %s", kindName(e))
				}
				kv := scalar(e)
				if kv.kind == vNull {
					return nil, p.errf(e, "a keyword cannot be null")
				}
				s.keywords = append(s.keywords, kv)
			}
		}
	case yaml.ScalarNode:
		kv := scalar(v)
		if kv.kind == vNull {
			return nil, p.errf(v, "a search identifier cannot be null")
		}
		s.keywords = []value{kv}
	default:
		return nil, p.errf(v, "a search identifier must be a map, a list of maps or a list of keywords")
	}
	return s, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}

func scalar(n *yaml.Node) value {
	v := value{line: n.Line, s: n.Value}
	switch n.Tag {
	case "!!null":
		v.kind = vNull
	case "!!int", "!!float":
		v.kind = vNumber
	case "!!bool":
		v.kind = vBool
	}
	return v
}

// modifiers Warden supports, and which may follow which.
var knownMods = map[string]bool{
	"contains": true, "startswith": true, "endswith": true, "all": true,
	"re": true, "i": true, "m": true, "s": true, "cased": true, "cidr": true,
	"base64": true, "base64offset": true, "windash": true, "exists": true,
	"gt": true, "gte": true, "lt": true, "lte": true, "fieldref": true,
	"expand": true, "utf16le": true, "utf16be": true, "wide": true, "utf16": true,
}

func (p parser) fieldMap(v *yaml.Node) ([]*fieldSpec, error) {
	var out []*fieldSpec
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errf(k, "a field name must be a string")
		}
		if seen[k.Value] {
			return nil, p.errf(k, "field %q appears twice in one map", k.Value)
		}
		seen[k.Value] = true
		parts := strings.Split(k.Value, "|")
		fs := &fieldSpec{line: k.Line, field: parts[0], mods: parts[1:]}
		if err := p.checkMods(k, fs.mods); err != nil {
			return nil, err
		}
		switch val.Kind {
		case yaml.ScalarNode:
			fs.values = []value{scalar(val)}
		case yaml.SequenceNode:
			if len(val.Content) == 0 {
				return nil, p.errf(val, "field %q has an empty list of values", k.Value)
			}
			for _, e := range val.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, p.errf(e, "field %q: a value must be a scalar, not %s", k.Value, kindName(e))
				}
				fs.values = append(fs.values, scalar(e))
			}
		default:
			return nil, p.errf(val, "field %q: a value must be a scalar or a list, not %s", k.Value, kindName(val))
		}
		if err := p.checkValues(k, fs); err != nil {
			return nil, err
		}
		out = append(out, fs)
	}
	if len(out) == 0 {
		return nil, p.errf(v, "empty map in a selection")
	}
	return out, nil
}

func has(mods []string, m string) bool {
	for _, x := range mods {
		if x == m {
			return true
		}
	}
	return false
}

func (p parser) checkMods(k *yaml.Node, mods []string) error {
	count := map[string]int{}
	for _, m := range mods {
		if !knownMods[m] {
			return p.unsupported(k, fmt.Sprintf("modifier %q", m))
		}
		count[m]++
		if count[m] > 1 {
			return p.errf(k, "modifier %q appears twice", m)
		}
	}
	n := count["contains"] + count["startswith"] + count["endswith"]
	if n > 1 {
		return p.errf(k, "at most one of contains, startswith, endswith")
	}
	for _, m := range []string{"i", "m", "s"} {
		if count[m] > 0 && count["re"] == 0 {
			return p.errf(k, "modifier %q applies only after re", m)
		}
	}
	alone := func(m string, allowed ...string) error {
		if count[m] == 0 {
			return nil
		}
		ok := map[string]bool{m: true}
		for _, a := range allowed {
			ok[a] = true
		}
		for _, x := range mods {
			if !ok[x] {
				return p.errf(k, "modifier %q cannot be combined with %q", m, x)
			}
		}
		return nil
	}
	checks := []error{
		alone("re", "i", "m", "s", "all"),
		alone("cidr", "all"),
		alone("exists"),
		alone("gt"), alone("gte"), alone("lt"), alone("lte"),
		alone("fieldref", "contains", "startswith", "endswith", "cased", "all"),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	enc := count["utf16le"] + count["utf16be"] + count["wide"] + count["utf16"]
	if enc > 1 {
		return p.errf(k, "at most one of utf16le, utf16be, wide, utf16")
	}
	if count["base64"]+count["base64offset"] > 1 {
		return p.errf(k, "at most one of base64, base64offset")
	}
	return nil
}

func (p parser) checkValues(k *yaml.Node, fs *fieldSpec) error {
	for _, v := range fs.values {
		if v.kind == vNull && len(fs.mods) > 0 {
			return p.errf(k, "field %q: null cannot take modifiers", k.Value)
		}
		switch {
		case has(fs.mods, "exists"):
			if v.kind != vBool {
				return p.errf(k, "field %q: exists takes true or false", k.Value)
			}
		case has(fs.mods, "gt") || has(fs.mods, "gte") || has(fs.mods, "lt") || has(fs.mods, "lte"):
			if _, err := strconv.ParseFloat(v.s, 64); err != nil || v.kind == vNull {
				return p.errf(k, "field %q: %q is not a number", k.Value, v.s)
			}
		}
	}
	if fs.field == "" && (has(fs.mods, "exists") || has(fs.mods, "fieldref")) {
		return p.errf(k, "keywords cannot use exists or fieldref")
	}
	return nil
}

// correlation parses the `correlation:` section.
func (p parser) correlation(v *yaml.Node) (*Correlation, error) {
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, "correlation must be a mapping")
	}
	c := &Correlation{}
	var condNode, tsNode *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		var err error
		switch k.Value {
		case "type":
			c.Type, err = p.str(val, "correlation type")
			if err == nil {
				switch c.Type {
				case EventCount, ValueCount, Temporal, TemporalOrdered:
				default:
					return nil, p.unsupported(val, fmt.Sprintf("correlation type %q", c.Type))
				}
			}
		case "rules":
			c.Rules, err = p.strList(val, "correlation rules")
		case "group-by":
			c.GroupBy, err = p.strList(val, "group-by")
		case "timespan":
			tsNode = val
			var s string
			if s, err = p.str(val, "timespan"); err == nil {
				c.Timespan, err = parseTimespan(s)
				if err != nil {
					err = p.errf(val, "timespan: %v", err)
				}
			}
		case "condition":
			condNode = val
		case "generate":
			if val.Kind != yaml.ScalarNode || val.Tag != "!!bool" {
				return nil, p.errf(val, "generate must be true or false")
			}
			c.Generate = val.Value == "true"
		case "aliases":
			return nil, p.unsupported(k, "correlation aliases")
		default:
			return nil, p.unsupported(k, fmt.Sprintf("correlation key %q", k.Value))
		}
		if err != nil {
			return nil, err
		}
	}
	if c.Type == "" {
		return nil, p.errf(v, "correlation has no type")
	}
	if len(c.Rules) == 0 {
		return nil, p.errf(v, "correlation has no rules")
	}
	if tsNode == nil {
		return nil, p.errf(v, "correlation has no timespan")
	}
	switch c.Type {
	case EventCount, ValueCount:
		if condNode == nil {
			return nil, p.errf(v, "%s correlation has no condition", c.Type)
		}
		if condNode.Kind != yaml.MappingNode {
			return nil, p.errf(condNode, "condition must be a mapping such as {gte: 10}")
		}
		for i := 0; i+1 < len(condNode.Content); i += 2 {
			k, val := condNode.Content[i], condNode.Content[i+1]
			switch k.Value {
			case "gt", "gte", "lt", "lte", "eq":
				n, err := strconv.ParseInt(val.Value, 10, 64)
				if err != nil || val.Kind != yaml.ScalarNode {
					return nil, p.errf(val, "condition %s: %q is not an integer", k.Value, val.Value)
				}
				c.Condition = append(c.Condition, Threshold{Op: k.Value, Value: n})
			case "field":
				if c.Type != ValueCount {
					return nil, p.errf(k, "condition field applies only to value_count")
				}
				s, err := p.str(val, "condition field")
				if err != nil {
					return nil, err
				}
				c.Field = s
			default:
				return nil, p.unsupported(k, fmt.Sprintf("correlation condition %q", k.Value))
			}
		}
		if len(c.Condition) == 0 {
			return nil, p.errf(condNode, "condition has no comparison (gt, gte, lt, lte, eq)")
		}
		if c.Type == ValueCount && c.Field == "" {
			return nil, p.errf(condNode, "value_count condition has no field")
		}
		sort.SliceStable(c.Condition, func(i, j int) bool { return c.Condition[i].Op < c.Condition[j].Op })
	default:
		if condNode != nil {
			return nil, p.unsupported(condNode, "condition in a "+c.Type+" correlation")
		}
		if len(c.Rules) < 2 {
			return nil, p.errf(v, "%s correlation needs at least two rules", c.Type)
		}
	}
	return c, nil
}

// parseTimespan parses a Sigma timespan: an integer and one of s, m, h, d.
func parseTimespan(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("%q is not a number followed by s, m, h or d", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 || n > 366*24*3600 {
		return 0, fmt.Errorf("%q is not a positive number followed by s, m, h or d", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("%q: unit must be s, m, h or d", s)
	}
	d := time.Duration(n) * unit
	if d > 366*24*time.Hour {
		return 0, fmt.Errorf("%q is longer than a year", s)
	}
	return d, nil
}
