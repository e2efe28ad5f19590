// Package names makes names canonical and unambiguous, so that "web-1" and
// "wеb-1" (with a Cyrillic е) can never both name something. A canonical
// name is DNS-like: lowercase ASCII letters, digits, '-' and '.', in labels
// of 1 to 63 characters, 253 at most in all. Input is NFC-normalized and
// ASCII capitals are lowered; anything else is refused with an error that
// names the character, its code point and its position.
//
// It also builds and parses the SPIFFE IDs of Warden identities. names does
// no I/O.
package names

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
)

// Limits.
const (
	MaxLabel = 63
	MaxName  = 253
)

// NameError says why a name is refused. Pos is the 1-based position of the
// offending character (in runes), 0 when the error is about the whole name.
type NameError struct {
	Input  string
	Pos    int
	Rune   rune
	Reason string
}

func (e *NameError) Error() string { return fmt.Sprintf("name %q: %s", e.Input, e.Reason) }

func describe(r rune) string {
	name := runenames.Name(r)
	if name == "" || r < 0x20 {
		return fmt.Sprintf("U+%04X", r)
	}
	return fmt.Sprintf("U+%04X %s", r, name)
}

// Canonical returns the canonical form of input or a *NameError.
func Canonical(input string) (string, error) {
	if !utf8.ValidString(input) {
		return "", &NameError{Input: input, Reason: "is not valid UTF-8"}
	}
	s := norm.NFC.String(input)
	if s == "" {
		return "", &NameError{Input: input, Reason: "is empty"}
	}
	var b strings.Builder
	pos := 0
	for _, r := range s {
		pos++
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			return "", &NameError{Input: input, Pos: pos, Rune: r,
				Reason: fmt.Sprintf("character %q (%s) at position %d is not allowed; use a-z, 0-9, '-' and '.'", string(r), describe(r), pos)}
		}
	}
	out := b.String()
	if len(out) > MaxName {
		return "", &NameError{Input: input, Reason: fmt.Sprintf("is longer than %d characters", MaxName)}
	}
	for i, label := range strings.Split(out, ".") {
		switch {
		case label == "":
			return "", &NameError{Input: input, Reason: fmt.Sprintf("label %d is empty (no leading, trailing or double '.')", i+1)}
		case len(label) > MaxLabel:
			return "", &NameError{Input: input, Reason: fmt.Sprintf("label %d is longer than %d characters", i+1, MaxLabel)}
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", &NameError{Input: input, Reason: fmt.Sprintf("label %d starts or ends with '-'", i+1)}
		}
	}
	return out, nil
}

// Kind is the kind of identity a SPIFFE ID names.
type Kind string

// Kinds.
const (
	KindNode    Kind = "node"
	KindService Kind = "svc"
	KindUser    Kind = "user"
)

func (k Kind) valid() bool { return k == KindNode || k == KindService || k == KindUser }

// ValidateTrustDomain checks a SPIFFE trust domain: lowercase letters,
// digits, '.', '-' and '_', 1 to 255 characters.
func ValidateTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("trust domain %q: must be 1 to 255 characters", td)
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("trust domain %q: character %q at position %d is not allowed", td, rune(c), i+1)
		}
	}
	return nil
}

// SPIFFEID returns spiffe://<td>/<kind>/<canonical name>.
func SPIFFEID(td string, k Kind, name string) (string, error) {
	if err := ValidateTrustDomain(td); err != nil {
		return "", err
	}
	if !k.valid() {
		return "", fmt.Errorf("kind %q: must be node, svc or user", k)
	}
	c, err := Canonical(name)
	if err != nil {
		return "", err
	}
	return "spiffe://" + td + "/" + string(k) + "/" + c, nil
}

// ParseSPIFFEID strictly parses a Warden SPIFFE ID; the name must already be
// canonical.
func ParseSPIFFEID(id string) (td string, k Kind, name string, err error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: must start with spiffe://", id)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: want spiffe://<trust domain>/<kind>/<name>", id)
	}
	td, k, name = parts[0], Kind(parts[1]), parts[2]
	if err := ValidateTrustDomain(td); err != nil {
		return "", "", "", err
	}
	if !k.valid() {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: kind %q is not node, svc or user", id, k)
	}
	c, err := Canonical(name)
	if err != nil {
		return "", "", "", err
	}
	if c != name {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: name is not canonical (%q)", id, c)
	}
	return td, k, name, nil
}
