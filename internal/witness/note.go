package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointSize bounds a signed checkpoint (body and signatures) that
// the witness, Client and VerifyCosigned accept, in bytes.
const MaxCheckpointSize = 64 << 10

// HashSize is the size of a tree hash (RFC 6962 SHA-256): the root of a
// checkpoint and each consistency proof line.
const HashSize = sha256.Size

// algCosignatureV1 is the signed-note signature type of Ed25519
// cosignature/v1 keys (c2sp.org/signed-note, c2sp.org/tlog-cosignature).
const algCosignatureV1 = 0x04

// cosigLen is the size of a cosignature/v1 signature after the key ID: a
// big-endian timestamp then the Ed25519 signature.
const cosigLen = 8 + ed25519.SignatureSize

// emptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
var emptyRoot = sha256.Sum256(nil)

// checkKeyName reports whether name is a valid note key name: not empty,
// valid UTF-8, no spaces, control characters or "+".
func checkKeyName(name string) error {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool {
		return r == '+' || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("witness: key name %q: want a non-empty name without spaces, control characters or \"+\"", name)
	}
	return nil
}

// keyID is the cosignature/v1 key ID of an Ed25519 public key:
// SHA-256(name || "\n" || 0x04 || pub)[:4], big-endian.
func keyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// GenerateKey makes an Ed25519 witness key pair named name (a valid note
// key name). vkey is what logs and verifiers are given.
//
// Both are signed-note keys of type 0x04 (Ed25519 cosignature/v1, see
// c2sp.org/tlog-cosignature): skey is "PRIVATE+KEY+<name>+<id>+<base64(0x04
// || seed)>" and vkey "<name>+<id>+<base64(0x04 || public key)>", where id
// is the cosignature/v1 key ID in hex. skey is a secret: keep it in a 0600
// file and out of logs.
func GenerateKey(name string) (skey, vkey string, err error) {
	if err := checkKeyName(name); err != nil {
		return "", "", err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("witness: generate key: %w", err)
	}
	id := keyID(name, pub)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, priv.Seed()...)))
	vkey = fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
	return skey, vkey, nil
}

// errSignerKey never quotes the key: it is a secret.
var errSignerKey = errors.New("witness: signer key is malformed: want the skey of GenerateKey (PRIVATE+KEY+<name>+<id>+<base64 of 0x04 and a 32-byte Ed25519 seed>)")

// signer is a parsed witness key.
type signer struct {
	name string
	id   uint32
	priv ed25519.PrivateKey
	vkey string
}

// parseSigner parses the skey of GenerateKey, checking that its key ID is
// the one its name and key give.
func parseSigner(skey string) (*signer, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" || checkKeyName(parts[2]) != nil || len(parts[3]) != 8 {
		return nil, errSignerKey
	}
	id, err := strconv.ParseUint(parts[3], 16, 32)
	if err != nil {
		return nil, errSignerKey
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != algCosignatureV1 {
		return nil, errSignerKey
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	pub := priv.Public().(ed25519.PublicKey)
	name := parts[2]
	if keyID(name, pub) != uint32(id) {
		return nil, errSignerKey
	}
	vkey := fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
	return &signer{name: name, id: uint32(id), priv: priv, vkey: vkey}, nil
}

// cosign returns the cosignature/v1 signature line ("— name base64\n") of
// the checkpoint note text (its body, with the final newline) at time t
// (POSIX seconds, 1..2^63-1).
func (s *signer) cosign(text []byte, t uint64) []byte {
	msg := make([]byte, 0, 32+len(text))
	msg = append(msg, "cosignature/v1\ntime "...)
	msg = strconv.AppendUint(msg, t, 10)
	msg = append(msg, '\n')
	msg = append(msg, text...)
	sig := make([]byte, 0, 4+cosigLen)
	sig = binary.BigEndian.AppendUint32(sig, s.id)
	sig = binary.BigEndian.AppendUint64(sig, t)
	sig = append(sig, ed25519.Sign(s.priv, msg)...)
	line := make([]byte, 0, 8+len(s.name)+base64.StdEncoding.EncodedLen(len(sig)))
	line = append(line, sigPrefix...)
	line = append(line, s.name...)
	line = append(line, ' ')
	line = base64.StdEncoding.AppendEncode(line, sig)
	return append(line, '\n')
}

// sigPrefix starts every note signature line: an em dash and a space.
const sigPrefix = "— "

// splitNote splits a signed note into its text (ending in a newline) and
// its signature lines (each without its newline), checking the framing
// that c2sp.org/signed-note requires: valid UTF-8 without control
// characters but newlines, the text and the signatures separated by an
// empty line, at least one signature line, each "— <name> <base64>" and
// ending in a newline. Signatures are not verified.
func splitNote(msg []byte) (text []byte, sigs [][]byte, err error) {
	if len(msg) > MaxCheckpointSize {
		return nil, nil, fmt.Errorf("checkpoint of %d bytes, more than %d", len(msg), MaxCheckpointSize)
	}
	if !utf8.Valid(msg) || bytes.ContainsFunc(msg, func(r rune) bool { return r < 0x20 && r != '\n' }) {
		return nil, nil, errors.New("checkpoint is not UTF-8 text without control characters")
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return nil, nil, errors.New("checkpoint has no empty line before its signatures")
	}
	text, rest := msg[:split+1], msg[split+2:]
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return nil, nil, errors.New("checkpoint has no signature lines, or its last line does not end in a newline")
	}
	for _, l := range bytes.Split(rest[:len(rest)-1], []byte("\n")) {
		if _, _, ok := parseSigLine(l); !ok {
			return nil, nil, fmt.Errorf("checkpoint signature line %q is malformed", truncate(l))
		}
		sigs = append(sigs, l)
	}
	if len(sigs) > maxSignatures {
		return nil, nil, fmt.Errorf("checkpoint has %d signatures, more than %d", len(sigs), maxSignatures)
	}
	return text, sigs, nil
}

// maxSignatures is the most signature lines a note may have (as in
// golang.org/x/mod/sumdb/note).
const maxSignatures = 100

// parseSigLine parses a note signature line (without its newline):
// "— <name> <base64 of a 4-byte key ID and the signature>".
func parseSigLine(l []byte) (name string, sig []byte, ok bool) {
	rest, found := bytes.CutPrefix(l, []byte(sigPrefix))
	if !found {
		return "", nil, false
	}
	n, b64, found := bytes.Cut(rest, []byte(" "))
	if !found || checkKeyName(string(n)) != nil {
		return "", nil, false
	}
	sig, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil || len(sig) < 5 {
		return "", nil, false
	}
	return string(n), sig, true
}

func truncate(b []byte) string {
	const max = 80
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// checkpoint is the parsed body of a c2sp.org/tlog-checkpoint note.
type checkpoint struct {
	origin string
	size   uint64
	root   []byte
}

// parseCheckpoint parses a checkpoint note text strictly: at least three
// non-empty lines, each ending in a newline: the origin, the size in
// decimal without leading zeros, the root hash in canonical standard
// base64 (HashSize bytes), then optional non-empty extension lines.
func parseCheckpoint(text []byte) (checkpoint, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return checkpoint{}, errors.New("checkpoint body does not end with a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return checkpoint{}, fmt.Errorf("checkpoint body has %d lines, want origin, size and root", len(lines))
	}
	for i, l := range lines {
		if l == "" {
			return checkpoint{}, fmt.Errorf("checkpoint line %d is empty", i+1)
		}
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint line 2: size %q is not a decimal without leading zeros", truncate([]byte(lines[1])))
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return checkpoint{}, fmt.Errorf("checkpoint line 3: root is not the standard base64 of a %d-byte hash", HashSize)
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

// sigLines returns the signature lines of a note (each without its
// newline), or nil if msg is not a well-framed note.
func sigLines(msg []byte) [][]byte {
	_, sigs, err := splitNote(msg)
	if err != nil {
		return nil
	}
	return sigs
}

// newLogVerifier returns the note verifier of a log key: a key type
// golang.org/x/mod/sumdb/note or github.com/transparency-dev/formats/note
// knows (Ed25519, ECDSA, RFC 6962 STH), but not a cosignature key (types
// 0x04 and 0x06): a witness's key must never count as a log's.
func newLogVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) == 3 {
		if k, err := base64.StdEncoding.DecodeString(parts[2]); err == nil && len(k) > 0 && (k[0] == algCosignatureV1 || k[0] == algMLDSA44) {
			return nil, errors.New("a cosignature (witness) key, not a log key")
		}
	}
	return fnote.NewVerifier(vkey)
}

// algMLDSA44 is the signed-note type of ML-DSA-44 cosignature keys.
const algMLDSA44 = 0x06
