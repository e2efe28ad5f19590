package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// transitKeyFields are the fields of the key view (docs/api.md); kdf only
// for derived keys.
var transitKeyFields = []string{"name", "type", "keys", "latest_version", "min_available_version",
	"min_decryption_version", "min_encryption_version", "deletion_allowed", "exportable", "derived",
	"supports_encryption", "supports_decryption", "supports_derivation", "supports_signing",
	"auto_rotate_period", "auto_retire_after", "allow_plaintext_backup", "imported_key"}

// TestTransitAgainstRealServer drives every transit command against a real
// server on a 127.0.0.1:0 port.
func TestTransitAgainstRealServer(t *testing.T) {
	e := unsealedServer(t)
	ok := func(stdin string, args ...string) string {
		t.Helper()
		r := runCLI(t, e, stdin, append([]string{"transit"}, args...)...)
		if r.code != 0 {
			t.Fatalf("warden transit %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	fails := func(code int, contains string, stdin string, args ...string) result {
		t.Helper()
		r := runCLI(t, e, stdin, append([]string{"transit"}, args...)...)
		checkErr(t, r, code, contains)
		// Neither the plaintext nor the token is ever in an error.
		if strings.Contains(r.stderr, "line one") || strings.Contains(r.stderr, e["WARDEN_TOKEN"]) {
			t.Fatalf("secret in error output: %q", r.stderr)
		}
		return r
	}
	jsonOf := func(stdin string, args ...string) map[string]any {
		t.Helper()
		out := ok(stdin, append(args, "--format", "json")...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("warden transit %s --format json: %v\n%s", strings.Join(args, " "), err, out)
		}
		return m
	}
	keyView := func(m map[string]any) map[string]any {
		t.Helper()
		for _, f := range transitKeyFields {
			if _, ok := m[f]; !ok {
				t.Fatalf("key view lacks %q: %v", f, m)
			}
		}
		return m
	}
	plain := "line one\n\x00binary\xff and a trailing newline\n"
	file := tempFile(t, "plain", plain)

	// Every type: create (JSON key view), and its one kind of operation.
	for _, typ := range []string{"aes256-gcm96", "chacha20-poly1305", "ed25519", "ecdsa-p256", "rsa-3072", "hmac"} {
		k := keyView(jsonOf("", "key", "create", "k-"+typ, "--type", typ))
		if k["type"] != typ || k["latest_version"] != 1.0 || k["exportable"] != false || k["deletion_allowed"] != false {
			t.Fatalf("created: %v", k)
		}
		name := "k-" + typ
		switch typ {
		case "aes256-gcm96", "chacha20-poly1305":
			ct := strings.TrimSpace(ok("", "encrypt", name, "--plaintext-file", file))
			if !strings.HasPrefix(ct, "wdn:v1:") || strings.Contains(ct, "line one") {
				t.Fatalf("ciphertext %q", ct)
			}
			if got := ok("", "decrypt", name, ct); got != plain {
				t.Fatalf("decrypt: %q", got)
			}
			ct = strings.TrimSpace(ok(plain, "encrypt", name, "-"))
			if got := ok(ct+"\n", "decrypt", name, "-"); got != plain {
				t.Fatalf("decrypt from stdin: %q", got)
			}
			d := jsonOf("", "decrypt", name, ct)
			if b, _ := base64.StdEncoding.DecodeString(d["plaintext"].(string)); string(b) != plain {
				t.Fatalf("decrypt json: %v", d)
			}
			// A ciphertext of another key does not decrypt, and says no more.
			other := strings.TrimSpace(ok("x", "encrypt", "k-aes256-gcm96", "-"))
			if typ != "aes256-gcm96" {
				fails(ExitError, "cannot decrypt", "", "decrypt", name, other)
			}
		case "ed25519", "ecdsa-p256", "rsa-3072":
			sig := strings.TrimSpace(ok(plain, "sign", name))
			if !strings.HasPrefix(sig, "wdn:v1:") {
				t.Fatalf("signature %q", sig)
			}
			if out := ok("", "verify", name, "--signature", sig, "--input-file", file); out != "valid\n" {
				t.Fatalf("verify: %q", out)
			}
			r := fails(ExitError, "not valid", plain+"tampered", "verify", name, "--signature", sig, "-")
			if r.stdout != "invalid\n" {
				t.Fatalf("verify tampered: %q", r.stdout)
			}
			if v := jsonOf("", "verify", name, "--signature", sig, "--input-file", file); v["valid"] != true {
				t.Fatalf("verify json: %v", v)
			}
			if s := jsonOf(plain, "sign", name, "-"); s["key_version"] != 1.0 {
				t.Fatalf("sign json: %v", s)
			}
			if typ == "rsa-3072" {
				sig := strings.TrimSpace(ok(plain, "sign", name, "--algorithm", "pkcs1v15"))
				ok(plain, "verify", name, "--signature", sig, "--algorithm", "pkcs1v15")
				fails(ExitError, "not valid", plain, "verify", name, "--signature", sig)
			} else {
				fails(ExitError, "signature_algorithm", plain, "sign", name, "--algorithm", "pss")
			}
			// The public key is exported though the key is not exportable.
			if pub := ok("", "export", name, "--kind", "public-key", "--version", "1"); pub == "" {
				t.Fatal("no public key")
			}
			fails(ExitError, "exportable", "", "export", name, "--kind", "signing-key")
		case "hmac":
			h := strings.TrimSpace(ok("", "hmac", name, "--input-file", file))
			if !strings.HasPrefix(h, "wdn:v1:") {
				t.Fatalf("hmac %q", h)
			}
			if again := jsonOf(plain, "hmac", name); again["hmac"] != h {
				t.Fatalf("hmac of the same input differs: %v", again)
			}
			ok(plain, "verify", name, "--hmac", h)
			fails(ExitError, "not valid", "other", "verify", name, "--hmac", h)
			fails(ExitError, "", plain, "encrypt", name, "-")
		}
	}

	if l := jsonOf("", "key", "list"); len(l["keys"].([]any)) != 6 {
		t.Fatalf("key list: %v", l)
	}
	if out := ok("", "key", "list"); !strings.Contains(out, "k-ed25519\n") {
		t.Fatalf("key list table: %q", out)
	}
	if out := ok("", "key", "show", "k-ed25519"); !strings.Contains(out, "Latest Version") || !strings.Contains(out, "signing") {
		t.Fatalf("key show: %q", out)
	}
	fails(ExitError, "404", "", "key", "show", "nope")

	// Derived: the context is needed, and the right one.
	keyView(jsonOf("", "key", "create", "tenants", "--derived"))
	ct := strings.TrimSpace(ok(plain, "encrypt", "tenants", "--context", "tenant-1", "-"))
	if got := ok("", "decrypt", "tenants", ct, "--context", "tenant-1"); got != plain {
		t.Fatalf("derived decrypt: %q", got)
	}
	fails(ExitError, "cannot decrypt", "", "decrypt", "tenants", ct, "--context", "tenant-2")
	fails(ExitError, "context", plain, "encrypt", "tenants", "-")
	fails(ExitError, "context", plain, "encrypt", "k-aes256-gcm96", "--context", "tenant-1", "-")

	// Rotation and rewrap; data keys.
	ct1 := strings.TrimSpace(ok(plain, "encrypt", "k-aes256-gcm96", "-"))
	if k := jsonOf("", "key", "rotate", "k-aes256-gcm96"); k["latest_version"] != 2.0 {
		t.Fatalf("rotate: %v", k)
	}
	ct2 := strings.TrimSpace(ok("", "rewrap", "k-aes256-gcm96", ct1))
	if !strings.HasPrefix(ct2, "wdn:v2:") {
		t.Fatalf("rewrapped %q", ct2)
	}
	if got := ok("", "decrypt", "k-aes256-gcm96", ct2); got != plain {
		t.Fatalf("decrypt rewrapped: %q", got)
	}
	if rw := jsonOf("", "rewrap", "tenants", ct, "--context", "tenant-1"); !strings.HasPrefix(rw["ciphertext"].(string), "wdn:v1:") {
		t.Fatalf("derived rewrap: %v", rw)
	}
	wrapped := jsonOf("", "datakey", "k-aes256-gcm96", "--wrapped-only")
	if _, has := wrapped["plaintext"]; has || wrapped["key_version"] != 2.0 {
		t.Fatalf("datakey --wrapped-only: %v", wrapped)
	}
	if dk := ok("", "decrypt", "k-aes256-gcm96", wrapped["ciphertext"].(string)); len(dk) != 32 {
		t.Fatalf("data key of %d bytes", len(dk))
	}
	full := jsonOf("", "datakey", "k-aes256-gcm96", "--bits", "512")
	dk, _ := base64.StdEncoding.DecodeString(full["plaintext"].(string))
	if got := ok("", "decrypt", "k-aes256-gcm96", full["ciphertext"].(string)); len(dk) != 64 || !bytes.Equal([]byte(got), dk) {
		t.Fatalf("datakey: %d bytes, unwrapped %d", len(dk), len(got))
	}
	if out := ok("", "datakey", "k-aes256-gcm96"); !strings.Contains(out, "Plaintext") || !strings.Contains(out, "Ciphertext") {
		t.Fatalf("datakey table: %q", out)
	}

	// Config and trim: versions below min_decryption_version stop
	// decrypting; trim cannot pass it.
	ok("", "key", "rotate", "k-aes256-gcm96")
	k := jsonOf("", "key", "config", "k-aes256-gcm96", "--min-decryption-version", "2", "--auto-rotate", "720h")
	if k["min_decryption_version"] != 2.0 || k["auto_rotate_period"] != float64(720*3600) {
		t.Fatalf("config: %v", k)
	}
	fails(ExitError, "ciphertext: version 1 is below min_decryption_version 2", "", "decrypt", "k-aes256-gcm96", ct1)
	fails(ExitError, "min_available_version", "", "key", "trim", "k-aes256-gcm96", "--min-available", "3")
	if k := jsonOf("", "key", "trim", "k-aes256-gcm96", "--min-available", "2"); k["min_available_version"] != 2.0 || len(k["keys"].(map[string]any)) != 2 {
		t.Fatalf("trim: %v", k)
	}
	if got := ok("", "decrypt", "k-aes256-gcm96", ct2); got != plain {
		t.Fatalf("decrypt after trim: %q", got)
	}

	// Deletion and export protections.
	fails(ExitError, "deletion_allowed", "", "key", "delete", "k-chacha20-poly1305")
	ok("", "key", "show", "k-chacha20-poly1305")
	fails(ExitError, "exportable", "", "export", "k-chacha20-poly1305", "--kind", "encryption-key")
	fails(ExitError, "exportable", "", "key", "config", "k-chacha20-poly1305", "--exportable")
	ok("", "key", "config", "k-chacha20-poly1305", "--deletion-allowed")
	if out := ok("", "key", "delete", "k-chacha20-poly1305"); !strings.Contains(out, "Deleted transit key k-chacha20-poly1305") {
		t.Fatalf("delete: %q", out)
	}
	fails(ExitError, "404", "", "key", "show", "k-chacha20-poly1305")
	keyView(jsonOf("", "key", "create", "portable", "--exportable", "--deletion-allowed", "--auto-retire", "48h"))
	ok("", "key", "rotate", "portable")
	ex := jsonOf("", "export", "portable", "--kind", "encryption-key")
	if keys := ex["keys"].(map[string]any); ex["name"] != "portable" || len(keys) != 2 {
		t.Fatalf("export: %v", ex)
	}
	if out := ok("", "export", "portable", "--kind", "hmac-key"); !strings.Contains(out, "version 1:\n") || !strings.Contains(out, "version 2:\n") {
		t.Fatalf("export table: %q", out)
	}
}
