package transit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/errs"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// seeded returns a repeatable entropy source.
func seeded(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

// rsaKeys caches keys by name, since RSA-3072 key generation is slow.
var rsaKeys sync.Map

func newKey(t testing.TB, name string, typ Type, opts Options) *Key {
	t.Helper()
	if typ == RSA3072 && opts == (Options{}) {
		if k, ok := rsaKeys.Load(name); ok {
			return k.(*Key).Clone()
		}
	}
	k, err := New(name, typ, opts, t0, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if typ == RSA3072 && opts == (Options{}) {
		rsaKeys.Store(name, k.Clone())
	}
	return k
}

func mustRotate(t testing.TB, k *Key, at time.Time) int {
	t.Helper()
	n, err := k.Rotate(at, seeded(byte(k.Latest+1)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// wantInvalid checks that err is an Invalid *errs.Error naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %q", field)
	}
	if !errs.Is(err, errs.Invalid) || !strings.HasPrefix(err.Error(), field+":") {
		t.Fatalf("error %q (code %s), want an invalid error naming %q", err, errs.CodeOf(err), field)
	}
}

func TestRoundTripEveryType(t *testing.T) {
	for _, typ := range Types() {
		t.Run(string(typ), func(t *testing.T) {
			k := newKey(t, "k-"+string(typ), typ, Options{})
			mustRotate(t, k, t0.Add(time.Hour))
			msg := []byte("attack at dawn")
			for _, ver := range []int{0, 1, 2} {
				want := ver
				if want == 0 {
					want = 2
				}
				prefix := fmt.Sprintf("wdn:v%d:", want)
				switch {
				case typ.encrypts():
					ct, err := k.Encrypt(msg, nil, ver, seeded(9))
					if err != nil {
						t.Fatal(err)
					}
					if !strings.HasPrefix(ct, prefix) {
						t.Fatalf("ciphertext %q, want prefix %q", ct, prefix)
					}
					pt, got, err := k.Decrypt(ct, nil)
					if err != nil || !bytes.Equal(pt, msg) || got != want {
						t.Fatalf("Decrypt = %q, v%d, %v", pt, got, err)
					}
					re, err := k.Rewrap(ct, nil, 0, seeded(10))
					if err != nil || !strings.HasPrefix(re, "wdn:v2:") {
						t.Fatalf("Rewrap = %q, %v", re, err)
					}
					if pt, _, err := k.Decrypt(re, nil); err != nil || !bytes.Equal(pt, msg) {
						t.Fatalf("Decrypt(rewrapped) = %q, %v", pt, err)
					}
				case typ.signs():
					for _, alg := range []SignatureAlgorithm{"", PSS, PKCS1v15} {
						if alg != "" && typ != RSA3072 {
							continue
						}
						o := SignOptions{Version: ver, Algorithm: alg}
						sig, err := k.Sign(msg, o, seeded(9))
						if err != nil || !strings.HasPrefix(sig, prefix) {
							t.Fatalf("Sign = %q, %v", sig, err)
						}
						if ok, err := k.Verify(msg, sig, o); !ok || err != nil {
							t.Fatalf("Verify = %v, %v", ok, err)
						}
						if ok, err := k.Verify([]byte("attack at dusk"), sig, o); ok || err != nil {
							t.Fatalf("Verify(other message) = %v, %v", ok, err)
						}
					}
				}
				{ // every type computes HMACs
					mac, err := k.HMAC(msg, ver)
					if err != nil || !strings.HasPrefix(mac, prefix) {
						t.Fatalf("HMAC = %q, %v", mac, err)
					}
					if ok, err := k.VerifyHMAC(msg, mac); !ok || err != nil {
						t.Fatalf("VerifyHMAC = %v, %v", ok, err)
					}
					if ok, err := k.VerifyHMAC([]byte("other"), mac); ok || err != nil {
						t.Fatalf("VerifyHMAC(other) = %v, %v", ok, err)
					}
				}
			}
			// Every key survives its JSON form.
			b, err := k.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			k2, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if b2, _ := k2.Marshal(); !bytes.Equal(b, b2) {
				t.Fatalf("Marshal(Unmarshal(b)) differs:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestEmptyPlaintext(t *testing.T) {
	k := newKey(t, "k", "", Options{})
	ct, err := k.Encrypt(nil, nil, 0, seeded(2))
	if err != nil {
		t.Fatal(err)
	}
	pt, _, err := k.Decrypt(ct, nil)
	if err != nil || pt == nil || len(pt) != 0 {
		t.Fatalf("Decrypt = %v, %v; want an empty, non-nil plaintext", pt, err)
	}
}

func TestOperationsTheTypeDoesNotDo(t *testing.T) {
	aes := newKey(t, "aes", AES256GCM96, Options{})
	ed := newKey(t, "ed", Ed25519, Options{})
	mac := newKey(t, "mac", HMAC, Options{})
	ct, _ := aes.Encrypt([]byte("x"), nil, 0, seeded(1))
	for name, err := range map[string]error{
		"encrypt with ed25519":     func() error { _, err := ed.Encrypt([]byte("x"), nil, 0, seeded(1)); return err }(),
		"decrypt with hmac":        func() error { _, _, err := mac.Decrypt(ct, nil); return err }(),
		"sign with aes":            func() error { _, err := aes.Sign([]byte("x"), SignOptions{}, seeded(1)); return err }(),
		"datakey with ed25519":     func() error { _, _, err := ed.DataKey(0, nil, seeded(1)); return err }(),
		"public key of an aes key": func() error { _, err := aes.PublicKey(0); return err }(),
	} {
		t.Run(name, func(t *testing.T) { wantInvalid(t, err, "type") })
	}
	_, err := ed.Sign([]byte("x"), SignOptions{Algorithm: PSS}, seeded(1))
	wantInvalid(t, err, "signature_algorithm")
	rsaKey := newKey(t, "rsa", RSA3072, Options{})
	_, err = rsaKey.Sign([]byte("x"), SignOptions{Algorithm: "pss-sha1"}, seeded(1))
	wantInvalid(t, err, "signature_algorithm")
}

func TestCiphertextBindsKeyAndVersion(t *testing.T) {
	k := newKey(t, "orders", AES256GCM96, Options{})
	mustRotate(t, k, t0.Add(time.Hour))
	ct1, _ := k.Encrypt([]byte("secret"), nil, 1, seeded(3))
	ct2, _ := k.Encrypt([]byte("secret"), nil, 2, seeded(3))

	// The same material under another name: the name is bound.
	other := k.Clone()
	other.Name = "invoices"
	if _, _, err := other.Decrypt(ct1, nil); !errors.Is(err, ErrCannotDecrypt) {
		t.Fatalf("another key's ciphertext: %v, want ErrCannotDecrypt", err)
	}
	// A ciphertext of version 2 relabelled as version 1, and the other way.
	swap := func(ct, from, to string) string { return strings.Replace(ct, from, to, 1) }
	for _, ct := range []string{swap(ct2, "wdn:v2:", "wdn:v1:"), swap(ct1, "wdn:v1:", "wdn:v2:")} {
		if _, _, err := k.Decrypt(ct, nil); !errors.Is(err, ErrCannotDecrypt) {
			t.Fatalf("relabelled version: %v, want ErrCannotDecrypt", err)
		}
	}
	// Two versions with the same material still do not open each other's
	// ciphertexts: the version is bound, not only the material.
	same := k.Clone()
	same.Versions[1].Material = bytes.Clone(same.Versions[0].Material)
	if _, _, err := same.Decrypt(swap(ct1, "wdn:v1:", "wdn:v2:"), nil); !errors.Is(err, ErrCannotDecrypt) {
		t.Fatalf("version relabelled under identical material: %v, want ErrCannotDecrypt", err)
	}
	// A chacha20-poly1305 key with aes's material does not open it either.
	cc := k.Clone()
	cc.Type = ChaCha20Poly1305
	if _, _, err := cc.Decrypt(ct1, nil); !errors.Is(err, ErrCannotDecrypt) {
		t.Fatalf("another algorithm: %v, want ErrCannotDecrypt", err)
	}
}

// TestTampering flips every bit of every byte of a ciphertext's payload
// and truncates it at every length: decryption always fails, and always
// with ErrCannotDecrypt alone.
func TestTampering(t *testing.T) {
	for _, typ := range []Type{AES256GCM96, ChaCha20Poly1305} {
		for _, derived := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/derived=%v", typ, derived), func(t *testing.T) {
				k := newKey(t, "k", typ, Options{Derived: derived})
				var ctx []byte
				if derived {
					ctx = []byte("tenant-1")
				}
				ct, err := k.Encrypt([]byte("the quick brown fox"), ctx, 0, seeded(4))
				if err != nil {
					t.Fatal(err)
				}
				p, err := ParseCiphertext(ct)
				if err != nil {
					t.Fatal(err)
				}
				try := func(what string, payload []byte) {
					t.Helper()
					s := formatVersioned(p.Version, payload)
					if pt, _, err := k.Decrypt(s, ctx); err != ErrCannotDecrypt {
						t.Fatalf("%s: Decrypt = %q, %v; want exactly ErrCannotDecrypt", what, pt, err)
					}
				}
				for i := range p.Payload {
					for bit := range 8 {
						b := bytes.Clone(p.Payload)
						b[i] ^= 1 << bit
						try(fmt.Sprintf("byte %d bit %d flipped", i, bit), b)
					}
				}
				for n := range len(p.Payload) {
					try(fmt.Sprintf("truncated to %d bytes", n), p.Payload[:n])
				}
				try("extended", append(bytes.Clone(p.Payload), 0))
			})
		}
	}
}

// TestTamperingEncoded flips each character of the encoded ciphertext:
// the result either does not parse (an error naming the ciphertext) or
// does not decrypt; it never decrypts.
func TestTamperingEncoded(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	ct, _ := k.Encrypt([]byte("hello"), nil, 0, seeded(5))
	for i := range len(ct) {
		b := []byte(ct)
		b[i] ^= 1
		_, _, err := k.Decrypt(string(b), nil)
		if err == nil {
			t.Fatalf("character %d flipped: %q decrypted", i, b)
		}
		if err != ErrCannotDecrypt && !strings.HasPrefix(err.Error(), "ciphertext:") {
			t.Fatalf("character %d flipped: error %q names no field", i, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		version  int
		payload  string
		err      string // substring; "" = valid
	}{
		{"valid", "wdn:v1:aGk=", 1, "hi", ""},
		{"large version", "wdn:v2147483647:", 2147483647, "", ""},
		{"vault prefix", "vault:v1:aGk=", 0, "", `does not start with "wdn:"`},
		{"no v", "wdn:1:aGk=", 0, "", "does not read"},
		{"no second colon", "wdn:v1aGk=", 0, "", "does not read"},
		{"no version", "wdn:v:aGk=", 0, "", "not a positive decimal"},
		{"version zero", "wdn:v0:aGk=", 0, "", "not a positive decimal"},
		{"leading zero", "wdn:v01:aGk=", 0, "", "not a positive decimal"},
		{"plus", "wdn:v+1:aGk=", 0, "", "not a positive decimal"},
		{"negative", "wdn:v-1:aGk=", 0, "", "not a positive decimal"},
		{"too large", "wdn:v2147483648:aGk=", 0, "", "not a positive decimal"},
		{"not base64", "wdn:v1:a*k=", 0, "", "not base64"},
		{"unpadded", "wdn:v1:aGk", 0, "", "not base64"},
		{"url alphabet", "wdn:v1:-_8=", 0, "", "not base64"},
		{"non-canonical padding bits", "wdn:v1:aGl=", 0, "", "not base64"},
		{"newline", "wdn:v1:aGk=\n", 0, "", "not base64"},
		{"inner newline", "wdn:v1:aG\nk=", 0, "", "not base64"},
		{"carriage return", "wdn:v1:\raGk=", 0, "", "not base64"},
		{"empty", "", 0, "", "does not start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseCiphertext(tc.in)
			if tc.err == "" {
				if err != nil || p.Version != tc.version || string(p.Payload) != tc.payload {
					t.Fatalf("= %+v, %v", p, err)
				}
				if got := formatVersioned(p.Version, p.Payload); got != tc.in {
					t.Fatalf("re-encoded as %q", got)
				}
				return
			}
			wantInvalid(t, err, "ciphertext")
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q, want %q", err, tc.err)
			}
		})
	}
	if _, err := ParseCiphertext("wdn:v1:" + strings.Repeat("A", MaxEncodedLen)); err == nil {
		t.Fatal("accepted an oversized ciphertext")
	}
}

func TestDerived(t *testing.T) {
	k := newKey(t, "per-tenant", ChaCha20Poly1305, Options{Derived: true})
	_, err := k.Encrypt([]byte("x"), nil, 0, seeded(1))
	wantInvalid(t, err, "context")
	ct, err := k.Encrypt([]byte("x"), []byte("tenant-a"), 0, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if pt, _, err := k.Decrypt(ct, []byte("tenant-a")); err != nil || string(pt) != "x" {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	if _, _, err := k.Decrypt(ct, []byte("tenant-b")); err != ErrCannotDecrypt {
		t.Fatalf("another context: %v, want ErrCannotDecrypt", err)
	}
	_, _, err = k.Decrypt(ct, nil)
	wantInvalid(t, err, "context")
	_, _, err = k.DataKey(0, nil, seeded(1))
	wantInvalid(t, err, "context")
	_, err = k.Encrypt([]byte("x"), bytes.Repeat([]byte("c"), MaxContextLen+1), 0, seeded(1))
	wantInvalid(t, err, "context")

	plain := newKey(t, "plain", AES256GCM96, Options{})
	_, err = plain.Encrypt([]byte("x"), []byte("tenant-a"), 0, seeded(1))
	wantInvalid(t, err, "context")
	pct, _ := plain.Encrypt([]byte("x"), nil, 0, seeded(1))
	_, _, err = plain.Decrypt(pct, []byte("tenant-a"))
	wantInvalid(t, err, "context")

	_, err = New("signer", Ed25519, Options{Derived: true}, t0, seeded(1))
	wantInvalid(t, err, "derived")
}

func TestDataKey(t *testing.T) {
	k := newKey(t, "dk", AES256GCM96, Options{})
	for _, tc := range []struct {
		bits, want int
		err        bool
	}{{0, 32, false}, {256, 32, false}, {512, 64, false}, {128, 16, false}, {64, 0, true}, {1024, 0, true}, {-1, 0, true}} {
		t.Run(fmt.Sprint(tc.bits), func(t *testing.T) {
			pt, ct, err := k.DataKey(tc.bits, nil, seeded(6))
			if tc.err {
				wantInvalid(t, err, "bits")
				return
			}
			if err != nil || len(pt) != tc.want {
				t.Fatalf("DataKey = %d bytes, %v", len(pt), err)
			}
			got, _, err := k.Decrypt(ct, nil)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("the wrapped data key decrypts to %x, %v; want %x", got, err, pt)
			}
		})
	}
}

func TestMinVersions(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	cts := map[int]string{}
	for v := 1; v <= 4; v++ {
		if v > 1 {
			mustRotate(t, k, t0.Add(time.Duration(v)*time.Hour))
		}
		cts[v], _ = k.Encrypt([]byte("x"), nil, v, seeded(byte(v)))
	}
	three, two, zero, four, five := 3, 2, 0, 4, 5
	if err := k.Configure(Config{MinDecryptionVersion: &three}); err != nil {
		t.Fatal(err)
	}
	for v, ct := range cts {
		_, _, err := k.Decrypt(ct, nil)
		if v < 3 {
			wantInvalid(t, err, "ciphertext")
			if !strings.Contains(err.Error(), "min_decryption_version") {
				t.Fatalf("v%d: %v", v, err)
			}
		} else if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
	}
	_, err := k.Rewrap(cts[1], nil, 0, seeded(1))
	wantInvalid(t, err, "ciphertext")
	// Encrypting with a version below the floor is refused too.
	_, err = k.Encrypt([]byte("x"), nil, 2, seeded(1))
	wantInvalid(t, err, "key_version")
	_, err = k.Encrypt([]byte("x"), nil, 5, seeded(1))
	wantInvalid(t, err, "key_version")

	if err := k.Configure(Config{MinEncryptionVersion: &four}); err != nil {
		t.Fatal(err)
	}
	_, err = k.Encrypt([]byte("x"), nil, 3, seeded(1))
	wantInvalid(t, err, "key_version")
	if ct, err := k.Encrypt([]byte("x"), nil, 0, seeded(1)); err != nil || !strings.HasPrefix(ct, "wdn:v4:") {
		t.Fatalf("Encrypt(latest) = %q, %v", ct, err)
	}
	// min_encryption_version below min_decryption_version is refused, and
	// nothing of a refused change is applied.
	err = k.Configure(Config{MinEncryptionVersion: &two, DeletionAllowed: new(true)})
	wantInvalid(t, err, "min_encryption_version")
	if k.MinEncryptionVersion != 4 || k.DeletionAllowed {
		t.Fatalf("a refused change was applied: %+v", k)
	}
	if err := k.Configure(Config{MinEncryptionVersion: &zero}); err != nil {
		t.Fatal(err)
	}
	err = k.Configure(Config{MinDecryptionVersion: &five})
	wantInvalid(t, err, "min_decryption_version")
}

func TestTrim(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	for v := 2; v <= 5; v++ {
		mustRotate(t, k, t0.Add(time.Duration(v)*time.Hour))
	}
	ct4, _ := k.Encrypt([]byte("x"), nil, 4, seeded(1))
	ct2, _ := k.Encrypt([]byte("x"), nil, 2, seeded(1))
	wantInvalid(t, k.Trim(2), "min_available_version") // above min_decryption_version 1
	three, four := 3, 4
	if err := k.Configure(Config{MinDecryptionVersion: &four, MinEncryptionVersion: &four}); err != nil {
		t.Fatal(err)
	}
	if err := k.Configure(Config{MinDecryptionVersion: &three}); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, k.Trim(4), "min_available_version") // above min_decryption_version 3
	if err := k.Trim(3); err != nil {
		t.Fatal(err)
	}
	if k.MinAvailableVersion() != 3 || len(k.Versions) != 3 || k.Versions[0].Number != 3 {
		t.Fatalf("after Trim(3): %d versions from v%d", len(k.Versions), k.MinAvailableVersion())
	}
	wantInvalid(t, k.Trim(2), "min_available_version") // cannot go back
	if err := k.Trim(3); err != nil {
		t.Fatalf("Trim to the current minimum: %v", err)
	}
	if pt, _, err := k.Decrypt(ct4, nil); err != nil || string(pt) != "x" {
		t.Fatalf("v4 after trim: %q, %v", pt, err)
	}
	_, _, err := k.Decrypt(ct2, nil)
	wantInvalid(t, err, "ciphertext")
	// min_decryption_version cannot go below what is available.
	two := 2
	wantInvalid(t, k.Configure(Config{MinDecryptionVersion: &two}), "min_decryption_version")
	// A trimmed key survives its JSON form.
	b, _ := k.Marshal()
	if _, err := Unmarshal(b); err != nil {
		t.Fatal(err)
	}
}

func TestExportableCannotBeTurnedOn(t *testing.T) {
	yes, no := true, false
	k := newKey(t, "k", AES256GCM96, Options{})
	wantInvalid(t, k.Configure(Config{Exportable: &yes}), "exportable")
	if k.Exportable {
		t.Fatal("became exportable")
	}
	e := newKey(t, "e", AES256GCM96, Options{Exportable: true})
	if err := e.Configure(Config{Exportable: &yes}); err != nil {
		t.Fatalf("keeping exportable on: %v", err)
	}
	if err := e.Configure(Config{Exportable: &no}); err != nil {
		t.Fatalf("turning exportable off: %v", err)
	}
	wantInvalid(t, e.Configure(Config{Exportable: &yes}), "exportable")
}

func TestConfigureDurations(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	d := func(x time.Duration) *time.Duration { return &x }
	wantInvalid(t, k.Configure(Config{AutoRotatePeriod: d(time.Minute)}), "auto_rotate_period")
	wantInvalid(t, k.Configure(Config{AutoRotatePeriod: d(-time.Hour)}), "auto_rotate_period")
	wantInvalid(t, k.Configure(Config{AutoRetireAfter: d(-time.Hour)}), "auto_retire_after")
	if err := k.Configure(Config{AutoRotatePeriod: d(24 * time.Hour), AutoRetireAfter: d(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if k.AutoRotatePeriod != 24*time.Hour || k.AutoRetireAfter != 72*time.Hour {
		t.Fatalf("not applied: %+v", k)
	}
	_, err := New("k", "", Options{AutoRotatePeriod: time.Second}, t0, seeded(1))
	wantInvalid(t, err, "auto_rotate_period")
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		typ       Type
		field     string
	}{
		{"empty name", "", "", "name"},
		{"long name", strings.Repeat("a", MaxNameLen+1), "", "name"},
		{"slash", "a/b", "", "name"},
		{"dot first", ".k", "", "name"},
		{"non-ASCII", "kеy", "", "name"},
		{"unknown type", "k", "aes128-gcm96", "type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.key, tc.typ, Options{}, t0, seeded(1))
			wantInvalid(t, err, tc.field)
		})
	}
	k, err := New("k", "", Options{}, t0, seeded(1))
	if err != nil || k.Type != AES256GCM96 {
		t.Fatalf("default type: %v, %v", k, err)
	}
}

func TestAutoRotateDue(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{AutoRotatePeriod: 24 * time.Hour})
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {23 * time.Hour, false}, {24*time.Hour - 1, false}, {24 * time.Hour, true}, {100 * time.Hour, true}} {
		if got := k.AutoRotateDue(t0.Add(tc.at)); got != tc.want {
			t.Errorf("AutoRotateDue(+%s) = %v", tc.at, got)
		}
	}
	// The clock of the test drives rotation: after a rotation the period
	// starts again.
	mustRotate(t, k, t0.Add(25*time.Hour))
	if k.AutoRotateDue(t0.Add(48 * time.Hour)) {
		t.Error("due 23h after the last rotation")
	}
	if !k.AutoRotateDue(t0.Add(49 * time.Hour)) {
		t.Error("not due 24h after the last rotation")
	}
	off := newKey(t, "off", AES256GCM96, Options{})
	if off.AutoRotateDue(t0.Add(1000 * time.Hour)) {
		t.Error("due with auto_rotate_period 0")
	}
}

func TestAutoRetire(t *testing.T) {
	const day = 24 * time.Hour
	k := newKey(t, "k", AES256GCM96, Options{AutoRotatePeriod: 30 * day, AutoRetireAfter: 10 * day})
	// v1 at day 0, v2 at day 30, v3 at day 60.
	mustRotate(t, k, t0.Add(30*day))
	mustRotate(t, k, t0.Add(60*day))
	for _, tc := range []struct {
		at      time.Duration
		changed bool
		min     int
	}{
		{35 * day, false, 1},                 // v2 current for 5 days
		{40*day - time.Nanosecond, false, 1}, // not yet 10 days
		{40 * day, true, 2},                  // v2 current for 10 days: v1 retires
		{40 * day, false, 2},                 // again: nothing to do
		{69 * day, false, 2},                 // v3 current for 9 days
		{70 * day, true, 3},                  // v2 retires
		{500 * day, false, 3},                // the latest never retires
	} {
		changed := k.AutoRetire(t0.Add(tc.at))
		if changed != tc.changed || k.MinDecryptionVersion != tc.min {
			t.Fatalf("AutoRetire(day %.2f) = %v, min_decryption_version %d; want %v, %d",
				tc.at.Hours()/24, changed, k.MinDecryptionVersion, tc.changed, tc.min)
		}
	}

	// min_encryption_version follows when it would fall behind.
	k2 := newKey(t, "k2", AES256GCM96, Options{AutoRetireAfter: day})
	mustRotate(t, k2, t0.Add(day))
	mustRotate(t, k2, t0.Add(2*day))
	one := 1
	if err := k2.Configure(Config{MinEncryptionVersion: &one}); err != nil {
		t.Fatal(err)
	}
	if !k2.AutoRetire(t0.Add(3*day)) || k2.MinDecryptionVersion != 3 || k2.MinEncryptionVersion != 3 {
		t.Fatalf("min_decryption_version %d, min_encryption_version %d; want 3, 3", k2.MinDecryptionVersion, k2.MinEncryptionVersion)
	}
	off := newKey(t, "off", AES256GCM96, Options{})
	mustRotate(t, off, t0.Add(day))
	if off.AutoRetire(t0.Add(1000 * day)) {
		t.Fatal("retired with auto_retire_after 0")
	}
}

// TestRFC8032 signs RFC 8032 section 7.1 TEST 1-3 through Sign, with the
// test's secret key injected as version 1.
func TestRFC8032(t *testing.T) {
	for _, tc := range []struct{ name, secret, public, message, signature string }{
		{"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
			"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
			"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
		{"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
			"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
			"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := injected(t, Ed25519, unhex(t, tc.secret))
			sig, err := k.Sign(unhex(t, tc.message), SignOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := "wdn:v1:" + base64.StdEncoding.EncodeToString(unhex(t, tc.signature))
			if sig != want {
				t.Fatalf("Sign = %s\nwant   %s", sig, want)
			}
			pub, err := k.PublicKey(0)
			if err != nil || !bytes.Equal(pub.(ed25519.PublicKey), unhex(t, tc.public)) {
				t.Fatalf("PublicKey = %x, %v", pub, err)
			}
			if ok, err := k.Verify(unhex(t, tc.message), sig, SignOptions{}); !ok || err != nil {
				t.Fatalf("Verify = %v, %v", ok, err)
			}
		})
	}
}

// TestRFC4231 computes the HMAC-SHA-256 results of RFC 4231 section 4
// (test cases 1-4, 6 and 7; 5 is truncated output) through HMAC.
func TestRFC4231(t *testing.T) {
	rep := func(b byte, n int) string { return fmt.Sprintf("%x", bytes.Repeat([]byte{b}, n)) }
	for _, tc := range []struct{ name, key, data, mac string }{
		{"1", rep(0x0b, 20), fmt.Sprintf("%x", "Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{"2", fmt.Sprintf("%x", "Jefe"), fmt.Sprintf("%x", "what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"3", rep(0xaa, 20), rep(0xdd, 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
		{"4", "0102030405060708090a0b0c0d0e0f10111213141516171819", rep(0xcd, 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
		{"6", rep(0xaa, 131), fmt.Sprintf("%x", "Test Using Larger Than Block-Size Key - Hash Key First"), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		{"7", rep(0xaa, 131), fmt.Sprintf("%x", "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	} {
		t.Run("test case "+tc.name, func(t *testing.T) {
			k := injected(t, HMAC, unhex(t, tc.key))
			mac, err := k.HMAC(unhex(t, tc.data), 0)
			if err != nil {
				t.Fatal(err)
			}
			want := "wdn:v1:" + base64.StdEncoding.EncodeToString(unhex(t, tc.mac))
			if mac != want {
				t.Fatalf("HMAC = %s\nwant   %s", mac, want)
			}
			if ok, err := k.VerifyHMAC(unhex(t, tc.data), want); !ok || err != nil {
				t.Fatalf("VerifyHMAC = %v, %v", ok, err)
			}
		})
	}
}

// injected returns a key of one version whose material is m.
func injected(t *testing.T, typ Type, m []byte) *Key {
	t.Helper()
	return &Key{Name: "kat", Type: typ, Versions: []Version{{Number: 1, Created: t0, Material: m}}, Latest: 1, MinDecryptionVersion: 1}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil && s != "" {
		t.Fatal(err)
	}
	return b
}

// TestECDSAVerifiesWithCryptoECDSA checks Sign's ecdsa-p256 signatures with
// Go's crypto/ecdsa directly: ASN.1 DER over SHA-256 of the input.
func TestECDSAVerifiesWithCryptoECDSA(t *testing.T) {
	k := newKey(t, "ec", ECDSAP256, Options{})
	pub, err := k.PublicKey(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"", "hello", strings.Repeat("x", 10000)} {
		sig, err := k.Sign([]byte(msg), SignOptions{}, seeded(7))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := Parse("signature", sig)
		d := sha256.Sum256([]byte(msg))
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], p.Payload) {
			t.Fatalf("crypto/ecdsa rejects the signature of %q", msg)
		}
	}
}

// TestRSAVerifiesWithCryptoRSA checks both schemes with crypto/rsa, PSS
// with the salt as long as the hash as documented.
func TestRSAVerifiesWithCryptoRSA(t *testing.T) {
	k := newKey(t, "rsa", RSA3072, Options{})
	pub, _ := k.PublicKey(0)
	rpub := pub.(*rsa.PublicKey)
	if rpub.N.BitLen() != 3072 {
		t.Fatalf("modulus of %d bits", rpub.N.BitLen())
	}
	msg := []byte("hello")
	d := sha256.Sum256(msg)
	sig, _ := k.Sign(msg, SignOptions{}, seeded(1))
	p, _ := Parse("signature", sig)
	if err := rsa.VerifyPSS(rpub, crypto.SHA256, d[:], p.Payload, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
		t.Fatalf("default (PSS): %v", err)
	}
	sig, _ = k.Sign(msg, SignOptions{Algorithm: PKCS1v15}, seeded(1))
	p, _ = Parse("signature", sig)
	if err := rsa.VerifyPKCS1v15(rpub, crypto.SHA256, d[:], p.Payload); err != nil {
		t.Fatalf("pkcs1v15: %v", err)
	}
	// A PSS signature does not verify as PKCS #1 v1.5.
	pss, _ := k.Sign(msg, SignOptions{}, seeded(1))
	if ok, err := k.Verify(msg, pss, SignOptions{Algorithm: PKCS1v15}); ok || err != nil {
		t.Fatalf("PSS signature verified as pkcs1v15: %v, %v", ok, err)
	}
	// Verification accepts any PSS salt length, as Vault's "auto" does.
	max, _ := rsa.SignPSS(seeded(1), mustSigner(t, k), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	if ok, err := k.Verify(msg, formatVersioned(1, max), SignOptions{}); !ok || err != nil {
		t.Fatalf("maximum-salt PSS signature: %v, %v", ok, err)
	}
}

func mustSigner(t *testing.T, k *Key) *rsa.PrivateKey {
	s, err := k.signer(k.version(k.Latest))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*rsa.PrivateKey)
}

func TestVerifyRefusals(t *testing.T) {
	k := newKey(t, "ed", Ed25519, Options{})
	sig1, _ := k.Sign([]byte("m"), SignOptions{}, nil)
	mustRotate(t, k, t0.Add(time.Hour))
	two := 2
	if err := k.Configure(Config{MinDecryptionVersion: &two}); err != nil {
		t.Fatal(err)
	}
	_, err := k.Verify([]byte("m"), sig1, SignOptions{})
	wantInvalid(t, err, "signature")
	_, err = k.Verify([]byte("m"), "wdn:v3:AAAA", SignOptions{})
	wantInvalid(t, err, "signature")
	_, err = k.Verify([]byte("m"), "not a signature", SignOptions{})
	wantInvalid(t, err, "signature")
	if ok, err := k.Verify([]byte("m"), "wdn:v2:AAAA", SignOptions{}); ok || err != nil {
		t.Fatalf("a short signature: %v, %v; want false, nil", ok, err)
	}
	h := newKey(t, "h", HMAC, Options{})
	_, err = h.VerifyHMAC(nil, "wdn:v2:AAAA")
	wantInvalid(t, err, "hmac")
}

// TestMaterialNeverPrinted prints keys and versions every way a log line
// or error might, and looks for the material.
func TestMaterialNeverPrinted(t *testing.T) {
	for _, typ := range Types() {
		k := newKey(t, "k", typ, Options{})
		m := k.Versions[0].Material
		var logged bytes.Buffer
		lg := slog.New(slog.NewJSONHandler(&logged, nil))
		lg.Info("key", "key", k, "version", k.Versions[0], "material", m)
		lg.Info("key", "value", *k)
		lg.Info("versions", "versions", k.Versions, "version", k.Versions[0])
		asJSON, err := json.Marshal(k)
		if err != nil || !strings.Contains(string(asJSON), `"material":"[redacted]"`) {
			t.Fatalf("json.Marshal(key) = %s, %v", asJSON, err)
		}
		logged.Write(asJSON)
		var back Key
		if err := json.Unmarshal(asJSON, &back); err == nil {
			t.Fatal("json.Unmarshal read a key's display form back")
		}
		tl := slog.New(slog.NewTextHandler(&logged, nil))
		tl.Info("key", "key", k, "value", *k, "version", k.Versions[0], "versions", k.Versions, "material", m)
		outs := []string{
			fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q %d %o %b", k, k, k, k, k, k, k, k, k, k),
			fmt.Sprintf("%v %+v %#v %d %x", *k, *k, *k, *k, *k),
			fmt.Sprintf("%v %+v %#v %s %x %X %q %d %o %b %c %U", m, m, m, m, m, m, m, m, m, m, m, m),
			fmt.Sprintf("%v %+v %#v %d %x", k.Versions, k.Versions[0], k.Versions[0], k.Versions, k.Versions[0]),
			logged.String(),
		}
		var forms []string
		for _, m := range [][]byte{m, k.Versions[0].HMACKey} {
			if len(m) > 0 {
				forms = append(forms, fmt.Sprintf("%x", m), fmt.Sprintf("%X", m), base64.StdEncoding.EncodeToString(m), string(m), fmt.Sprint(m))
			}
		}
		for _, out := range outs {
			for _, f := range forms {
				if strings.Contains(out, f) {
					t.Fatalf("%s: material printed in %q", typ, out)
				}
			}
		}
	}
}

func TestUnmarshalStrict(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	mustRotate(t, k, t0.Add(time.Hour))
	good, _ := k.Marshal()
	edit := func(f func(*Key)) []byte {
		c := k.Clone()
		f(c)
		b, _ := c.Marshal()
		return b
	}
	for name, b := range map[string][]byte{
		"unknown field":         bytes.Replace(good, []byte(`{"name"`), []byte(`{"extra":1,"name"`), 1),
		"trailing data":         append(bytes.Clone(good), []byte(`{}`)...),
		"short material":        edit(func(c *Key) { c.Versions[0].Material = c.Versions[0].Material[:16] }),
		"no hmac key":           edit(func(c *Key) { c.Versions[1].HMACKey = nil }),
		"gap in versions":       edit(func(c *Key) { c.Versions[1].Number = 3; c.Latest = 3 }),
		"latest wrong":          edit(func(c *Key) { c.Latest = 3 }),
		"no versions":           edit(func(c *Key) { c.Versions = nil }),
		"min decryption 0":      edit(func(c *Key) { c.MinDecryptionVersion = 0 }),
		"min encryption high":   edit(func(c *Key) { c.MinEncryptionVersion = 5 }),
		"unknown type":          edit(func(c *Key) { c.Type = "des" }),
		"derived signer":        edit(func(c *Key) { c.Type = Ed25519; c.Derived = true }),
		"bad name":              edit(func(c *Key) { c.Name = "a b" }),
		"short rotation period": edit(func(c *Key) { c.AutoRotatePeriod = time.Second }),
		"not json":              []byte("{"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Unmarshal(b); err == nil {
				t.Fatal("accepted")
			} else if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k.Versions[0].Material)) {
				t.Fatalf("error shows material: %v", err)
			}
		})
	}
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
}

func TestClone(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	c := k.Clone()
	c.Versions[0].Material[0] ^= 1
	mustRotate(t, c, t0.Add(time.Hour))
	if k.Versions[0].Material[0] == c.Versions[0].Material[0] || len(k.Versions) != 1 {
		t.Fatal("Clone shares state with the original")
	}
}

func TestRotateStopsAtTheLastVersion(t *testing.T) {
	k := newKey(t, "k", AES256GCM96, Options{})
	k.Latest, k.Versions[0].Number, k.MinDecryptionVersion = 1<<31-1, 1<<31-1, 1<<31-1
	_, err := k.Rotate(t0, seeded(1))
	wantInvalid(t, err, "latest_version")
	ct, err := k.Encrypt([]byte("x"), nil, 0, seeded(1))
	if err != nil || !strings.HasPrefix(ct, "wdn:v2147483647:") {
		t.Fatalf("Encrypt = %q, %v", ct, err)
	}
	if _, _, err := k.Decrypt(ct, nil); err != nil {
		t.Fatal(err)
	}
}

// TestSignatureTampering flips every byte of signatures and HMACs: they
// never verify.
func TestSignatureTampering(t *testing.T) {
	for _, typ := range []Type{Ed25519, ECDSAP256, RSA3072, HMAC} {
		t.Run(string(typ), func(t *testing.T) {
			k := newKey(t, "k", typ, Options{})
			msg := []byte("pay 10 to alice")
			var s string
			var err error
			verify := func(s string) (bool, error) { return k.Verify(msg, s, SignOptions{}) }
			if typ == HMAC {
				s, err = k.HMAC(msg, 0)
				verify = func(s string) (bool, error) { return k.VerifyHMAC(msg, s) }
			} else {
				s, err = k.Sign(msg, SignOptions{}, seeded(8))
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := Parse("signature", s)
			for i := range p.Payload {
				b := bytes.Clone(p.Payload)
				b[i] ^= 0x80
				if ok, _ := verify(formatVersioned(p.Version, b)); ok {
					t.Fatalf("byte %d flipped: verified", i)
				}
			}
			for n := range len(p.Payload) {
				if ok, _ := verify(formatVersioned(p.Version, p.Payload[:n])); ok {
					t.Fatalf("truncated to %d bytes: verified", n)
				}
			}
		})
	}
}

// TestConcurrentUse runs read-only operations on one key from several
// goroutines, for the race detector.
func TestConcurrentUse(t *testing.T) {
	enc := newKey(t, "enc", AES256GCM96, Options{})
	sig := newKey(t, "sig", ECDSAP256, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := seeded(byte(g))
			for range 50 {
				ct, err := enc.Encrypt([]byte("x"), nil, 0, r)
				if err == nil {
					_, _, err = enc.Decrypt(ct, nil)
				}
				if err != nil {
					t.Error(err)
					return
				}
				s, err := sig.Sign([]byte("x"), SignOptions{}, r)
				if ok, verr := sig.Verify([]byte("x"), s, SignOptions{}); err != nil || verr != nil || !ok {
					t.Error("sign/verify failed", err, verr)
					return
				}
			}
		})
	}
	wg.Wait()
}
