package users

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/warden-sec/warden/internal/errs"
)

// small are Argon2 parameters cheap enough for tests.
var small = Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// seeded is a deterministic randomness source for tests, so runs repeat.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func TestCheckPassword(t *testing.T) {
	cases := []struct {
		name, user, pw string
		why            string // "" = accepted
	}{
		{"good", "alice", "correct horse battery staple", ""},
		{"12 characters", "alice", "q7#mZ2!vLp0x", ""},
		{"11 characters", "alice", "q7#mZ2!vLp0", "shorter than 12 characters"},
		{"12 runes, more bytes", "alice", "ééééééééééé", "shorter than 12 characters"}, // 11 runes, 22 bytes
		{"12 non-ASCII runes", "alice", "éééééééééééé", ""},
		{"1024 bytes", "alice", strings.Repeat("xq7", 341) + "z", ""},
		{"1025 bytes", "alice", strings.Repeat("xq7", 341) + "zz", "longer than 1024 bytes"},
		{"invalid UTF-8", "alice", "q7#mZ2!vLp0x\xff", "not valid UTF-8"},
		{"common, in the list", "alice", "1qaz2wsx3edc", "most common passwords"},
		{"common, other case", "alice", "1QAZ2WSX3EDC", "most common passwords"},
		{"common, mixed case", "alice", "PassWord1234", "most common passwords"},
		{"user name inside", "alice", "my-alice-is-great", "user name"},
		{"user name, other case", "alice", "my-ALICE-is-great", "user name"},
		{"user name is the password", "alice-in-chains", "Alice-In-Chains", "user name"},
		{"two-letter name not looked for", "al", "totally-fine-pass", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPassword(c.user, []byte(c.pw))
			if c.why == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if errs.CodeOf(err) != errs.Invalid || !strings.HasPrefix(err.Error(), "password: ") || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %v, want errs.Invalid %q", err, c.why)
			}
			if len(c.pw) >= 4 && strings.Contains(err.Error(), c.pw) {
				t.Fatal("the error contains the password")
			}
		})
	}
}

// TestCommonList: the embedded list decodes to the set it should (its
// first, last and a non-ASCII entry, lowercased), and every entry of 12
// characters or more is refused whatever its case.
func TestCommonList(t *testing.T) {
	set, err := common()
	if err != nil {
		t.Fatal(err)
	}
	if len(set) < 95_000 || len(set) > 100_000 {
		t.Fatalf("%d entries", len(set))
	}
	for _, w := range []string{"123456", "password", "qwerty", "070162", "1qaz2wsx3edc"} {
		if _, ok := set[w]; !ok {
			t.Errorf("%q missing", w)
		}
	}
	for w := range set {
		if w != strings.ToLower(w) {
			t.Fatalf("%q is not lowercased", w)
		}
	}
	long := 0
	for w := range set {
		if len([]rune(w)) < MinPasswordRunes || strings.Contains(w, "zed") {
			continue
		}
		long++
		if err := CheckPassword("zed", []byte(strings.ToUpper(w))); err == nil || !strings.Contains(err.Error(), "common") {
			t.Fatalf("%q in upper case: %v", w, err)
		}
	}
	if long == 0 {
		t.Fatal("no entry of 12 characters")
	}
	if _, err := decodeCommon([]byte("not gzip")); err == nil {
		t.Fatal("decoded a list that is not gzip")
	}
}

// TestCommonPasswordsMemory logs what the decoded set keeps on the heap
// (the figure in the comment on common).
func TestCommonPasswordsMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set, err := decodeCommon(commonPasswordsGz)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d entries keep %.1f MB of heap", len(set), float64(after.HeapAlloc-before.HeapAlloc)/1e6)
	runtime.KeepAlive(set)
}

// BenchmarkCommonPasswordsDecode measures the one-time decoding of the
// list (time and allocations per decode).
func BenchmarkCommonPasswordsDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCommon(commonPasswordsGz); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPassword measures a check once the list is decoded.
func BenchmarkCheckPassword(b *testing.B) {
	if _, err := common(); err != nil {
		b.Fatal(err)
	}
	pw := []byte("correct horse battery staple")
	for b.Loop() {
		if err := CheckPassword("alice", pw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestArgon2ReferenceVectors: hashes of the Argon2 reference
// implementation's own tests (P-H-C/phc-winner-argon2, src/test.c, the
// Argon2id cases for version 0x13) verify, with the right password only.
func TestArgon2ReferenceVectors(t *testing.T) {
	for _, h := range []string{
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
	} {
		ok, rehash, err := VerifyPassword(h, []byte("password"))
		if err != nil || !ok || !rehash {
			t.Errorf("%s: ok=%v rehash=%v %v (want ok, and rehash: not the default parameters)", h, ok, rehash, err)
		}
		if ok, _, err := VerifyPassword(h, []byte("passwore")); ok || err != nil {
			t.Errorf("%s: another password: ok=%v %v", h, ok, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("correct horse battery staple"), small, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Count(h, "$") != 5 {
		t.Fatalf("hash %q", h)
	}
	parts := strings.Split(h, "$")
	if salt, _ := base64.RawStdEncoding.DecodeString(parts[4]); len(salt) != 16 {
		t.Fatalf("salt of %d bytes", len(salt))
	}
	if key, _ := base64.RawStdEncoding.DecodeString(parts[5]); len(key) != 32 {
		t.Fatalf("key of %d bytes", len(key))
	}
	ok, rehash, err := verifyPassword(h, []byte("correct horse battery staple"), small)
	if !ok || rehash || err != nil {
		t.Fatalf("verify with its parameters: ok=%v rehash=%v %v", ok, rehash, err)
	}
	ok, rehash, err = VerifyPassword(h, []byte("correct horse battery staple"))
	if !ok || !rehash || err != nil {
		t.Fatalf("verify against the defaults: ok=%v rehash=%v %v", ok, rehash, err)
	}
	if ok, _, _ := VerifyPassword(h, []byte("correct horse battery stapl")); ok {
		t.Fatal("a wrong password verified")
	}
	// Another salt each time.
	h2, _ := HashPassword([]byte("correct horse battery staple"), small, nil)
	if h2 == h {
		t.Fatal("two hashes with one salt")
	}
	// The defaults, for the zero value.
	d, err := HashPassword([]byte("x"), Argon2Params{}, nil)
	if err != nil || !strings.HasPrefix(d, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("default hash %q %v", d, err)
	}
	if _, rehash, _ := VerifyPassword(d, []byte("x")); rehash {
		t.Fatal("a hash with the defaults needs a rehash")
	}
	// Another key length, or salt length, is other parameters too.
	long := small
	long.KeyLen = 64
	hl, _ := HashPassword([]byte("x"), long, nil)
	if ok, rehash, _ := verifyPassword(hl, []byte("x"), small); !ok || !rehash {
		t.Fatal("a 64-byte key does not need a rehash to 32")
	}
	for _, bad := range []Argon2Params{
		{Memory: 1024, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 4, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1 << 21, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1 << 20, Time: 8, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := HashPassword([]byte("x"), bad, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := HashPassword([]byte("x"), small, bytes.NewReader(nil)); err == nil {
		t.Fatal("no error when the salt cannot be read")
	}
}

// TestParsePHCStrict: every encoding but the one canonical form is
// refused, and so are parameters beyond the bounds, before any work.
func TestParsePHCStrict(t *testing.T) {
	const good = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	if _, err := parsePHC(good); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"argon2i":              strings.Replace(good, "argon2id", "argon2i", 1),
		"argon2d":              strings.Replace(good, "argon2id", "argon2d", 1),
		"no version":           strings.Replace(good, "v=19$", "", 1),
		"version 16":           strings.Replace(good, "v=19", "v=16", 1),
		"leading zero":         strings.Replace(good, "m=256", "m=0256", 1),
		"plus sign":            strings.Replace(good, "m=256", "m=+256", 1),
		"order":                strings.Replace(good, "m=256,t=2", "t=2,m=256", 1),
		"extra parameter":      strings.Replace(good, "p=1", "p=1,keyid=abc", 1),
		"missing parameter":    strings.Replace(good, ",p=1", "", 1),
		"space":                strings.Replace(good, "m=256", "m= 256", 1),
		"padding":              strings.Replace(good, "c29tZXNhbHQ", "c29tZXNhbHQ=", 1),
		"url alphabet":         strings.Replace(good, "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "nf65EOgLrQMR_uIPnA4rEsF5h7TKyQwu9U1bMCHGi_4", 1),
		"stray bits":           strings.Replace(good, "c29tZXNhbHQ", "c29tZXNhbHR", 1),
		"no key":               strings.TrimSuffix(good, "$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"),
		"trailing $":           good + "$",
		"short salt":           strings.Replace(good, "c29tZXNhbHQ", "c29tZQ", 1),
		"short key":            strings.Replace(good, "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "nf65EOgLrQMR/uIPnA4r", 1), // 15 bytes
		"huge memory":          strings.Replace(good, "m=256", "m=4294967295", 1),
		"memory past 1 GiB":    strings.Replace(good, "m=256", "m=1048577", 1),
		"huge time":            strings.Replace(good, "t=2", "t=4294967295", 1),
		"17 passes":            strings.Replace(good, "t=2", "t=17", 1),
		"work":                 strings.Replace(strings.Replace(good, "m=256", "m=1048576", 1), "t=2", "t=5", 1),
		"lanes":                strings.Replace(good, "p=1", "p=255", 1),
		"zero lanes":           strings.Replace(good, "p=1", "p=0", 1),
		"memory below 8 lanes": strings.Replace(good, "m=256", "m=7", 1),
		"11 digits":            strings.Replace(good, "m=256", "m=10000000000", 1),
		"empty":                "",
		"long":                 good + strings.Repeat("A", 300),
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			ok, _, err := VerifyPassword(s, []byte("password"))
			if ok || !errors.Is(err, errPHC) {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if strings.Contains(err.Error(), "password") && !strings.Contains(err.Error(), "password hash") {
				t.Fatal("the error names the password")
			}
		})
	}
}

// FuzzVerifyPassword: PHC parsing never panics; what it accepts is within
// the bounds and has exactly one encoding (re-encoding gives the input
// back); and for accepted hashes cheap enough to compute, VerifyPassword
// agrees with a fresh Argon2id computation.
func FuzzVerifyPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", []byte("password"))
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", []byte(""))
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", []byte("x"))
	f.Add("$argon2i$v=19$m=256,t=2,p=1$$", []byte("x"))
	f.Fuzz(func(t *testing.T, s string, pw []byte) {
		h, err := parsePHC(s)
		if err != nil {
			if ok, _, verr := VerifyPassword(s, pw); ok || verr == nil {
				t.Fatalf("VerifyPassword accepted what parsePHC refused: %q", s)
			}
			return
		}
		if h.p.check() != nil {
			t.Fatalf("accepted out-of-bounds parameters %+v", h.p)
		}
		enc := argon2Prefix + h.p.String() + "$" + b64.EncodeToString(h.salt) + "$" + b64.EncodeToString(h.key)
		if enc != s {
			t.Fatalf("accepted a non-canonical encoding %q (canonical %q)", s, enc)
		}
		if uint64(h.p.Memory)*uint64(h.p.Time) > 4096 {
			return // too slow to compute in a fuzz loop
		}
		ok, _, err := VerifyPassword(s, pw)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Equal(argon2.IDKey(pw, h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen), h.key)
		if ok != want {
			t.Fatalf("VerifyPassword says %v, Argon2id says %v", ok, want)
		}
	})
}

// TestTimeStep: 30-second steps from the epoch, flooring before it.
func TestTimeStep(t *testing.T) {
	for _, c := range []struct {
		unix int64
		step int64
	}{{0, 0}, {29, 0}, {30, 1}, {59, 1}, {1111111109, 37037036}, {-1, -1}, {-30, -1}, {-31, -2}, {math.MinInt64, math.MinInt64/30 - 1}} {
		if got := totpStep(time.Unix(c.unix, 0)); got != c.step {
			t.Errorf("step of %d = %d, want %d", c.unix, got, c.step)
		}
	}
}

// BenchmarkHashPassword measures one Argon2id hash with the default
// parameters (what a login costs) and with the tests' small ones.
func BenchmarkHashPassword(b *testing.B) {
	for _, c := range []struct {
		name string
		p    Argon2Params
	}{{"default", DefaultParams}, {"small", small}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := HashPassword([]byte("correct horse battery staple"), c.p, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
