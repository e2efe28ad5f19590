package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/warden-sec/warden/internal/names"
)

// MaxUIDBytes is the longest entity UID text accepted by [ParseUID].
const MaxUIDBytes = 4096

// isReserved reports whether s is a Cedar keyword, which cannot name a type.
func isReserved(s string) bool {
	switch s {
	case "true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar":
		return true
	}
	return false
}

// validTypeName reports whether s is a Cedar entity type name: identifiers,
// none a reserved keyword, separated by "::", without white space.
func validTypeName(s string) bool {
	if s == "" {
		return false
	}
	for part := range strings.SplitSeq(s, "::") {
		if part == "" || !isIdentStart(part[0]) || isReserved(part) {
			return false
		}
		for i := 1; i < len(part); i++ {
			if !isIdentByte(part[i]) {
				return false
			}
		}
	}
	return true
}

// ParseUID parses an entity UID in its Cedar text form, Type::"id", for
// example User::"bob" or Warden::Node::"web-1". It is strict: the type is one
// or more identifiers (not reserved keywords) joined by "::", with no white
// space or comments anywhere; the id is a Cedar string literal whose escapes
// are \n \r \t \\ \0 \' \" \xHH (HH at most 7f) and \u{H...} (a Unicode
// scalar value, 1 to 6 hex digits); raw control characters must be escaped.
// Errors wrap ErrInvalid.
func ParseUID(s string) (types.EntityUID, error) {
	if len(s) > MaxUIDBytes {
		return types.EntityUID{}, fmt.Errorf("%w: entity UID is longer than %d bytes", ErrInvalid, MaxUIDBytes)
	}
	i := strings.Index(s, `::"`)
	if i < 0 {
		return types.EntityUID{}, fmt.Errorf(`%w: entity UID %s: want Type::"id"`, ErrInvalid, quoteShort(s))
	}
	typ := s[:i]
	if !validTypeName(typ) {
		return types.EntityUID{}, fmt.Errorf("%w: entity UID %s: invalid type name %s", ErrInvalid, quoteShort(s), quoteShort(typ))
	}
	id, err := unquoteLiteral(s[i+2:], false)
	if err != nil {
		return types.EntityUID{}, fmt.Errorf("%w: entity UID %s: id: %s", ErrInvalid, quoteShort(s), err.Error())
	}
	return types.NewEntityUID(types.EntityType(typ), types.String(id)), nil
}

// quoteShort quotes s for an error message, shortening it.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// unquoteLiteral decodes a complete Cedar string literal, quotes included,
// strictly (raw control characters must be escaped). If inPolicy is set it
// follows what cedar-go accepts inside policy text instead: raw control
// characters are allowed and so is the pattern escape \* (kept as \*).
func unquoteLiteral(lit string, inPolicy bool) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", fmt.Errorf("must be a double-quoted string that ends the UID")
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	b.Grow(len(body))
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '"':
			return "", fmt.Errorf("unescaped '\"' at byte %d", i+1)
		case (c < 0x20 || c == 0x7f) && !inPolicy:
			return "", fmt.Errorf("raw control character %q at byte %d; use an escape", rune(c), i+1)
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRuneInString(body[i:])
			if r == utf8.RuneError && w == 1 {
				return "", fmt.Errorf("invalid UTF-8 at byte %d", i+1)
			}
			b.WriteString(body[i : i+w])
			i += w
			continue
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		// An escape.
		if i+1 >= len(body) {
			return "", fmt.Errorf("unfinished escape at byte %d", i+1)
		}
		e := body[i+1]
		i += 2
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '*':
			if !inPolicy {
				return "", fmt.Errorf(`\* is only allowed in patterns`)
			}
			b.WriteString(`\*`)
		case '0':
			b.WriteByte(0)
		case 'x':
			if i+2 > len(body) {
				return "", fmt.Errorf(`\x needs two hex digits`)
			}
			v, err := strconv.ParseUint(body[i:i+2], 16, 8)
			if err != nil || v > 0x7f {
				return "", fmt.Errorf(`\x%s is not an ASCII escape (00 to 7f)`, body[i:i+2])
			}
			b.WriteByte(byte(v))
			i += 2
		case 'u':
			end := strings.IndexByte(body[i:], '}')
			if i >= len(body) || body[i] != '{' || end < 2 || end > 7 {
				return "", fmt.Errorf(`\u must be followed by {1 to 6 hex digits}`)
			}
			v, err := strconv.ParseUint(body[i+1:i+end], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", fmt.Errorf(`\u{%s} is not a Unicode scalar value`, body[i+1:i+end])
			}
			b.WriteRune(rune(v))
			i += end + 1
		default:
			r, _ := utf8.DecodeRuneInString(body[i-1:]) // the escaped character, whole
			return "", fmt.Errorf(`unknown escape: '\' followed by %s`, names.Char(r))
		}
	}
	return b.String(), nil
}

// decodeUIDJSON decodes an entity UID from JSON, strictly: the implicit form
// {"type": "User", "id": "bob"}, or the explicit form
// {"__entity": {"type": "User", "id": "bob"}}; no other members, both
// required, the type a valid type name. If allowText is set, a JSON string
// holding the Cedar text form (see ParseUID) is accepted too.
func decodeUIDJSON(field string, raw json.RawMessage, allowText bool) (types.EntityUID, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if !allowText {
			return types.EntityUID{}, fieldErr(field, `must be an object {"type": ..., "id": ...}`)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return types.EntityUID{}, fieldErr(field, "%s", jsonMessage(err))
		}
		uid, err := ParseUID(s)
		if err != nil {
			return types.EntityUID{}, fieldErr(field, "%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
		return uid, nil
	}
	members, err := decodeObject(field, raw, "type", "id", "__entity")
	if err != nil {
		return types.EntityUID{}, err
	}
	if inner, ok := members["__entity"]; ok {
		if len(members) != 1 {
			return types.EntityUID{}, fieldErr(field, `"__entity" must be the only member`)
		}
		field += ".__entity"
		if members, err = decodeObject(field, inner, "type", "id"); err != nil {
			return types.EntityUID{}, err
		}
	}
	var typ, id string
	for _, m := range []struct {
		name string
		dst  *string
	}{{"type", &typ}, {"id", &id}} {
		v, ok := members[m.name]
		if !ok {
			return types.EntityUID{}, fieldErr(field, "%q is required", m.name)
		}
		if err := json.Unmarshal(v, m.dst); err != nil || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return types.EntityUID{}, fieldErr(field+"."+m.name, "must be a string")
		}
	}
	if !validTypeName(typ) {
		return types.EntityUID{}, fieldErr(field+".type", "invalid entity type name %s", quoteShort(typ))
	}
	if len(typ)+len(id) > MaxUIDBytes {
		return types.EntityUID{}, fieldErr(field, "entity UID is longer than %d bytes", MaxUIDBytes)
	}
	return types.NewEntityUID(types.EntityType(typ), types.String(id)), nil
}
