package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

// TestGenerateRootCLI runs root generation with the CLI against a real
// server: the requester's init keeps the key in a 0600 file and prints the
// nonce and fingerprint; key holders give their keys on stdin; decode
// prints a root token that works and that no key holder's output held,
// clears the attempt and removes the key file; cancel by key file and by
// unseal key; init --wait decodes by itself.
func TestGenerateRootCLI(t *testing.T) {
	addr, ca := realServer(t)
	e := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca}
	in := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "3", "--key-threshold", "2", "--format", "json"),
		"unseal_keys", "root_token")
	var keys []string
	for _, k := range in["unseal_keys"].([]any) {
		keys = append(keys, k.(string))
	}
	for _, k := range keys[:2] {
		if r := runCLI(t, e, k+"\n", "operator", "unseal"); r.code != 0 {
			t.Fatalf("unseal: %+v", r)
		}
	}
	dir := t.TempDir()
	statusKeys := []string{"started", "progress", "required", "complete"}
	if st := mustJSON(t, runCLI(t, e, "", "operator", "generate-root", "status", "--format", "json"), statusKeys...); st["started"] != false {
		t.Fatalf("status: %v", st)
	}

	kf := filepath.Join(dir, "sub", "gr.key")
	r := runCLI(t, e, "", "operator", "generate-root", "init", "--key-file", kf, "--format", "json")
	st := mustJSON(t, r, "started", "nonce", "progress", "required", "public_key_fingerprint", "started_at", "expires_at", "complete", "key_file")
	nonce, fp := st["nonce"].(string), st["public_key_fingerprint"].(string)
	if fi, err := os.Stat(kf); err != nil || fi.Mode().Perm() != 0o600 || st["key_file"] != kf {
		t.Fatalf("key file: %v %v", fi, err)
	}
	checkErr(t, runCLI(t, e, "", "operator", "generate-root", "init", "--key-file", kf), 1, "exists")
	checkErr(t, runCLI(t, e, "", "operator", "generate-root", "init", "--key-file", filepath.Join(dir, "b.key")), 1, "409")
	if _, err := os.Stat(filepath.Join(dir, "b.key")); !os.IsNotExist(err) {
		t.Fatalf("a refused init left its key file: %v", err)
	}

	// Key holders: the key comes from stdin only.
	var holders []result
	holder := func(stdin string, args ...string) result {
		t.Helper()
		r := runCLI(t, e, stdin, append([]string{"operator", "generate-root", "update"}, args...)...)
		holders = append(holders, r)
		return r
	}
	checkErr(t, holder(keys[0]+"\n", "--nonce", nonce, "--fingerprint", "sha256:"+strings.Repeat("0", 64)), 1, "not sending the key")
	checkErr(t, holder(keys[0]+"\n"), 2, "--nonce is required")
	checkErr(t, holder("", "--nonce", nonce), 1, "no input")
	checkErr(t, holder(keys[0]+"\n", "--nonce", nonce, keys[0]), 2, "")
	r = holder(keys[0]+"\n", "--nonce", nonce, "--fingerprint", fp, "--format", "json")
	if got := mustJSON(t, r, statusKeys[0], statusKeys[1], statusKeys[2], statusKeys[3], "public_key_fingerprint", "started_at", "expires_at"); got["progress"] != float64(1) {
		t.Fatalf("first key: %v", got)
	}
	if r := holder(keys[0]+"\n", "--nonce", nonce); r.code != 1 || !strings.Contains(r.stderr, "already given") {
		t.Fatalf("repeated key: %+v", r)
	}
	if st := runCLI(t, e, "", "operator", "generate-root", "status"); !strings.Contains(st.stdout, fp) || !strings.Contains(st.stdout, "1 of 2") {
		t.Fatalf("status table: %q", st.stdout)
	}
	r = holder(keys[2]+"\n", "--nonce", nonce)
	if r.code != 0 || !strings.Contains(r.stdout, "Token Accessor") || !strings.Contains(r.stdout, "the requester decodes it") {
		t.Fatalf("last key: %+v", r)
	}

	// The requester decodes.
	r = runCLI(t, e, "", "operator", "generate-root", "decode", "--key-file", kf, "--format", "json")
	dec := mustJSON(t, r, "token", "accessor")
	tok := dec["token"].(string)
	if !strings.HasPrefix(tok, "wdn_") || tok == in["root_token"] {
		t.Fatalf("decoded %v", dec)
	}
	if _, err := os.Stat(kf); !os.IsNotExist(err) {
		t.Fatalf("decode left the key file: %v", err)
	}
	if st := mustJSON(t, runCLI(t, e, "", "operator", "generate-root", "status", "--format", "json"), statusKeys...); st["started"] != false {
		t.Fatalf("decode did not clear the attempt: %v", st)
	}
	for i, h := range holders {
		if strings.Contains(h.stdout+h.stderr, tok[4:]) {
			t.Fatalf("key holder output %d holds the token", i)
		}
	}
	te := env{"WARDEN_ADDR": addr, "WARDEN_CACERT": ca, "WARDEN_TOKEN": tok}
	if r := runCLI(t, te, "", "kv", "put", "gen/check", "k=v"); r.code != 0 {
		t.Fatalf("the new root token: %+v", r)
	}

	// Cancel with the key file (which it removes), and with an unseal key.
	kf2 := filepath.Join(dir, "c.key")
	if r := runCLI(t, e, "", "operator", "generate-root", "init", "--key-file", kf2); r.code != 0 || !strings.Contains(r.stdout, "update --nonce") {
		t.Fatalf("init: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "operator", "generate-root", "decode", "--key-file", kf2), 1, "not complete: 0 of 2")
	if r := runCLI(t, e, "", "operator", "generate-root", "cancel", "--key-file", kf2); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}
	if _, err := os.Stat(kf2); !os.IsNotExist(err) {
		t.Fatalf("cancel left the key file: %v", err)
	}
	kf3 := filepath.Join(dir, "d.key")
	if r := runCLI(t, e, "", "operator", "generate-root", "init", "--key-file", kf3); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	checkErr(t, runCLI(t, e, base64.StdEncoding.EncodeToString(make([]byte, 33))+"\n", "operator", "generate-root", "cancel", "--unseal-key"),
		1, "not one of this cluster's unseal keys")
	if r := runCLI(t, e, keys[1]+"\n", "operator", "generate-root", "cancel", "--unseal-key"); r.code != 0 {
		t.Fatalf("cancel --unseal-key: %+v", r)
	}
	checkErr(t, runCLI(t, e, "", "operator", "generate-root", "decode", "--key-file", kf3), 1, "no root generation attempt")
	os.Chmod(kf3, 0o644)
	checkErr(t, runCLI(t, e, "", "operator", "generate-root", "decode", "--key-file", kf3), 1, "must be 0600")

	// init --wait: the requester's command decodes the token itself once
	// the key holders are done.
	pr, pw := io.Pipe()
	type waited struct {
		code   int
		stderr string
	}
	exited := make(chan waited, 1)
	go func() {
		var errb strings.Builder
		code := run(context.Background(), []string{"operator", "generate-root", "init", "--wait", "--key-file", filepath.Join(dir, "w.key")},
			strings.NewReader(""), pw, &errb, e.get)
		pw.Close()
		exited <- waited{code, errb.String()}
	}()
	lines := bufio.NewScanner(pr)
	field := func(name string) string {
		t.Helper()
		for lines.Scan() {
			if v, ok := strings.CutPrefix(lines.Text(), name); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("init --wait printed no %q line", name)
		return ""
	}
	wn := field("Nonce")
	for _, k := range []string{keys[1], keys[2]} {
		if r := holder(k+"\n", "--nonce", wn); r.code != 0 {
			t.Fatalf("update: %+v", r)
		}
	}
	wtok := field("Root Token")
	go io.Copy(io.Discard, pr)
	select {
	case w := <-exited:
		if w.code != 0 {
			t.Fatalf("init --wait: exit %d: %s", w.code, w.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("init --wait did not return")
	}
	te["WARDEN_TOKEN"] = wtok
	if r := runCLI(t, te, "", "kv", "get", "gen/check"); r.code != 0 || wtok == tok {
		t.Fatalf("the token of init --wait: %+v", r)
	}
}

// FuzzParseGenRootKeyFile: the key file parser never panics and accepts
// only a file whose private key matches its fingerprint.
func FuzzParseGenRootKeyFile(f *testing.F) {
	key, err := client.NewGenerateRootKey()
	if err != nil {
		f.Fatal(err)
	}
	priv, _ := key.Bytes()
	good, _ := json.Marshal(genRootKeyFile{Version: 1, Server: "https://127.0.0.1:8200", Nonce: strings.Repeat("ab", 16),
		Fingerprint: key.Fingerprint(), PrivateKey: base64.StdEncoding.EncodeToString(priv)})
	f.Add(good)
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, k, err := parseGenRootKeyFile(b)
		if err != nil {
			if k != nil {
				t.Fatal("a key with an error")
			}
			return
		}
		if k.Fingerprint() != kf.Fingerprint || kf.Version != 1 || len(kf.Nonce) != 32 {
			t.Fatalf("accepted %+v", kf)
		}
	})
}
