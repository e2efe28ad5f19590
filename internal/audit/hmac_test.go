package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func testKey() []byte {
	k := make([]byte, AuditKeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// TestHasherVector: the HMAC is plain HMAC-SHA256 (RFC 2104), so anyone
// holding the audit key can recompute it with any tool. The expected
// values were computed with Python's hmac module.
func TestHasherVector(t *testing.T) {
	h, err := NewHasher(testKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ value, want string }{
		{"hunter2", testHMAC},
		{"", "hmac-sha256:d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb"},
	} {
		if got := h.Sum([]byte(tt.value)); got != tt.want {
			t.Errorf("Sum(%q) = %s, want %s", tt.value, got, tt.want)
		}
	}
}

// TestHasherConfirmsGuess: a holder of the audit key confirms a guessed
// value from an entry; a wrong guess, or another key, does not.
func TestHasherConfirmsGuess(t *testing.T) {
	key := testKey()
	h, _ := NewHasher(key)
	e := Entry{Action: "kv.write", Outcome: 200, Time: "2026-01-02T03:04:05Z",
		Hashes: map[string]string{"data": h.Sum([]byte(`{"password":"hunter2"}`))}}
	leaf, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(leaf, []byte("hunter2")) {
		t.Fatalf("the secret is in the entry: %s", leaf)
	}
	got, err := DecodeEntry(leaf)
	if err != nil {
		t.Fatal(err)
	}
	sum := got.Hashes["data"]
	other := bytes.Clone(key)
	other[0] ^= 1
	otherH, _ := NewHasher(other)
	for _, tt := range []struct {
		name  string
		h     *Hasher
		guess string
		want  bool
	}{
		{"right guess", h, `{"password":"hunter2"}`, true},
		{"wrong guess", h, `{"password":"hunter3"}`, false},
		{"same value, other encoding", h, `{"password": "hunter2"}`, false},
		{"right guess, other key", otherH, `{"password":"hunter2"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Matches(sum, []byte(tt.guess)); got != tt.want {
				t.Fatalf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHasherKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("a key of %d bytes was accepted", n)
		}
	}
	key := testKey()
	h, _ := NewHasher(key)
	before := h.Sum([]byte("v"))
	key[0] ^= 0xff // the Hasher holds its own copy
	if h.Sum([]byte("v")) != before {
		t.Fatal("the Hasher shares the caller's key memory")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a zero Hasher made an HMAC")
		}
	}()
	new(Hasher).Sum([]byte("v"))
}

// TestSecretsPrintRedacted: neither the audit key nor a checkpoint signer
// key appears when formatted or logged.
func TestSecretsPrintRedacted(t *testing.T) {
	h, _ := NewHasher(testKey())
	skey, _, err := GenerateSigner("warden.local/audit/t", testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("keys", "hasher", h, "hasher_value", *h, "skey", skey)
	outputs := []string{logged.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, h), fmt.Sprintf(verb, *h), fmt.Sprintf(verb, skey))
	}
	if b, err := json.Marshal(map[string]any{"k": skey}); err == nil {
		t.Errorf("a signer key was marshalled: %s", b)
	}
	secret := string(skey)[len("PRIVATE+KEY+warden.local/audit/t+12345678+"):]
	for _, out := range outputs {
		if strings.Contains(out, "PRIVATE") || strings.Contains(out, secret[:16]) ||
			strings.Contains(out, "0 1 2 3") || strings.Contains(out, "000102030405") {
			t.Errorf("secret printed: %s", out)
		}
	}
}
