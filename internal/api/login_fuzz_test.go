package api

import (
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/users"
)

// FuzzLoginRequest: the decoder of POST /v1/auth/login never panics,
// refuses only with bad input (400) whose message never repeats the
// password, and accepts only a request with a user and a password within
// their bounds.
func FuzzLoginRequest(f *testing.F) {
	f.Add([]byte(`{"user": "alice", "password": "correct horse battery", "totp": "123456"}`))
	f.Add([]byte(`{"user": "alice", "password": "correct horse battery"}`))
	f.Add([]byte(`{"user": "", "password": "x"}`))
	f.Add([]byte(`{"user": "alice", "password": "pw", "extra": 1}`))
	f.Add([]byte(`{"user": "alice", "password": 12}`))
	f.Add([]byte(`{"user": "alice", "password": "a\u0000b"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseLogin(body)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("error of code %s: %v", errs.CodeOf(err), err)
			}
			if in.Password != "" && len(in.Password) > 3 && strings.Contains(err.Error(), in.Password) {
				t.Fatalf("the error repeats the password: %v", err)
			}
			return
		}
		if in.User == "" || in.Password == "" || len(in.User) > 253 || len(in.Password) > users.MaxPasswordBytes || len(in.TOTP) > 64 {
			t.Fatalf("accepted %+v", in)
		}
	})
}
