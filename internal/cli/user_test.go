package cli

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"
)

const userViewJSON = `{"name":"alice","groups":["ops","dev"],"disabled":false,"has_password":true,"mfa":["totp"],
"recovery_codes_left":10,"passkeys":[],"created_time":"2026-01-01T00:00:00Z","updated_time":"2026-01-01T00:00:00Z",
"locked":false,"locked_until":""}`

// userServer is a stand-in that answers the user routes with alice's view
// and 204s; its token belongs to alice.
func userServer(t *testing.T) (*standIn, env) {
	s, e := newStandIn(t, map[string]route{
		"GET /v1/auth/token/lookup-self":          answer(200, lookupSelfJSON),
		"POST /v1/users":                          answer(200, userViewJSON),
		"GET /v1/users":                           answer(200, `{"users":[`+userViewJSON+`],"next":"alice"}`),
		"GET /v1/users/alice":                     answer(200, userViewJSON),
		"PATCH /v1/users/alice":                   answer(200, userViewJSON),
		"DELETE /v1/users/alice":                  answer(204, ""),
		"POST /v1/users/alice/disable":            answer(204, ""),
		"POST /v1/users/alice/enable":             answer(204, ""),
		"POST /v1/users/alice/unlock":             answer(204, ""),
		"POST /v1/users/alice/mfa/reset":          answer(204, ""),
		"POST /v1/users/alice/password":           answer(204, ""),
		"POST /v1/users/bob/password":             answer(204, ""),
		"POST /v1/users/alice/mfa/totp":           answer(200, `{"uri":"otpauth://totp/Warden:alice?secret=JBSWY3DPEHPK3PXP&issuer=Warden","secret":"JBSWY3DPEHPK3PXP"}`),
		"POST /v1/users/alice/mfa/totp/confirm":   answer(200, `{"recovery_codes":["rc-01","rc-02","rc-03","rc-04","rc-05","rc-06","rc-07","rc-08","rc-09","rc-10"]}`),
		"POST /v1/users/alice/mfa/recovery-codes": answer(200, `{"recovery_codes":["new-01","new-02"]}`),
	})
	e["WARDEN_TOKEN"] = "wdn_admin"
	return s, e
}

// TestUserCommands: each command sends the documented request and prints
// the answer (table or JSON); passwords come from stdin lines and are never
// printed.
func TestUserCommands(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stdin     string
		argv      []string
		calls     []string // "METHOD /path?query", in order
		body      string   // of the last call; "" none
		stdout    []string // substrings
		jsonKeys  []string // stdout is a JSON object with these keys
		notStdout string
	}{
		{"create --password-stdin", "correct horse battery\nignored\n",
			[]string{"user", "create", "alice", "--group", "ops", "--group", "dev", "--password-stdin"},
			[]string{"POST /v1/users"}, `{"name":"alice","groups":["ops","dev"],"password":"correct horse battery"}`,
			[]string{"Has Password", `["ops","dev"]`}, nil, "correct horse"},
		{"create --no-password", "", []string{"user", "create", "alice", "--no-password", "--format", "json"},
			[]string{"POST /v1/users"}, `{"name":"alice","groups":[]}`, nil,
			[]string{"name", "groups", "disabled", "has_password", "mfa", "recovery_codes_left", "passkeys", "created_time",
				"updated_time", "locked"}, ""},
		{"list", "", []string{"user", "list", "--after", "a", "--limit", "1"}, []string{"GET /v1/users?after=a&limit=1"}, "",
			[]string{"NAME", "alice", "ops,dev", "totp", "more: --after alice"}, nil, ""},
		{"list json", "", []string{"user", "list", "--format", "json"}, []string{"GET /v1/users"}, "", nil, []string{"users", "next"}, ""},
		{"show", "", []string{"user", "show", "alice"}, []string{"GET /v1/users/alice"}, "", []string{"Recovery Codes Left", "10"}, nil, ""},
		{"update", "", []string{"user", "update", "alice", "--group", "sec"}, []string{"PATCH /v1/users/alice"}, `{"groups":["sec"]}`, nil, nil, ""},
		{"update --no-groups", "", []string{"user", "update", "alice", "--no-groups"}, []string{"PATCH /v1/users/alice"}, `{"groups":[]}`, nil, nil, ""},
		{"disable", "", []string{"user", "disable", "alice"}, []string{"POST /v1/users/alice/disable"}, "", []string{"Disabled user alice"}, nil, ""},
		{"enable", "", []string{"user", "enable", "alice"}, []string{"POST /v1/users/alice/enable"}, "", []string{"Enabled user alice"}, nil, ""},
		{"delete", "", []string{"user", "delete", "alice"}, []string{"DELETE /v1/users/alice"}, "", []string{"Deleted user alice"}, nil, ""},
		{"unlock", "", []string{"user", "unlock", "alice"}, []string{"POST /v1/users/alice/unlock"}, "", []string{"Unlocked user alice"}, nil, ""},
		{"mfa reset", "", []string{"user", "mfa", "reset", "alice"}, []string{"POST /v1/users/alice/mfa/reset"}, "", []string{"alice"}, nil, ""},
		{"passwd own", "old secret pw\nnew secret pw\n", []string{"user", "passwd", "--password-stdin"},
			[]string{"GET /v1/auth/token/lookup-self", "POST /v1/users/alice/password"},
			`{"password":"new secret pw","current_password":"old secret pw"}`, []string{"user alice"}, nil, "secret pw"},
		{"passwd own by name", "old secret pw\nnew secret pw\n", []string{"user", "passwd", "alice", "--password-stdin"},
			[]string{"GET /v1/auth/token/lookup-self", "POST /v1/users/alice/password"},
			`{"password":"new secret pw","current_password":"old secret pw"}`, nil, nil, ""},
		{"passwd other", "new secret pw\n", []string{"user", "passwd", "bob", "--password-stdin"},
			[]string{"GET /v1/auth/token/lookup-self", "POST /v1/users/bob/password"}, `{"password":"new secret pw"}`,
			[]string{"user bob"}, nil, ""},
		{"mfa recovery-codes", "", []string{"user", "mfa", "recovery-codes"},
			[]string{"GET /v1/auth/token/lookup-self", "POST /v1/users/alice/mfa/recovery-codes"}, "",
			[]string{"new-01\n", "new-02\n", "not shown again", "previous codes no longer work"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := userServer(t)
			r := runCLI(t, e, tc.stdin, tc.argv...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			calls := s.requests()
			var got []string
			for _, c := range calls {
				k := c.method + " " + c.path
				if c.query != "" {
					k += "?" + c.query
				}
				got = append(got, k)
				if c.auth != "Bearer wdn_admin" {
					t.Errorf("%s: Authorization %q", k, c.auth)
				}
			}
			if !reflect.DeepEqual(got, tc.calls) {
				t.Fatalf("requests %v, want %v", got, tc.calls)
			}
			last := calls[len(calls)-1].body
			if (tc.body == "") != (last == nil) || (tc.body != "" && !reflect.DeepEqual(last, jsonBody(t, tc.body))) {
				t.Fatalf("body %v, want %s", last, tc.body)
			}
			if tc.jsonKeys != nil {
				mustJSON(t, r, tc.jsonKeys...)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if tc.notStdout != "" && strings.Contains(r.stdout+r.stderr, tc.notStdout) {
				t.Errorf("output holds %q:\n%s%s", tc.notStdout, r.stdout, r.stderr)
			}
		})
	}
}

// TestUserUsageErrors: flag mistakes are usage errors found before any
// request; without a terminal a password must come from stdin.
func TestUserUsageErrors(t *testing.T) {
	s, e := userServer(t)
	for _, tc := range []struct {
		stdin    string
		argv     []string
		contains string
	}{
		{"", []string{"user", "create", "alice"}, "no password: give --password-stdin"},
		{"", []string{"user", "create", "alice", "--password-stdin", "--no-password"}, "not both"},
		{"", []string{"user", "update", "alice"}, "give --group G"},
		{"", []string{"user", "update", "alice", "--group", "a", "--no-groups"}, "not both"},
		{"", []string{"user", "list", "--limit", "-1"}, "--limit: want 0"},
		{"", []string{"user", "passwd"}, "no password: give --password-stdin"},
		{"", []string{"user", "show"}, "accepts 1 arg"},
		{"", []string{"login", "--listen-port", "-1"}, "--listen-port"},
	} {
		checkErr(t, runCLI(t, e, tc.stdin, tc.argv...), 2, tc.contains)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	checkErr(t, runCLI(t, e, "\n", "user", "create", "alice", "--password-stdin"), 2, "the password line is empty")
	checkErr(t, runCLI(t, e, "", "user", "create", "alice", "--password-stdin"), 1, "--password-stdin: no input on stdin")
	checkErr(t, runCLI(t, e, "old pw only\n", "user", "passwd", "--password-stdin"), 1, "--password-stdin: no input on stdin")
}

// TestUserMFAEnrollTOTP: enrollment for the token's own user prints the
// URI, a QR code and the secret and confirms with the first code from a
// stdin line; with no line it leaves the enrollment pending and says how
// to confirm it: --code, which confirms without starting anew. Confirming
// prints the ten recovery codes once.
func TestUserMFAEnrollTOTP(t *testing.T) {
	const uri = "otpauth://totp/Warden:alice?secret=JBSWY3DPEHPK3PXP&issuer=Warden"
	qr, _ := qrText(uri)
	enrollment := []string{qr, uri, "Secret", "JBSWY3DPEHPK3PXP"}
	recovery := []string{"rc-01\n", "rc-10\n", "not shown again"}
	for _, tc := range []struct {
		name       string
		stdin      string
		argv       []string
		paths      []string // after lookup-self
		stdout     []string
		notStdout  string
		stderr     string
		confirmArg map[string]any
	}{
		{"code on stdin", " 123456 \n", nil, []string{"/v1/users/alice/mfa/totp", "/v1/users/alice/mfa/totp/confirm"},
			append(enrollment, recovery...), "", "", map[string]any{"code": "123456"}},
		{"no code", "", nil, []string{"/v1/users/alice/mfa/totp"},
			enrollment, "rc-01", "warden user mfa enroll totp --code CODE", nil},
		{"--code", "", []string{"--code", " 123456"}, []string{"/v1/users/alice/mfa/totp/confirm"},
			recovery, "otpauth://", "", map[string]any{"code": "123456"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e := userServer(t)
			r := runCLI(t, e, tc.stdin, append([]string{"user", "mfa", "enroll", "totp"}, tc.argv...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			calls := s.requests()
			var paths []string
			for _, c := range calls[1:] {
				paths = append(paths, c.path)
			}
			if calls[0].path != "/v1/auth/token/lookup-self" || !reflect.DeepEqual(paths, tc.paths) {
				t.Fatalf("requests %+v", calls)
			}
			if tc.confirmArg != nil && !reflect.DeepEqual(calls[len(calls)-1].body, tc.confirmArg) {
				t.Fatalf("confirm body %v", calls[len(calls)-1].body)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if tc.notStdout != "" && strings.Contains(r.stdout, tc.notStdout) {
				t.Errorf("stdout holds %q:\n%s", tc.notStdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q: %q", tc.stderr, r.stderr)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		_, e := userServer(t)
		r := runCLI(t, e, "123456\n", "user", "mfa", "enroll", "totp", "--format", "json")
		docs := strings.SplitAfter(r.stdout, "}\n")
		if r.code != 0 || len(docs) != 3 || docs[2] != "" {
			t.Fatalf("%+v", r)
		}
		mustJSON(t, result{stdout: docs[0]}, "uri", "secret")
		mustJSON(t, result{stdout: docs[1]}, "recovery_codes")
	})
	t.Run("empty code", func(t *testing.T) {
		s, e := userServer(t)
		checkErr(t, runCLI(t, e, "", "user", "mfa", "enroll", "totp", "--code", " "), ExitUsage, "--code: empty")
		if n := len(s.requests()); n != 0 {
			t.Fatalf("%d requests", n)
		}
	})
	t.Run("a wrong code", func(t *testing.T) {
		_, e := newStandIn(t, map[string]route{
			"GET /v1/auth/token/lookup-self":        answer(200, lookupSelfJSON),
			"POST /v1/users/alice/mfa/totp/confirm": answer(400, `{"errors":["code: wrong or expired; enter the current code of the new entry"]}`),
		})
		e["WARDEN_TOKEN"] = "wdn_alice"
		checkErr(t, runCLI(t, e, "", "user", "mfa", "enroll", "totp", "--code", "000000"), 1, "confirm the app's code: warden: 400 Bad Request: code: wrong")
	})
	t.Run("a token without a user", func(t *testing.T) {
		_, e := newStandIn(t, map[string]route{"GET /v1/auth/token/lookup-self": answer(200, `{"accessor":"a","root":true,"user":""}`)})
		e["WARDEN_TOKEN"] = "wdn_root"
		checkErr(t, runCLI(t, e, "", "user", "mfa", "enroll", "totp"), 1, "this token belongs to no user")
	})
}

func TestUserQRText(t *testing.T) {
	for _, text := range []string{"otpauth://totp/Warden:alice?secret=JBSWY3DPEHPK3PXP&issuer=Warden", strings.Repeat("x", 300)} {
		q, err := qrcode.New(text, qrcode.Medium)
		if err != nil {
			t.Fatal(err)
		}
		bm := q.Bitmap()
		n := 4*q.VersionNumber + 17 + 2*4
		if len(bm) != n {
			t.Fatalf("bitmap %d rows, want %d", len(bm), n)
		}
		s, err := qrText(text)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		if len(lines) != (n+1)/2 {
			t.Fatalf("%d lines for %d module rows", len(lines), n)
		}
		// Read the drawing back: each rune is two modules, top and bottom; drawn = light.
		halves := map[rune][2]bool{'█': {true, true}, '▀': {true, false}, '▄': {false, true}, ' ': {false, false}}
		for i, line := range lines {
			if utf8.RuneCountInString(line) != n {
				t.Fatalf("line %d is %d wide, want %d", i, utf8.RuneCountInString(line), n)
			}
			for x, r := range []rune(line) {
				h, ok := halves[r]
				if !ok {
					t.Fatalf("line %d: rune %q", i, r)
				}
				y := 2 * i
				if h[0] != !bm[y][x] || (y+1 < n && h[1] != !bm[y+1][x]) || (y+1 == n && h[1]) {
					t.Fatalf("module (%d,%d) drawn wrong", x, y)
				}
				if (y < 4 || x < 4 || x >= n-4) && !h[0] {
					t.Fatalf("quiet zone dark at (%d,%d)", x, y)
				}
			}
		}
	}
}
