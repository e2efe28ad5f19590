package sigma

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/warden-sec/warden/internal/events"
)

// Set is a compiled set of rules. It is immutable: Match may be called
// from any number of goroutines at once.
type Set struct {
	cfg      Config
	mapping  *Mapping
	rules    []*crule // in the order given to Compile
	byRule   map[*Rule]*crule
	ids      map[string]*crule
	index    map[string]*bucket // by event.dataset
	any      *bucket            // rules for every dataset
	corrs    []*crule           // correlation rules, referenced ones first
	warnings []string
}

// crule is a compiled rule.
type crule struct {
	r        *Rule
	idx      int
	m        matcher // detection rules
	datasets []string

	// correlation rules
	corr     *Correlation
	topo     int      // position in Set.corrs
	refs     []*crule // resolved Correlation.Rules
	groupBy  []string // ECS names
	field    string   // value_count: ECS name
	parents  []parentRef
	referred bool // referenced by a correlation
	generate bool // makes its own hits (not referenced, or a referrer has generate: true)
}

type parentRef struct {
	c   *crule
	pos int // index in c.refs
}

// bucket holds the rules of one dataset: those with an indexed required
// field value, and the rest.
type bucket struct {
	keyed []*keyIndex
	rest  []*crule
}

type keyIndex struct {
	field string
	base  bool                // keyed by the value's last path element (endswith '/name')
	vals  map[string][]*crule // lower-cased value → rules
}

// Compile compiles rules once: field names are mapped, patterns lowered
// and precompiled, and rules indexed by dataset and, where the condition
// requires a field to equal one of a few values, by that value.
// Correlation rules' references are resolved (by id, then name). Errors
// are *Error naming the rule's file, line and, for what is not supported,
// the feature.
func Compile(rules []*Rule, cfg Config) (*Set, error) {
	if cfg.Mapping == nil {
		cfg.Mapping = DefaultMapping()
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.Lateness <= 0 {
		cfg.Lateness = DefaultLateness
	}
	s := &Set{cfg: cfg, mapping: cfg.Mapping, byRule: map[*Rule]*crule{}, index: map[string]*bucket{}, any: &bucket{}}
	byID := map[string]*crule{}
	byName := map[string]*crule{}
	c := &compiler{m: cfg.Mapping, ph: cfg.Placeholders}
	for i, r := range rules {
		if r == nil {
			return nil, errors.New("sigma: nil rule")
		}
		if _, dup := byID[r.ID]; dup {
			return nil, &Error{File: r.File, Line: r.Line, Msg: fmt.Sprintf("rule id %q is used twice", r.ID)}
		}
		cr := &crule{r: r, idx: i, corr: r.Correlation, generate: true}
		byID[r.ID] = cr
		if r.Name != "" {
			if _, dup := byName[r.Name]; dup {
				return nil, &Error{File: r.File, Line: r.Line, Msg: fmt.Sprintf("rule name %q is used twice", r.Name)}
			}
			byName[r.Name] = cr
		}
		s.rules = append(s.rules, cr)
		s.byRule[r] = cr
		if r.Correlation != nil {
			continue
		}
		if r.detection == nil {
			return nil, &Error{File: r.File, Line: r.Line, Msg: "rule has no detection (not made by Parse)"}
		}
		c.file = r.File
		m, err := c.cond(r.detection, r.detection.cond)
		if err != nil {
			return nil, err
		}
		cr.m = m
		ds, mapped := cfg.Mapping.datasets(r.Logsource)
		if !mapped {
			s.warnings = append(s.warnings, fmt.Sprintf("%s:%d: logsource %s is not mapped; the rule applies to dataset %q", r.File, r.Line, lsString(r.Logsource), ds[0]))
		}
		cr.datasets = ds
		field, base, vals := requiredKey(r.detection, r.detection.cond, cfg.Mapping)
		add := func(b *bucket) {
			if field == "" {
				b.rest = append(b.rest, cr)
				return
			}
			var ki *keyIndex
			for _, k := range b.keyed {
				if k.field == field && k.base == base {
					ki = k
				}
			}
			if ki == nil {
				ki = &keyIndex{field: field, base: base, vals: map[string][]*crule{}}
				b.keyed = append(b.keyed, ki)
			}
			for _, v := range vals {
				ki.vals[v] = append(ki.vals[v], cr)
			}
		}
		if ds == nil {
			add(s.any)
		}
		for _, d := range ds {
			b := s.index[d]
			if b == nil {
				b = &bucket{}
				s.index[d] = b
			}
			add(b)
		}
	}
	s.ids = byID
	if err := s.linkCorrelations(byID, byName); err != nil {
		return nil, err
	}
	return s, nil
}

func lsString(ls Logsource) string {
	var parts []string
	for _, kv := range [][2]string{{"product", ls.Product}, {"category", ls.Category}, {"service", ls.Service}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// Warnings lists what compiled but may not be what the author meant, such
// as log sources the mapping does not know.
func (s *Set) Warnings() []string { return append([]string(nil), s.warnings...) }

// Rules returns the compiled rules in the order given to Compile.
func (s *Set) Rules() []*Rule {
	out := make([]*Rule, len(s.rules))
	for i, c := range s.rules {
		out[i] = c.r
	}
	return out
}

// Datasets returns the datasets a compiled detection rule applies to (nil
// for every dataset, and for correlation rules and rules not in s).
func (s *Set) Datasets(r *Rule) []string {
	if c := s.byRule[r]; c != nil {
		return append([]string(nil), c.datasets...)
	}
	return nil
}

func (s *Set) linkCorrelations(byID, byName map[string]*crule) error {
	var corrs []*crule
	for _, cr := range s.rules {
		if cr.corr == nil {
			continue
		}
		r := cr.r
		for _, ref := range cr.corr.Rules {
			t := byID[ref]
			if t == nil {
				t = byName[ref]
			}
			if t == nil {
				return &Error{File: r.File, Line: r.Line, Msg: fmt.Sprintf("correlation %q: rule %q is not in the set", r.ID, ref)}
			}
			if t == cr {
				return &Error{File: r.File, Line: r.Line, Msg: fmt.Sprintf("correlation %q refers to itself", r.ID)}
			}
			for _, prev := range cr.refs {
				if prev == t {
					return &Error{File: r.File, Line: r.Line, Msg: fmt.Sprintf("correlation %q: rule %q is referenced twice", r.ID, ref)}
				}
			}
			cr.refs = append(cr.refs, t)
			t.parents = append(t.parents, parentRef{cr, len(cr.refs) - 1})
		}
		for _, g := range cr.corr.GroupBy {
			cr.groupBy = append(cr.groupBy, s.mapping.field(g))
		}
		if cr.corr.Field != "" {
			cr.field = s.mapping.field(cr.corr.Field)
		}
		corrs = append(corrs, cr)
	}
	// Referenced rules make their own hits only if a referrer says generate.
	for _, cr := range corrs {
		for _, t := range cr.refs {
			if !t.referred {
				t.referred, t.generate = true, false
			}
			if cr.corr.Generate {
				t.generate = true
			}
			if t.corr != nil && !equalStrings(t.corr.GroupBy, cr.corr.GroupBy) {
				return &Error{File: cr.r.File, Line: cr.r.Line, Feature: "chained correlations with different group-by",
					Msg: fmt.Sprintf("correlation %q refers to correlation %q with a different group-by: chained correlations with different group-by is not supported", cr.r.ID, t.r.ID)}
			}
		}
	}
	// Topological order: a correlation after the correlations it refers to.
	state := map[*crule]int{} // 1 visiting, 2 done
	var visit func(c *crule) error
	visit = func(c *crule) error {
		switch state[c] {
		case 1:
			return &Error{File: c.r.File, Line: c.r.Line, Msg: fmt.Sprintf("correlation %q is part of a reference cycle", c.r.ID)}
		case 2:
			return nil
		}
		state[c] = 1
		for _, t := range c.refs {
			if t.corr != nil {
				if err := visit(t); err != nil {
					return err
				}
			}
		}
		state[c] = 2
		c.topo = len(s.corrs)
		s.corrs = append(s.corrs, c)
		return nil
	}
	for _, c := range corrs {
		if err := visit(c); err != nil {
			return err
		}
	}
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Match appends to dst[:0] the detection rules ev matches and returns it.
// Only the rules of ev's dataset (and rules for every dataset) are tested,
// and of those with an indexed field only the ones whose value ev has. The
// order is deterministic.
func (s *Set) Match(ev events.Event, dst []*Rule) []*Rule {
	dst = dst[:0]
	if ds, ok := ev[events.FieldDataset].(string); ok {
		if b := s.index[ds]; b != nil {
			dst = b.match(ev, dst)
		}
	}
	return s.any.match(ev, dst)
}

func (b *bucket) match(ev events.Event, dst []*Rule) []*Rule {
	var buf [128]byte
	for _, k := range b.keyed {
		v, ok := ev[k.field]
		if !ok {
			continue
		}
		if l, ok := v.([]any); ok {
			for _, e := range l {
				dst = k.lookup(ev, e, buf[:0], dst)
			}
			continue
		}
		dst = k.lookup(ev, v, buf[:0], dst)
	}
	for _, c := range b.rest {
		if c.m.match(ev) {
			dst = append(dst, c.r)
		}
	}
	return dst
}

func (k *keyIndex) lookup(ev events.Event, v any, buf []byte, dst []*Rule) []*Rule {
	switch x := v.(type) {
	case string:
		if k.base {
			x = x[strings.LastIndexByte(x, '/')+1:]
		}
		for i := 0; i < len(x); i++ {
			buf = append(buf, lowerASCII(x[i]))
		}
	case float64:
		buf = strconv.AppendFloat(buf, x, 'f', -1, 64)
	case int64:
		buf = strconv.AppendInt(buf, x, 10)
	case int:
		buf = strconv.AppendInt(buf, int64(x), 10)
	case bool:
		buf = strconv.AppendBool(buf, x)
	default:
		return dst
	}
	for _, c := range k.vals[string(buf)] {
		if c.m.match(ev) && !containsRule(dst, c.r) {
			dst = append(dst, c.r)
		}
	}
	return dst
}

func containsRule(l []*Rule, r *Rule) bool {
	for _, x := range l {
		if x == r {
			return true
		}
	}
	return false
}

// requiredKey finds a field the condition requires to equal one of a few
// values (lower-cased), or (base) whose last path element must be one of
// them, for the index; "" if there is none.
func requiredKey(d *detection, c cond, m *Mapping) (field string, base bool, vals []string) {
	cands := required(d, c, m)
	best := ""
	for k, v := range cands {
		if best == "" || len(v) < len(vals) || len(v) == len(vals) && k < best {
			best, vals = k, v
		}
	}
	if best == "" {
		return "", false, nil
	}
	sort.Strings(vals)
	field, kind, _ := strings.Cut(best, "\x00")
	return field, kind == "/", vals
}

const maxIndexValues = 64

// required returns, per field, the values one of which the field must
// equal for c to hold.
func required(d *detection, c cond, m *Mapping) map[string][]string {
	switch c := c.(type) {
	case *condIdent:
		sel := d.sels[c.name]
		if sel.keywords != nil {
			return nil
		}
		var out map[string][]string
		for i, mp := range sel.maps {
			one := map[string][]string{}
			for _, fs := range mp {
				if kind, vals, ok := indexValues(fs); ok && fs.field != "" {
					f := m.field(fs.field) + "\x00" + kind
					one[f] = append(one[f], vals...)
				}
			}
			if i == 0 {
				out = one
			} else {
				out = intersect(out, one)
			}
		}
		return out
	case *condAnd:
		out := map[string][]string{}
		for _, x := range c.c {
			for f, v := range required(d, x, m) {
				if old, ok := out[f]; !ok || len(v) < len(old) {
					out[f] = v
				}
			}
		}
		return out
	case *condOr:
		var out map[string][]string
		for i, x := range c.c {
			r := required(d, x, m)
			if i == 0 {
				out = r
			} else {
				out = intersect(out, r)
			}
		}
		return out
	}
	return nil
}

// intersect keeps the fields both have, with the union of their values.
func intersect(a, b map[string][]string) map[string][]string {
	out := map[string][]string{}
	for f, va := range a {
		if vb, ok := b[f]; ok && len(va)+len(vb) <= maxIndexValues {
			seen := map[string]bool{}
			for _, v := range append(append([]string(nil), va...), vb...) {
				if !seen[v] {
					seen[v] = true
					out[f] = append(out[f], v)
				}
			}
		}
	}
	return out
}

// indexValues returns the lower-cased values of a field search that
// matches only by equality (kind "="), or only values whose last path
// element is one of them (kind "/": endswith '/name'), or false.
func indexValues(fs *fieldSpec) (kind string, out []string, ok bool) {
	kind = "="
	for _, m := range fs.mods {
		switch m {
		case "cased":
		case "endswith":
			kind = "/"
		default:
			return "", nil, false
		}
	}
	if len(fs.values) > maxIndexValues {
		return "", nil, false
	}
	for _, v := range fs.values {
		s := v.s
		switch v.kind {
		case vNull:
			return "", nil, false
		case vNumber:
			f, err := strconv.ParseFloat(v.s, 64)
			if err != nil || strconv.FormatFloat(f, 'f', -1, 64) != v.s || kind == "/" {
				return "", nil, false
			}
		case vString:
			if strings.ContainsAny(s, `*?\`) || !isASCII(s) {
				return "", nil, false
			}
			if kind == "/" {
				i := strings.LastIndexByte(s, '/')
				if i < 0 || i == len(s)-1 {
					return "", nil, false
				}
				s = s[i+1:]
			}
		case vBool:
			if kind == "/" {
				return "", nil, false
			}
		}
		out = append(out, strings.ToLower(s))
	}
	return kind, out, len(out) > 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// compiler turns parsed detections into matchers.
type compiler struct {
	file string
	m    *Mapping
	ph   map[string][]string
}

func (c *compiler) errf(line int, format string, args ...any) error {
	return &Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) cond(d *detection, x cond) (matcher, error) {
	switch x := x.(type) {
	case *condIdent:
		return c.selection(d.sels[x.name])
	case *condNot:
		m, err := c.cond(d, x.c)
		if err != nil {
			return nil, err
		}
		return notM{m}, nil
	case *condAnd:
		ms, err := c.conds(d, x.c)
		return andM(ms), err
	case *condOr:
		ms, err := c.conds(d, x.c)
		return orM(ms), err
	}
	return nil, fmt.Errorf("sigma: unknown condition node %T", x)
}

func (c *compiler) conds(d *detection, xs []cond) ([]matcher, error) {
	out := make([]matcher, 0, len(xs))
	for _, y := range xs {
		m, err := c.cond(d, y)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (c *compiler) selection(s *selection) (matcher, error) {
	if s.keywords != nil {
		return c.field(&fieldSpec{line: s.line, field: "", values: s.keywords})
	}
	var alts orM
	for _, mp := range s.maps {
		var all andM
		for _, fs := range mp {
			m, err := c.field(fs)
			if err != nil {
				return nil, err
			}
			all = append(all, m)
		}
		if len(all) == 1 {
			alts = append(alts, all[0])
		} else {
			alts = append(alts, all)
		}
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

// field compiles one `field|mods: values`. An empty field is a keyword
// search of the message: without contains, startswith, endswith or re a
// keyword matches anywhere in the message.
func (c *compiler) field(fs *fieldSpec) (matcher, error) {
	keyword := fs.field == ""
	name := events.FieldMessage
	if !keyword {
		name = c.m.field(fs.field)
	}
	mods := map[string]bool{}
	for _, m := range fs.mods {
		mods[m] = true
	}
	if keyword && !mods["contains"] && !mods["startswith"] && !mods["endswith"] && !mods["re"] {
		mods["contains"] = true
	}
	if mods["exists"] {
		return existsM{field: name, want: fs.values[0].s == "true"}, nil
	}
	fm := &fieldM{field: name, all: mods["all"]}
	var nulls bool
	for _, v := range fs.values {
		if v.kind == vNull {
			nulls = true
			continue
		}
		vm, err := c.value(fs, mods, v)
		if err != nil {
			return nil, err
		}
		fm.vals = append(fm.vals, vm)
	}
	if !fm.all && len(fm.vals) >= minMultiContains {
		fm.vals = groupContains(fm.vals)
	}
	switch {
	case nulls && len(fm.vals) == 0:
		return nullM{name}, nil
	case nulls:
		if fm.all {
			return nil, c.errf(fs.line, "field %q: all cannot mix null with other values", fs.field)
		}
		return orM{nullM{name}, fm}, nil
	}
	return fm, nil
}

// groupContains replaces the case-insensitive ASCII patterns of an OR list
// that are unanchored on the left by one multiContains, if there are
// enough of them.
func groupContains(vals []valM) []valM {
	var group []*strM
	var rest []valM
	for _, v := range vals {
		if s, ok := v.(*strM); ok {
			if _, ok := s.groupable(); ok {
				group = append(group, s)
				continue
			}
		}
		rest = append(rest, v)
	}
	if len(group) < minMultiContains {
		return vals
	}
	return append(rest, newMultiContains(group))
}

var windashRE = regexp.MustCompile(`\B[-/]\b`)

// windashChars are the characters windash substitutes for a leading - or /.
var windashChars = []string{"-", "/", "\u2013", "\u2014", "\u2015"}

func (c *compiler) value(fs *fieldSpec, mods map[string]bool, v value) (valM, error) {
	line := v.line
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		if mods[op] {
			n, _ := strconv.ParseFloat(v.s, 64)
			return cmpM{op: op, n: n}, nil
		}
	}
	if mods["cidr"] {
		p, err := netip.ParsePrefix(v.s)
		if err != nil {
			return nil, c.errf(line, "field %q: cidr %q: %v", fs.field, v.s, err)
		}
		return cidrM{p.Masked()}, nil
	}
	kind := kExact
	switch {
	case mods["contains"]:
		kind = kContains
	case mods["startswith"]:
		kind = kPrefix
	case mods["endswith"]:
		kind = kSuffix
	}
	if mods["fieldref"] {
		return fieldrefM{other: c.m.field(v.s), kind: kind, cased: mods["cased"]}, nil
	}
	if mods["re"] {
		flags := ""
		for _, f := range []string{"i", "m", "s"} {
			if mods[f] {
				flags += f
			}
		}
		src := v.s
		if flags != "" {
			src = "(?" + flags + ")" + src
		}
		re, err := regexp.Compile(src)
		if err != nil {
			var se *syntax.Error
			if errors.As(err, &se) && (se.Code == syntax.ErrInvalidPerlOp || se.Code == syntax.ErrInvalidRepeatOp && strings.Contains(v.s, "{")) {
				return nil, &Error{File: c.file, Line: line, Feature: "regular expression syntax outside RE2",
					Msg: fmt.Sprintf("field %q: regular expression %q: %s: regular expression syntax outside RE2 is not supported", fs.field, v.s, se.Code)}
			}
			return nil, c.errf(line, "field %q: regular expression %q: %v", fs.field, v.s, err)
		}
		return reM{re}, nil
	}
	// Plain values: expand, windash, encodings, base64, then wildcards.
	strs := []string{v.s}
	if mods["expand"] {
		var err error
		if strs, err = c.expand(fs, v); err != nil {
			return nil, err
		}
	}
	if mods["windash"] {
		var out []string
		for _, s := range strs {
			for _, ch := range windashChars {
				out = append(out, windashRE.ReplaceAllLiteralString(s, ch))
			}
		}
		strs = dedup(out)
	}
	literal := false
	enc := ""
	for _, e := range []string{"utf16le", "wide", "utf16be", "utf16"} {
		if mods[e] {
			enc = e
		}
	}
	if enc != "" || mods["base64"] || mods["base64offset"] {
		if !mods["base64"] && !mods["base64offset"] {
			return nil, c.errf(fs.line, "field %q: %s needs base64 or base64offset", fs.field, enc)
		}
		literal = true
		var out []string
		for _, s := range strs {
			b := encode(enc, s)
			if mods["base64"] {
				out = append(out, base64.StdEncoding.EncodeToString(b))
			} else {
				out = append(out, base64Offsets(b)...)
			}
		}
		strs = dedup(out)
	}
	var alts valOr
	for _, s := range strs {
		toks := []tok{{lit: s}}
		if !literal {
			toks = parseWildcards(s)
		}
		m, err := c.pattern(fs, toks, kind, mods["cased"], v)
		if err != nil {
			return nil, err
		}
		alts = append(alts, m)
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

func dedup(l []string) []string {
	seen := map[string]bool{}
	out := l[:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func encode(enc, s string) []byte {
	if enc == "" {
		return []byte(s)
	}
	u := utf16.Encode([]rune(s))
	var b []byte
	if enc == "utf16" {
		b = append(b, 0xff, 0xfe)
	}
	for _, x := range u {
		if enc == "utf16be" {
			b = append(b, byte(x>>8), byte(x))
		} else {
			b = append(b, byte(x), byte(x>>8))
		}
	}
	return b
}

// base64Offsets returns the three base64 forms of b at the offsets 0, 1
// and 2 of a 3-byte group, cut to the characters that do not depend on
// the surrounding bytes (as the specification and pySigma do).
func base64Offsets(b []byte) []string {
	start := []int{0, 2, 3}
	endCut := []int{0, 3, 2}
	var out []string
	for i := 0; i < 3; i++ {
		p := append([]byte(strings.Repeat(" ", i)), b...)
		e := base64.StdEncoding.EncodeToString(p)
		end := len(e) - endCut[(len(b)+i)%3]
		if start[i] >= end {
			continue
		}
		out = append(out, e[start[i]:end])
	}
	return out
}

// expand replaces %name% placeholders with their values from
// Config.Placeholders (every combination).
func (c *compiler) expand(fs *fieldSpec, v value) ([]string, error) {
	out := []string{""}
	s := v.s
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			break
		}
		name := s[i+1 : i+1+j]
		vals, ok := c.ph[name]
		if !ok {
			return nil, c.errf(v.line, "field %q: placeholder %%%s%% is not defined", fs.field, name)
		}
		var next []string
		for _, pre := range out {
			for _, x := range vals {
				next = append(next, pre+s[:i]+x)
			}
		}
		if len(next) > 1024 {
			return nil, c.errf(v.line, "field %q: placeholders expand to more than 1024 values", fs.field)
		}
		out = next
		s = s[i+2+j:]
	}
	for k := range out {
		out[k] += s
	}
	return out, nil
}

// tok is a piece of a Sigma string: a literal, or a * or ? wildcard.
type tok struct {
	lit  string
	star bool
	q    bool
}

// parseWildcards splits a Sigma string into literals and wildcards: * and
// ? are wildcards, \* \? and \\ are the literal characters, and any other
// backslash is itself.
func parseWildcards(s string) []tok {
	var out []tok
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, tok{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\'):
			lit.WriteByte(s[i+1])
			i++
		case ch == '*':
			flush()
			if len(out) == 0 || !out[len(out)-1].star {
				out = append(out, tok{star: true})
			}
		case ch == '?':
			flush()
			out = append(out, tok{q: true})
		default:
			lit.WriteByte(ch)
		}
	}
	flush()
	return out
}

// pattern builds the matcher of one string value.
func (c *compiler) pattern(fs *fieldSpec, toks []tok, kind int, cased bool, v value) (valM, error) {
	switch kind {
	case kContains:
		toks = append(append([]tok{{star: true}}, toks...), tok{star: true})
	case kPrefix:
		toks = append(toks, tok{star: true})
	case kSuffix:
		toks = append([]tok{{star: true}}, toks...)
	}
	// collapse ** and drop empty literals
	var t []tok
	for _, x := range toks {
		if x.star && len(t) > 0 && t[len(t)-1].star || !x.star && !x.q && x.lit == "" {
			continue
		}
		t = append(t, x)
	}
	for _, x := range t {
		if x.q {
			return c.wildRegexp(fs, t, cased, v)
		}
	}
	lower := func(s string) string {
		if cased {
			return s
		}
		return strings.ToLower(s)
	}
	m := &strM{cased: cased}
	if len(t) == 0 {
		m.kind = kExact
		return m, nil
	}
	if len(t) == 1 && t[0].star {
		m.kind, m.ascii = kContains, true // matches any value
		return m, nil
	}
	var segs []string
	for _, x := range t {
		if !x.star {
			segs = append(segs, lower(x.lit))
		}
	}
	first, last := t[0].star, t[len(t)-1].star
	switch {
	case len(segs) == 1 && !first && !last:
		m.kind, m.pat = kExact, segs[0]
		if v.kind == vNumber && kind == kExact {
			if f, err := strconv.ParseFloat(v.s, 64); err == nil {
				m.isNum, m.num = true, f
			}
		}
	case len(segs) == 1 && !first && last:
		m.kind, m.pat = kPrefix, segs[0]
	case len(segs) == 1 && first && !last:
		m.kind, m.pat = kSuffix, segs[0]
	case len(segs) == 1:
		m.kind, m.pat = kContains, segs[0]
	default:
		m.kind, m.segs, m.anchorL, m.anchorR = kGlob, segs, !first, !last
	}
	m.ascii = isASCII(m.pat)
	for _, s := range segs {
		m.ascii = m.ascii && isASCII(s)
	}
	return m, nil
}

func (c *compiler) wildRegexp(fs *fieldSpec, t []tok, cased bool, v value) (valM, error) {
	var b strings.Builder
	if !cased {
		b.WriteString("(?i)")
	}
	b.WriteString("(?s)^")
	for _, x := range t {
		switch {
		case x.star:
			b.WriteString(".*")
		case x.q:
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(x.lit))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, c.errf(v.line, "field %q: %v", fs.field, err)
	}
	return reM{re}, nil
}
