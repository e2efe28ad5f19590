package oidcauth

import (
	"net/url"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
)

func TestParseCallback(t *testing.T) {
	state, code, err := ParseCallback("code=abc.DEF-123_~&state=St4te_-&iss=https%3A%2F%2Fidp.example&session_state=x")
	if err != nil || state != "St4te_-" || code != "abc.DEF-123_~" {
		t.Fatalf("got %q %q %v", state, code, err)
	}
	for _, tc := range []struct {
		query string
		code  errs.Code
		msg   string
	}{
		{"error=access_denied&error_description=The+user+said+no&state=s", errs.Unauthenticated, "oidc: the provider refused the login (access_denied)"},
		{"error=login_required&state=s&code=c", errs.Unauthenticated, "oidc: the provider refused the login (login_required)"},
		{"error=" + url.QueryEscape("<script>alert(1)</script>") + "&state=s", errs.Unauthenticated, "oidc: the provider refused the login"},
		{"error=" + strings.Repeat("x", 65), errs.Unauthenticated, "oidc: the provider refused the login"},
		{"error=", errs.Unauthenticated, "oidc: the provider refused the login"},
		{"", errs.Invalid, "state: required"},
		{"code=c", errs.Invalid, "state: required"},
		{"state=s", errs.Invalid, "code: required"},
		{"state=s&code=", errs.Invalid, "code: required"},
		{"state=s&state=t&code=c", errs.Invalid, "state: repeated"},
		{"state=s&code=c&code=d", errs.Invalid, "code: repeated"},
		{"state=s&code=c%20d", errs.Invalid, "code: must be at most 4096 printable ASCII characters"},
		{"state=s%0a&code=c", errs.Invalid, "state: must be at most 4096 printable ASCII characters"},
		{"state=s&code=" + strings.Repeat("c", maxCode+1), errs.Invalid, "code: must be at most 4096 printable ASCII characters"},
		{"state=" + strings.Repeat("s", maxStateText+1) + "&code=c", errs.Invalid, "state: must be at most 4096 printable ASCII characters"},
		{"state=%zz&code=c", errs.Invalid, "callback: malformed query"},
		{"state=s;code=c", errs.Invalid, "callback: malformed query"},
		{strings.Repeat("a", maxCallbackQuery+1), errs.Invalid, "callback: query longer than 16384 bytes"},
	} {
		s, c, err := ParseCallback(tc.query)
		if err == nil || errs.CodeOf(err) != tc.code || err.Error() != tc.msg || s != "" || c != "" {
			t.Errorf("%.80q: got %q %q %v (%s), want %s %q", tc.query, s, c, err, errs.CodeOf(err), tc.code, tc.msg)
		}
	}
}

// FuzzParseCallback: never panics; a success has a bounded, printable state
// and code, which the same query parses back to.
func FuzzParseCallback(f *testing.F) {
	for _, s := range []string{
		"code=abc&state=def",
		"state=def&code=abc&iss=https%3A%2F%2Fidp.example",
		"error=access_denied&error_description=no&state=x",
		"code=a&code=b&state=c",
		"state=%zz",
		"state=a;code=b",
		"",
		"&&&=&=",
		"code=%C3%A9&state=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		state, code, err := ParseCallback(q)
		if err != nil {
			if state != "" || code != "" {
				t.Fatal("values with an error")
			}
			if c := errs.CodeOf(err); c != errs.Invalid && c != errs.Unauthenticated {
				t.Fatalf("code %s: %v", c, err)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("long error: %q", err.Error())
			}
			return
		}
		if state == "" || code == "" || len(state) > maxStateText || len(code) > maxCode || !token(state) || !token(code) {
			t.Fatalf("accepted state %q code %q", state, code)
		}
		v, _ := url.ParseQuery(q)
		if v.Has("error") {
			t.Fatal("accepted a callback with an error")
		}
		s2, c2, err := ParseCallback(url.Values{"state": {state}, "code": {code}}.Encode())
		if err != nil || s2 != state || c2 != code {
			t.Fatalf("round trip: %q %q %v", s2, c2, err)
		}
	})
}
