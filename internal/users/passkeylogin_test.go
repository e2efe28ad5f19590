package users_test

import (
	"encoding/json"
	"testing"
)

// Two finishes of one assertion both carry the record it was verified
// against: the second (a replay, or a concurrent post of the same
// assertion) must fail, whatever the stored record's version by then. A
// change to the user that leaves the passkey alone does not stop a login.
func TestFinishPasskeyLoginOnce(t *testing.T) {
	v := newEnv(t, nil)
	v.create(t, "alice", nil, pw)
	cred := json.RawMessage(`{"id":"AQID","publicKey":"pk","authenticator":{"signCount":1}}`)
	if err := v.svc.AddPasskey(v.rec("x"), "alice", "key", []byte{1, 2, 3}, cred); err != nil {
		t.Fatal(err)
	}
	verified, err := v.svc.CheckLogin(v.rec("x"), "alice", pw, "")
	if err != nil {
		t.Fatal(err)
	}
	updated := json.RawMessage(`{"id":"AQID","publicKey":"pk","authenticator":{"signCount":2}}`)
	if _, _, err := v.svc.FinishPasskeyLogin(v.rec("auth.login"), verified, "AQID", updated); err != nil {
		t.Fatal(err)
	}
	_, _, err = v.svc.FinishPasskeyLogin(v.rec("auth.login"), verified, "AQID", updated)
	invalidLogin(t, err)

	verified, err = v.svc.CheckLogin(v.rec("x"), "alice", pw, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.svc.Update(v.rec("x"), "alice", []string{"staff"}); err != nil {
		t.Fatal(err)
	}
	updated = json.RawMessage(`{"id":"AQID","publicKey":"pk","authenticator":{"signCount":3}}`)
	_, tok, err := v.svc.FinishPasskeyLogin(v.rec("auth.login"), verified, "AQID", updated)
	if err != nil {
		t.Fatalf("login after an unrelated change: %v", err)
	}
	if len(tok.Groups) != 1 || tok.Groups[0] != "staff" {
		t.Fatalf("session groups %v, want the current ones", tok.Groups)
	}
}
