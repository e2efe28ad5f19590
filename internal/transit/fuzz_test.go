package transit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseCiphertext: Parse never panics, accepts only canonical values
// (what it accepts re-encodes to the same string) and names the field in
// every error.
func FuzzParseCiphertext(f *testing.F) {
	for _, s := range []string{"wdn:v1:aGk=", "wdn:v12:", "wdn:v0:aGk=", "wdn:v01:aGk=", "wdn:v1:aGl=", "wdn:v1:aG\nk=", "vault:v1:aGk=", "wdn:v2147483648:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCiphertext(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ciphertext: ") {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if p.Version < 1 {
			t.Fatalf("accepted version %d", p.Version)
		}
		if got := formatVersioned(p.Version, p.Payload); got != s {
			t.Fatalf("accepted the non-canonical %q (canonical %q)", s, got)
		}
	})
}

// FuzzDecrypt: Decrypt of arbitrary input with arbitrary context never
// panics and never succeeds except on the seeded genuine ciphertext, and
// fails either naming a field or with ErrCannotDecrypt alone.
func FuzzDecrypt(f *testing.F) {
	keys := map[bool]*Key{}
	for _, derived := range []bool{false, true} {
		k, err := New("fuzz", ChaCha20Poly1305, Options{Derived: derived}, t0, seeded(1))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := k.Rotate(t0, seeded(2)); err != nil {
			f.Fatal(err)
		}
		keys[derived] = k
	}
	genuine, _ := keys[false].Encrypt([]byte("hello"), nil, 1, seeded(3))
	genuineDerived, _ := keys[true].Encrypt([]byte("hello"), []byte("ctx"), 0, seeded(3))
	f.Add(genuine, []byte(nil), false)
	f.Add(genuineDerived, []byte("ctx"), true)
	f.Add(genuine[:len(genuine)-4], []byte(nil), false)
	f.Add("wdn:v3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", []byte(nil), false)
	f.Add("wdn:v2:", []byte("ctx"), true)
	f.Fuzz(func(t *testing.T, ct string, context []byte, derived bool) {
		k := keys[derived]
		pt, v, err := k.Decrypt(ct, context)
		if err == nil {
			ok := derived && ct == genuineDerived && bytes.Equal(context, []byte("ctx")) || !derived && ct == genuine && len(context) == 0
			if !ok || string(pt) != "hello" || v < 1 {
				t.Fatalf("Decrypt(%q, %q) = %q, v%d: forged", ct, context, pt, v)
			}
			return
		}
		if errors.Is(err, ErrCannotDecrypt) {
			if err != ErrCannotDecrypt {
				t.Fatalf("a decryption failure says more than %q: %v", ErrCannotDecrypt, err)
			}
			return
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "ciphertext: ") && !strings.HasPrefix(msg, "context: ") {
			t.Fatalf("error %q names no field", msg)
		}
	})
}

// FuzzUnmarshal: the stored form's parser never panics, and what it
// accepts is a usable key that survives Marshal and Unmarshal unchanged.
func FuzzUnmarshal(f *testing.F) {
	for _, typ := range []Type{AES256GCM96, HMAC, Ed25519, ECDSAP256} {
		k, err := New("fuzz", typ, Options{}, t0, seeded(1))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := k.Rotate(t0, seeded(2)); err != nil {
			f.Fatal(err)
		}
		b, _ := k.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"name":"k","versions":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := k.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(accepted key)): %v", err)
		}
		if third, _ := k2.Marshal(); !bytes.Equal(third, again) {
			t.Fatal("the stored form is not stable")
		}
		if k.Type.encrypts() && !k.Derived {
			ct, err := k.Encrypt([]byte("x"), nil, 0, seeded(3))
			if err != nil {
				t.Fatalf("an accepted key does not encrypt: %v", err)
			}
			if _, _, err := k.Decrypt(ct, nil); err != nil {
				t.Fatalf("an accepted key does not decrypt: %v", err)
			}
		}
	})
}
