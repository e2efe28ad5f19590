package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// SignerKey is a note signer key (secret). It prints redacted.
type SignerKey string

func (SignerKey) String() string { return "audit.SignerKey(REDACTED)" }

// LogValue implements slog.LogValuer.
func (SignerKey) LogValue() slog.Value { return slog.StringValue("audit.SignerKey(REDACTED)") }

// GenerateKey makes an Ed25519 note key pair named origin.
func GenerateKey(origin string, rand io.Reader) (SignerKey, string, error) {
	skey, vkey, err := note.GenerateKey(rand, origin)
	return SignerKey(skey), vkey, err
}

// Checkpoint is a signed statement of the tree's size and root.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

// Body returns the C2SP tlog-checkpoint body.
func (c Checkpoint) Body() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// Sign signs a checkpoint as a note; the origin is the key's name.
func Sign(key SignerKey, size uint64, root []byte) ([]byte, error) {
	s, err := note.NewSigner(string(key))
	if err != nil {
		return nil, fmt.Errorf("audit: signer: %w", err)
	}
	return note.Sign(&note.Note{Text: Checkpoint{Origin: s.Name(), Size: size, Root: root}.Body()}, s)
}

// Open verifies a signed checkpoint with the verifier key and strictly
// parses its body.
func Open(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, errors.New("audit: checkpoint body: want origin, size and root lines")
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint origin %q is not the key's %q", c.Origin, v.Name())
	}
	if c.Size, err = strconv.ParseUint(lines[1], 10, 64); err != nil || strconv.FormatUint(c.Size, 10) != lines[1] {
		return Checkpoint{}, errors.New("audit: checkpoint size is not a canonical decimal")
	}
	if c.Root, err = base64.StdEncoding.Strict().DecodeString(lines[2]); err != nil || len(c.Root) != 32 {
		return Checkpoint{}, errors.New("audit: checkpoint root is not a base64 SHA-256 hash")
	}
	if !bytes.Equal([]byte(base64.StdEncoding.EncodeToString(c.Root)), []byte(lines[2])) {
		return Checkpoint{}, errors.New("audit: checkpoint root is not canonical base64")
	}
	return c, nil
}
