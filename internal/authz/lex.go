package authz

import (
	"unicode/utf8"
)

// This file holds a small tokenizer that mirrors the token boundaries of
// cedar-go's policy scanner. cedar-go remains the only parser of policies;
// the tokens found here serve two purposes that cedar-go does not cover:
//
//   - limits checked before cedar-go sees the input (nesting depth, which
//     bounds the recursion of cedar-go's recursive-descent parser), and
//   - precise positions: cedar-go reports most parse errors at the token
//     after the offending one, and some errors without a position at all;
//     the token list lets us point at the offending token instead.
//
// It never rejects input that cedar-go would accept, except where a limit
// says so: anything it does not recognise becomes a one-character token.

// token is one lexical token with its position. Line and col are 1-based;
// col counts characters (runes), as cedar-go does.
type token struct {
	off  int // byte offset of the first byte
	line int
	col  int
	text string // source text; "" for the end-of-input token
	kind tokenKind
}

type tokenKind uint8

const (
	tokOther tokenKind = iota
	tokIdent
	tokInt
	tokString
	tokEOF
)

// lexer walks src keeping line and column.
type lexer struct {
	src  string
	pos  int // byte offset
	line int
	col  int // column of the character at pos
}

func (l *lexer) peekByte(ahead int) byte {
	if l.pos+ahead < len(l.src) {
		return l.src[l.pos+ahead]
	}
	return 0
}

// advance moves past one character (rune, or one byte of invalid UTF-8).
func (l *lexer) advance() {
	c := l.src[l.pos]
	if c == '\n' {
		l.line++
		l.col = 1
		l.pos++
		return
	}
	if c < utf8.RuneSelf {
		l.pos++
	} else {
		_, w := utf8.DecodeRuneInString(l.src[l.pos:])
		l.pos += w
	}
	l.col++
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentByte(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

// tokenize splits src into tokens, ending with a tokEOF token positioned just
// after the last character. Comments and white space are skipped.
func tokenize(src string) []token {
	l := lexer{src: src, line: 1, col: 1}
	toks := make([]token, 0, len(src)/4+1)
	for {
		// Skip white space and comments.
		for l.pos < len(src) {
			c := src[l.pos]
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				l.advance()
				continue
			case c == '/' && l.peekByte(1) == '/':
				for l.pos < len(src) && src[l.pos] != '\n' {
					l.advance()
				}
				continue
			case c == '/' && l.peekByte(1) == '*':
				l.advance()
				l.advance()
				for l.pos < len(src) && (src[l.pos] != '*' || l.peekByte(1) != '/') {
					l.advance()
				}
				if l.pos < len(src) {
					l.advance()
					l.advance()
				}
				continue
			}
			break
		}
		t := token{off: l.pos, line: l.line, col: l.col}
		if l.pos >= len(src) {
			t.kind = tokEOF
			return append(toks, t)
		}
		c := src[l.pos]
		switch {
		case isIdentStart(c):
			t.kind = tokIdent
			for l.pos < len(src) && isIdentByte(src[l.pos]) {
				l.advance()
			}
		case '0' <= c && c <= '9':
			t.kind = tokInt
			for l.pos < len(src) && '0' <= src[l.pos] && src[l.pos] <= '9' {
				l.advance()
			}
		case c == '"':
			t.kind = tokString
			l.advance()
			for l.pos < len(src) && src[l.pos] != '"' && src[l.pos] != '\n' {
				if src[l.pos] == '\\' && l.pos+1 < len(src) && src[l.pos+1] != '\n' {
					l.advance()
				}
				l.advance()
			}
			if l.pos < len(src) && src[l.pos] == '"' {
				l.advance()
			}
		default:
			two := ""
			if l.pos+1 < len(src) {
				two = src[l.pos : l.pos+2]
			}
			switch two {
			case "::", "!=", "<=", ">=", "==", "||", "&&":
				l.advance()
				l.advance()
			default:
				l.advance()
			}
		}
		t.text = src[t.off:l.pos]
		toks = append(toks, t)
	}
}

// positionOf returns the 1-based line and character column of byte offset
// off in src.
func positionOf(src string, off int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < off && i < len(src); {
		c := src[i]
		if c == '\n' {
			line++
			col = 1
			i++
			continue
		}
		if c < utf8.RuneSelf {
			i++
		} else {
			_, w := utf8.DecodeRuneInString(src[i:])
			i += w
		}
		col++
	}
	return line, col
}
