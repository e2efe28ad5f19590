package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointSize bounds a signed checkpoint that Open reads, in bytes:
// room for the body and the hundred signatures sumdb/note accepts at most.
const MaxCheckpointSize = 64 << 10

// SignerKey is a note signer key ("PRIVATE+KEY+<name>+<hash>+<base64>"),
// the secret half of a checkpoint key pair. Keep it behind the barrier.
// It prints and logs redacted; the bytes are string(k).
type SignerKey string

// String returns a redacted form.
func (SignerKey) String() string { return "audit.SignerKey(REDACTED)" }

// GoString returns a redacted form, for %#v.
func (SignerKey) GoString() string { return "audit.SignerKey(REDACTED)" }

// LogValue implements slog.LogValuer with a redacted form.
func (SignerKey) LogValue() slog.Value { return slog.StringValue("audit.SignerKey(REDACTED)") }

// MarshalText refuses, so that no encoder (JSON, YAML, ...) writes a
// signer key by accident; store string(k) deliberately.
func (SignerKey) MarshalText() ([]byte, error) {
	return nil, errors.New("audit: refusing to marshal a signer key")
}

// GenerateSigner makes an Ed25519 note key pair whose name is the log's
// origin, for example "warden.local/audit/<cluster id>". vkey is the note
// verifier key ("<name>+<hash>+<base64>") that clients and witnesses use.
// The origin must be a valid note key name: not empty, no spaces, no "+".
// rand is the entropy source; nil means crypto/rand.
func GenerateSigner(origin string, rand io.Reader) (skey SignerKey, vkey string, err error) {
	if err := checkOrigin(origin); err != nil {
		return "", "", err
	}
	s, v, err := note.GenerateKey(rand, origin)
	if err != nil {
		return "", "", fmt.Errorf("audit: generate checkpoint key: %w", err)
	}
	return SignerKey(s), v, nil
}

// GenerateKey is GenerateSigner; existing callers use this name.
func GenerateKey(origin string, rand io.Reader) (SignerKey, string, error) {
	return GenerateSigner(origin, rand)
}

func checkOrigin(origin string) error {
	if origin == "" || !utf8.ValidString(origin) || strings.ContainsFunc(origin, func(r rune) bool {
		return r == '+' || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("audit: origin %q: want a non-empty name without spaces, control characters or \"+\"", origin)
	}
	return nil
}

// Checkpoint is a log's signed statement of its size and root hash: the
// body of a C2SP tlog-checkpoint.
type Checkpoint struct {
	Origin string // the log's identity, also its key's name
	Size   uint64 // the number of leaves
	Root   []byte // the RFC 6962 root hash of the first Size leaves
	// Extensions are the optional extension lines that follow the root
	// (non-empty, without the newline). Warden signs none; Open returns
	// those of a checkpoint that has them.
	Extensions []string
}

// Body returns the checkpoint's note text: the origin, the size in
// decimal, the root in standard base64, and any extension lines, each
// followed by a newline.
func (cp Checkpoint) Body() string {
	var b strings.Builder
	b.WriteString(cp.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(cp.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(cp.Root))
	b.WriteByte('\n')
	for _, e := range cp.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.String()
}

var (
	// ErrMalformedCheckpoint: a checkpoint body that does not follow
	// c2sp.org/tlog-checkpoint, or that is not Warden's (a root that is
	// not a SHA-256 hash). The error names the line.
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")
	// ErrCheckpointSignature: the note is malformed or carries no valid
	// signature by the verifier key.
	ErrCheckpointSignature = errors.New("audit: checkpoint signature not verified")
	// ErrWrongOrigin: a validly signed checkpoint whose origin line is not
	// the name of the key that signed it.
	ErrWrongOrigin = errors.New("audit: checkpoint origin is not the key's name")
)

// Sign signs a checkpoint of the tree (size, root) as a note with key. The
// origin line is the key's name, as c2sp.org/tlog-checkpoint recommends and
// Open requires. root must be HashSize bytes.
func Sign(key SignerKey, size uint64, root []byte) ([]byte, error) {
	if len(root) != HashSize {
		return nil, fmt.Errorf("audit: checkpoint root of %d bytes, want %d", len(root), HashSize)
	}
	s, err := note.NewSigner(string(key))
	if err != nil {
		// The note error may quote the key: leave it out.
		return nil, errors.New("audit: checkpoint signer key is malformed")
	}
	msg, err := note.Sign(&note.Note{Text: Checkpoint{Origin: s.Name(), Size: size, Root: root}.Body()}, s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return msg, nil
}

// Open verifies a signed checkpoint with the note verifier key and parses
// its body strictly. Signatures by other keys (witness cosignatures) are
// ignored, as the signed-note spec requires. Errors wrap
// ErrCheckpointSignature, ErrMalformedCheckpoint or ErrWrongOrigin.
func Open(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint verifier key: %w", err)
	}
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedCheckpoint, len(msg), MaxCheckpointSize)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpointSignature, err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, key %q", ErrWrongOrigin, c.Origin, v.Name())
	}
	return c, nil
}

// parseCheckpoint parses a checkpoint body (c2sp.org/tlog-checkpoint):
// at least three non-empty lines, each ending in a newline: the origin,
// the size in decimal without leading zeros, the root hash in standard
// padded base64 (HashSize bytes, canonical), then optional non-empty
// extension lines. Control characters and invalid UTF-8 are refused.
func parseCheckpoint(text string) (Checkpoint, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrMalformedCheckpoint, line, fmt.Sprintf(format, args...))
	}
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: the body does not end with a newline", ErrMalformedCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want origin, size and root", ErrMalformedCheckpoint, len(lines))
	}
	for i, l := range lines {
		if l == "" {
			return Checkpoint{}, bad(i+1, "empty")
		}
		if !utf8.ValidString(l) || strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 }) {
			return Checkpoint{}, bad(i+1, "invalid UTF-8 or a control character")
		}
	}
	c := Checkpoint{Origin: lines[0]}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, bad(2, "size %q is not a decimal without leading zeros", lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Checkpoint{}, bad(3, "root is not canonical standard base64")
	}
	if len(root) != HashSize {
		return Checkpoint{}, bad(3, "root of %d bytes, want %d", len(root), HashSize)
	}
	c.Root = root
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	return c, nil
}
