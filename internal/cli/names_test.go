package cli

import (
	"strings"
	"testing"
)

// TestNonASCIINameErrors checks, against a real server, that every path
// refusing a name, path or identifier with a non-ASCII character prints that
// character as itself with its code point and Unicode name (the form of
// names.Char), never one mangled character per UTF-8 byte.
func TestNonASCIINameErrors(t *testing.T) {
	e := unsealedServer(t)
	pol := tempFile(t, "p.cedar", `permit (principal, action, resource);`)
	const (
		ie   = `"е" (U+0435 CYRILLIC SMALL LETTER IE)`  // looks like "e"
		dze  = `"ѕ" (U+0455 CYRILLIC SMALL LETTER DZE)` // looks like "s"
		eacu = `"é" (U+00E9 LATIN SMALL LETTER E WITH ACUTE)`
	)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"node name", []string{"node", "token", "create", "--name", "wеb-1"}, "character " + ie + " at position 2"},
		{"node show", []string{"node", "show", "wеb-1"}, "character " + ie + " at position 2"},
		{"node zone", []string{"node", "token", "create", "--name", "web-1", "--zone", "dmé"}, "character " + eacu + " at position 3"},
		{"zone name", []string{"zone", "create", "dmé", "--level", "2"}, "character " + eacu + " at position 3"},
		{"token user", []string{"token", "create", "--user", "wеb"}, "character " + ie + " at position 2"},
		{"token group", []string{"token", "create", "--user", "a", "--group", "éops"}, "character " + eacu + " at position 1"},
		{"kv path", []string{"kv", "put", "app/wеb", "k=v"}, "segment 2: character " + ie + " at position 2"},
		{"policy store", []string{"authz", "store", "create", "ѕhop"}, "character " + dze + " at position 1"},
		{"policy name", []string{"policy", "write", "wеb", pol}, "character " + ie + " at position 2"},
		{"entity UID escape", []string{"authz", "check", "--store", "warden", "--principal", `User::"\é"`,
			"--action", `Action::"kv.read"`, "--resource", `Secret::"x"`}, "followed by " + eacu},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, e, "", tc.args...)
			if r.code == 0 {
				t.Fatalf("accepted: %q", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			// One UTF-8 byte printed as a character (mojibake) shows as
			// a Latin-1 letter: "Ð" for the first byte of "е", "Ã" for "é".
			if strings.ContainsAny(r.stderr, "ÐÑÃ") {
				t.Fatalf("stderr has a byte printed as a character: %q", r.stderr)
			}
		})
	}
}
