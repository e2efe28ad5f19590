package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/pkg/client"
)

const genRootAttempt = "/v1/sys/generate-root/attempt"

// TestGenerateRoot: a quorum of unseal keys, and no token, makes a new
// root token that works, and that appears in no response (only encrypted
// to the requester's key), in no audit record and in no file of the
// server's data directory; fewer keys make nothing; a foreign key discards
// the keys given; a second attempt is refused while one exists; cancel by
// nonce and by unseal key; every step is in the audit log.
func TestGenerateRoot(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	keys, root := h.initUnseal(5, 3)

	// Every response of the routes key holders and anyone else can call.
	var seen [][]byte
	call := func(method, path string, body any, status int) map[string]any {
		t.Helper()
		r := h.want(h.do(method, path, "", body), status)
		seen = append(seen, r.body)
		if len(r.body) == 0 {
			return nil
		}
		return r.json(t)
	}
	errText := func(method, path string, body any, status int) string {
		t.Helper()
		r := h.want(h.do(method, path, "", body), status)
		seen = append(seen, r.body)
		return r.errorText(t)
	}
	status := func() map[string]any { t.Helper(); return call("GET", genRootAttempt, nil, 200) }
	update := func(nonce, key string, st int) map[string]any {
		t.Helper()
		return call("POST", "/v1/sys/generate-root/update", map[string]string{"nonce": nonce, "key": key}, st)
	}

	if st := status(); st["started"] != false || st["required"] != float64(3) || st["progress"] != float64(0) {
		t.Fatalf("status before: %v", st)
	}
	key, err := client.NewGenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(key.PublicKey())
	for _, tc := range []struct {
		name string
		body any
		msg  string
	}{
		{"no public key", map[string]string{}, "public_key: required"},
		{"unknown member", map[string]string{"public_key": pub, "ttl": "1h"}, "ttl"},
		{"not a key", map[string]string{"public_key": "AAAA"}, "public_key:"},
	} {
		if msg := errText("POST", genRootAttempt, tc.body, 400); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %q does not say %q", tc.name, msg, tc.msg)
		}
	}
	in := call("POST", genRootAttempt, map[string]string{"public_key": pub}, 200)
	nonce, _ := in["nonce"].(string)
	fp := key.Fingerprint()
	if len(nonce) != 32 || in["public_key_fingerprint"] != fp || in["started"] != true || in["expires_at"] == nil {
		t.Fatalf("init: %v (fingerprint %s)", in, fp)
	}
	if st := status(); st["nonce"] != nil || st["public_key_fingerprint"] != fp || st["started"] != true {
		t.Fatalf("status shows the nonce or not the attempt: %v", st)
	}
	other, _ := client.NewGenerateRootKey()
	if msg := errText("POST", genRootAttempt, map[string]string{"public_key": base64.StdEncoding.EncodeToString(other.PublicKey())}, 409); !strings.Contains(msg, "already in progress") {
		t.Fatalf("second init: %q", msg)
	}

	wrongNonce := strings.Repeat("0", 32)
	if msg := errText("POST", "/v1/sys/generate-root/update", map[string]string{"nonce": wrongNonce, "key": keys[0]}, 400); !strings.Contains(msg, "nonce: does not match") {
		t.Fatalf("wrong nonce: %q", msg)
	}
	if st := update(nonce, keys[0], 200); st["progress"] != float64(1) || st["complete"] != false {
		t.Fatalf("first key: %v", st)
	}
	if msg := errText("POST", "/v1/sys/generate-root/update", map[string]string{"nonce": nonce, "key": keys[0]}, 400); !strings.Contains(msg, "already given") {
		t.Fatalf("repeated key: %q", msg)
	}
	update(nonce, keys[1], 200)
	// Two of three: nothing is made.
	if st := status(); st["progress"] != float64(2) || st["complete"] != false || st["encrypted_token"] != nil || st["token_accessor"] != nil {
		t.Fatalf("below the threshold: %v", st)
	}
	foreign := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))
	if msg := errText("POST", "/v1/sys/generate-root/update", map[string]string{"nonce": nonce, "key": foreign}, 400); !strings.Contains(msg, "2 shares given so far in this attempt are discarded") {
		t.Fatalf("foreign key: %q", msg)
	}
	if st := status(); st["progress"] != float64(0) || st["started"] != true {
		t.Fatalf("after a foreign key: %v", st)
	}
	update(nonce, keys[2], 200)
	update(nonce, keys[3], 200)
	done := update(nonce, keys[4], 200)
	if done["complete"] != true || done["progress"] != float64(3) || done["encrypted_token"] == nil || done["token_accessor"] == nil {
		t.Fatalf("at the threshold: %v", done)
	}
	accessor := done["token_accessor"].(string)
	if st := status(); st["encrypted_token"] != done["encrypted_token"] {
		t.Fatalf("status after completion: %v", st)
	}
	if _, err := other.DecryptToken(nonce, done["encrypted_token"].(string)); err == nil {
		t.Fatal("another key opens the token")
	}
	if _, err := key.DecryptToken(wrongNonce, done["encrypted_token"].(string)); err == nil {
		t.Fatal("the token opens under another nonce")
	}
	tok, err := key.DecryptToken(nonce, done["encrypted_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "wdn_") || tok == root {
		t.Fatal("the decrypted token is not a new token")
	}

	// It works, as root.
	self := h.want(h.do("GET", "/v1/auth/token/lookup-self", tok, nil), 200).json(t)
	if self["root"] != true || self["accessor"] != accessor || self["principal"] != `Root::"root"` || self["display_name"] != "generated-root" {
		t.Fatalf("lookup-self of the new token: %v", self)
	}
	h.want(h.do("PUT", "/v1/kv/data/gen/check", tok, map[string]any{"data": map[string]string{"k": "v"}}), 200)
	h.want(h.do("GET", "/v1/kv/data/gen/check", root, nil), 200) // and the old one still does

	// Complete, the attempt waits for its requester; another init is refused.
	if msg := errText("POST", genRootAttempt, map[string]string{"public_key": pub}, 409); !strings.Contains(msg, "waits for its requester") {
		t.Fatalf("init while complete: %q", msg)
	}
	update(nonce, keys[0], 409)
	call("DELETE", genRootAttempt, map[string]string{"nonce": nonce}, 204) // the requester collects it
	if st := status(); st["started"] != false {
		t.Fatalf("after the requester's cancel: %v", st)
	}

	// Cancel: a nonce or an unseal key, not a foreign key or nothing.
	n2 := call("POST", genRootAttempt, map[string]string{"public_key": base64.StdEncoding.EncodeToString(other.PublicKey())}, 200)["nonce"].(string)
	call("DELETE", genRootAttempt, nil, 400)
	call("DELETE", genRootAttempt, map[string]string{"nonce": wrongNonce}, 400)
	call("DELETE", genRootAttempt, map[string]string{"key": foreign}, 400)
	call("DELETE", genRootAttempt, map[string]string{"key": keys[1]}, 204)
	update(n2, keys[0], 404)
	n3 := call("POST", genRootAttempt, map[string]string{"public_key": pub}, 200)["nonce"].(string)
	call("DELETE", genRootAttempt, map[string]string{"nonce": n3}, 204)

	for i, b := range seen {
		if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[4:])) {
			t.Fatalf("response %d holds the new token: %s", i, b)
		}
	}

	// The audit log: each step, never the token nor a share.
	if err := h.srv.API().FlushAuthFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.mergeAudit()
	as, err := h.srv.Store().AuditState()
	if err != nil {
		t.Fatal(err)
	}
	ents := h.want(h.do("GET", fmt.Sprintf("/v1/audit/entries?start=0&count=%d", as.Size), root, nil), 200).json(t)["entries"].([]any)
	got := map[string]int{}
	failed := false
	for _, e := range ents {
		m := e.(map[string]any)
		leaf := b64(t, m["leaf"].(string))
		if bytes.Contains(leaf, []byte(tok[4:])) {
			t.Fatalf("an audit record holds the new token: %s", leaf)
		}
		for _, k := range keys {
			if bytes.Contains(leaf, []byte(k[:20])) {
				t.Fatalf("an audit record holds an unseal key: %s", leaf)
			}
		}
		ent := m["entry"].(map[string]any)
		action, _ := ent["action"].(string)
		if action == "auth.failed" && ent["resource"] == "sys.generate-root.update" {
			failed = true
		}
		if !strings.HasPrefix(action, "sys.generate-root.") {
			continue
		}
		got[fmt.Sprint(action, " ", ent["outcome"])]++
		if ent["principal"] != "" || ent["accessor"] != nil {
			t.Errorf("a root generation record names a caller: %v", ent)
		}
		hashes, _ := ent["hashes"].(map[string]any)
		if hashes == nil || !strings.HasPrefix(fmt.Sprint(hashes["requester_key"]), "sha256:") {
			t.Errorf("record without the requester key: %v", ent)
		}
		switch action {
		case "sys.generate-root.complete":
			if ent["resource"] != `Token::"`+accessor+`"` || hashes["requester_key"] != fp || ent["auth_method"] != "unseal-key" {
				t.Errorf("completion record: %v", ent)
			}
			if m["raft_index"].(float64) == 0 {
				t.Errorf("the completion's record does not ride with the token's command: %v", m)
			}
		case "sys.generate-root.update":
			if ent["outcome"] == float64(400) && !strings.Contains(fmt.Sprint(ent["error"]), "discarded") {
				t.Errorf("reset record: %v", ent)
			}
		}
	}
	want := map[string]int{
		"sys.generate-root.init 200":     3,
		"sys.generate-root.update 200":   4, // the shares accepted below the threshold
		"sys.generate-root.update 400":   1, // the reset
		"sys.generate-root.complete 200": 1,
		"sys.generate-root.cancel 204":   3,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d records %q, want %d (all: %v)", got[k], k, n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if !failed {
		t.Error("no aggregated record of the failed updates")
	}

	// Nothing on the server's disk holds the token.
	err = filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(tok[4:])) {
			t.Errorf("%s holds the new token", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGenerateRootSealed: a sealed node refuses to start an attempt and
// reports none; sealing discards the attempt in progress.
func TestGenerateRootSealed(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	keys, root := h.initUnseal(1, 1)
	key, err := client.NewGenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{"public_key": base64.StdEncoding.EncodeToString(key.PublicKey())}
	nonce := h.want(h.do("POST", genRootAttempt, "", body), 200).json(t)["nonce"].(string)
	h.want(h.do("POST", "/v1/sys/seal", root, nil), 204)
	if st := h.want(h.do("GET", genRootAttempt, "", nil), 200).json(t); st["started"] != false {
		t.Fatalf("sealed: %v", st)
	}
	h.want(h.do("POST", genRootAttempt, "", body), 503)
	h.want(h.do("POST", "/v1/sys/generate-root/update", "", map[string]string{"nonce": nonce, "key": keys[0]}), 503)
	h.unseal(keys)
	if st := h.want(h.do("GET", genRootAttempt, "", nil), 200).json(t); st["started"] != false {
		t.Fatalf("the attempt survived a seal: %v", st)
	}
	h.want(h.do("POST", "/v1/sys/generate-root/update", "", map[string]string{"nonce": nonce, "key": keys[0]}), 404)
}
