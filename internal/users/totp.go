package users

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/pquerna/otp"
)

// TOTP parameters of every enrolled factor: what authenticator apps assume
// (RFC 6238 with SHA-1, 6 digits, 30-second steps, 160-bit secrets).
const (
	totpDigits   = 6
	totpPeriod   = 30 // seconds
	totpSecret   = 20 // bytes
	totpSkew     = 1  // steps accepted either side of now
	totpIssuer   = "Warden"
	maxTOTPInput = 64 // bytes of a base32 secret ValidateTOTP looks at
)

// b32 is the base32 of TOTP secrets: RFC 4648 alphabet, no padding (as
// authenticator apps and otpauth:// URIs write them).
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// TOTPCode is the RFC 6238 code of secret at time step step (T in RFC 6238
// 4.2: floor((unix time - T0) / X) with T0 = 0), that is the RFC 4226 HOTP
// value of the step as the counter, with HMAC over alg and digits decimal
// digits (6 to 8). It panics for another number of digits or for
// otp.AlgorithmMD5, which RFC 6238 does not define: both are programming
// errors, not input.
func TOTPCode(secret []byte, step int64, digits int, alg otp.Algorithm) string {
	if digits < 6 || digits > 8 {
		panic(fmt.Sprintf("users: TOTP with %d digits", digits))
	}
	var h func() hash.Hash
	switch alg {
	case otp.AlgorithmSHA1:
		h = sha1.New
	case otp.AlgorithmSHA256:
		h = sha256.New
	case otp.AlgorithmSHA512:
		h = sha512.New
	default:
		panic(fmt.Sprintf("users: TOTP with %v", alg))
	}
	m := hmac.New(h, secret)
	var counter [8]byte
	binary.BigEndian.PutUint64(counter[:], uint64(step))
	m.Write(counter[:])
	sum := m.Sum(nil)
	// RFC 4226 5.3: dynamic truncation.
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// totpStep is the RFC 6238 time step of t (30-second steps from the Unix
// epoch; floor for times before it).
func totpStep(t time.Time) int64 {
	s := t.Unix()
	q := s / totpPeriod
	if s%totpPeriod < 0 {
		q--
	}
	return q
}

// ValidateTOTP checks a 6-digit code against the base32 secret (as stored
// in TOTP.Secret) at now, accepting the step of now and one step either
// side (clock drift), but only a step after lastStep: a code once accepted
// never is again (RFC 6238 5.2). It returns the code's step, for the
// caller to store as the new LastStep. The three candidates are always all
// computed and compared in constant time, so the time taken says nothing
// about which step matched or how many digits were right. A malformed
// secret or code is simply not ok.
func ValidateTOTP(secretB32, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if len(secretB32) > maxTOTPInput || len(code) != totpDigits || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	secret, err := b32.DecodeString(secretB32)
	if err != nil || len(secret) == 0 {
		return 0, false
	}
	cur := totpStep(now)
	found := int64(0)
	match := 0
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		s := cur + d
		eq := subtle.ConstantTimeCompare([]byte(TOTPCode(secret, s, totpDigits, otp.AlgorithmSHA1)), []byte(code))
		fresh := 0
		if s > lastStep {
			fresh = 1
		}
		hit := eq & fresh
		// Keep the latest fresh matching step, without a branch on it.
		found = int64(hit)*s + int64(1-hit)*found
		match |= hit
	}
	return found, match == 1
}

// Recovery codes: recoveryCodes codes of 80 random bits each, shown once as
// 16 base32 characters in groups of four (ABCD-EFGH-IJKL-MNOP), stored as
// the hex SHA-256 of the normalized code (upper case, no dashes). 80 bits
// need no slow hash: they cannot be guessed offline from a stolen record.
const (
	recoveryCodes   = 10
	recoveryRawLen  = 10 // bytes: 80 bits, 16 base32 characters
	recoveryTextLen = 16
)

// newRecoveryCodes returns n fresh codes, as shown to the user, and their
// stored hashes.
func newRecoveryCodes(rnd io.Reader, n int) (shown, hashes []string, err error) {
	raw := make([]byte, recoveryRawLen)
	for range n {
		if _, err := io.ReadFull(rnd, raw); err != nil {
			return nil, nil, fmt.Errorf("users: recovery code: %w", err)
		}
		c := b32.EncodeToString(raw)
		shown = append(shown, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, hashRecovery(c))
	}
	clear(raw)
	return shown, hashes, nil
}

// normalizeRecovery returns the normalized form of a code as typed (case
// and dashes or spaces do not matter), or "" when it cannot be a code.
func normalizeRecovery(code string) string {
	if len(code) > 2*recoveryTextLen {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return ""
		}
		b.WriteByte(c)
	}
	if b.Len() != recoveryTextLen {
		return ""
	}
	return b.String()
}

// hashRecovery is the stored form of a normalized code.
func hashRecovery(norm string) string {
	sum := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(sum[:])
}

// matchRecovery returns the index in hashes of code (as typed), or -1. It
// compares with every stored hash in constant time, whether or not one
// matched already.
func matchRecovery(hashes []string, code string) int {
	norm := normalizeRecovery(code)
	if norm == "" {
		return -1
	}
	h := []byte(hashRecovery(norm))
	idx := -1
	for i, s := range hashes {
		eq := subtle.ConstantTimeCompare(h, []byte(s))
		idx = subtle.ConstantTimeSelect(eq, i, idx)
	}
	return idx
}
