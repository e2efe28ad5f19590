package users

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// RFC 6238 Appendix B: the seeds (ASCII "1234567890" repeated to the
// hash's length) and the 8-digit codes at the given times.
var (
	rfcSeed1   = []byte("12345678901234567890")
	rfcSeed256 = []byte("12345678901234567890123456789012")
	rfcSeed512 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
	rfcVectors = []struct {
		unix                 int64
		step                 string // T, as the RFC prints it
		sha1, sha256, sha512 string
	}{
		{59, "0000000000000001", "94287082", "46119246", "90693936"},
		{1111111109, "00000000023523EC", "07081804", "68084774", "25091201"},
		{1111111111, "00000000023523ED", "14050471", "67062674", "99943326"},
		{1234567890, "000000000273EF07", "89005924", "91819424", "93441116"},
		{2000000000, "0000000003F940AA", "69279037", "90698825", "38618901"},
		{20000000000, "0000000027BC86AA", "65353130", "77737706", "47863826"},
	}
)

func TestTOTPRFC6238(t *testing.T) {
	for _, v := range rfcVectors {
		t.Run(fmt.Sprint(v.unix), func(t *testing.T) {
			step := totpStep(time.Unix(v.unix, 0))
			if got := fmt.Sprintf("%016X", step); got != v.step {
				t.Fatalf("T = %s, want %s", got, v.step)
			}
			for _, c := range []struct {
				alg  otp.Algorithm
				seed []byte
				want string
			}{{otp.AlgorithmSHA1, rfcSeed1, v.sha1}, {otp.AlgorithmSHA256, rfcSeed256, v.sha256}, {otp.AlgorithmSHA512, rfcSeed512, v.sha512}} {
				if got := TOTPCode(c.seed, step, 8, c.alg); got != c.want {
					t.Errorf("%v: %s, want %s", c.alg, got, c.want)
				}
				// 6 digits are the last 6 of 8 (the same value mod 10^6).
				if got := TOTPCode(c.seed, step, 6, c.alg); got != c.want[2:] {
					t.Errorf("%v, 6 digits: %s, want %s", c.alg, got, c.want[2:])
				}
			}
		})
	}
}

// TestTOTPMatchesPquerna: our codes are those of pquerna/otp, which
// authenticator apps agree with, for a secret it generated.
func TestTOTPMatchesPquerna(t *testing.T) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Warden", AccountName: "alice", Rand: seeded(7)})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := b32.DecodeString(key.Secret())
	if err != nil {
		t.Fatal(err)
	}
	for _, unix := range []int64{0, 59, 1700000000, 1700000029, 1700000030} {
		now := time.Unix(unix, 0)
		want, err := totp.GenerateCode(key.Secret(), now)
		if err != nil {
			t.Fatal(err)
		}
		if got := TOTPCode(secret, totpStep(now), 6, otp.AlgorithmSHA1); got != want {
			t.Errorf("at %d: %s, pquerna %s", unix, got, want)
		}
		h, _ := hotp.GenerateCodeCustom(key.Secret(), uint64(totpStep(now)), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if h != want {
			t.Fatalf("hotp %s", h)
		}
	}
}

func TestTOTPCodePanics(t *testing.T) {
	for _, c := range []struct {
		digits int
		alg    otp.Algorithm
	}{{5, otp.AlgorithmSHA1}, {9, otp.AlgorithmSHA1}, {6, otp.AlgorithmMD5}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%d digits, %v: no panic", c.digits, c.alg)
				}
			}()
			TOTPCode(rfcSeed1, 1, c.digits, c.alg)
		}()
	}
}

func TestValidateTOTP(t *testing.T) {
	secret := b32.EncodeToString(rfcSeed1)
	at := func(unix int64) time.Time { return time.Unix(unix, 0) }
	// RFC 6238 at 59 s (step 1): 94287082, so 287082 with 6 digits.
	const code = "287082"
	cases := []struct {
		name     string
		secret   string
		code     string
		now      time.Time
		lastStep int64
		step     int64 // 0: refused
	}{
		{"its step", secret, code, at(59), 0, 1},
		{"the step before (drift)", secret, code, at(30 + 30), 0, 1},
		{"the step after (drift)", secret, code, at(0), -1, 1},
		{"two steps on", secret, code, at(90), 0, 0},
		{"two steps before", secret, code, at(-1), -5, 0},
		{"replayed: step = last step", secret, code, at(59), 1, 0},
		{"replayed: step < last step", secret, code, at(59), 2, 0},
		{"wrong code", secret, "287083", at(59), 0, 0},
		{"8 digits", secret, "94287082", at(59), 0, 0},
		{"5 digits", secret, "28708", at(59), 0, 0},
		{"not digits", secret, "28708a", at(59), 0, 0},
		{"signed", secret, "+28708", at(59), 0, 0},
		{"bad secret", "not base32!", code, at(59), 0, 0},
		{"empty secret", "", code, at(59), 0, 0},
		{"padded secret", secret + "====", code, at(59), 0, 0},
		{"huge secret", strings.Repeat("A", 1000), code, at(59), 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			step, ok := ValidateTOTP(c.secret, c.code, c.now, c.lastStep)
			if ok != (c.step != 0) || (ok && step != c.step) {
				t.Fatalf("step %d ok=%v, want step %d", step, ok, c.step)
			}
		})
	}
	// The latest fresh step wins when the previous one was used: the code
	// of step 2 at step 2 after step 1 was accepted.
	code2 := TOTPCode(rfcSeed1, 2, 6, otp.AlgorithmSHA1)
	if step, ok := ValidateTOTP(secret, code2, at(60), 1); !ok || step != 2 {
		t.Fatalf("step 2 after 1: %d %v", step, ok)
	}
}

// FuzzValidateTOTP: never panics, and accepts only a code that is the
// secret's code of the step it returns, within one step of now and after
// lastStep.
func FuzzValidateTOTP(f *testing.F) {
	f.Add(b32.EncodeToString(rfcSeed1), "287082", int64(59), int64(0))
	f.Add("JBSWY3DPEHPK3PXP", "000000", int64(1700000000), int64(-1))
	f.Add("", "", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, secret, code string, unix, lastStep int64) {
		now := time.Unix(unix, 0)
		step, ok := ValidateTOTP(secret, code, now, lastStep)
		if !ok {
			return
		}
		raw, err := b32.DecodeString(secret)
		if err != nil {
			t.Fatalf("accepted with a secret that does not decode: %q", secret)
		}
		cur := totpStep(now)
		if step <= lastStep || step < cur-1 || step > cur+1 {
			t.Fatalf("step %d, now %d, last %d", step, cur, lastStep)
		}
		if TOTPCode(raw, step, 6, otp.AlgorithmSHA1) != code {
			t.Fatalf("accepted %q, not the code of step %d", code, step)
		}
	})
}

func TestRecoveryCodes(t *testing.T) {
	shown, hashes, err := newRecoveryCodes(seeded(3), recoveryCodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(shown) != 10 || len(hashes) != 10 {
		t.Fatalf("%d codes, %d hashes", len(shown), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range shown {
		if len(c) != 19 || c[4] != '-' || c[9] != '-' || c[14] != '-' || strings.Trim(strings.ReplaceAll(c, "-", ""), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			t.Fatalf("code %q", c)
		}
		raw, err := b32.DecodeString(strings.ReplaceAll(c, "-", ""))
		if err != nil || len(raw) != 10 {
			t.Fatalf("code %q: %d bytes %v", c, len(raw), err)
		}
		sum := sha256.Sum256([]byte(strings.ReplaceAll(c, "-", "")))
		if hashes[i] != hex.EncodeToString(sum[:]) {
			t.Fatalf("hash of %q", c)
		}
		if seen[c] {
			t.Fatal("a code twice")
		}
		seen[c] = true
	}
	c := shown[3]
	for _, typed := range []string{c, strings.ToLower(c), strings.ReplaceAll(c, "-", ""), strings.ReplaceAll(c, "-", " "), " " + c + " "} {
		if i := matchRecovery(hashes, typed); i != 3 {
			t.Errorf("%q: index %d", typed, i)
		}
	}
	for _, typed := range []string{"", c[:18], c + "A", strings.Replace(c, c[:1], "1", 1), strings.Repeat("A", 16), c + strings.Repeat("-", 40)} {
		if i := matchRecovery(hashes, typed); i != -1 {
			t.Errorf("%q: index %d", typed, i)
		}
	}
}
