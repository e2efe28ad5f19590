package authz

import (
	"errors"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

func TestParseUID(t *testing.T) {
	ok := []struct {
		in      string
		typ, id string
	}{
		{`User::"bob"`, "User", "bob"},
		{`Warden::Node::"web-1"`, "Warden::Node", "web-1"},
		{`Action::"kv.read"`, "Action", "kv.read"},
		{`Secret::""`, "Secret", ""},
		{`_T9::"a::\"b\""`, "_T9", `a::"b"`},
		{`User::"tab\there\nnl \\ \' \0 \x41 \u{e9} \u{1F600}"`, "User", "tab\there\nnl \\ ' \x00 A é 😀"},
		{`User::"wеb-1"`, "User", "wеb-1"}, // Cyrillic е is data here; canonical names are identity's job
	}
	for _, tc := range ok {
		t.Run(tc.in, func(t *testing.T) {
			uid, err := ParseUID(tc.in)
			if err != nil {
				t.Fatalf("ParseUID: %v", err)
			}
			if want := types.NewEntityUID(types.EntityType(tc.typ), types.String(tc.id)); uid != want {
				t.Fatalf("got %#v, want %#v", uid, want)
			}
			// The text form cedar-go prints parses back to the same UID.
			if back, err := ParseUID(uid.String()); err != nil || back != uid {
				t.Errorf("round trip of %s: %v, %v", uid.String(), back, err)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"empty", ``},
		{"no id", `User`},
		{"unquoted id", `User::bob`},
		{"space before ::", `User ::"bob"`},
		{"space after ::", `User:: "bob"`},
		{"leading space", ` User::"bob"`},
		{"trailing space", `User::"bob" `},
		{"trailing comment", `User::"bob"//x`},
		{"no type", `::"bob"`},
		{"empty path segment", `A::::"bob"`},
		{"reserved type", `if::"bob"`},
		{"reserved segment", `A::in::"bob"`},
		{"digit first", `9User::"bob"`},
		{"bad type char", `Us-er::"bob"`},
		{"single quotes", `User::'bob'`},
		{"unterminated", `User::"bob`},
		{"unescaped quote", `User::"b"ob"`},
		{"trailing after string", `User::"bob"x`},
		{"unknown escape", `User::"\q"`},
		{"star escape", `User::"\*"`},
		{"non-ASCII hex escape", `User::"\x80"`},
		{"short hex escape", `User::"\x4"`},
		{"surrogate", `User::"\u{D800}"`},
		{"too big unicode escape", `User::"\u{110000}"`},
		{"long unicode escape", `User::"\u{0000041}"`},
		{"empty unicode escape", `User::"\u{}"`},
		{"raw newline", "User::\"a\nb\""},
		{"raw tab", "User::\"a\tb\""},
		{"invalid UTF-8", "User::\"\xff\""},
		{"too long", `User::"` + strings.Repeat("a", MaxUIDBytes) + `"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			uid, err := ParseUID(tc.in)
			if err == nil {
				t.Fatalf("ParseUID(%q) = %v, want error", tc.in, uid)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestDecodeUIDJSON(t *testing.T) {
	tests := []struct {
		name, in  string
		allowText bool
		want      string // Cedar text, or "" for an error
		errMsg    string
	}{
		{"implicit", `{"type": "User", "id": "bob"}`, false, `User::"bob"`, ""},
		{"explicit", `{"__entity": {"type": "User", "id": "bob"}}`, false, `User::"bob"`, ""},
		{"text allowed", `"User::\"bob\""`, true, `User::"bob"`, ""},
		{"text not allowed", `"User::\"bob\""`, false, "", "must be an object"},
		{"bad text", `"User::bob"`, true, "", `want Type::"id"`},
		{"missing id", `{"type": "User"}`, false, "", `"id" is required`},
		{"null id", `{"type": "User", "id": null}`, false, "", "x.id: must be a string"},
		{"number id", `{"type": "User", "id": 1}`, false, "", "x.id: must be a string"},
		{"unknown member", `{"type": "User", "id": "bob", "x": 1}`, false, "", `unknown field "x"`},
		{"case matters", `{"Type": "User", "id": "bob"}`, false, "", `unknown field "Type"`},
		{"duplicate member", `{"type": "User", "type": "Group", "id": "bob"}`, false, "", `duplicate field "type"`},
		{"mixed forms", `{"__entity": {"type": "User", "id": "bob"}, "id": "x"}`, false, "", `"__entity" must be the only member`},
		{"bad type", `{"type": "Us er", "id": "bob"}`, false, "", "x.type: invalid entity type name"},
		{"array", `["User", "bob"]`, false, "", "must be a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, err := decodeUIDJSON("x", []byte(tc.in), tc.allowText)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMsg) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errMsg)
				}
				return
			}
			if err != nil || uid.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", uid, err, tc.want)
			}
		})
	}
}
