package events

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// A Query selects events. The language (docs/detection-stream.md, "Search"):
//
//	source.ip:203.0.113.7              a field equals a value
//	user.name:"J Doe"                  quoted values (\" and \\ escape)
//	url.original:*wp-login*            * matches any run of characters
//	user.name:*                        the field exists
//	http.response.status_code:>=400    numeric comparison (>, >=, <, <=)
//	failed                             a bare word or "phrase": in message, any case
//	a AND b, a b                       both (AND is implied between terms)
//	a OR b, NOT a, ( ... )             NOT binds tightest, then AND, then OR
//
// The zero query (from an empty string) matches every event. A Query is
// immutable and safe for concurrent use.
type Query struct{ root node }

// Limits of a query.
const (
	MaxQueryBytes = 4096
	maxQueryDepth = 32
)

// QueryError is a query that does not parse: the byte offset (0-based) and
// why.
type QueryError struct {
	Pos int
	Msg string
}

func (e *QueryError) Error() string { return fmt.Sprintf("query: at offset %d: %s", e.Pos, e.Msg) }

type node interface{ match(Event) bool }

type andNode []node
type orNode []node
type notNode struct{ n node }

func (a andNode) match(ev Event) bool {
	for _, n := range a {
		if !n.match(ev) {
			return false
		}
	}
	return true
}

func (o orNode) match(ev Event) bool {
	for _, n := range o {
		if n.match(ev) {
			return true
		}
	}
	return false
}

func (n notNode) match(ev Event) bool { return !n.n.match(ev) }

// fieldNode: field compared with a value.
type fieldNode struct {
	field string
	op    string // "", ">", ">=", "<", "<="; "" is equality or glob
	value string
	num   float64
	glob  bool
}

func (f fieldNode) match(ev Event) bool {
	v, ok := ev[f.field]
	if !ok {
		return false
	}
	if f.op == "" && f.glob && f.value == "*" {
		return true
	}
	if vs, ok := v.([]any); ok {
		for _, x := range vs {
			if f.one(x) {
				return true
			}
		}
		return false
	}
	return f.one(v)
}

func (f fieldNode) one(v any) bool {
	if f.op != "" {
		var x float64
		switch n := v.(type) {
		case float64:
			x = n
		case int64:
			x = float64(n)
		case int:
			x = float64(n)
		case string:
			var err error
			if x, err = strconv.ParseFloat(n, 64); err != nil {
				return false
			}
		default:
			return false
		}
		switch f.op {
		case ">":
			return x > f.num
		case ">=":
			return x >= f.num
		case "<":
			return x < f.num
		default:
			return x <= f.num
		}
	}
	s := Event{"v": v}.String("v")
	if f.glob {
		return globMatch(f.value, s)
	}
	return s == f.value
}

// textNode: a bare word or phrase, in message, ignoring case.
type textNode struct {
	lower string
	glob  bool
}

func (t textNode) match(ev Event) bool {
	m := strings.ToLower(ev.String(FieldMessage))
	if t.glob {
		return globMatch("*"+t.lower+"*", m)
	}
	return strings.Contains(m, t.lower)
}

// globMatch matches s against a pattern whose only special character is
// '*' (path.Match's other specials are escaped first).
func globMatch(pattern, s string) bool {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	// path.Match's '*' does not cross '/': compare with '/' made ordinary.
	ok, err := path.Match(strings.ReplaceAll(b.String(), "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}

// Match reports whether ev matches q.
func (q *Query) Match(ev Event) bool {
	if q == nil || q.root == nil {
		return true
	}
	return q.root.match(ev)
}

// ParseQuery parses a query (the language above). Errors are *QueryError.
func ParseQuery(s string) (*Query, error) {
	if len(s) > MaxQueryBytes {
		return nil, &QueryError{Pos: MaxQueryBytes, Msg: fmt.Sprintf("longer than %d bytes", MaxQueryBytes)}
	}
	toks, err := lexQuery(s)
	if err != nil {
		return nil, err
	}
	p := &qparser{toks: toks, end: len(s)}
	if len(toks) == 0 {
		return &Query{}, nil
	}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		return nil, &QueryError{Pos: t.pos, Msg: fmt.Sprintf("unexpected %s", t.describe())}
	}
	return &Query{root: n}, nil
}

type qtok struct {
	kind   byte // '(' ')' 'w' (word or field:value) 'q' (quoted phrase) 'A' 'O' 'N'
	pos    int
	field  string // for 'w' with a field
	value  string
	quoted bool // the value was quoted
}

func (t qtok) describe() string {
	switch t.kind {
	case '(', ')':
		return fmt.Sprintf("%q", string(t.kind))
	case 'A':
		return "AND"
	case 'O':
		return "OR"
	case 'N':
		return "NOT"
	}
	return fmt.Sprintf("term %q", t.value)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// readQuoted reads a quoted string starting at s[i] == '"'; it returns the
// value and the offset after the closing quote.
func readQuoted(s string, i int) (string, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if j+1 >= len(s) || (s[j+1] != '"' && s[j+1] != '\\') {
				return "", 0, &QueryError{Pos: j, Msg: `only \" and \\ are escapes in a quoted value`}
			}
			j++
			b.WriteByte(s[j])
		case '"':
			return b.String(), j + 1, nil
		default:
			b.WriteByte(s[j])
		}
	}
	return "", 0, &QueryError{Pos: i, Msg: "unterminated quoted value"}
}

func lexQuery(s string) ([]qtok, error) {
	var out []qtok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '(' || c == ')':
			out = append(out, qtok{kind: c, pos: i})
			i++
		case c == '"':
			v, j, err := readQuoted(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, qtok{kind: 'q', pos: i, value: v, quoted: true})
			i = j
		default:
			start := i
			for i < len(s) && !isSpace(s[i]) && s[i] != '(' && s[i] != ')' && s[i] != ':' && s[i] != '"' {
				i++
			}
			word := s[start:i]
			if i < len(s) && s[i] == ':' {
				if word == "" {
					return nil, &QueryError{Pos: start, Msg: "a field name is missing before ':'"}
				}
				i++
				t := qtok{kind: 'w', pos: start, field: word}
				if i < len(s) && s[i] == '"' {
					v, j, err := readQuoted(s, i)
					if err != nil {
						return nil, err
					}
					t.value, t.quoted, i = v, true, j
				} else {
					vs := i
					for i < len(s) && !isSpace(s[i]) && s[i] != '(' && s[i] != ')' && s[i] != '"' {
						i++
					}
					t.value = s[vs:i]
					if t.value == "" {
						return nil, &QueryError{Pos: vs, Msg: fmt.Sprintf("field %q has no value (write %s:* for \"exists\")", word, word)}
					}
				}
				out = append(out, t)
				continue
			}
			if word == "" { // a '"' right after a word
				return nil, &QueryError{Pos: i, Msg: "unexpected '\"' inside a word"}
			}
			switch word {
			case "AND":
				out = append(out, qtok{kind: 'A', pos: start})
			case "OR":
				out = append(out, qtok{kind: 'O', pos: start})
			case "NOT":
				out = append(out, qtok{kind: 'N', pos: start})
			default:
				out = append(out, qtok{kind: 'w', pos: start, value: word})
			}
		}
	}
	return out, nil
}

type qparser struct {
	toks []qtok
	i    int
	end  int
}

func (p *qparser) peek() (qtok, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return qtok{}, false
}

func (p *qparser) or(depth int) (node, error) {
	first, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	ns := orNode{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind != 'O' {
			break
		}
		p.i++
		n, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	if len(ns) == 1 {
		return first, nil
	}
	return ns, nil
}

func (p *qparser) and(depth int) (node, error) {
	first, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	ns := andNode{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind == 'O' || t.kind == ')' {
			break
		}
		if t.kind == 'A' {
			p.i++
		}
		n, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	if len(ns) == 1 {
		return first, nil
	}
	return ns, nil
}

func (p *qparser) not(depth int) (node, error) {
	if depth > maxQueryDepth {
		t, _ := p.peek()
		return nil, &QueryError{Pos: t.pos, Msg: fmt.Sprintf("nested deeper than %d", maxQueryDepth)}
	}
	t, ok := p.peek()
	if !ok {
		return nil, &QueryError{Pos: p.end, Msg: "a term is missing at the end"}
	}
	switch t.kind {
	case 'N':
		p.i++
		n, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case '(':
		p.i++
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok || c.kind != ')' {
			return nil, &QueryError{Pos: t.pos, Msg: "'(' is not closed"}
		}
		p.i++
		return n, nil
	case 'w', 'q':
		p.i++
		return term(t)
	}
	return nil, &QueryError{Pos: t.pos, Msg: fmt.Sprintf("unexpected %s", t.describe())}
}

func term(t qtok) (node, error) {
	if t.field == "" {
		glob := !t.quoted && strings.Contains(t.value, "*")
		return textNode{lower: strings.ToLower(t.value), glob: glob}, nil
	}
	f := fieldNode{field: t.field, value: t.value}
	if !t.quoted {
		for _, op := range []string{">=", "<=", ">", "<"} {
			if rest, ok := strings.CutPrefix(t.value, op); ok {
				n, err := strconv.ParseFloat(rest, 64)
				if err != nil {
					return nil, &QueryError{Pos: t.pos, Msg: fmt.Sprintf("field %q: %s needs a number, not %q", t.field, op, rest)}
				}
				f.op, f.num = op, n
				return f, nil
			}
		}
		f.glob = strings.Contains(t.value, "*")
	}
	return f, nil
}
