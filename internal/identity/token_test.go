package identity

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

func TestSecretIsRedacted(t *testing.T) {
	s := Secret("wdn_" + strings.Repeat("A", 43))
	if strings.Contains(s.String(), "AAAA") || strings.Contains(s.LogValue().String(), "AAAA") {
		t.Fatal("secret token printed")
	}
	if s.Reveal() != string(s) {
		t.Fatal("Reveal")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true}, {"ci-bot_2@example.com", true}, {"a.b", true},
		{"", false}, {"Alice", false}, {"wеb", false}, {"a b", false}, {strings.Repeat("a", 129), false}, {`a"b`, false},
	} {
		err := validName("user", tc.in)
		if (err == nil) != tc.ok || (err != nil && errs.CodeOf(err) != errs.Invalid) {
			t.Errorf("%q: %v", tc.in, err)
		}
	}
}

// FuzzWellFormed: the token shape check never panics and accepts only
// wdn_ followed by 43 base64url characters.
func FuzzWellFormed(f *testing.F) {
	f.Add("wdn_" + strings.Repeat("A", 43))
	f.Add("wdn_")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, s string) {
		if !wellFormed(s) {
			return
		}
		if len(s) != 47 || !strings.HasPrefix(s, "wdn_") ||
			strings.Trim(s[4:], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzValidName: accepted user and group names hold only the allowed bytes,
// so they can never smuggle Cedar syntax or confusable characters.
func FuzzValidName(f *testing.F) {
	f.Add("alice")
	f.Add(`a"b`)
	f.Fuzz(func(t *testing.T, s string) {
		if validName("user", s) == nil && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.@") != "" {
			t.Fatalf("accepted %q", s)
		}
	})
}
