package shamir

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
)

// seeded returns a deterministic io.Reader so test runs repeat.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// slowMul is a reference multiplication: carry-less multiply then reduce.
func slowMul(a, b byte) byte {
	var p uint16
	for i := 0; i < 8; i++ {
		if b&(1<<i) != 0 {
			p ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if p&(1<<i) != 0 {
			p ^= 0x11b << (i - 8)
		}
	}
	return byte(p)
}

func TestField(t *testing.T) {
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%d,%d) = %d, want %d", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("a*inv(a) != 1 for a=%d", a)
		}
	}
	if mul(0x57, 0x83) != 0xc1 { // FIPS-197 section 4.2 example
		t.Fatal("FIPS-197 example")
	}
}

// subsets calls f with every k-subset of 0..n-1.
func subsets(n, k int, f func([]int)) {
	idx := make([]int, k)
	var rec func(start, depth int)
	rec = func(start, depth int) {
		if depth == k {
			f(idx)
			return
		}
		for i := start; i < n; i++ {
			idx[depth] = i
			rec(i+1, depth+1)
		}
	}
	rec(0, 0)
}

func TestEveryThresholdSubsetRecovers(t *testing.T) {
	cases := []struct{ n, k int }{{1, 1}, {2, 2}, {3, 2}, {3, 3}, {5, 3}, {10, 7}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d-of-%d", tc.k, tc.n), func(t *testing.T) {
			r := seeded(uint64(tc.n*100 + tc.k))
			secret := make([]byte, 32)
			r.Read(secret)
			shares, err := Split(secret, tc.n, tc.k, r)
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			for k := tc.k; k <= tc.n; k++ {
				subsets(tc.n, k, func(idx []int) {
					pick := make([][]byte, len(idx))
					for i, j := range idx {
						pick[i] = shares[j]
					}
					got, err := Combine(pick)
					if err != nil || !bytes.Equal(got, secret) {
						t.Fatalf("subset %v: %x, %v", idx, got, err)
					}
					count++
				})
			}
			if tc.k > 1 {
				subsets(tc.n, tc.k-1, func(idx []int) {
					pick := make([][]byte, len(idx))
					for i, j := range idx {
						pick[i] = shares[j]
					}
					if got, _ := Combine(pick); bytes.Equal(got, secret) {
						t.Fatalf("T-1 shares %v recovered the secret", idx)
					}
				})
			}
			if count == 0 {
				t.Fatal("no subset tried")
			}
		})
	}
}

func TestProperty(t *testing.T) {
	r := seeded(42)
	for i := 0; i < 300; i++ {
		n := 1 + r.Uint64()%20
		k := 2 + r.Uint64()%n
		if n == 1 {
			k = 1
		}
		if k > n {
			k = n
		}
		secret := make([]byte, 1+r.Uint64()%64)
		r.Read(secret)
		shares, err := Split(secret, int(n), int(k), r)
		if err != nil {
			t.Fatalf("run %d (n=%d k=%d): %v", i, n, k, err)
		}
		perm := rand.New(rand.NewPCG(uint64(i), 7)).Perm(int(n))
		pick := make([][]byte, k)
		for j := range pick {
			pick[j] = shares[perm[j]]
		}
		got, err := Combine(pick)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("run %d (n=%d k=%d): got %x want %x (%v)", i, n, k, got, secret, err)
		}
	}
}

// TestOneShareRevealsNothing: with threshold 2, for one share (x, y) and any
// candidate secret byte v there is exactly one line through (0, v) and (x, y),
// so every secret value is equally consistent with the share.
func TestOneShareRevealsNothing(t *testing.T) {
	shares, err := Split([]byte{0x42}, 3, 2, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	x, y := shares[0][1], shares[0][0]
	for v := 0; v < 256; v++ {
		slope := mul(y^byte(v), inv(x)) // y = v + slope*x
		if eval([]byte{byte(v), slope}, x) != y {
			t.Fatalf("no polynomial through (0,%d) and the share", v)
		}
	}
}

func TestVectors(t *testing.T) {
	// Frozen outputs of Split with a fixed random stream: a change to the
	// algorithm or the share format fails here.
	secret := []byte("warden")
	shares, err := Split(secret, 3, 2, seeded(7))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{hex.EncodeToString(shares[0]), hex.EncodeToString(shares[1]), hex.EncodeToString(shares[2])}
	want := vectors
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("share %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, pair := range [][2]int{{0, 1}, {1, 2}, {0, 2}} {
		a, _ := hex.DecodeString(want[pair[0]])
		b, _ := hex.DecodeString(want[pair[1]])
		if s, err := Combine([][]byte{a, b}); err != nil || string(s) != "warden" {
			t.Fatalf("vector pair %v: %q %v", pair, s, err)
		}
	}
}

func TestErrors(t *testing.T) {
	r := seeded(3)
	for _, tc := range []struct {
		name          string
		secret        []byte
		parts, thresh int
	}{
		{"empty secret", nil, 3, 2},
		{"zero parts", []byte{1}, 0, 1},
		{"too many parts", []byte{1}, 256, 2},
		{"threshold above parts", []byte{1}, 3, 4},
		{"threshold 1 of many", []byte{1}, 3, 1},
		{"threshold 0", []byte{1}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Split(tc.secret, tc.parts, tc.thresh, r); err == nil {
				t.Fatal("no error")
			}
		})
	}
	good, _ := Split([]byte("abc"), 3, 2, r)
	for _, tc := range []struct {
		name   string
		shares [][]byte
	}{
		{"none", nil},
		{"too short", [][]byte{{1}}},
		{"lengths differ", [][]byte{good[0], good[1][:3]}},
		{"x zero", [][]byte{good[0], {1, 2, 3, 0}}},
		{"duplicate", [][]byte{good[0], good[0]}},
	} {
		t.Run("combine "+tc.name, func(t *testing.T) {
			if _, err := Combine(tc.shares); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte("secret"), uint8(5), uint8(3), uint64(1))
	f.Fuzz(func(t *testing.T, secret []byte, n, k uint8, seed uint64) {
		shares, err := Split(secret, int(n), int(k), seeded(seed))
		if err != nil {
			_, _ = Combine([][]byte{secret}) // must not panic on arbitrary bytes
			return
		}
		got, err := Combine(shares[:k])
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("combine: %x %v", got, err)
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	secret := make([]byte, 32)
	r := seeded(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Split(secret, 5, 3, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine(b *testing.B) {
	shares, _ := Split(make([]byte, 32), 5, 3, seeded(1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Combine(shares[:3]); err != nil {
			b.Fatal(err)
		}
	}
}
