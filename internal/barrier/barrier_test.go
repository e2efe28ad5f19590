package barrier

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func seeded(seed byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{seed}) }

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newRing(t testing.TB) *Keyring {
	kr, err := NewKeyring(seeded(1), t0)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	kr := newRing(t)
	for _, size := range []int{0, 1, 100, 1024, 1 << 16} {
		pt := bytes.Repeat([]byte{7}, size)
		ct, err := kr.Encrypt("kv/data/a", pt)
		if err != nil {
			t.Fatal(err)
		}
		if size > 16 && bytes.Contains(ct, pt[:16]) {
			t.Fatal("plaintext visible in ciphertext")
		}
		got, err := kr.Decrypt("kv/data/a", ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func TestTamperEveryByte(t *testing.T) {
	kr := newRing(t)
	ct, _ := kr.Encrypt("p", []byte("some secret value"))
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		_, err := kr.Decrypt("p", bad)
		var want error
		switch {
		case i == 0:
			want = ErrMalformed
		case i < 5:
			want = ErrUnknownTerm
		default:
			want = ErrDecrypt
		}
		if !errors.Is(err, want) {
			t.Fatalf("byte %d flipped: err %v, want %v", i, err, want)
		}
	}
	if _, err := kr.Decrypt("p", ct[:len(ct)-1]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := kr.Decrypt("p", ct[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
}

func TestWrongAAD(t *testing.T) {
	kr := newRing(t)
	ct, _ := kr.Encrypt("kv/data/a", []byte("x"))
	if _, err := kr.Decrypt("kv/data/b", ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("moved ciphertext: %v", err)
	}
}

func TestRotation(t *testing.T) {
	kr := newRing(t)
	old, _ := kr.Encrypt("a", []byte("old"))
	kr2, err := kr.Rotate(seeded(2), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kr3, err := kr2.Rotate(seeded(3), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kr.Zero() // zeroing the old ring must not affect the new one
	if kr3.ActiveTerm() != 3 || kr3.Terms() != 3 || !kr3.InstallTime().Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("term %d terms %d", kr3.ActiveTerm(), kr3.Terms())
	}
	if got, err := kr3.Decrypt("a", old); err != nil || string(got) != "old" {
		t.Fatalf("old data after two rotations: %q %v", got, err)
	}
	nw, _ := kr3.Encrypt("a", []byte("new"))
	if nw[4] != 3 {
		t.Fatalf("new data under term %d", nw[4])
	}
	if _, err := kr2.Decrypt("a", nw); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("older ring on newer term: %v", err)
	}
	// Survives a seal/open cycle.
	root, _ := NewKey(seeded(9))
	blob, err := SealKeyring(root, kr3)
	if err != nil {
		t.Fatal(err)
	}
	back, err := OpenKeyring(root, blob)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := back.Decrypt("a", old); err != nil || string(got) != "old" || back.ActiveTerm() != 3 {
		t.Fatalf("reopened: %q %v", got, err)
	}
}

func TestSealKeyring(t *testing.T) {
	kr := newRing(t)
	root, _ := NewKey(seeded(5))
	other, _ := NewKey(seeded(6))
	blob, err := SealKeyring(root, kr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(other, blob); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong root key: %v", err)
	}
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 0xff
	if _, err := OpenKeyring(root, bad); err == nil {
		t.Fatal("corrupted blob opened")
	}
	// A well-encrypted but invalid keyring is refused.
	rk, _ := newTermKey(0, root, time.Time{})
	ring := &Keyring{terms: map[uint32]*termKey{0: rk}, active: rk}
	for _, body := range []string{`{"version":1,"active":2,"terms":[{"term":1,"key":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}]}`,
		`{"version":1,"active":1,"terms":[{"term":1,"key":"AAAA"}]}`, `{"version":2}`, `not json`} {
		ct, _ := ring.Encrypt(keyringAD, []byte(body))
		if _, err := OpenKeyring(root, ct); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v", body, err)
		}
	}
}

func TestSealedBarrier(t *testing.T) {
	var b Barrier
	if !b.Sealed() {
		t.Fatal("zero value unsealed")
	}
	if _, err := b.Encrypt("a", nil); !errors.Is(err, ErrSealed) {
		t.Fatal(err)
	}
	if _, err := b.Decrypt("a", nil); !errors.Is(err, ErrSealed) {
		t.Fatal(err)
	}
	b.Unseal(newRing(t))
	ct, err := b.Encrypt("a", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	b.Seal()
	if _, err := b.Decrypt("a", ct); !errors.Is(err, ErrSealed) {
		t.Fatal(err)
	}
	if _, err := b.Keyring(); !errors.Is(err, ErrSealed) {
		t.Fatal(err)
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	k, _ := KeyFromBytes(bytes.Repeat([]byte{0xab}, 32))
	raw := k.Bytes()
	var logbuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logbuf, nil)).Info("x", "key", k)
	slog.New(slog.NewJSONHandler(&logbuf, nil)).Info("x", "key", k)
	outs := []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k), fmt.Sprintf("%v", &k), logbuf.String(),
		fmt.Sprintf("%v", struct{ K Key }{k})}
	for _, o := range outs {
		for _, enc := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), string(raw), "171, 171", "ab ab"} {
			if strings.Contains(o, enc) {
				t.Fatalf("key material in %q", o)
			}
		}
	}
	if !k.Equal(k) || k.Equal(Key{}) {
		t.Fatal("Equal")
	}
}

func TestConcurrentRotate(t *testing.T) {
	var b Barrier
	kr := newRing(t)
	b.Unseal(kr)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				aad := fmt.Sprintf("k/%d/%d", g, i)
				ct, err := b.Encrypt(aad, []byte(aad))
				if err != nil {
					t.Error(err)
					return
				}
				if pt, err := b.Decrypt(aad, ct); err != nil || string(pt) != aad {
					t.Errorf("decrypt: %v", err)
					return
				}
			}
		}(g)
	}
	for i := 0; i < 50; i++ {
		next, err := kr.Rotate(seeded(byte(i)), t0)
		if err != nil {
			t.Fatal(err)
		}
		b.Unseal(next)
		kr = next
	}
	close(stop)
	wg.Wait()
}

func FuzzDecrypt(f *testing.F) {
	kr, _ := NewKeyring(seeded(1), t0)
	ct, _ := kr.Encrypt("a", []byte("hello"))
	f.Add(ct, "a")
	f.Add([]byte{1, 0, 0, 0, 1}, "")
	f.Fuzz(func(t *testing.T, ct []byte, aad string) {
		pt, err := kr.Decrypt(aad, ct)
		if err == nil && (aad != "a" || string(pt) != "hello") {
			t.Fatalf("forged ciphertext accepted: %q", pt)
		}
	})
}

func FuzzOpenKeyring(f *testing.F) {
	root, _ := NewKey(seeded(4))
	kr, _ := NewKeyring(seeded(1), t0)
	blob, _ := SealKeyring(root, kr)
	f.Add(blob)
	f.Fuzz(func(t *testing.T, blob []byte) {
		if kr, err := OpenKeyring(root, blob); err == nil && kr.active == nil {
			t.Fatal("opened keyring without an active term")
		}
	})
}

func BenchmarkEncrypt1KiB(b *testing.B) {
	kr := newRing(b)
	pt := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Encrypt("kv/data/bench/k1", pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt1KiB(b *testing.B) {
	kr := newRing(b)
	ct, _ := kr.Encrypt("kv/data/bench/k1", make([]byte, 1024))
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Decrypt("kv/data/bench/k1", ct); err != nil {
			b.Fatal(err)
		}
	}
}
