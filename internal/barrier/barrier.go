// Package barrier encrypts every value Warden stores, with AES-256-GCM under a
// keyring of data keys. The keyring is itself encrypted by a root key that is
// never stored: the caller splits it with Shamir and rebuilds it at unseal.
//
// A ciphertext is
//
//	0x01 | term (4 bytes, big-endian) | nonce (12 random bytes) | GCM ciphertext and tag
//
// and the value's storage path is the additional authenticated data, so a
// ciphertext moved to another path fails to decrypt. Rotation adds a term;
// values under older terms keep decrypting.
//
// barrier knows nothing about Raft or storage; it never puts key material or
// plaintext in an error.
package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

const (
	version   = 0x01
	nonceSize = 12
	headerLen = 1 + 4 + nonceSize
	keyringAD = "warden/keyring/v1"
)

var (
	// ErrSealed: the barrier holds no keyring.
	ErrSealed = errors.New("barrier: sealed")
	// ErrDecrypt: tampered data, wrong additional data, or wrong key.
	ErrDecrypt = errors.New("barrier: message authentication failed")
	// ErrUnknownTerm: the ciphertext names a key term the keyring lacks.
	ErrUnknownTerm = errors.New("barrier: unknown key term")
	// ErrMalformed: the ciphertext is too short or of an unknown version.
	ErrMalformed = errors.New("barrier: malformed ciphertext")
)

// Key is a 256-bit secret key. It prints as "barrier.Key(REDACTED)" in every
// format and in slog; compare keys with Equal. The zero value is no key.
type Key struct{ b [KeySize]byte }

const redacted = "barrier.Key(REDACTED)"

// NewKey reads a fresh key from rand.
func NewKey(rand io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand, k.b[:]); err != nil {
		return Key{}, fmt.Errorf("barrier: new key: %w", err)
	}
	return k, nil
}

// KeyFromBytes copies a 32-byte key.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeySize {
		return k, fmt.Errorf("barrier: a key is %d bytes, got %d", KeySize, len(b))
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the key.
func (k Key) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Equal compares in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// Zero overwrites the key.
func (k *Key) Zero() { clear(k.b[:]) }

func (Key) String() string             { return redacted }
func (Key) GoString() string           { return redacted }
func (Key) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

type termKey struct {
	term    uint32
	key     Key
	install time.Time
	aead    cipher.AEAD
}

// Keyring holds data keys by term, one of them active. It is immutable once
// built and safe for concurrent use.
type Keyring struct {
	terms  map[uint32]*termKey
	active *termKey
}

func newTermKey(term uint32, key Key, install time.Time) (*termKey, error) {
	block, err := aes.NewCipher(key.b[:])
	if err != nil {
		return nil, fmt.Errorf("barrier: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("barrier: gcm: %w", err)
	}
	return &termKey{term: term, key: key, install: install.UTC(), aead: aead}, nil
}

// NewKeyring returns a keyring with one key, term 1.
func NewKeyring(rand io.Reader, now time.Time) (*Keyring, error) {
	k, err := NewKey(rand)
	if err != nil {
		return nil, err
	}
	tk, err := newTermKey(1, k, now)
	if err != nil {
		return nil, err
	}
	return &Keyring{terms: map[uint32]*termKey{1: tk}, active: tk}, nil
}

// ActiveTerm is the term new values are encrypted under.
func (k *Keyring) ActiveTerm() uint32 { return k.active.term }

// InstallTime is when the active term was created.
func (k *Keyring) InstallTime() time.Time { return k.active.install }

// Terms is the number of terms held.
func (k *Keyring) Terms() int { return len(k.terms) }

// Rotate returns a new keyring with a fresh key at ActiveTerm()+1 made
// active. The receiver is unchanged.
func (k *Keyring) Rotate(rand io.Reader, now time.Time) (*Keyring, error) {
	if k.active.term == ^uint32(0) {
		return nil, errors.New("barrier: key terms exhausted")
	}
	nk, err := NewKey(rand)
	if err != nil {
		return nil, err
	}
	tk, err := newTermKey(k.active.term+1, nk, now)
	if err != nil {
		return nil, err
	}
	// Copy every term, so zeroing one keyring never affects the other.
	out := &Keyring{terms: make(map[uint32]*termKey, len(k.terms)+1), active: tk}
	for t, v := range k.terms {
		c, err := newTermKey(t, v.key, v.install)
		if err != nil {
			return nil, err
		}
		out.terms[t] = c
	}
	out.terms[tk.term] = tk
	return out, nil
}

// Encrypt seals plaintext under the active term with aad as additional
// authenticated data. The result is a new slice.
func (k *Keyring) Encrypt(aad string, plaintext []byte) ([]byte, error) {
	tk := k.active
	out := make([]byte, headerLen, headerLen+len(plaintext)+tk.aead.Overhead())
	out[0] = version
	binary.BigEndian.PutUint32(out[1:5], tk.term)
	if _, err := rand.Read(out[5:headerLen]); err != nil {
		return nil, fmt.Errorf("barrier: nonce: %w", err)
	}
	return tk.aead.Seal(out, out[5:headerLen], plaintext, aadBytes(aad)), nil
}

// aadBytes converts without copying when the compiler can prove it safe; the
// AEAD only reads additional data.
func aadBytes(s string) []byte { return []byte(s) }

// Decrypt opens a ciphertext made by Encrypt with the same aad.
func (k *Keyring) Decrypt(aad string, ct []byte) ([]byte, error) {
	if len(ct) < headerLen+16 || ct[0] != version {
		return nil, ErrMalformed
	}
	tk, ok := k.terms[binary.BigEndian.Uint32(ct[1:5])]
	if !ok {
		return nil, ErrUnknownTerm
	}
	pt, err := tk.aead.Open(nil, ct[5:headerLen], ct[headerLen:], aadBytes(aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Zero overwrites every key (best effort: the AEADs keep expanded copies
// until collected).
func (k *Keyring) Zero() {
	for _, tk := range k.terms {
		tk.key.Zero()
	}
}

type keyringJSON struct {
	Version int        `json:"version"`
	Active  uint32     `json:"active"`
	Terms   []termJSON `json:"terms"`
}

type termJSON struct {
	Term    uint32    `json:"term"`
	Key     []byte    `json:"key"`
	Install time.Time `json:"install"`
}

// SealKeyring encrypts the keyring under the root key.
func SealKeyring(root Key, kr *Keyring) ([]byte, error) {
	kj := keyringJSON{Version: 1, Active: kr.active.term}
	for _, tk := range kr.terms {
		kj.Terms = append(kj.Terms, termJSON{Term: tk.term, Key: tk.key.b[:], Install: tk.install})
	}
	pt, err := json.Marshal(kj)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	rk, err := newTermKey(0, root, time.Time{})
	if err != nil {
		return nil, err
	}
	ring := &Keyring{terms: map[uint32]*termKey{0: rk}, active: rk}
	return ring.Encrypt(keyringAD, pt)
}

// OpenKeyring decrypts and strictly validates a sealed keyring. A wrong root
// key gives ErrDecrypt.
func OpenKeyring(root Key, blob []byte) (*Keyring, error) {
	rk, err := newTermKey(0, root, time.Time{})
	if err != nil {
		return nil, err
	}
	ring := &Keyring{terms: map[uint32]*termKey{0: rk}, active: rk}
	pt, err := ring.Decrypt(keyringAD, blob)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	var kj keyringJSON
	if err := json.Unmarshal(pt, &kj); err != nil {
		return nil, fmt.Errorf("%w: keyring encoding", ErrMalformed)
	}
	if kj.Version != 1 || len(kj.Terms) == 0 {
		return nil, fmt.Errorf("%w: keyring version or terms", ErrMalformed)
	}
	out := &Keyring{terms: make(map[uint32]*termKey, len(kj.Terms))}
	for _, t := range kj.Terms {
		if t.Term == 0 || out.terms[t.Term] != nil {
			return nil, fmt.Errorf("%w: keyring term %d", ErrMalformed, t.Term)
		}
		key, err := KeyFromBytes(t.Key)
		clear(t.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: keyring key size", ErrMalformed)
		}
		tk, err := newTermKey(t.Term, key, t.Install)
		if err != nil {
			return nil, err
		}
		out.terms[t.Term] = tk
	}
	if out.active = out.terms[kj.Active]; out.active == nil {
		return nil, fmt.Errorf("%w: active term %d missing", ErrMalformed, kj.Active)
	}
	return out, nil
}

// Barrier holds the keyring while unsealed. The zero value is sealed. Safe for
// concurrent use; Encrypt and Decrypt take no lock.
type Barrier struct {
	kr atomic.Pointer[Keyring]
}

// Unseal installs kr (replacing any previous keyring, e.g. after rotation).
func (b *Barrier) Unseal(kr *Keyring) { b.kr.Store(kr) }

// Seal drops the keyring and zeroes it.
func (b *Barrier) Seal() {
	if kr := b.kr.Swap(nil); kr != nil {
		kr.Zero()
	}
}

// Sealed reports whether no keyring is held.
func (b *Barrier) Sealed() bool { return b.kr.Load() == nil }

// Keyring returns the current keyring or ErrSealed.
func (b *Barrier) Keyring() (*Keyring, error) {
	kr := b.kr.Load()
	if kr == nil {
		return nil, ErrSealed
	}
	return kr, nil
}

// Encrypt encrypts under the active term; ErrSealed when sealed.
func (b *Barrier) Encrypt(aad string, plaintext []byte) ([]byte, error) {
	kr := b.kr.Load()
	if kr == nil {
		return nil, ErrSealed
	}
	return kr.Encrypt(aad, plaintext)
}

// Decrypt decrypts; ErrSealed when sealed.
func (b *Barrier) Decrypt(aad string, ct []byte) ([]byte, error) {
	kr := b.kr.Load()
	if kr == nil {
		return nil, ErrSealed
	}
	return kr.Decrypt(aad, ct)
}
