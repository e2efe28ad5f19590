package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// TestTransitKeyViewRoundTrip checks that the typed key view decodes both
// forms of a version (Unix seconds; the signing keys' object) and encodes
// back to the same JSON, so the CLI's --format json prints what the API sent.
func TestTransitKeyViewRoundTrip(t *testing.T) {
	for name, view := range map[string]string{
		"aes": `{"name":"k","type":"aes256-gcm96","keys":{"1":1764718205,"2":1764721805},"latest_version":2,` +
			`"min_available_version":1,"min_decryption_version":1,"min_encryption_version":0,"deletion_allowed":false,` +
			`"exportable":false,"derived":true,"supports_encryption":true,"supports_decryption":true,` +
			`"supports_derivation":true,"supports_signing":false,"auto_rotate_period":2592000,"auto_retire_after":0,` +
			`"allow_plaintext_backup":false,"kdf":"hkdf_sha256","imported_key":false}`,
		"ed25519": `{"name":"s","type":"ed25519","keys":{"1":{"creation_time":"2026-12-02T23:30:05Z","name":"ed25519",` +
			`"public_key":"MCowBQYDK2VwAyEA"}},"latest_version":1,"min_available_version":1,"min_decryption_version":1,` +
			`"min_encryption_version":0,"deletion_allowed":true,"exportable":false,"derived":false,` +
			`"supports_encryption":false,"supports_decryption":false,"supports_derivation":false,"supports_signing":true,` +
			`"auto_rotate_period":0,"auto_retire_after":3600,"allow_plaintext_backup":false,"imported_key":false}`,
	} {
		t.Run(name, func(t *testing.T) {
			var k TransitKey
			if err := json.Unmarshal([]byte(view), &k); err != nil {
				t.Fatal(err)
			}
			back, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			json.Unmarshal([]byte(view), &want)
			json.Unmarshal(back, &got)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("round trip:\n got %s\nwant %s", back, view)
			}
		})
	}
	var k TransitKey
	if err := json.Unmarshal([]byte(`{"auto_rotate_period":"720h","auto_retire_after":"60","keys":{"1":1}}`), &k); err != nil {
		t.Fatal(err)
	}
	if time.Duration(k.AutoRotatePeriod) != 720*time.Hour || time.Duration(k.AutoRetireAfter) != time.Minute ||
		!k.Keys["1"].CreationTime.Equal(time.Unix(1, 0)) {
		t.Fatalf("lenient decoding: %+v", k)
	}
	for _, bad := range []string{`{"auto_rotate_period":"soon"}`, `{"keys":{"1":"x"}}`, `{"keys":{"1":1.5}}`} {
		if err := json.Unmarshal([]byte(bad), &k); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestTransitRequests checks each method's method, path and body, and that
// the data envelope is unwrapped.
func TestTransitRequests(t *testing.T) {
	type call struct {
		method, path string
		body         map[string]any
	}
	var got call
	answer := `{"data":{}}`
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = call{method: r.Method, path: r.URL.RequestURI()}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &got.body); err != nil {
				t.Errorf("body %q: %v", b, err)
			}
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	})
	ctx := context.Background()
	check := func(want call) {
		t.Helper()
		if got.method != want.method || got.path != want.path || !reflect.DeepEqual(got.body, want.body) {
			t.Fatalf("request %+v, want %+v", got, want)
		}
		got = call{}
	}
	ptr := func(n int) *int { return &n }
	no, day := false, 24*time.Hour

	answer = `{"data":{"name":"a b","type":"ed25519","latest_version":1}}`
	k, err := c.TransitCreateKey(ctx, "a b", TransitKeyOptions{Type: "ed25519", Derived: true, AutoRotate: 720 * time.Hour})
	if err != nil || k.Name != "a b" || k.LatestVersion != 1 {
		t.Fatalf("create: %+v %v", k, err)
	}
	check(call{"POST", "/v1/transit/keys/a%20b", map[string]any{"type": "ed25519", "derived": true, "auto_rotate_period": "720h0m0s"}})
	c.TransitCreateKey(ctx, "k", TransitKeyOptions{})
	check(call{"POST", "/v1/transit/keys/k", map[string]any{}})
	c.TransitKey(ctx, "k")
	check(call{"GET", "/v1/transit/keys/k", nil})
	c.TransitRotate(ctx, "k")
	check(call{"POST", "/v1/transit/keys/k/rotate", nil})
	c.TransitConfig(ctx, "k", TransitConfig{MinDecryptionVersion: ptr(2), DeletionAllowed: &no, AutoRetire: &day})
	check(call{"POST", "/v1/transit/keys/k/config", map[string]any{"min_decryption_version": 2.0, "deletion_allowed": false, "auto_retire_after": "24h0m0s"}})
	c.TransitTrim(ctx, "k", 3)
	check(call{"POST", "/v1/transit/keys/k/trim", map[string]any{"min_available_version": 3.0}})
	if err := c.TransitDeleteKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	check(call{"DELETE", "/v1/transit/keys/k", nil})

	answer = `{"data":{"keys":["a","b"]}}`
	if ks, err := c.TransitListKeys(ctx); err != nil || !reflect.DeepEqual(ks, []string{"a", "b"}) {
		t.Fatalf("list: %v %v", ks, err)
	}
	check(call{"GET", "/v1/transit/keys?list=true", nil})

	answer = `{"data":{"ciphertext":"wdn:v2:QUJD","key_version":2}}`
	if ct, v, err := c.TransitEncrypt(ctx, "k", []byte("hi"), []byte("ctx")); err != nil || ct != "wdn:v2:QUJD" || v != 2 {
		t.Fatalf("encrypt: %q %d %v", ct, v, err)
	}
	check(call{"POST", "/v1/transit/encrypt/k", map[string]any{"plaintext": "aGk=", "context": "Y3R4"}})
	c.TransitEncrypt(ctx, "k", nil, nil) // the empty plaintext is sent; no context is absent
	check(call{"POST", "/v1/transit/encrypt/k", map[string]any{"plaintext": ""}})
	c.TransitRewrap(ctx, "k", "wdn:v1:QUJD", nil)
	check(call{"POST", "/v1/transit/rewrap/k", map[string]any{"ciphertext": "wdn:v1:QUJD"}})

	answer = `{"data":{"plaintext":"aGk="}}`
	if pt, _, err := c.TransitDecrypt(ctx, "k", "wdn:v1:QUJD", []byte("ctx")); err != nil || string(pt) != "hi" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	check(call{"POST", "/v1/transit/decrypt/k", map[string]any{"ciphertext": "wdn:v1:QUJD", "context": "Y3R4"}})

	answer = `{"data":{"ciphertext":"wdn:v1:QUJD","key_version":1}}`
	if dk, err := c.TransitDataKey(ctx, "k", true, 512, nil); err != nil || dk.Plaintext != nil || dk.KeyVersion != 1 {
		t.Fatalf("datakey: %+v %v", dk, err)
	}
	check(call{"POST", "/v1/transit/datakey/wrapped/k", map[string]any{"bits": 512.0}})
	c.TransitDataKey(ctx, "k", false, 0, nil)
	check(call{"POST", "/v1/transit/datakey/plaintext/k", map[string]any{}})

	answer = `{"data":{"signature":"wdn:v1:c2ln","key_version":1}}`
	if s, v, err := c.TransitSign(ctx, "k", []byte("hi"), TransitSignOptions{Algorithm: "pkcs1v15", KeyVersion: 1}); err != nil || s != "wdn:v1:c2ln" || v != 1 {
		t.Fatalf("sign: %q %d %v", s, v, err)
	}
	check(call{"POST", "/v1/transit/sign/k", map[string]any{"input": "aGk=", "signature_algorithm": "pkcs1v15", "key_version": 1.0}})

	answer = `{"data":{"valid":true}}`
	if ok, err := c.TransitVerify(ctx, "k", []byte("hi"), "wdn:v1:c2ln", ""); err != nil || !ok {
		t.Fatalf("verify: %v %v", ok, err)
	}
	check(call{"POST", "/v1/transit/verify/k", map[string]any{"input": "aGk=", "signature": "wdn:v1:c2ln"}})
	c.TransitVerifyHMAC(ctx, "k", []byte("hi"), "wdn:v1:aG1h")
	check(call{"POST", "/v1/transit/verify/k", map[string]any{"input": "aGk=", "hmac": "wdn:v1:aG1h"}})

	answer = `{"data":{"hmac":"wdn:v1:aG1h","key_version":1}}`
	if h, _, err := c.TransitHMAC(ctx, "k", []byte("hi")); err != nil || h != "wdn:v1:aG1h" {
		t.Fatalf("hmac: %q %v", h, err)
	}
	check(call{"POST", "/v1/transit/hmac/k", map[string]any{"input": "aGk="}})

	answer = `{"data":{"name":"k","type":"ed25519","keys":{"1":"cHVi"}}}`
	if ex, err := c.TransitExport(ctx, "k", TransitExportPublicKey, 0); err != nil || ex.Keys["1"] != "cHVi" {
		t.Fatalf("export: %+v %v", ex, err)
	}
	check(call{"GET", "/v1/transit/export/public-key/k", nil})
	c.TransitExport(ctx, "k", TransitExportSigningKey, 3)
	check(call{"GET", "/v1/transit/export/signing-key/k/3", nil})
}

// TestTransitErrors checks that an error answer is an APIError naming the
// field, and that an empty key list answered with 404 (as Vault does) is
// an empty list.
func TestTransitErrors(t *testing.T) {
	status, msg := 400, "context: the key is not derived"
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
	})
	ctx := context.Background()
	_, _, err := c.TransitEncrypt(ctx, "k", []byte("x"), []byte("c"))
	if !IsStatus(err, 400) || err.Error() != "warden: 400 Bad Request: "+msg {
		t.Fatalf("encrypt: %v", err)
	}
	status = 404
	if ks, err := c.TransitListKeys(ctx); err != nil || ks == nil || len(ks) != 0 {
		t.Fatalf("list on 404: %v %v", ks, err)
	}
	status = 403
	if _, err := c.TransitListKeys(ctx); !IsStatus(err, 403) {
		t.Fatalf("list on 403: %v", err)
	}
}

// TestTransitBatch checks that a batch's per-item failures (400 with the
// data envelope, as Vault answers) are results, and a refused batch an
// APIError.
func TestTransitBatch(t *testing.T) {
	var status int
	var answer string
	var sent map[string]any
	_, c := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&sent)
		w.WriteHeader(status)
		io.WriteString(w, answer)
	})
	ctx := context.Background()
	status, answer = 400, `{"data":{"batch_results":[{"ciphertext":"wdn:v1:QQ==","key_version":1},{"error":"context: the key is derived; give a context"}]}}`
	res, err := c.TransitEncryptBatch(ctx, "k", []TransitEncryptItem{{Plaintext: []byte("a"), Context: []byte("c")}, {Plaintext: []byte("b")}})
	if err != nil || len(res) != 2 || res[0].Ciphertext != "wdn:v1:QQ==" || res[1].Error == "" {
		t.Fatalf("batch: %+v %v", res, err)
	}
	want := map[string]any{"batch_input": []any{map[string]any{"plaintext": "YQ==", "context": "Yw=="}, map[string]any{"plaintext": "Yg=="}}}
	if !reflect.DeepEqual(sent, want) {
		t.Fatalf("sent %v", sent)
	}
	status, answer = 200, `{"data":{"batch_results":[{"plaintext":"YQ=="}]}}`
	if res, err := c.TransitDecryptBatch(ctx, "k", []TransitDecryptItem{{Ciphertext: "wdn:v1:QQ=="}}); err != nil || string(res[0].Plaintext) != "a" {
		t.Fatalf("decrypt batch: %+v %v", res, err)
	}
	status, answer = 400, `{"errors":["batch_input: more than 1000 items"]}`
	if _, err := c.TransitDecryptBatch(ctx, "k", []TransitDecryptItem{{Ciphertext: "x"}}); !IsStatus(err, 400) ||
		err.Error() != "warden: 400 Bad Request: batch_input: more than 1000 items" {
		t.Fatalf("refused batch: %v", err)
	}
	status, answer = 200, `{"data":{"batch_results":[]}}`
	if _, err := c.TransitDecryptBatch(ctx, "k", []TransitDecryptItem{{Ciphertext: "x"}}); err == nil {
		t.Fatal("a short batch_results accepted")
	}
}
