package transit

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/warden-sec/warden/internal/errs"
)

// Prefix starts every ciphertext, signature and HMAC.
const Prefix = "wdn:"

// MaxEncodedLen bounds the ciphertexts, signatures and HMACs the parser
// accepts (the API's body limit is lower).
const MaxEncodedLen = 64 << 20

// MaxContextLen bounds a derivation context.
const MaxContextLen = 4096

const nonceSize = 12

var b64 = base64.StdEncoding.Strict()

// ErrCannotDecrypt is the one error of a ciphertext that parses but does not
// open, whatever the reason (another key, another version or context,
// truncated, modified).
var ErrCannotDecrypt = errs.E(errs.Invalid, "cannot decrypt")

// Parsed is a parsed "wdn:v<N>:<base64>" value.
type Parsed struct {
	Version int
	Payload []byte
}

// Parse parses "wdn:v<N>:<base64>" strictly: N is a decimal from 1 to
// 2^31-1 without sign or leading zeros, and the base64 is standard, padded
// and canonical. field names the value in errors ("ciphertext",
// "signature", "hmac").
func Parse(field, s string) (Parsed, error) {
	if len(s) > MaxEncodedLen {
		return Parsed{}, invalid("%s: longer than %d bytes", field, MaxEncodedLen)
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Parsed{}, invalid("%s: does not start with %q", field, Prefix)
	}
	rest, ok = strings.CutPrefix(rest, "v")
	num, data, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return Parsed{}, invalid("%s: does not read %sv<version>:<base64>", field, Prefix)
	}
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n < 1 || num[0] == '0' || num[0] == '+' {
		return Parsed{}, invalid("%s: version %q is not a positive decimal", field, num)
	}
	b, err := b64.DecodeString(data)
	// The decoder skips line breaks even when strict; a value has none.
	if err != nil || strings.ContainsAny(data, "\r\n") {
		return Parsed{}, invalid("%s: not base64", field)
	}
	return Parsed{Version: int(n), Payload: b}, nil
}

// ParseCiphertext is Parse of a ciphertext.
func ParseCiphertext(s string) (Parsed, error) { return Parse("ciphertext", s) }

// aad is the additional data that binds a ciphertext to the key and version.
func (k *Key) aad(n int) []byte {
	return []byte("warden-transit/v1\x00" + k.Name + "\x00" + strconv.Itoa(n))
}

// checkContext refuses a context for a key that is not derived and requires
// one for a key that is.
func (k *Key) checkContext(context []byte) error {
	switch {
	case k.Derived && len(context) == 0:
		return invalid("context: required, the key is derived")
	case !k.Derived && len(context) > 0:
		return invalid("context: not allowed, the key is not derived")
	case len(context) > MaxContextLen:
		return invalid("context: longer than %d bytes", MaxContextLen)
	}
	return nil
}

func (k *Key) needs(op string, ok bool) error {
	if !ok {
		return invalid("type: a %s key does not %s", k.Type, op)
	}
	return nil
}

// encryptionVersion picks the version to encrypt, sign or HMAC with: the
// latest for 0, otherwise n, which must be between min_encryption_version
// (or min_decryption_version when that is 0) and the latest.
func (k *Key) encryptionVersion(n int) (*Version, error) {
	if n == 0 {
		// As in Vault: the latest version, whatever
		// min_encryption_version says; that is a floor for requested
		// versions.
		return k.version(k.Latest), nil
	}
	floor := k.MinEncryptionVersion
	if floor == 0 {
		floor = k.MinDecryptionVersion
	}
	if n < floor || n > k.Latest {
		return nil, invalid("key_version: must be between %d and the latest version %d", floor, k.Latest)
	}
	return k.version(n), nil
}

// decryptionVersion returns version n for decryption or verification.
func (k *Key) decryptionVersion(field string, n int) (*Version, error) {
	if n < k.MinDecryptionVersion {
		return nil, invalid("%s: version %d is below min_decryption_version %d", field, n, k.MinDecryptionVersion)
	}
	if n > k.Latest {
		return nil, invalid("%s: version %d does not exist, the latest is %d", field, n, k.Latest)
	}
	return k.version(n), nil
}

// aead returns the AEAD of version v, derived with context if the key is.
func (k *Key) aead(v *Version, context []byte) (cipher.AEAD, error) {
	key := []byte(v.Material)
	if k.Derived {
		var err error
		key, err = hkdf.Key(sha256.New, key, nil, string(context), 32)
		if err != nil {
			return nil, fmt.Errorf("transit: deriving a key: %w", err)
		}
	}
	switch k.Type {
	case AES256GCM96:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("transit: %w", err)
		}
		return cipher.NewGCM(b)
	case ChaCha20Poly1305:
		return chacha20poly1305.New(key)
	}
	return nil, invalid("type: a %s key does not encrypt", k.Type)
}

// Encrypt encrypts plaintext with version (0: the latest), the nonce read
// from rand. context is required for a derived key and refused otherwise.
// It returns "wdn:v<N>:<base64>".
func (k *Key) Encrypt(plaintext, context []byte, version int, rand io.Reader) (string, error) {
	if err := k.needs("encrypt", k.Type.encrypts()); err != nil {
		return "", err
	}
	if err := k.checkContext(context); err != nil {
		return "", err
	}
	v, err := k.encryptionVersion(version)
	if err != nil {
		return "", err
	}
	a, err := k.aead(v, context)
	if err != nil {
		return "", err
	}
	if len(plaintext) > MaxEncodedLen/2 {
		return "", invalid("plaintext: longer than %d bytes", MaxEncodedLen/2)
	}
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+a.Overhead())
	if _, err := io.ReadFull(rand, out); err != nil {
		return "", fmt.Errorf("transit: reading a nonce: %w", err)
	}
	out = a.Seal(out, out, plaintext, k.aad(v.Number))
	return formatVersioned(v.Number, out), nil
}

// Decrypt decrypts a ciphertext of Encrypt, returning the plaintext and the
// version it was encrypted with. A ciphertext that parses but does not open
// fails with ErrCannotDecrypt; one that does not parse, or whose version is
// below min_decryption_version or does not exist, fails naming the field.
func (k *Key) Decrypt(ciphertext string, context []byte) ([]byte, int, error) {
	if err := k.needs("decrypt", k.Type.encrypts()); err != nil {
		return nil, 0, err
	}
	if err := k.checkContext(context); err != nil {
		return nil, 0, err
	}
	p, err := ParseCiphertext(ciphertext)
	if err != nil {
		return nil, 0, err
	}
	v, err := k.decryptionVersion("ciphertext", p.Version)
	if err != nil {
		return nil, 0, err
	}
	a, err := k.aead(v, context)
	if err != nil {
		return nil, 0, err
	}
	if len(p.Payload) < nonceSize+a.Overhead() {
		return nil, 0, ErrCannotDecrypt
	}
	pt, err := a.Open(nil, p.Payload[:nonceSize], p.Payload[nonceSize:], k.aad(v.Number))
	if err != nil {
		return nil, 0, ErrCannotDecrypt
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, v.Number, nil
}

// Rewrap decrypts ciphertext and encrypts its plaintext again with version
// (0: the latest), without the plaintext leaving the core.
func (k *Key) Rewrap(ciphertext string, context []byte, version int, rand io.Reader) (string, error) {
	pt, _, err := k.Decrypt(ciphertext, context)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	return k.Encrypt(pt, context, version, rand)
}

// DataKey makes a random data key of bits (0: 256; 128, 256 or 512, as in
// Vault) from rand
// and returns it with its ciphertext under the latest version. The service
// drops the plaintext for datakey/wrapped.
func (k *Key) DataKey(bits int, context []byte, rand io.Reader) (plaintext []byte, ciphertext string, err error) {
	if err := k.needs("make data keys", k.Type.encrypts()); err != nil {
		return nil, "", err
	}
	switch bits {
	case 0:
		bits = 256
	case 128, 256, 512:
	default:
		return nil, "", invalid("bits: must be 128, 256 or 512")
	}
	if err := k.checkContext(context); err != nil {
		return nil, "", err
	}
	plaintext = make([]byte, bits/8)
	if _, err := io.ReadFull(rand, plaintext); err != nil {
		return nil, "", fmt.Errorf("transit: making a data key: %w", err)
	}
	ciphertext, err = k.Encrypt(plaintext, context, 0, rand)
	if err != nil {
		return nil, "", err
	}
	return plaintext, ciphertext, nil
}

// SignatureAlgorithm selects the RSA signature scheme; other key types
// accept only "" (their one scheme).
type SignatureAlgorithm string

// The RSA signature schemes.
const (
	PSS      SignatureAlgorithm = "pss" // the default, as in Vault
	PKCS1v15 SignatureAlgorithm = "pkcs1v15"
)

// SignOptions are the choices of a signature.
type SignOptions struct {
	Version   int                // 0: the latest (Sign only)
	Algorithm SignatureAlgorithm // rsa-3072 only; "" is PSS
}

func (k *Key) rsaScheme(a SignatureAlgorithm) (SignatureAlgorithm, error) {
	switch {
	case a == "" && k.Type == RSA3072:
		return PSS, nil
	case a == "":
		return "", nil
	case k.Type == RSA3072 && (a == PSS || a == PKCS1v15):
		return a, nil
	case k.Type == RSA3072:
		return "", invalid("signature_algorithm: must be %q or %q", PSS, PKCS1v15)
	}
	return "", invalid("signature_algorithm: a %s key has only one signature algorithm", k.Type)
}

// signer returns the private key of version v, parsed once per version
// when the key has a cache.
func (k *Key) signer(v *Version) (crypto.Signer, error) {
	c := k.signers
	if c == nil {
		return k.parseSigner(v)
	}
	c.mu.Lock()
	s, ok := c.m[v.Number]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := k.parseSigner(v)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[int]crypto.Signer)
	}
	c.m[v.Number] = s
	c.mu.Unlock()
	return s, nil
}

// parseSigner makes the private key of version v from its material.
func (k *Key) parseSigner(v *Version) (crypto.Signer, error) {
	switch k.Type {
	case Ed25519:
		return ed25519.NewKeyFromSeed(v.Material), nil
	case ECDSAP256:
		return ecdsa.ParseRawPrivateKey(elliptic.P256(), v.Material)
	case RSA3072:
		return x509.ParsePKCS1PrivateKey(v.Material)
	}
	return nil, invalid("type: a %s key does not sign", k.Type)
}

// Sign signs input with the version opts.Version (0: the latest) and returns
// "wdn:v<N>:<base64 signature>". ed25519 signs input itself; ecdsa-p256
// and rsa-3072 sign its SHA-256 (ECDSA signatures in ASN.1 DER). rand is
// used by ECDSA and RSA-PSS.
func (k *Key) Sign(input []byte, opts SignOptions, rand io.Reader) (string, error) {
	if err := k.needs("sign", k.Type.signs()); err != nil {
		return "", err
	}
	alg, err := k.rsaScheme(opts.Algorithm)
	if err != nil {
		return "", err
	}
	v, err := k.encryptionVersion(opts.Version)
	if err != nil {
		return "", err
	}
	if rand == nil && k.Type != Ed25519 {
		return "", errors.New("transit: no entropy source")
	}
	s, err := k.signer(v)
	if err != nil {
		return "", fmt.Errorf("transit: key %q version %d: %w", k.Name, v.Number, err)
	}
	var sig []byte
	switch priv := s.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, input)
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(input)
		sig, err = ecdsa.SignASN1(rand, priv, d[:])
	case *rsa.PrivateKey:
		d := sha256.Sum256(input)
		if alg == PKCS1v15 {
			sig, err = rsa.SignPKCS1v15(rand, priv, crypto.SHA256, d[:])
		} else {
			sig, err = rsa.SignPSS(rand, priv, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	}
	if err != nil {
		return "", fmt.Errorf("transit: signing: %w", err)
	}
	return formatVersioned(v.Number, sig), nil
}

// PublicKey returns the public key of version n (0: the latest) of a
// signing key.
func (k *Key) PublicKey(n int) (crypto.PublicKey, error) {
	if err := k.needs("have a public key", k.Type.signs()); err != nil {
		return nil, err
	}
	if n == 0 {
		n = k.Latest
	}
	v := k.version(n)
	if v == nil {
		return nil, invalid("key_version: no version %d", n)
	}
	s, err := k.signer(v)
	if err != nil {
		return nil, fmt.Errorf("transit: key %q version %d: %w", k.Name, v.Number, err)
	}
	return s.Public(), nil
}

// Verify reports whether signature is a valid signature of input by the
// key. A malformed signature, or one by a version below
// min_decryption_version or that does not exist, is an error naming
// "signature"; a well-formed signature that does not verify is false.
func (k *Key) Verify(input []byte, signature string, opts SignOptions) (bool, error) {
	if err := k.needs("verify", k.Type.signs()); err != nil {
		return false, err
	}
	alg, err := k.rsaScheme(opts.Algorithm)
	if err != nil {
		return false, err
	}
	p, err := Parse("signature", signature)
	if err != nil {
		return false, err
	}
	v, err := k.decryptionVersion("signature", p.Version)
	if err != nil {
		return false, err
	}
	s, err := k.signer(v)
	if err != nil {
		return false, fmt.Errorf("transit: key %q version %d: %w", k.Name, v.Number, err)
	}
	switch pub := s.Public().(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(pub, input, p.Payload), nil
	case *ecdsa.PublicKey:
		d := sha256.Sum256(input)
		return ecdsa.VerifyASN1(pub, d[:], p.Payload), nil
	case *rsa.PublicKey:
		d := sha256.Sum256(input)
		if alg == PKCS1v15 {
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], p.Payload) == nil, nil
		}
		return rsa.VerifyPSS(pub, crypto.SHA256, d[:], p.Payload, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil, nil
	}
	return false, errors.New("transit: unexpected public key type")
}

func (k *Key) mac(v *Version, input []byte) []byte {
	key := v.HMACKey
	if k.Type == HMAC {
		key = v.Material
	}
	h := hmac.New(sha256.New, key)
	h.Write(input)
	return h.Sum(nil)
}

// HMAC returns "wdn:v<N>:<base64 HMAC-SHA-256 of input>" under version
// (0: the latest): the key of an hmac key, or, as in Vault, the version's
// own HMAC key for any other type.
func (k *Key) HMAC(input []byte, version int) (string, error) {
	v, err := k.encryptionVersion(version)
	if err != nil {
		return "", err
	}
	return formatVersioned(v.Number, k.mac(v, input)), nil
}

// VerifyHMAC reports, in constant time, whether mac is the HMAC of input.
// A malformed value or a version below min_decryption_version is an error
// naming "hmac".
func (k *Key) VerifyHMAC(input []byte, mac string) (bool, error) {
	p, err := Parse("hmac", mac)
	if err != nil {
		return false, err
	}
	v, err := k.decryptionVersion("hmac", p.Version)
	if err != nil {
		return false, err
	}
	return hmac.Equal(k.mac(v, input), p.Payload), nil
}
