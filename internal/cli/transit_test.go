package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTransitUsageErrors(t *testing.T) {
	e := env{}
	for _, tc := range []struct {
		args     []string
		contains string
	}{
		{[]string{"transit", "encrypt", "k"}, "give --plaintext-file FILE, or - to read stdin"},
		{[]string{"transit", "encrypt", "k", "-", "--plaintext-file", "f"}, "give --plaintext-file FILE or - (stdin), not both"},
		{[]string{"transit", "encrypt", "k", "file.txt"}, `unexpected argument "file.txt"`},
		{[]string{"transit", "encrypt"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"transit", "decrypt", "k"}, "accepts 2 arg(s)"},
		{[]string{"transit", "rewrap", "k"}, "accepts 2 arg(s)"},
		{[]string{"transit", "sign", "k", "-", "--input-file", "f"}, "not both"},
		{[]string{"transit", "sign", "k", "--algorithm", "sha1"}, "--algorithm: must be pss or pkcs1v15"},
		{[]string{"transit", "hmac", "k", "a", "b"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"transit", "verify", "k"}, "give --signature S or --hmac H, exactly one"},
		{[]string{"transit", "verify", "k", "--signature", "s", "--hmac", "h"}, "exactly one"},
		{[]string{"transit", "key", "config", "k"}, "nothing to change"},
		{[]string{"transit", "key", "config", "k", "--min-decryption-version", "x"}, "invalid argument"},
		{[]string{"transit", "key", "trim", "k"}, "--min-available N is required"},
		{[]string{"transit", "key", "create", "k", "--auto-rotate", "monthly"}, "invalid argument"},
		{[]string{"transit", "key", "create"}, "accepts 1 arg(s)"},
		{[]string{"transit", "key", "show", "k", "--format", "yaml"}, "must be table or json"},
		{[]string{"transit", "key", "list", "k"}, "unknown command"},
		{[]string{"transit", "datakey", "k", "--bits", "many"}, "invalid argument"},
		{[]string{"transit", "export", "k"}, "--kind: must be encryption-key, signing-key, hmac-key or public-key"},
		{[]string{"transit", "export", "k", "--kind", "private-key"}, `got "private-key"`},
	} {
		t.Run(strings.Join(tc.args[1:], "_"), func(t *testing.T) {
			checkErr(t, runCLI(t, e, "", tc.args...), ExitUsage, tc.contains)
		})
	}
}

// transitStandIn is an HTTPS stand-in for the transit API that records the
// last request and answers {"data": answer}: it checks what the CLI sends
// (inputs read from files and stdin, exactly) and how it prints answers.
type transitStandIn struct {
	mu     sync.Mutex
	path   string
	body   map[string]any
	answer string
}

func newTransitStandIn(t *testing.T) (*transitStandIn, env) {
	s := &transitStandIn{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.path, s.body = r.Method+" "+r.URL.Path, nil
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			json.Unmarshal(b, &s.body)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":`+s.answer+`}`)
	}))
	t.Cleanup(srv.Close)
	return s, env{"WARDEN_ADDR": srv.URL, "WARDEN_CACERT": caFile(t, srv), "WARDEN_TOKEN": "wdn_test"}
}

func (s *transitStandIn) set(answer string) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

func (s *transitStandIn) sent(t *testing.T, path string, fields map[string]any) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path != path {
		t.Fatalf("request %s, want %s", s.path, path)
	}
	if len(s.body) != len(fields) {
		t.Fatalf("body %v, want %v", s.body, fields)
	}
	for k, v := range fields {
		if s.body[k] != v {
			t.Fatalf("body %v, want %v", s.body, fields)
		}
	}
}

func TestTransitInputAndOutput(t *testing.T) {
	s, e := newTransitStandIn(t)
	ok := func(r result) result {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d: %q", r.code, r.stderr)
		}
		return r
	}

	// encrypt: a file's bytes exactly (binary, trailing newline kept), or
	// stdin; the context is sent base64; the ciphertext alone is printed.
	s.set(`{"ciphertext":"wdn:v3:QUJD","key_version":3}`)
	file := tempFile(t, "pt", "\x00\xffhello\n")
	if r := ok(runCLI(t, e, "", "transit", "encrypt", "k", "--plaintext-file", file, "--context", "tenant-1")); r.stdout != "wdn:v3:QUJD\n" {
		t.Fatalf("encrypt output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/encrypt/k", map[string]any{"plaintext": "AP9oZWxsbwo=", "context": "dGVuYW50LTE="})
	ok(runCLI(t, e, "from stdin", "transit", "encrypt", "k", "-"))
	s.sent(t, "POST /v1/transit/encrypt/k", map[string]any{"plaintext": "ZnJvbSBzdGRpbg=="})
	ok(runCLI(t, e, "", "transit", "encrypt", "k", "-")) // empty stdin: the empty plaintext
	s.sent(t, "POST /v1/transit/encrypt/k", map[string]any{"plaintext": ""})
	mustJSON(t, runCLI(t, e, "x", "transit", "encrypt", "k", "-", "--format", "json"), "ciphertext", "key_version")
	checkErr(t, runCLI(t, e, "", "transit", "encrypt", "k", "--plaintext-file", file+".missing"), ExitError, "--plaintext-file: open ")

	// rewrap and decrypt take CIPHERTEXT or - (stdin, trimmed); decrypt
	// writes the plaintext raw.
	ok(runCLI(t, e, "wdn:v1:QUJD\n", "transit", "rewrap", "k", "-"))
	s.sent(t, "POST /v1/transit/rewrap/k", map[string]any{"ciphertext": "wdn:v1:QUJD"})
	s.set(`{"plaintext":"AP9oZWxsbwo="}`)
	if r := ok(runCLI(t, e, "", "transit", "decrypt", "k", "wdn:v3:QUJD", "--context", "tenant-1")); r.stdout != "\x00\xffhello\n" {
		t.Fatalf("decrypt output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/decrypt/k", map[string]any{"ciphertext": "wdn:v3:QUJD", "context": "dGVuYW50LTE="})
	if m := mustJSON(t, runCLI(t, e, "", "transit", "decrypt", "k", "wdn:v3:QUJD", "--format", "json"), "plaintext"); m["plaintext"] != "AP9oZWxsbwo=" {
		t.Fatalf("decrypt json %v", m)
	}

	// sign, hmac and verify read stdin when no input is named.
	s.set(`{"signature":"wdn:v1:c2ln","key_version":1}`)
	if r := ok(runCLI(t, e, "msg", "transit", "sign", "k", "--algorithm", "pkcs1v15")); r.stdout != "wdn:v1:c2ln\n" {
		t.Fatalf("sign output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/sign/k", map[string]any{"input": "bXNn", "signature_algorithm": "pkcs1v15"})
	s.set(`{"hmac":"wdn:v1:aG1h","key_version":1}`)
	ok(runCLI(t, e, "", "transit", "hmac", "k", "--input-file", file))
	s.sent(t, "POST /v1/transit/hmac/k", map[string]any{"input": "AP9oZWxsbwo="})
	s.set(`{"valid":true}`)
	if r := ok(runCLI(t, e, "msg", "transit", "verify", "k", "--signature", "wdn:v1:c2ln")); r.stdout != "valid\n" {
		t.Fatalf("verify output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/verify/k", map[string]any{"input": "bXNn", "signature": "wdn:v1:c2ln"})
	s.set(`{"valid":false}`)
	r := runCLI(t, e, "msg", "transit", "verify", "k", "--hmac", "wdn:v1:aG1h", "-")
	checkErr(t, r, ExitError, "not valid")
	if r.stdout != "invalid\n" {
		t.Fatalf("verify output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/verify/k", map[string]any{"input": "bXNn", "hmac": "wdn:v1:aG1h"})

	// datakey: the table shows the plaintext key only when it was sent.
	s.set(`{"ciphertext":"wdn:v1:QUJD","key_version":1}`)
	if r := ok(runCLI(t, e, "", "transit", "datakey", "k", "--wrapped-only", "--bits", "512")); strings.Contains(r.stdout, "Plaintext") || !strings.Contains(r.stdout, "wdn:v1:QUJD") {
		t.Fatalf("datakey output %q", r.stdout)
	}
	s.sent(t, "POST /v1/transit/datakey/wrapped/k", map[string]any{"bits": 512.0})

	// export: one version alone, several each under its number.
	s.set(`{"name":"k","type":"ecdsa-p256","keys":{"10":"-----BEGIN PUBLIC KEY-----\nB\n-----END PUBLIC KEY-----\n","2":"A"}}`)
	if r := ok(runCLI(t, e, "", "transit", "export", "k", "--kind", "public-key")); r.stdout !=
		"version 2:\nA\nversion 10:\n-----BEGIN PUBLIC KEY-----\nB\n-----END PUBLIC KEY-----\n" {
		t.Fatalf("export output %q", r.stdout)
	}
	s.sent(t, "GET /v1/transit/export/public-key/k", nil)
	s.set(`{"name":"k","type":"ed25519","keys":{"2":"A"}}`)
	if r := ok(runCLI(t, e, "", "transit", "export", "k", "--kind", "public-key", "--version", "2")); r.stdout != "A\n" {
		t.Fatalf("export output %q", r.stdout)
	}
	s.sent(t, "GET /v1/transit/export/public-key/k/2", nil)

	// key config sends only the flags given.
	s.set(`{"name":"k","type":"aes256-gcm96","keys":{"1":1764718205},"latest_version":1}`)
	ok(runCLI(t, e, "", "transit", "key", "config", "k", "--deletion-allowed=false", "--min-encryption-version", "0", "--auto-rotate", "0"))
	s.sent(t, "POST /v1/transit/keys/k/config", map[string]any{"deletion_allowed": false, "min_encryption_version": 0.0, "auto_rotate_period": "0s"})
	if r := ok(runCLI(t, e, "", "transit", "key", "show", "k")); !strings.Contains(r.stdout, "Auto Rotate Period       off") ||
		!strings.Contains(r.stdout, "2025-12-02T23:30:05Z") {
		t.Fatalf("key show output %q", r.stdout)
	}
}

// TestTransitInputLimit checks that an input over the limit is refused
// before anything is sent, naming where it came from.
func TestTransitInputLimit(t *testing.T) {
	big := strings.Repeat("x", maxTransitInput+1)
	checkErr(t, runCLI(t, env{}, big, "transit", "encrypt", "k", "-"), ExitError, "stdin: larger than 12517376 bytes")
	checkErr(t, runCLI(t, env{}, "", "transit", "sign", "k", "--input-file", tempFile(t, "big", big)), ExitError,
		"big: larger than 12517376 bytes")
}
