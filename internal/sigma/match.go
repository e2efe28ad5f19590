package sigma

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/warden-sec/warden/internal/events"
)

// matcher is a compiled condition over one event. Implementations do not
// allocate on the common paths (string fields, ASCII patterns).
type matcher interface{ match(ev events.Event) bool }

type (
	andM []matcher
	orM  []matcher
	notM struct{ m matcher }
	// trueM matches every event (a condition over an empty selection set
	// cannot be written; used for tests of the index).
)

func (a andM) match(ev events.Event) bool {
	for _, m := range a {
		if !m.match(ev) {
			return false
		}
	}
	return true
}

func (o orM) match(ev events.Event) bool {
	for _, m := range o {
		if m.match(ev) {
			return true
		}
	}
	return false
}

func (n notM) match(ev events.Event) bool { return !n.m.match(ev) }

// fieldM matches a field's value against values: any of them, or all of
// them with the all modifier. A multi-valued field matches a value when
// one of its elements does.
type fieldM struct {
	field string
	all   bool
	vals  []valM
}

func (f *fieldM) match(ev events.Event) bool {
	v, ok := ev[f.field]
	if !ok || v == nil {
		return false
	}
	if f.all {
		for _, vm := range f.vals {
			if !matchValue(vm, v, ev) {
				return false
			}
		}
		return true
	}
	for _, vm := range f.vals {
		if matchValue(vm, v, ev) {
			return true
		}
	}
	return false
}

func matchValue(vm valM, v any, ev events.Event) bool {
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if e != nil && vm.matchValue(e, ev) {
				return true
			}
		}
		return false
	}
	return vm.matchValue(v, ev)
}

// nullM matches when the field is absent or null.
type nullM struct{ field string }

func (n nullM) match(ev events.Event) bool { return ev[n.field] == nil }

// existsM is the exists modifier.
type existsM struct {
	field string
	want  bool
}

func (e existsM) match(ev events.Event) bool {
	_, ok := ev[e.field]
	return ok == e.want
}

// valM matches one scalar value (string, float64, int64, int or bool).
type valM interface {
	matchValue(v any, ev events.Event) bool
}

// valOr is one value of a rule that stands for several variants (windash,
// base64offset, expand): it matches when one variant does.
type valOr []valM

func (o valOr) matchValue(v any, ev events.Event) bool {
	for _, m := range o {
		if m.matchValue(v, ev) {
			return true
		}
	}
	return false
}

// scalarString returns v as a string; ok is false for values that are
// not scalars.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func scalarNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// String pattern kinds.
const (
	kExact = iota
	kPrefix
	kSuffix
	kContains
	kGlob // segments: prefix, middles in order, suffix
)

// strM is a string pattern without ? wildcards. Unless cased, pat and segs
// are lower-cased and matching folds case (ASCII fast path; non-ASCII
// patterns lower-case the value).
type strM struct {
	kind    int
	pat     string
	segs    []string // kGlob: literal pieces between *s
	anchorL bool     // kGlob: pattern does not start with *
	anchorR bool     // kGlob: pattern does not end with *
	cased   bool
	ascii   bool // pat and segs are ASCII
	isNum   bool // the rule wrote a number: numeric values compare as numbers
	num     float64
}

func (s *strM) matchValue(v any, _ events.Event) bool {
	if s.isNum {
		if f, ok := v.(float64); ok {
			return f == s.num
		}
		if i, ok := v.(int64); ok {
			return float64(i) == s.num
		}
		if i, ok := v.(int); ok {
			return float64(i) == s.num
		}
	}
	str, ok := v.(string)
	if !ok {
		if str, ok = scalarString(v); !ok {
			return false
		}
	}
	return s.matchString(str)
}

func (s *strM) matchString(str string) bool {
	if s.cased {
		return matchCased(s, str)
	}
	if !s.ascii {
		return matchCased(s, strings.ToLower(str))
	}
	switch s.kind {
	case kExact:
		return len(str) == len(s.pat) && eqFoldASCII(str, s.pat)
	case kPrefix:
		return len(str) >= len(s.pat) && eqFoldASCII(str[:len(s.pat)], s.pat)
	case kSuffix:
		return len(str) >= len(s.pat) && eqFoldASCII(str[len(str)-len(s.pat):], s.pat)
	case kContains:
		return indexFoldASCII(str, s.pat) >= 0
	}
	return globMatch(s, str, indexFoldASCII, func(a, b string) bool { return eqFoldASCII(a, b) })
}

func matchCased(s *strM, str string) bool {
	switch s.kind {
	case kExact:
		return str == s.pat
	case kPrefix:
		return strings.HasPrefix(str, s.pat)
	case kSuffix:
		return strings.HasSuffix(str, s.pat)
	case kContains:
		return strings.Contains(str, s.pat)
	}
	return globMatch(s, str, strings.Index, func(a, b string) bool { return a == b })
}

func globMatch(s *strM, str string, index func(s, sub string) int, eq func(a, b string) bool) bool {
	segs := s.segs
	if s.anchorL {
		p := segs[0]
		if len(str) < len(p) || !eq(str[:len(p)], p) {
			return false
		}
		str, segs = str[len(p):], segs[1:]
	}
	var last string
	if s.anchorR {
		if len(segs) == 0 {
			return str == "" // cannot happen: kExact
		}
		last, segs = segs[len(segs)-1], segs[:len(segs)-1]
	}
	for _, p := range segs {
		i := index(str, p)
		if i < 0 {
			return false
		}
		str = str[i+len(p):]
	}
	if s.anchorR {
		return len(str) >= len(last) && eq(str[len(str)-len(last):], last)
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// eqFoldASCII reports whether s equals p (lower-case ASCII) ignoring
// ASCII case. len(s) must equal len(p).
func eqFoldASCII(s, p string) bool {
	if len(s) != len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lowerASCII(s[i]) != p[i] {
			return false
		}
	}
	return true
}

// indexFoldASCII is strings.Index ignoring ASCII case; p is lower-case.
// It looks for candidates with strings.IndexByte (vectorized): on a byte
// of p that is not a letter when there is one, else on both cases of
// p's first byte.
func indexFoldASCII(s, p string) int {
	n := len(p)
	if n == 0 {
		return 0
	}
	k := -1
	for i := 0; i < n; i++ {
		if c := p[i]; c < 'a' || c > 'z' {
			k = i
			break
		}
	}
	if k >= 0 {
		c := p[k]
		for i := k; i+n-k <= len(s); {
			j := strings.IndexByte(s[i:len(s)-(n-k)+1], c)
			if j < 0 {
				return -1
			}
			i += j
			if eqFoldASCII(s[i-k:i-k+n], p) {
				return i - k
			}
			i++
		}
		return -1
	}
	lo, up := p[0], p[0]-('a'-'A')
	nextLo, nextUp := -2, -2 // -2: not searched yet; -1: none left
	for i := 0; i+n <= len(s); {
		limit := s[:len(s)-n+1]
		if nextLo != -1 && nextLo < i {
			if j := strings.IndexByte(limit[i:], lo); j >= 0 {
				nextLo = i + j
			} else {
				nextLo = -1
			}
		}
		if nextUp != -1 && nextUp < i {
			if j := strings.IndexByte(limit[i:], up); j >= 0 {
				nextUp = i + j
			} else {
				nextUp = -1
			}
		}
		switch {
		case nextLo < 0 && nextUp < 0:
			return -1
		case nextUp < 0 || nextLo >= 0 && nextLo < nextUp:
			i = nextLo
		default:
			i = nextUp
		}
		if eqFoldASCII(s[i:i+n], p) {
			return i
		}
		i++
	}
	return -1
}

// reM is the re modifier, or a pattern with ? wildcards.
type reM struct{ re *regexp.Regexp }

func (r reM) matchValue(v any, _ events.Event) bool {
	s, ok := v.(string)
	if !ok {
		if s, ok = scalarString(v); !ok {
			return false
		}
	}
	return r.re.MatchString(s)
}

// cidrM is the cidr modifier.
type cidrM struct{ p netip.Prefix }

func (c cidrM) matchValue(v any, _ events.Event) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	return c.p.Contains(a.Unmap())
}

// cmpM is gt, gte, lt or lte.
type cmpM struct {
	op string
	n  float64
}

func (c cmpM) matchValue(v any, _ events.Event) bool {
	f, ok := scalarNumber(v)
	return ok && compare(c.op, f, c.n)
}

// compare is a op b for op gt, gte, lt, lte or eq.
func compare(op string, a, b float64) bool {
	switch op {
	case "gt":
		return a > b
	case "gte":
		return a >= b
	case "lt":
		return a < b
	case "lte":
		return a <= b
	}
	return a == b
}

// fieldrefM is the fieldref modifier: the value equals (starts with, ends
// with, contains) another field's value.
type fieldrefM struct {
	other string
	kind  int
	cased bool
}

func (f fieldrefM) matchValue(v any, ev events.Event) bool {
	a, ok := scalarString(v)
	if !ok {
		return false
	}
	ov, ok := ev[f.other]
	if !ok || ov == nil {
		return false
	}
	b, ok := scalarString(ov)
	if !ok {
		return false
	}
	if !f.cased {
		a, b = strings.ToLower(a), strings.ToLower(b)
	}
	switch f.kind {
	case kPrefix:
		return strings.HasPrefix(a, b)
	case kSuffix:
		return strings.HasSuffix(a, b)
	case kContains:
		return strings.Contains(a, b)
	}
	return a == b
}

// multiContains is a list of case-insensitive ASCII patterns unanchored on
// the left ("contains", and globs such as *a*b* or *a*b) tested in one
// pass over the value: a bitset of the patterns' first two bytes selects
// the positions where a pattern may start.
type multiContains struct {
	bits   [1024]uint64 // 65536 bits: lower-case byte pairs that start a pattern
	byPair map[uint16][]mcEntry
	short  []string // one-byte contains patterns
}

// mcEntry is a contains pattern, or the first segment of a glob.
type mcEntry struct {
	pat  string
	glob *strM // nil for contains
}

// minMultiContains is the number of patterns from which a list is tested
// in one pass rather than one pattern after the other.
const minMultiContains = 4

// groupable reports whether a pattern can join a multiContains, and the
// literal it starts with.
func (s *strM) groupable() (string, bool) {
	if !s.ascii || s.cased || s.isNum {
		return "", false
	}
	switch {
	case s.kind == kContains && s.pat != "":
		return s.pat, true
	case s.kind == kGlob && !s.anchorL && len(s.segs[0]) >= 2:
		return s.segs[0], true
	}
	return "", false
}

func newMultiContains(ms []*strM) *multiContains {
	m := &multiContains{byPair: map[uint16][]mcEntry{}}
	for _, x := range ms {
		first, _ := x.groupable()
		e := mcEntry{pat: first}
		if x.kind == kGlob {
			e.glob = x
		}
		if len(first) < 2 {
			m.short = append(m.short, first)
			continue
		}
		k := uint16(first[0])<<8 | uint16(first[1])
		m.bits[k>>6] |= 1 << (k & 63)
		m.byPair[k] = append(m.byPair[k], e)
	}
	return m
}

func (m *multiContains) matchValue(v any, _ events.Event) bool {
	s, ok := v.(string)
	if !ok {
		if s, ok = scalarString(v); !ok {
			return false
		}
	}
	for _, p := range m.short {
		if indexFoldASCII(s, p) >= 0 {
			return true
		}
	}
	for i := 0; i+1 < len(s); i++ {
		k := uint16(lowerASCII(s[i]))<<8 | uint16(lowerASCII(s[i+1]))
		if m.bits[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for _, e := range m.byPair[k] {
			if len(s)-i >= len(e.pat) && eqFoldASCII(s[i:i+len(e.pat)], e.pat) {
				// a glob starting here matches if it matches at all from here
				// (its leftmost start is the best one)
				if e.glob == nil || e.glob.matchString(s[i:]) {
					return true
				}
			}
		}
	}
	return false
}
