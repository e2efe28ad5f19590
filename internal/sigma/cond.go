package sigma

import (
	"fmt"
	"path"
	"strings"
)

// cond is a parsed condition: an expression over search identifiers.
type cond interface{ isCond() }

type (
	condAnd   struct{ c []cond }
	condOr    struct{ c []cond }
	condNot   struct{ c cond }
	condIdent struct{ name string }
)

func (*condAnd) isCond()   {}
func (*condOr) isCond()    {}
func (*condNot) isCond()   {}
func (*condIdent) isCond() {}

// condError is a condition that does not parse; feature is set when it
// uses syntax Warden does not support.
type condError struct{ feature, msg string }

func (e *condError) Error() string { return e.msg }

// maxCondDepth bounds nesting so that a hostile condition cannot exhaust
// the stack.
const maxCondDepth = 64

// parseCondition parses one condition string. names are the detection's
// search identifiers; `1 of X*`, `all of them` and the like are expanded
// against them here.
//
// Grammar (lowest precedence first):
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | primary
//	primary = "(" expr ")" | ( "1" | "all" ) "of" ( pattern | "them" ) | identifier
func parseCondition(s string, names []string) (cond, error) {
	if len(s) > maxConditionSz {
		return nil, &condError{msg: "condition too long"}
	}
	toks, err := lexCondition(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, &condError{msg: "empty condition"}
	}
	cp := &condParser{toks: toks, names: names}
	c, err := cp.expr(0)
	if err != nil {
		return nil, err
	}
	if cp.pos < len(toks) {
		return nil, cp.unexpected()
	}
	return c, nil
}

type condParser struct {
	toks  []string
	pos   int
	names []string
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) unexpected() error {
	if p.pos >= len(p.toks) {
		return &condError{msg: "unexpected end of condition"}
	}
	t := p.toks[p.pos]
	if t == "|" {
		return &condError{feature: "condition aggregation (|)", msg: "condition aggregation (|) is not supported; use a correlation rule"}
	}
	return &condError{feature: fmt.Sprintf("condition syntax %q", t), msg: fmt.Sprintf("condition syntax %q is not supported here", t)}
}

func (p *condParser) expr(depth int) (cond, error) {
	if depth > maxCondDepth {
		return nil, &condError{msg: "condition nested too deeply"}
	}
	var alts []cond
	for {
		c, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, c)
		if p.peek() != "or" {
			break
		}
		p.pos++
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &condOr{alts}, nil
}

func (p *condParser) and(depth int) (cond, error) {
	var all []cond
	for {
		c, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		all = append(all, c)
		if p.peek() != "and" {
			break
		}
		p.pos++
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return &condAnd{all}, nil
}

func (p *condParser) unary(depth int) (cond, error) {
	if depth > maxCondDepth {
		return nil, &condError{msg: "condition nested too deeply"}
	}
	if p.peek() == "not" {
		p.pos++
		c, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &condNot{c}, nil
	}
	return p.primary(depth)
}

var condKeywords = map[string]bool{"and": true, "or": true, "not": true, "of": true, "them": true, "(": true, ")": true, "|": true}

func (p *condParser) primary(depth int) (cond, error) {
	t := p.peek()
	switch {
	case t == "(":
		p.pos++
		c, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			if p.pos >= len(p.toks) {
				return nil, &condError{msg: "missing )"}
			}
			return nil, p.unexpected()
		}
		p.pos++
		return c, nil
	case p.pos+1 < len(p.toks) && p.toks[p.pos+1] == "of":
		if t != "1" && t != "all" {
			return nil, &condError{feature: fmt.Sprintf("condition %q", t+" of"), msg: fmt.Sprintf("condition %q is not supported (only 1 of and all of)", t+" of")}
		}
		p.pos += 2
		pat := p.peek()
		if pat == "" {
			return nil, &condError{msg: "missing pattern after of"}
		}
		if condKeywords[pat] && pat != "them" {
			return nil, p.unexpected()
		}
		p.pos++
		var set []cond
		for _, n := range p.names {
			if pat == "them" {
				if !strings.HasPrefix(n, "_") {
					set = append(set, &condIdent{n})
				}
				continue
			}
			if ok, _ := path.Match(pat, n); ok {
				set = append(set, &condIdent{n})
			}
		}
		if len(set) == 0 {
			return nil, &condError{msg: fmt.Sprintf("%q matches no search identifier", pat)}
		}
		if len(set) == 1 {
			return set[0], nil
		}
		if t == "all" {
			return &condAnd{set}, nil
		}
		return &condOr{set}, nil
	case t == "" || condKeywords[t]:
		return nil, p.unexpected()
	case strings.ContainsAny(t, "*?[]"):
		return nil, &condError{msg: fmt.Sprintf("pattern %q needs 1 of or all of", t)}
	}
	p.pos++
	for _, n := range p.names {
		if n == t {
			return &condIdent{t}, nil
		}
	}
	return nil, &condError{msg: fmt.Sprintf("unknown search identifier %q", t)}
}

// lexCondition splits a condition into words, parentheses and pipes.
func lexCondition(s string) ([]string, error) {
	if strings.Contains(s, "|") {
		return nil, &condError{feature: "condition aggregation (|)", msg: "condition aggregation (|) is not supported; use a correlation rule"}
	}
	var toks []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '|':
			toks = append(toks, string(c))
			i++
		case isIdentByte(c):
			j := i
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, &condError{feature: fmt.Sprintf("condition syntax %q", string(c)), msg: fmt.Sprintf("condition syntax %q is not supported", string(c))}
		}
	}
	return toks, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || c == '-' || c == '*' || c == '?' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
