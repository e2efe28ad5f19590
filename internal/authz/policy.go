package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"

	"github.com/warden-sec/warden/internal/names"
)

// Limits on policy documents, checked before cedar-go parses them.
const (
	// MaxPolicyBytes is the largest policy document accepted.
	MaxPolicyBytes = 256 << 10
	// MaxPolicyNameBytes is the longest policy document name accepted.
	MaxPolicyNameBytes = 128
	// MaxNesting bounds how deeply expressions in a policy may nest
	// (brackets, if-then-else, runs of unary operators). cedar-go parses
	// recursively, so unbounded nesting would let one document exhaust
	// the stack.
	MaxNesting = 64
)

// ValidatePolicy checks that text is a well-formed Cedar policy document
// named name: a valid name, at least one statement, nothing but statements
// (comments aside), within the limits above. It does not check the document
// against a schema; [Compile] does. The error, if any, is a *PolicyError.
// ValidatePolicy is safe to call on untrusted input.
func ValidatePolicy(name, text string) error {
	if _, err := parseDocument(name, text); err != nil {
		return err
	}
	return nil
}

// validName reports why name cannot name a policy document, or "".
// Names are what policy ids are made of, so they are kept to a conservative
// alphabet: ASCII letters, digits, '_', '-', '.', '/', starting with a letter,
// digit or '_', and never containing '#' (which separates statement numbers)
// or "..".
func validName(name string) string {
	switch {
	case name == "":
		return "policy name is empty"
	case len(name) > MaxPolicyNameBytes:
		return fmt.Sprintf("policy name is longer than %d bytes", MaxPolicyNameBytes)
	case !isIdentByte(name[0]):
		return "policy name must start with a letter, digit or '_'"
	case strings.Contains(name, ".."):
		return `policy name must not contain ".."`
	}
	bad := names.BadChar(name, func(_ int, r rune) bool {
		return r < utf8.RuneSelf && (isIdentByte(byte(r)) || r == '-' || r == '.' || r == '/')
	})
	if bad != "" {
		return "policy name: " + bad + " is not allowed; allowed are letters, digits, '_', '-', '.' and '/'"
	}
	return ""
}

// parseDocument parses one policy document into its statements, in source
// order, each with its Position filename set to name, and checks their
// approval annotations (see approval.go).
func parseDocument(name, text string) ([]*cedar.Policy, error) {
	if msg := validName(name); msg != "" {
		return nil, &PolicyError{Name: safeName(name), Message: msg}
	}
	perr := func(line, col int, format string, args ...any) *PolicyError {
		return &PolicyError{Name: name, Line: line, Column: col, Message: fmt.Sprintf(format, args...)}
	}
	if len(text) > MaxPolicyBytes {
		return nil, perr(1, 1, "policy document is larger than %d bytes", MaxPolicyBytes)
	}
	// cedar-go reports these two at imprecise positions (or 0:0); find them
	// here instead.
	if i := strings.IndexByte(text, 0); i >= 0 {
		l, c := positionOf(text, i)
		return nil, perr(l, c, "invalid character NUL")
	}
	if !utf8.ValidString(text) {
		i := invalidUTF8Offset(text)
		l, c := positionOf(text, i)
		return nil, perr(l, c, "invalid UTF-8 encoding")
	}
	toks := tokenize(text)
	if err := checkNesting(toks); err != nil {
		err.Name = name
		return nil, err
	}
	if toks[0].kind == tokEOF {
		return nil, perr(1, 1, "policy document has no policy statements")
	}
	list, err := cedar.NewPolicyListFromBytes(name, []byte(text))
	if err != nil {
		return nil, parseErrorAt(name, text, toks, err)
	}
	for k, p := range list {
		if pe := checkApprovalAnnotations(name, statementID(name, k, len(list)), p, toks); pe != nil {
			return nil, pe
		}
	}
	return list, nil
}

// statementID is the policy id of statement k of n in document name (see
// the package documentation).
func statementID(name string, k, n int) string {
	if n > 1 {
		return name + "#" + strconv.Itoa(k)
	}
	return name
}

// safeName makes an unacceptable name printable in an error message.
func safeName(name string) string {
	if len(name) > MaxPolicyNameBytes {
		name = name[:MaxPolicyNameBytes] + "..."
	}
	q := strconv.Quote(name)
	if q[1:len(q)-1] == name && name != "" {
		return name
	}
	return q
}

func invalidUTF8Offset(s string) int {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			return i
		}
		i += w
	}
	return len(s)
}

// checkNesting enforces MaxNesting over the token stream. The measure counts
// open brackets, if keywords not yet closed by the end of their bracket or
// statement, and the current run of prefix operators: an upper bound of the
// recursion depth of cedar-go's parser, up to a constant.
func checkNesting(toks []token) *PolicyError {
	type level struct{ ifs int }
	var stack []level
	base := level{}
	depth, run := 0, 0
	for _, t := range toks {
		if t.kind == tokOther && (t.text == "!" || t.text == "-") {
			run++
		} else {
			run = 0
		}
		switch {
		case t.kind == tokOther && (t.text == "(" || t.text == "[" || t.text == "{"):
			stack = append(stack, level{})
			depth++
		case t.kind == tokOther && (t.text == ")" || t.text == "]" || t.text == "}"):
			if n := len(stack); n > 0 {
				depth -= 1 + stack[n-1].ifs
				stack = stack[:n-1]
			}
		case t.kind == tokIdent && t.text == "if":
			if n := len(stack); n > 0 {
				stack[n-1].ifs++
			} else {
				base.ifs++
			}
			depth++
		case t.kind == tokOther && t.text == ";" && len(stack) == 0:
			depth -= base.ifs
			base.ifs = 0
		}
		if depth+run > MaxNesting {
			return &PolicyError{Line: t.line, Column: t.col, Message: fmt.Sprintf("expression nests more than %d levels deep", MaxNesting)}
		}
	}
	return nil
}

// parseErrorAt turns a cedar-go parse error into a *PolicyError with the
// position of the offending token.
//
// cedar-go v1.9.0 formats its errors as strings:
//
//	parser error: parse error at <input>:L:C "TOKEN": MESSAGE   (parser)
//	parser error: <input>:L:C: MESSAGE                          (scanner)
//	parser error: MESSAGE                                       (a few, e.g. integer overflow)
//
// For parser errors L:C is the token at which the parser stopped, which for
// most messages is the token after the offending one (the parser consumes a
// token, then finds it wrong); correctParsePosition moves back to it. Where
// no position is given, the error is placed at the offending token if it can
// be found, else at the start of the failing statement.
func parseErrorAt(name, text string, toks []token, err error) *PolicyError {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	pe := &PolicyError{Name: name}
	switch {
	case strings.HasPrefix(msg, "parse error at <input>:"):
		rest := msg[len("parse error at <input>:"):]
		line, col, rest, ok := scanLineCol(rest)
		if !ok {
			break
		}
		// rest is ` "TOKEN": MESSAGE`.
		rest = strings.TrimPrefix(rest, " ")
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			rest = strings.TrimPrefix(rest[len(q):], ": ")
		}
		i := tokenAt(toks, line, col)
		if i < 0 {
			pe.Line, pe.Column, pe.Message = line, col, rest
			return pe
		}
		j, m := correctParsePosition(toks, i, rest)
		pe.Line, pe.Column, pe.Message = toks[j].line, toks[j].col, m
		return pe
	case strings.HasPrefix(msg, "<input>:"):
		line, col, rest, ok := scanLineCol(msg[len("<input>:"):])
		if ok && line > 0 {
			pe.Line, pe.Column, pe.Message = line, col, strings.TrimPrefix(rest, ": ")
			return pe
		}
	}
	pe.Message = msg
	// No usable position. An out-of-range integer names its literal.
	if lit, ok := strings.CutPrefix(msg, `strconv.ParseInt: parsing "`); ok {
		if k := strings.IndexByte(lit, '"'); k > 0 {
			lit = lit[:k]
			for _, t := range toks {
				if t.kind == tokInt && t.text == lit {
					pe.Line, pe.Column = t.line, t.col
					pe.Message = fmt.Sprintf("integer literal %s is out of range", lit)
					return pe
				}
			}
		}
	}
	// A string literal with an escape cedar-go rejects: find the first
	// literal that does not decode.
	for _, t := range toks {
		if t.kind == tokString {
			if _, err := unquoteLiteral(t.text, true); err != nil {
				pe.Line, pe.Column = t.line, t.col
				return pe
			}
		}
	}
	// Otherwise point at the statement that failed to parse: statements end
	// at top-level ';' tokens, and cedar-go's decoder tells how many parsed.
	pe.Line, pe.Column = failingStatementStart(text, toks)
	return pe
}

// scanLineCol parses "L:C" at the start of s and returns the rest.
func scanLineCol(s string) (line, col int, rest string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return 0, 0, s, false
	}
	line, err := strconv.Atoi(s[:i])
	if err != nil {
		return 0, 0, s, false
	}
	s = s[i+1:]
	j := 0
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		j++
	}
	col, err = strconv.Atoi(s[:j])
	if err != nil {
		return 0, 0, s, false
	}
	return line, col, s[j:], true
}

// tokenAt returns the index of the token starting at line:col, or -1.
func tokenAt(toks []token, line, col int) int {
	for i, t := range toks {
		if t.line == line && t.col == col {
			return i
		}
	}
	return -1
}

func describe(t token) string {
	if t.kind == tokEOF {
		return "end of input"
	}
	return strconv.Quote(t.text)
}

// correctParsePosition maps the token at which cedar-go's parser stopped
// (toks[i]) and its message to the offending token and a clearer message.
// The rules follow how each message is produced in cedar-go v1.9.0
// (internal/parser/cedar_unmarshal.go); tests pin them.
func correctParsePosition(toks []token, i int, msg string) (int, string) {
	prevIs := func(text string) bool { return i > 0 && toks[i-1].text == text && text != "" }
	switch {
	case strings.HasPrefix(msg, "exact got "):
		// "exact got X want Y": X was consumed.
		got, want, _ := strings.Cut(msg[len("exact got "):], " want ")
		j := i
		if prevIs(got) {
			j = i - 1
		}
		return j, fmt.Sprintf("expected %q, found %s", want, describe(toks[j]))
	case strings.HasPrefix(msg, "got ") && strings.HasSuffix(msg, " want ,"):
		// Peeked, not consumed: toks[i] is the offender.
		return i, fmt.Sprintf(`expected "," or the end of the list, found %s`, describe(toks[i]))
	case strings.HasPrefix(msg, "unexpected effect: "):
		if prevIs(msg[len("unexpected effect: "):]) {
			return i - 1, fmt.Sprintf(`expected "permit" or "forbid", found %s`, describe(toks[i-1]))
		}
		return i, msg
	case strings.HasPrefix(msg, "duplicate annotation: @"):
		if prevIs(msg[len("duplicate annotation: @"):]) {
			return i - 1, msg
		}
		return i, msg
	case strings.HasSuffix(msg, "is not a function") || strings.HasSuffix(msg, "is a method, not a function"):
		// Reported after "(": move back to the start of the function name.
		j := i - 1
		if j < 1 || toks[j].text != "(" || toks[j-1].kind != tokIdent {
			return i, msg
		}
		j--
		for j >= 2 && toks[j-1].text == "::" && toks[j-2].kind == tokIdent {
			j -= 2
		}
		return j, msg
	case strings.HasSuffix(msg, "is not a method") || strings.HasSuffix(msg, "is a function, not a method") ||
		strings.HasSuffix(msg, "expects one argument") || strings.HasSuffix(msg, "expects no arguments"):
		// Reported after the closing ")" of the call: move back to the
		// method name, before the matching "(".
		if i < 1 || toks[i-1].text != ")" {
			return i, msg
		}
		depth := 0
		for j := i - 1; j >= 0; j-- {
			switch toks[j].text {
			case ")", "]", "}":
				depth++
			case "(", "[", "{":
				depth--
			}
			if depth == 0 {
				if j >= 1 && toks[j-1].kind == tokIdent {
					return j - 1, msg
				}
				return i, msg
			}
		}
		return i, msg
	case strings.HasPrefix(msg, "duplicate key: "):
		// Reported after the duplicate entry's value: move back to its key,
		// the nearest "KEY :" in the same record.
		key := msg[len("duplicate key: "):]
		depth := 0
		for j := i - 1; j >= 1 && depth >= 0; j-- {
			switch toks[j].text {
			case ")", "]", "}":
				depth++
			case "(", "[", "{":
				depth--
			}
			if depth == 0 && j+1 < len(toks) && toks[j+1].text == ":" &&
				(toks[j].text == key || toks[j].text == strconv.Quote(key)) {
				return j, msg
			}
		}
		return i, msg
	}
	// The remaining messages ("expected ident", "expected string",
	// "unexpected token", "invalid primary", ...) are all raised right after
	// consuming the offending token. At the end of input the parser cannot
	// advance, so the token it stopped at may be the offender itself; keep it.
	if toks[i].kind == tokEOF || i == 0 {
		return i, msg + ", found end of input"
	}
	return i - 1, fmt.Sprintf("%s, found %s", msg, describe(toks[i-1]))
}

// failingStatementStart returns the position of the first statement that
// cedar-go cannot parse: after as many top-level ';' tokens as statements
// cedar-go's decoder parsed successfully.
func failingStatementStart(text string, toks []token) (line, col int) {
	dec := cedar.NewDecoder(bytes.NewReader([]byte(text)))
	parsed := 0
	for {
		var p cedar.Policy
		err := dec.Decode(&p)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 1, 1
			}
			break
		}
		parsed++
	}
	depth, seen := 0, 0
	for i, t := range toks {
		if seen == parsed {
			return toks[i].line, toks[i].col
		}
		switch t.text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
		case ";":
			if depth == 0 {
				seen++
			}
		}
	}
	return 1, 1
}
