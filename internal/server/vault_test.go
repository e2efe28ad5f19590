package server_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultClient drives Warden's transit API with Vault's own Go client
// (github.com/hashicorp/vault/api): a program written for Vault changes
// its address, token and CA, and nothing else.
func TestVaultClient(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)

	cfg := vault.DefaultConfig()
	cfg.MaxRetries = 0
	if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: h.srv.CAFile()}); err != nil {
		t.Fatal(err)
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAddress(h.srv.Addr()); err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	l := c.Logical()
	write := func(path string, body map[string]any) map[string]any {
		t.Helper()
		s, err := l.Write(path, body)
		if err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		if s == nil {
			t.Fatalf("write %s: no data", path)
		}
		return s.Data
	}
	str := func(v any) string { return fmt.Sprint(v) }
	plaintext := base64.StdEncoding.EncodeToString([]byte("order 1234"))

	// Keys: create, read, list.
	if d := write("transit/keys/orders", map[string]any{"type": "aes256-gcm96"}); d["name"] != "orders" {
		t.Fatalf("create: %v", d)
	}
	write("transit/keys/signer", map[string]any{"type": "ed25519"})
	s, err := l.Read("transit/keys/orders")
	if err != nil || s == nil || s.Data["type"] != "aes256-gcm96" || str(s.Data["latest_version"]) != "1" || s.Data["supports_encryption"] != true {
		t.Fatalf("read: %v %v", s, err)
	}
	if s, err := l.Read("transit/keys/missing"); s != nil || err != nil {
		t.Fatalf("read of a missing key: %v %v, want nothing", s, err)
	}
	s, err = l.List("transit/keys")
	if err != nil || s == nil {
		t.Fatalf("list: %v %v", s, err)
	}
	var names []string
	for _, n := range s.Data["keys"].([]any) {
		names = append(names, n.(string))
	}
	if !slices.Equal(names, []string{"orders", "signer"}) {
		t.Fatalf("list: %v", names)
	}

	// Encrypt, decrypt, rotate, rewrap.
	ct := write("transit/encrypt/orders", map[string]any{"plaintext": plaintext})["ciphertext"].(string)
	if pt := write("transit/decrypt/orders", map[string]any{"ciphertext": ct})["plaintext"]; pt != plaintext {
		t.Fatalf("decrypt: %v", pt)
	}
	if d := write("transit/keys/orders/rotate", nil); str(d["latest_version"]) != "2" {
		t.Fatalf("rotate: %v", d)
	}
	re := write("transit/rewrap/orders", map[string]any{"ciphertext": ct})
	if !strings.HasPrefix(re["ciphertext"].(string), "wdn:v2:") || str(re["key_version"]) != "2" {
		t.Fatalf("rewrap: %v", re)
	}
	if pt := write("transit/decrypt/orders", map[string]any{"ciphertext": re["ciphertext"]})["plaintext"]; pt != plaintext {
		t.Fatalf("decrypt of the rewrapped: %v", pt)
	}

	// Sign and verify; HMAC and verify.
	sig := write("transit/sign/signer", map[string]any{"input": plaintext})["signature"]
	if v := write("transit/verify/signer", map[string]any{"input": plaintext, "signature": sig}); v["valid"] != true {
		t.Fatalf("verify: %v", v)
	}
	mac := write("transit/hmac/orders", map[string]any{"input": plaintext})["hmac"]
	if v := write("transit/verify/orders", map[string]any{"input": plaintext, "hmac": mac}); v["valid"] != true {
		t.Fatalf("verify hmac: %v", v)
	}

	// Data keys.
	dk := write("transit/datakey/plaintext/orders", map[string]any{"bits": 256})
	if pt := write("transit/decrypt/orders", map[string]any{"ciphertext": dk["ciphertext"]})["plaintext"]; pt != dk["plaintext"] {
		t.Fatal("the data key's ciphertext does not decrypt to it")
	}
	if w := write("transit/datakey/wrapped/orders", nil); w["plaintext"] != nil || w["ciphertext"] == nil {
		t.Fatalf("wrapped data key: %v", w)
	}

	// Batches: all good; one bad item is an error (400) as Vault answers,
	// unless partial_failure_response_code says otherwise.
	batch := []map[string]any{{"plaintext": plaintext}, {"plaintext": plaintext, "reference": "second"}}
	rs := write("transit/encrypt/orders", map[string]any{"batch_input": batch})["batch_results"].([]any)
	if len(rs) != 2 || rs[1].(map[string]any)["reference"] != "second" {
		t.Fatalf("batch: %v", rs)
	}
	batch = append(batch, map[string]any{"plaintext": "!"})
	_, err = l.Write("transit/encrypt/orders", map[string]any{"batch_input": batch})
	var re400 *vault.ResponseError
	if !errors.As(err, &re400) || re400.StatusCode != 400 {
		t.Fatalf("batch with a bad item: %v, want a 400", err)
	}
	rs = write("transit/encrypt/orders", map[string]any{"batch_input": batch, "partial_failure_response_code": 200})["batch_results"].([]any)
	if len(rs) != 3 || rs[2].(map[string]any)["error"] != "plaintext: not base64" {
		t.Fatalf("partial batch: %v", rs)
	}

	// Bad input is an error naming the field.
	_, err = l.Write("transit/encrypt/orders", map[string]any{"plaintext": plaintext, "nonce": "AAAA"})
	if !errors.As(err, &re400) || re400.StatusCode != 400 || !strings.Contains(strings.Join(re400.Errors, " "), "nonce") {
		t.Fatalf("nonce: %v", err)
	}

	// Delete: refused until deletion_allowed, then gone.
	if _, err := l.Delete("transit/keys/orders"); !errors.As(err, &re400) || re400.StatusCode != 400 {
		t.Fatalf("delete of a protected key: %v", err)
	}
	write("transit/keys/orders/config", map[string]any{"deletion_allowed": true})
	if _, err := l.Delete("transit/keys/orders"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if s, err := l.Read("transit/keys/orders"); s != nil || err != nil {
		t.Fatalf("read after delete: %v %v", s, err)
	}
}
