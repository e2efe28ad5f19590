// Package names makes the names of Warden identities canonical and
// unambiguous, so that "web-1" and "wеb-1" (with a Cyrillic е) can never both
// name something, and builds and parses their SPIFFE IDs.
//
// A canonical name is DNS-like: lowercase ASCII letters, digits, '-' and '.',
// in labels of 1 to 63 characters that neither start nor end with '-', 253
// characters at most in all. Canonical normalizes input to NFC (Unicode
// Normalization Form C) first, then lowers ASCII capitals, because operators
// expect DNS-like names to be case-insensitive; every other character is
// refused with an error that names it, its code point and its position. There
// is no confusables table and no transliteration: outside ASCII nothing is
// guessed, everything is refused.
//
// The one non-ASCII character that NFC itself maps into the alphabet is
// U+212A KELVIN SIGN, canonically equivalent to 'K', so "\u212Aube" is
// "kube", which is the same name as "kube" and therefore cannot coexist with
// it.
//
// names does no I/O and keeps no state; it knows nothing about storage, so
// "a name is bound to at most one live identity" is the caller's rule, applied
// to canonical names.
package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
)

// Limits on canonical names, in bytes (a canonical name is ASCII, so also in
// characters).
const (
	MaxLabel = 63  // characters in one label
	MaxName  = 253 // characters in a whole name
)

// maxInput bounds the input Canonical normalizes. Every character of a valid
// result comes from exactly one input character of at most 4 bytes (nothing
// composes into ASCII under NFC), so longer input cannot be valid and is
// refused before the normalizer sees it.
const maxInput = 4 * MaxName

// NameError says why Canonical refused a name.
//
// Pos is the 1-based position, in characters of the NFC-normalized input
// (of the raw input for invalid UTF-8, which is not normalized), of the
// offending character, or 0 when the error is about the whole name (empty,
// too long). Rune is the offending character (utf8.RuneError for invalid
// UTF-8), or 0 when Pos is 0. Reason is a human-readable explanation that
// Error prefixes with the quoted input.
type NameError struct {
	Input  string
	Pos    int
	Rune   rune
	Reason string
}

// Error returns `name "<input>": <reason>`.
func (e *NameError) Error() string { return fmt.Sprintf("name %q: %s", e.Input, e.Reason) }

// describe returns "U+0435 CYRILLIC SMALL LETTER IE", or only the code point
// when Unicode gives the character no useful name (controls, unassigned).
func describe(r rune) string {
	name := runenames.Name(r)
	if name == "" || unicode.IsControl(r) || strings.HasPrefix(name, "<") {
		return fmt.Sprintf("U+%04X", r)
	}
	return fmt.Sprintf("U+%04X %s", r, name)
}

// Char describes the character r for an error message: the character
// itself, quoted, then its code point and Unicode name, as
// `"е" (U+0435 CYRILLIC SMALL LETTER IE)`, so that a look-alike of an ASCII
// letter cannot hide. Every error of Warden about a character of a name,
// path or identifier uses this form (never a byte formatted as a character,
// which prints one character per byte of UTF-8).
func Char(r rune) string { return fmt.Sprintf("%q (%s)", string(r), describe(r)) }

// BadChar returns, for the first character of s that ok refuses, the
// phrase `character "е" (U+0435 CYRILLIC SMALL LETTER IE) at position 2`
// (positions count characters from 1; ok is given the 0-based character
// index and the character), or "invalid UTF-8 at position N" for a byte that
// does not start a valid UTF-8 sequence. It returns "" when ok accepts every
// character. Invalid UTF-8 is never passed to ok.
func BadChar(s string, ok func(i int, r rune) bool) string {
	i := 0
	for off, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[off:]); size == 1 {
				return fmt.Sprintf("invalid UTF-8 at position %d", i+1)
			}
		}
		if !ok(i, r) {
			return charAt(r, i+1)
		}
		i++
	}
	return ""
}

// charAt is the phrase of BadChar for the character r at position pos.
func charAt(r rune, pos int) string {
	return fmt.Sprintf("character %s at position %d", Char(r), pos)
}

func allowed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// Canonical returns the canonical form of input: NFC-normalized, ASCII
// capitals lowered, checked against the alphabet and the label rules. It
// returns a *NameError when input cannot be made canonical. Canonical is
// idempotent: a canonical name is its own canonical form.
func Canonical(input string) (string, error) {
	if input == "" {
		return "", &NameError{Input: input, Reason: "is empty"}
	}
	if len(input) > maxInput {
		return "", &NameError{Input: input, Reason: fmt.Sprintf("is longer than %d characters", MaxName)}
	}
	if !utf8.ValidString(input) {
		pos := 0
		for i := 0; i < len(input); {
			r, size := utf8.DecodeRuneInString(input[i:])
			pos++
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return "", &NameError{Input: input, Pos: pos, Rune: utf8.RuneError,
			Reason: fmt.Sprintf("invalid UTF-8 at position %d", pos)}
	}
	s := norm.NFC.String(input)
	b := make([]byte, 0, len(s))
	pos := 0
	for _, r := range s {
		pos++
		switch {
		case r < utf8.RuneSelf && allowed(byte(r)):
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r)+('a'-'A'))
		default:
			return "", &NameError{Input: input, Pos: pos, Rune: r,
				Reason: charAt(r, pos) + " is not allowed; use a-z, 0-9, '-' and '.'"}
		}
	}
	out := string(b)
	if len(out) > MaxName {
		return "", &NameError{Input: input, Reason: fmt.Sprintf("is longer than %d characters", MaxName)}
	}
	start := 0 // byte offset of the current label; bytes are characters here
	for i, label := range strings.Split(out, ".") {
		n := i + 1
		switch {
		case label == "":
			return "", &NameError{Input: input, Pos: start + 1, Rune: '.',
				Reason: fmt.Sprintf("label %d is empty (no leading, trailing or double '.')", n)}
		case len(label) > MaxLabel:
			return "", &NameError{Input: input, Pos: start + MaxLabel + 1, Rune: rune(label[MaxLabel]),
				Reason: fmt.Sprintf("label %d is longer than %d characters", n, MaxLabel)}
		case label[0] == '-':
			return "", &NameError{Input: input, Pos: start + 1, Rune: '-',
				Reason: fmt.Sprintf("label %d starts with '-' (position %d)", n, start+1)}
		case label[len(label)-1] == '-':
			return "", &NameError{Input: input, Pos: start + len(label), Rune: '-',
				Reason: fmt.Sprintf("label %d ends with '-' (position %d)", n, start+len(label))}
		}
		start += len(label) + 1
	}
	return out, nil
}

// IsCanonical reports whether s is already a canonical name.
func IsCanonical(s string) bool {
	c, err := Canonical(s)
	return err == nil && c == s
}

// Kind is the kind of identity a Warden SPIFFE ID names; it is the first
// path segment of the ID.
type Kind string

// The kinds of identity.
const (
	KindNode    Kind = "node" // a machine running the agent
	KindService Kind = "svc"  // a workload or service
	KindUser    Kind = "user" // a person
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k == KindNode || k == KindService || k == KindUser }

// Errors that ValidateTrustDomain, SPIFFEID and ParseSPIFFEID wrap; test
// with errors.Is. A refused name additionally unwraps to a *NameError.
var (
	ErrTrustDomain = errors.New("invalid trust domain")
	ErrKind        = errors.New("invalid kind")
	ErrSPIFFEID    = errors.New("invalid SPIFFE ID")
)

// Limits from the SPIFFE ID specification (section 2.3): a trust domain name
// is a URI host, at most 255 bytes, and a SPIFFE ID at most 2048 bytes.
const (
	MaxTrustDomain = 255
	MaxSPIFFEID    = 2048
)

// wrapped is an error with its own message that unwraps to the sentinel
// errors (and causes) it stands for, without repeating their text.
type wrapped struct {
	msg  string
	errs []error
}

func (e *wrapped) Error() string   { return e.msg }
func (e *wrapped) Unwrap() []error { return e.errs }

func wrap(msg string, errs ...error) error { return &wrapped{msg: msg, errs: errs} }

// ValidateTrustDomain checks a SPIFFE trust domain name (SPIFFE ID
// specification, section 2.1): 1 to 255 characters, each a lowercase ASCII
// letter, a digit, '.', '-' or '_'. It does not lowercase: a trust domain is
// configuration, fixed at init, not user input. Errors wrap ErrTrustDomain.
func ValidateTrustDomain(td string) error {
	if td == "" || len(td) > MaxTrustDomain {
		return wrap(fmt.Sprintf("trust domain %q: must be 1 to %d characters", td, MaxTrustDomain), ErrTrustDomain)
	}
	bad := BadChar(td, func(_ int, r rune) bool { return r < utf8.RuneSelf && (allowed(byte(r)) || r == '_') })
	if bad != "" {
		return wrap(fmt.Sprintf("trust domain %q: %s is not allowed; use a-z, 0-9, '.', '-' and '_'", td, bad), ErrTrustDomain)
	}
	return nil
}

// SPIFFEID returns spiffe://<td>/<kind>/<canonical name>. name is made
// canonical first (so "Web-1" gives ".../web-1"). Errors wrap ErrTrustDomain,
// ErrKind, or ErrSPIFFEID and the *NameError of a refused name.
func SPIFFEID(td string, k Kind, name string) (string, error) {
	if err := ValidateTrustDomain(td); err != nil {
		return "", err
	}
	if !k.Valid() {
		return "", wrap(fmt.Sprintf("kind %q: must be node, svc or user", k), ErrKind)
	}
	c, err := Canonical(name)
	if err != nil {
		return "", wrap(err.Error(), ErrSPIFFEID, err)
	}
	return "spiffe://" + td + "/" + string(k) + "/" + c, nil
}

// ParseSPIFFEID parses a Warden SPIFFE ID strictly: exactly
// spiffe://<td>/<kind>/<name> with a valid trust domain, a defined kind and a
// name that is already canonical, nothing else (no port, user info, query,
// fragment, percent-encoding, empty or extra segments, trailing '/'). So
// SPIFFEID(ParseSPIFFEID(id)) == id. Errors wrap ErrSPIFFEID, and the
// underlying ErrTrustDomain, ErrKind or *NameError where there is one.
func ParseSPIFFEID(id string) (td string, k Kind, name string, err error) {
	fail := func(reason string, causes ...error) (string, Kind, string, error) {
		return "", "", "", wrap(fmt.Sprintf("SPIFFE ID %q: %s", id, reason), append([]error{ErrSPIFFEID}, causes...)...)
	}
	if len(id) > MaxSPIFFEID {
		return fail(fmt.Sprintf("longer than %d bytes", MaxSPIFFEID))
	}
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return fail("must start with spiffe://")
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return fail("want spiffe://<trust domain>/<kind>/<name>")
	}
	td, k, name = parts[0], Kind(parts[1]), parts[2]
	if err := ValidateTrustDomain(td); err != nil {
		return fail(err.Error(), err)
	}
	if !k.Valid() {
		return fail(fmt.Sprintf("kind %q is not node, svc or user", k), ErrKind)
	}
	c, err := Canonical(name)
	if err != nil {
		return fail(err.Error(), err)
	}
	if c != name {
		return fail(fmt.Sprintf("name %q is not canonical (it would be %q)", name, c))
	}
	return td, k, name, nil
}
