package cosign

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/warden-sec/warden/internal/witness"
)

// Signature algorithms of note verifier keys (c2sp.org/signed-note): an
// Ed25519 note key, and a tlog-cosignature (cosignature/v1) key.
const (
	algEd25519     = 0x01
	algCosignature = 0x04
)

// ErrVerifierKey: a witness verifier key that is not a note verifier key
// of an Ed25519 or cosignature/v1 key. Errors of CheckVerifierKey wrap it.
var ErrVerifierKey = errors.New("not a witness verifier key")

// CheckVerifierKey checks the syntax of a witness's note verifier key,
// "<name>+<key hash>+<base64 key>" (c2sp.org/signed-note): a valid key
// name, eight lowercase hexadecimal digits that are the key hash of the
// name and key, and a key of one algorithm byte (Ed25519 or
// cosignature/v1) and 32 bytes. It returns the key's name. It does not say
// that anyone holds the key.
func CheckVerifierKey(vkey string) (name string, err error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrVerifierKey, fmt.Sprintf(format, args...))
	}
	if len(vkey) > 512 {
		return bad("%d bytes, more than 512", len(vkey))
	}
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return bad(`want "<name>+<hash>+<key>"`)
	}
	if err := witness.CheckKeyName(name); err != nil {
		return bad("%v", err)
	}
	if len(hash) != 8 || strings.ToLower(hash) != hash {
		return bad("the key hash %q is not 8 lowercase hexadecimal digits", hash)
	}
	h, err := hex.DecodeString(hash)
	if err != nil {
		return bad("the key hash %q is not 8 lowercase hexadecimal digits", hash)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil || base64.StdEncoding.EncodeToString(key) != key64 {
		return bad("the key is not canonical standard base64")
	}
	if len(key) != 33 || (key[0] != algEd25519 && key[0] != algCosignature) {
		return bad("the key is not an Ed25519 or cosignature/v1 key")
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(h) != binary.BigEndian.Uint32(sum[:4]) {
		return bad("the key hash does not match the name and key")
	}
	return name, nil
}
