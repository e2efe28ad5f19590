package server_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/auditlog"
)

// enc64 is the base64 of s, as Vault's API carries plaintexts and inputs.
func enc64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// data returns the "data" member of a transit answer.
func data(t testing.TB, r resp) map[string]any {
	t.Helper()
	d, ok := r.json(t)["data"].(map[string]any)
	if !ok {
		t.Fatalf("no data envelope: %s", r.body)
	}
	return d
}

// transit calls POST /v1/transit/<path> and returns the data of the
// answer, which must have status.
func (h *harness) transit(token, path string, body any, status int) map[string]any {
	h.t.Helper()
	return data(h.t, h.want(h.do("POST", "/v1/transit/"+path, token, body), status))
}

// transitError calls POST /v1/transit/<path>, which must answer a 400
// whose one error contains want.
func (h *harness) transitError(token, path string, body any, want string) {
	h.t.Helper()
	r := h.want(h.do("POST", "/v1/transit/"+path, token, body), 400)
	if msg := r.errorText(h.t); !strings.Contains(msg, want) {
		h.t.Fatalf("POST %s: error %q, want it to contain %q", path, msg, want)
	}
}

// results returns the batch_results of a batch answer.
func results(t testing.TB, d map[string]any) []map[string]any {
	t.Helper()
	rs, ok := d["batch_results"].([]any)
	if !ok {
		t.Fatalf("no batch_results: %v", d)
	}
	out := make([]map[string]any, len(rs))
	for i, r := range rs {
		out[i] = r.(map[string]any)
	}
	return out
}

// TestTransitRoundTrips creates a key of every type over HTTP and runs
// each operation it supports there and back.
func TestTransitRoundTrips(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	msg := enc64("attack at dawn")
	for _, typ := range []string{"aes256-gcm96", "chacha20-poly1305", "ed25519", "ecdsa-p256", "rsa-3072", "hmac"} {
		t.Run(typ, func(t *testing.T) {
			name := "k-" + typ
			v := h.transit(root, "keys/"+name, map[string]any{"type": typ}, 200)
			if v["name"] != name || v["type"] != typ || v["latest_version"] != float64(1) || v["deletion_allowed"] != false || v["exportable"] != false {
				t.Fatalf("key view %v", v)
			}
			got := data(t, h.want(h.do("GET", "/v1/transit/keys/"+name, root, nil), 200))
			if fmt.Sprint(got) != fmt.Sprint(v) {
				t.Fatalf("read %v, created %v", got, v)
			}
			signs := typ == "ed25519" || typ == "ecdsa-p256" || typ == "rsa-3072"
			k1 := got["keys"].(map[string]any)["1"]
			if pub, ok := k1.(map[string]any); signs && (!ok || pub["public_key"] == "" || pub["name"] != typ) || !signs && ok {
				t.Fatalf("keys[1] = %v", k1)
			}
			switch typ {
			case "aes256-gcm96", "chacha20-poly1305":
				ct := h.transit(root, "encrypt/"+name, map[string]any{"plaintext": msg}, 200)
				if !strings.HasPrefix(ct["ciphertext"].(string), "wdn:v1:") || ct["key_version"] != float64(1) {
					t.Fatalf("encrypt: %v", ct)
				}
				pt := h.transit(root, "decrypt/"+name, map[string]any{"ciphertext": ct["ciphertext"]}, 200)
				if pt["plaintext"] != msg {
					t.Fatalf("decrypt: %v", pt)
				}
				dk := h.transit(root, "datakey/plaintext/"+name, map[string]any{"bits": 512}, 200)
				raw, _ := base64.StdEncoding.DecodeString(dk["plaintext"].(string))
				if len(raw) != 64 {
					t.Fatalf("datakey of %d bytes", len(raw))
				}
				if pt := h.transit(root, "decrypt/"+name, map[string]any{"ciphertext": dk["ciphertext"]}, 200); pt["plaintext"] != dk["plaintext"] {
					t.Fatal("the data key does not decrypt to its plaintext")
				}
				if w := h.transit(root, "datakey/wrapped/"+name, nil, 200); w["plaintext"] != nil || w["ciphertext"] == nil {
					t.Fatalf("wrapped data key: %v", w)
				}
				h.transitError(root, "sign/"+name, map[string]any{"input": msg}, "type: ")
			case "hmac":
				h.transitError(root, "encrypt/"+name, map[string]any{"plaintext": msg}, "type: ")
			default:
				algs := []string{""}
				if typ == "rsa-3072" {
					algs = []string{"", "pss", "pkcs1v15"}
				}
				for _, alg := range algs {
					sig := h.transit(root, "sign/"+name, map[string]any{"input": msg, "signature_algorithm": alg}, 200)["signature"]
					if ok := h.transit(root, "verify/"+name, map[string]any{"input": msg, "signature": sig, "signature_algorithm": alg}, 200); ok["valid"] != true {
						t.Fatalf("%s signature does not verify: %v", alg, ok)
					}
					if bad := h.transit(root, "verify/"+name, map[string]any{"input": enc64("retreat"), "signature": sig, "signature_algorithm": alg}, 200); bad["valid"] != false {
						t.Fatalf("%s signature verifies another input: %v", alg, bad)
					}
				}
				h.transitError(root, "encrypt/"+name, map[string]any{"plaintext": msg}, "type: ")
				if typ != "rsa-3072" {
					h.transitError(root, "sign/"+name, map[string]any{"input": msg, "signature_algorithm": "pss"}, "signature_algorithm: ")
				}
			}
			// Every key computes HMACs.
			mac := h.transit(root, "hmac/"+name, map[string]any{"input": msg}, 200)
			if !strings.HasPrefix(mac["hmac"].(string), "wdn:v1:") || mac["key_version"] != float64(1) {
				t.Fatalf("hmac: %v", mac)
			}
			if ok := h.transit(root, "verify/"+name, map[string]any{"input": msg, "hmac": mac["hmac"]}, 200); ok["valid"] != true {
				t.Fatalf("hmac does not verify: %v", ok)
			}
			if bad := h.transit(root, "verify/"+name, map[string]any{"input": enc64("x"), "hmac": mac["hmac"]}, 200); bad["valid"] != false {
				t.Fatalf("hmac verifies another input: %v", bad)
			}
		})
	}
	l := data(t, h.want(h.do("GET", "/v1/transit/keys?list=true", root, nil), 200))
	if len(l["keys"].([]any)) != 6 {
		t.Fatalf("list: %v", l)
	}
	if l2 := data(t, h.want(h.do("LIST", "/v1/transit/keys", root, nil), 200)); fmt.Sprint(l2) != fmt.Sprint(l) {
		t.Fatalf("LIST %v, GET ?list=true %v", l2, l)
	}
}

// TestTransitBadInput: every bad input is a 400 naming the field, never a
// 500; a ciphertext that does not open says only "cannot decrypt".
func TestTransitBadInput(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.transit(root, "keys/a", nil, 200)
	h.transit(root, "keys/b", nil, 200)
	ct := h.transit(root, "encrypt/a", map[string]any{"plaintext": enc64("secret")}, 200)["ciphertext"].(string)
	tampered := ct[:len(ct)-6] + strings.Repeat("A", 2) + ct[len(ct)-4:]
	cases := []struct {
		name, path string
		body       any
		want       string
	}{
		{"plaintext not base64", "encrypt/a", map[string]any{"plaintext": "not base64!"}, "plaintext: not base64"},
		{"unknown field", "encrypt/a", map[string]any{"plaintext": enc64("x"), "plain": 1}, `unknown field "plain"`},
		{"key_version not a number", "encrypt/a", map[string]any{"plaintext": enc64("x"), "key_version": "two"}, "key_version: must be an integer"},
		{"key_version that does not exist", "encrypt/a", map[string]any{"plaintext": enc64("x"), "key_version": 7}, "key_version: "},
		{"nonce", "encrypt/a", map[string]any{"plaintext": enc64("x"), "nonce": enc64("123456789012")}, "nonce: not supported"},
		{"associated_data", "encrypt/a", map[string]any{"plaintext": enc64("x"), "associated_data": "x"}, "associated_data: not supported"},
		{"context on a key that is not derived", "encrypt/a", map[string]any{"plaintext": enc64("x"), "context": enc64("c")}, "context: not allowed"},
		{"ciphertext of another key", "decrypt/b", map[string]any{"ciphertext": ct}, "cannot decrypt"},
		{"tampered ciphertext", "decrypt/a", map[string]any{"ciphertext": tampered}, "cannot decrypt"},
		{"truncated ciphertext", "decrypt/a", map[string]any{"ciphertext": "wdn:v1:AAAA"}, "cannot decrypt"},
		{"ciphertext not base64", "decrypt/a", map[string]any{"ciphertext": "wdn:v1:%%%"}, "ciphertext: not base64"},
		{"ciphertext of a version that does not exist", "decrypt/a", map[string]any{"ciphertext": strings.Replace(ct, "v1", "v9", 1)}, "ciphertext: version 9"},
		{"no ciphertext", "decrypt/a", map[string]any{}, "ciphertext: required"},
		{"bits", "datakey/plaintext/a", map[string]any{"bits": 384}, "bits: must be 128, 256 or 512"},
		{"hash_algorithm", "hmac/a", map[string]any{"input": enc64("x"), "algorithm": "sha2-512"}, "algorithm: not supported"},
		{"partial code", "encrypt/a", map[string]any{"batch_input": []any{map[string]any{"plaintext": enc64("x")}}, "partial_failure_response_code": 500}, "partial_failure_response_code: "},
		{"data beside batch_input", "encrypt/a", map[string]any{"plaintext": enc64("x"), "batch_input": []any{map[string]any{"plaintext": enc64("x")}}}, "plaintext: give it in each item"},
		{"bad key name", "encrypt/.hidden", map[string]any{"plaintext": enc64("x")}, "name: "},
		{"unknown type", "keys/c", map[string]any{"type": "aes128-gcm96"}, "type: "},
		{"auto_rotate_period too short", "keys/c", map[string]any{"auto_rotate_period": "1m"}, "auto_rotate_period: "},
		{"allow_plaintext_backup", "keys/c", map[string]any{"allow_plaintext_backup": true}, "allow_plaintext_backup: "},
		{"trim without a version", "keys/a/trim", map[string]any{}, "min_available_version: required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { h.transitError(root, tc.path, tc.body, tc.want) })
	}
	h.want(h.do("POST", "/v1/transit/encrypt/nope", root, map[string]any{"plaintext": enc64("x")}), 404)
	h.want(h.do("GET", "/v1/transit/keys/c", root, nil), 404) // no refused create made it
}

// TestTransitVersions: rotate, encrypt with an older version, rewrap to
// the latest, min_decryption_version and min_encryption_version, trim.
func TestTransitVersions(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.transit(root, "keys/app", nil, 200)
	ct1 := h.transit(root, "encrypt/app", map[string]any{"plaintext": enc64("v1 data")}, 200)["ciphertext"]
	for want := 2; want <= 4; want++ {
		if v := h.transit(root, "keys/app/rotate", nil, 200); v["latest_version"] != float64(want) || len(v["keys"].(map[string]any)) != want {
			t.Fatalf("rotation %d: %v", want, v)
		}
	}
	ct4 := h.transit(root, "encrypt/app", map[string]any{"plaintext": enc64("v4 data")}, 200)
	if !strings.HasPrefix(ct4["ciphertext"].(string), "wdn:v4:") || ct4["key_version"] != float64(4) {
		t.Fatalf("encrypt after rotation: %v", ct4)
	}
	ct2 := h.transit(root, "encrypt/app", map[string]any{"plaintext": enc64("v2 data"), "key_version": 2}, 200)["ciphertext"].(string)
	if !strings.HasPrefix(ct2, "wdn:v2:") {
		t.Fatalf("encrypt with key_version 2: %s", ct2)
	}
	re := h.transit(root, "rewrap/app", map[string]any{"ciphertext": ct1}, 200)
	if !strings.HasPrefix(re["ciphertext"].(string), "wdn:v4:") || re["key_version"] != float64(4) {
		t.Fatalf("rewrap: %v", re)
	}
	if pt := h.transit(root, "decrypt/app", map[string]any{"ciphertext": re["ciphertext"]}, 200); pt["plaintext"] != enc64("v1 data") || pt["key_version"] != float64(4) {
		t.Fatalf("decrypt of the rewrapped ciphertext: %v", pt)
	}
	// Retire versions 1 and 2.
	v := h.transit(root, "keys/app/config", map[string]any{"min_decryption_version": 3, "min_encryption_version": "4"}, 200)
	if v["min_decryption_version"] != float64(3) || v["min_encryption_version"] != float64(4) {
		t.Fatalf("config: %v", v)
	}
	h.transitError(root, "decrypt/app", map[string]any{"ciphertext": ct1}, "ciphertext: version 1 is below min_decryption_version 3")
	h.transitError(root, "rewrap/app", map[string]any{"ciphertext": ct2}, "ciphertext: version 2 is below min_decryption_version 3")
	h.transitError(root, "encrypt/app", map[string]any{"plaintext": enc64("x"), "key_version": 3}, "key_version: ")
	h.transitError(root, "keys/app/config", map[string]any{"min_decryption_version": 9}, "min_decryption_version: ")
	// Trim: versions below 3 are gone for good; trimming further than
	// min_decryption_version is refused.
	h.transitError(root, "keys/app/trim", map[string]any{"min_available_version": 4}, "min_available_version: ")
	v = h.transit(root, "keys/app/trim", map[string]any{"min_available_version": "3"}, 200)
	if v["min_available_version"] != float64(3) || len(v["keys"].(map[string]any)) != 2 {
		t.Fatalf("trim: %v", v)
	}
	h.transitError(root, "keys/app/config", map[string]any{"min_decryption_version": 2}, "min_decryption_version: ")
	if pt := h.transit(root, "decrypt/app", map[string]any{"ciphertext": ct4["ciphertext"]}, 200); pt["plaintext"] != enc64("v4 data") {
		t.Fatalf("decrypt of v4: %v", pt)
	}
	// Periods arrive as Go durations or seconds and show as seconds.
	v = h.transit(root, "keys/app/config", map[string]any{"auto_rotate_period": "720h", "auto_retire_after": 86400}, 200)
	if v["auto_rotate_period"] != float64(720*3600) || v["auto_retire_after"] != float64(86400) {
		t.Fatalf("periods: %v", v)
	}
}

// TestTransitDerived: a derived key needs a context, and a ciphertext
// opens only with its own.
func TestTransitDerived(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	v := h.transit(root, "keys/tenant", map[string]any{"derived": true, "type": "chacha20-poly1305"}, 200)
	if v["derived"] != true || v["kdf"] != "hkdf_sha256" {
		t.Fatalf("derived key view: %v", v)
	}
	h.transitError(root, "encrypt/tenant", map[string]any{"plaintext": enc64("x")}, "context: required")
	h.transitError(root, "encrypt/tenant", map[string]any{"plaintext": enc64("x"), "context": "%%"}, "context: not base64")
	ct := h.transit(root, "encrypt/tenant", map[string]any{"plaintext": enc64("for alice"), "context": enc64("alice")}, 200)["ciphertext"]
	if pt := h.transit(root, "decrypt/tenant", map[string]any{"ciphertext": ct, "context": enc64("alice")}, 200); pt["plaintext"] != enc64("for alice") {
		t.Fatalf("decrypt: %v", pt)
	}
	h.transitError(root, "decrypt/tenant", map[string]any{"ciphertext": ct, "context": enc64("bob")}, "cannot decrypt")
	h.transitError(root, "decrypt/tenant", map[string]any{"ciphertext": ct}, "context: required")
	dk := h.transit(root, "datakey/wrapped/tenant", map[string]any{"context": enc64("alice"), "bits": "128"}, 200)
	if pt := h.transit(root, "decrypt/tenant", map[string]any{"ciphertext": dk["ciphertext"], "context": enc64("alice")}, 200); len(pt["plaintext"].(string)) != 24 {
		t.Fatalf("128-bit data key: %v", pt)
	}
	h.transitError(root, "keys/signer", map[string]any{"derived": true, "type": "ed25519"}, "derived: ")
}

// TestTransitBatch: batch_input with good and bad items answers every
// item in order; the status is Vault's.
func TestTransitBatch(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.transit(root, "keys/b", nil, 200)
	mixed := []any{
		map[string]any{"plaintext": enc64("one"), "reference": "r1"},
		map[string]any{"plaintext": "not base64!", "reference": "r2"},
		map[string]any{"plaintext": enc64("three")},
	}
	rs := results(t, h.transit(root, "encrypt/b", map[string]any{"batch_input": mixed}, 400))
	if len(rs) != 3 || rs[0]["ciphertext"] == nil || rs[0]["reference"] != "r1" || rs[1]["error"] != "plaintext: not base64" ||
		rs[1]["reference"] != "r2" || rs[1]["ciphertext"] != nil || rs[2]["ciphertext"] == nil {
		t.Fatalf("mixed batch: %v", rs)
	}
	rs = results(t, h.transit(root, "encrypt/b", map[string]any{"batch_input": mixed, "partial_failure_response_code": 200}, 200))
	if len(rs) != 3 || rs[1]["error"] == nil {
		t.Fatalf("partial failure 200: %v", rs)
	}
	// Every item failed: 400 whatever partial_failure_response_code says.
	results(t, h.transit(root, "encrypt/b", map[string]any{"batch_input": mixed[1:2], "partial_failure_response_code": 200}, 400))
	// Decrypt: a tampered item says only "cannot decrypt".
	good := rs[0]["ciphertext"].(string)
	bad := good[:len(good)-4] + "AAA="
	rs = results(t, h.transit(root, "decrypt/b", map[string]any{"partial_failure_response_code": "422", "batch_input": []any{
		map[string]any{"ciphertext": good}, map[string]any{"ciphertext": bad}}}, 422))
	if rs[0]["plaintext"] != enc64("one") || rs[1]["error"] != "cannot decrypt" {
		t.Fatalf("decrypt batch: %v", rs)
	}
	// All good: 200.
	rs = results(t, h.transit(root, "hmac/b", map[string]any{"batch_input": []any{map[string]any{"input": enc64("a")}, map[string]any{"input": enc64("b")}}}, 200))
	if len(rs) != 2 || rs[0]["hmac"] == rs[1]["hmac"] {
		t.Fatalf("hmac batch: %v", rs)
	}
	// Options beside batch_input apply to the items that leave them
	// unset, as in Vault (key_version of a batch sign or hmac).
	h.transit(root, "keys/b/rotate", nil, 200)
	rs = results(t, h.transit(root, "hmac/b", map[string]any{"key_version": 1, "algorithm": "sha2-256",
		"batch_input": []any{map[string]any{"input": enc64("a")}, map[string]any{"input": enc64("a"), "key_version": "2"}}}, 200))
	if rs[0]["key_version"] != float64(1) || !strings.HasPrefix(rs[0]["hmac"].(string), "wdn:v1:") || rs[1]["key_version"] != float64(2) {
		t.Fatalf("hmac batch with a top-level key_version: %v", rs)
	}
	rs = results(t, h.transit(root, "encrypt/b", map[string]any{"nonce": enc64("123456789012"),
		"batch_input": []any{map[string]any{"plaintext": enc64("a")}}}, 400))
	if !strings.HasPrefix(rs[0]["error"].(string), "nonce: ") {
		t.Fatalf("nonce beside batch_input: %v", rs)
	}
	// Over 1,000 items: refused before any work.
	many := make([]any, 1001)
	for i := range many {
		many[i] = map[string]any{"plaintext": enc64("x")}
	}
	h.transitError(root, "encrypt/b", map[string]any{"batch_input": many}, "batch_input: more than 1000 items")
	if rs := results(t, h.transit(root, "encrypt/b", map[string]any{"batch_input": many[:1000]}, 200)); len(rs) != 1000 {
		t.Fatalf("%d results of 1000", len(rs))
	}
}

// TestTransitProtections: deletion and export are refused by policy (403)
// and, even to root, by the key's configuration (400).
func TestTransitProtections(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "keyops", `permit (principal in Group::"keyops", action in [Action::"transit.key.create",
  Action::"transit.key.read", Action::"transit.key.config", Action::"transit.key.rotate"], resource is Key);`), 200)
	ops := h.token(root, "olga", "keyops")
	h.transit(ops, "keys/keep", map[string]any{"exportable": true}, 200)
	h.transit(ops, "keys/sig", map[string]any{"type": "ed25519"}, 200)

	// Delete: 403 without transit.key.delete; 400 with it while
	// deletion_allowed is false.
	h.want(h.do("DELETE", "/v1/transit/keys/keep", ops, nil), 403)
	r := h.want(h.do("DELETE", "/v1/transit/keys/keep", root, nil), 400)
	if !strings.Contains(r.errorText(t), "deletion_allowed") {
		t.Fatalf("delete: %s", r.body)
	}
	h.transit(ops, "keys/keep/config", map[string]any{"deletion_allowed": "true"}, 200)
	h.want(h.do("DELETE", "/v1/transit/keys/keep", ops, nil), 403)
	h.want(h.do("DELETE", "/v1/transit/keys/keep", root, nil), 204)
	h.want(h.do("GET", "/v1/transit/keys/keep", ops, nil), 404)

	// Export: 403 without transit.key.export; 400 for a key that is not
	// exportable; public keys of a signing key always.
	h.transit(ops, "keys/exp", map[string]any{"exportable": true}, 200)
	h.want(h.do("GET", "/v1/transit/export/encryption-key/exp", ops, nil), 403)
	e := data(t, h.want(h.do("GET", "/v1/transit/export/encryption-key/exp", root, nil), 200))
	if k := e["keys"].(map[string]any)["1"].(string); e["name"] != "exp" || len(k) != 44 {
		t.Fatalf("export: name %v, a key of %d characters", e["name"], len(k))
	}
	h.transit(ops, "keys/exp/rotate", nil, 200)
	if e := data(t, h.want(h.do("GET", "/v1/transit/export/encryption-key/exp/latest", root, nil), 200)); len(e["keys"].(map[string]any)) != 1 || e["keys"].(map[string]any)["2"] == nil {
		t.Fatalf("export of the latest: %v", e["keys"] != nil)
	}
	h.want(h.do("GET", "/v1/transit/export/encryption-key/exp/x", root, nil), 400)
	h.want(h.do("GET", "/v1/transit/export/signing-key/exp", root, nil), 400)
	h.transit(ops, "keys/exp/config", map[string]any{"exportable": false}, 200)
	r = h.want(h.do("GET", "/v1/transit/export/encryption-key/exp", root, nil), 400)
	if !strings.Contains(r.errorText(t), "exportable") {
		t.Fatalf("export of a key no longer exportable: %s", r.body)
	}
	h.transitError(root, "keys/exp/config", map[string]any{"exportable": true}, "exportable: ")
	h.want(h.do("GET", "/v1/transit/export/signing-key/sig", root, nil), 400)
	if e := data(t, h.want(h.do("GET", "/v1/transit/export/public-key/sig", root, nil), 200)); len(e["keys"].(map[string]any)["1"].(string)) != 44 {
		t.Fatalf("public key export: %v", e)
	}
	// The key managers use no key.
	h.want(h.do("POST", "/v1/transit/encrypt/exp", ops, map[string]any{"plaintext": enc64("x")}), 403)
}

// TestTransitEncryptNotDecrypt: a policy lets a service encrypt with its
// keys (by the key's name attribute) and nothing else.
func TestTransitEncryptNotDecrypt(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "ingest", `permit (principal in Group::"ingest", action == Action::"transit.encrypt", resource is Key)
when { resource.name like "ingest-*" };`), 200)
	svc := h.token(root, "collector", "ingest")
	h.transit(root, "keys/ingest-logs", nil, 200)
	h.transit(root, "keys/payroll", nil, 200)
	ct := h.transit(svc, "encrypt/ingest-logs", map[string]any{"plaintext": enc64("log line")}, 200)["ciphertext"]
	h.want(h.do("POST", "/v1/transit/decrypt/ingest-logs", svc, map[string]any{"ciphertext": ct}), 403)
	h.want(h.do("POST", "/v1/transit/rewrap/ingest-logs", svc, map[string]any{"ciphertext": ct}), 403)
	h.want(h.do("POST", "/v1/transit/datakey/plaintext/ingest-logs", svc, nil), 403)
	h.want(h.do("POST", "/v1/transit/encrypt/payroll", svc, map[string]any{"plaintext": enc64("x")}), 403)
	h.want(h.do("GET", "/v1/transit/keys/ingest-logs", svc, nil), 403)
	h.want(h.do("GET", "/v1/transit/keys?list=true", svc, nil), 403)
	if pt := h.transit(root, "decrypt/ingest-logs", map[string]any{"ciphertext": ct}, 200); pt["plaintext"] != enc64("log line") {
		t.Fatalf("decrypt: %v", pt)
	}
}

// TestTransitAudit: the record of an encrypt names the key version and
// carries the HMAC of the plaintext as sent, which POST /v1/audit/hash of
// the same string reproduces; a key's creation and rotation commit with
// their records.
func TestTransitAudit(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.transit(root, "keys/aud", nil, 200)
	h.mergeAudit()
	from := auditSize(t, h)
	h.transit(root, "keys/aud/rotate", nil, 200)
	pt := enc64("card 4111")
	h.transit(root, "encrypt/aud", map[string]any{"plaintext": pt}, 200)
	h.mergeAudit()
	rot := onlyEntry(t, h, "transit.key.rotate", from)
	if rot.Entry.KeyVersion != 2 || rot.Entry.Resource != `Key::"aud"` || rot.Entry.Outcome != 200 {
		t.Fatalf("rotate record: %+v", rot.Entry)
	}
	enc := onlyEntry(t, h, "transit.encrypt", from)
	want := h.want(h.do("POST", "/v1/audit/hash", root, map[string]string{"value": pt}), 200).json(t)["hash"]
	if enc.Entry.KeyVersion != 2 || enc.Entry.Hashes["plaintext"] != want || enc.Entry.Outcome != 200 || len(enc.Entry.Hashes) != 1 {
		t.Fatalf("encrypt record: %+v, want the plaintext's hash %v", enc.Entry, want)
	}
	// A batch's record carries the hash of its compact batch_input.
	h.mergeAudit()
	from = auditSize(t, h)
	batch := `[{"plaintext":"` + pt + `"},{"plaintext":"` + pt + `","key_version":1}]`
	h.transit(root, "encrypt/aud", `{"batch_input": [ {"plaintext": "`+pt+`"}, {"plaintext": "`+pt+`", "key_version": 1} ] }`, 200)
	h.mergeAudit()
	b := onlyEntry(t, h, "transit.encrypt", from)
	want = h.want(h.do("POST", "/v1/audit/hash", root, map[string]string{"value": batch}), 200).json(t)["hash"]
	if b.Entry.KeyVersion != 2 || b.Entry.Hashes["batch_input"] != want {
		t.Fatalf("batch record: %+v, want the batch's hash %v", b.Entry, want)
	}
	for _, e := range []auditlog.StoredEntry{enc, b} {
		if raw, err := e.Entry.Canonical(); err != nil || strings.Contains(string(raw), pt) {
			t.Fatalf("a record holds the plaintext (%v)", err)
		}
	}
}

// BenchmarkTransitEncryptHandler is POST /v1/transit/encrypt of 1 KiB by
// a token a policy permits, in process (the whole pipeline, the audit
// record committed before each answer; no TLS or sockets), for profiles
// of the encrypt path.
func BenchmarkTransitEncryptHandler(b *testing.B) {
	h := start(b, b.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	h.want(h.writePolicy(root, "warden", "bench",
		`permit (principal in Group::"bench", action == Action::"transit.encrypt", resource is Key);`), 200)
	tok := h.token(root, "bench", "bench")
	h.transit(root, "keys/bench", nil, 200)
	body := `{"plaintext":"` + base64.StdEncoding.EncodeToString(make([]byte, 1024)) + `"}`
	serveInProcess(b, h, func(int64) *http.Request { return checkRequest(tok, "/v1/transit/encrypt/bench", body) })
}
