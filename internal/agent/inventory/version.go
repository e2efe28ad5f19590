package inventory

import "strings"

// CompareVersions orders two Debian package versions as deb-version(7)
// describes, returning -1, 0 or +1.
//
// A version is [epoch:]upstream[-revision]: the epoch is the digits
// before the first colon (absent: 0), the revision what follows the last
// hyphen (absent: empty). Epochs compare as numbers; then upstream parts,
// then revisions, each with the same rule: alternately a run of non-digits
// compared character by character — where a tilde sorts before anything,
// even the end of the run, letters sort before every other character, and
// the end of the run before anything but a tilde — and a run of digits
// compared as a number (an empty run is 0).
//
// Any string is accepted (an epoch that is not all digits makes the whole
// string the upstream part), and the result is a total preorder on all
// strings: "1.0" and "1.00" are equal versions.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNumeric(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	if i := strings.IndexByte(v, ':'); i >= 0 && allDigits(v[:i]) {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v, revision = v[:i], v[i+1:]
	}
	return epoch, v, revision
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// weight ranks one character of a non-digit run; the end of the run is 0.
func weight(c byte) int {
	switch {
	case c == '~':
		return -1
	case isLetter(c):
		return int(c)
	default:
		return int(c) + 256
	}
}

// compareFragment compares an upstream version or a revision.
func compareFragment(a, b string) int {
	for a != "" || b != "" {
		// Non-digit runs.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			wa, wb := 0, 0
			if a != "" && !isDigit(a[0]) {
				wa = weight(a[0])
			}
			if b != "" && !isDigit(b[0]) {
				wb = weight(b[0])
			}
			if wa != wb {
				return sign(wa - wb)
			}
			a, b = a[1:], b[1:]
		}
		// Digit runs.
		i, j := 0, 0
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareNumeric(a[:i], b[:j]); c != 0 {
			return c
		}
		a, b = a[i:], b[j:]
	}
	return 0
}

// compareNumeric compares two runs of digits as numbers of any size.
func compareNumeric(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
