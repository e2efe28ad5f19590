package cosign

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Bounds of an add-checkpoint request (c2sp.org/tlog-witness): at most 63
// proof lines of one SHA-256 hash each, and a checkpoint of at most
// MaxCheckpointBytes.
const (
	MaxProofLines      = 63
	MaxCheckpointBytes = 64 << 10
	// MaxRequestBytes bounds the whole request body.
	MaxRequestBytes = MaxCheckpointBytes + 16 + MaxProofLines*45 + 1
	hashSize        = 32
)

// ErrRequest: an add-checkpoint request body that does not follow
// c2sp.org/tlog-witness. Errors of ParseAddCheckpoint wrap it and name the
// line.
var ErrRequest = errors.New("malformed add-checkpoint request")

// ParseAddCheckpoint parses the body of a tlog-witness add-checkpoint
// request: an old size line ("old N", N in decimal without leading
// zeros), up to 63 consistency proof lines (one base64 SHA-256 hash each;
// none when the old size is 0), an empty line, then the checkpoint (a
// signed note, not checked here). Every line ends in a newline.
func ParseAddCheckpoint(body []byte) (oldSize uint64, proof [][]byte, checkpoint []byte, err error) {
	bad := func(line int, format string, args ...any) (uint64, [][]byte, []byte, error) {
		return 0, nil, nil, fmt.Errorf("%w: line %d: %s", ErrRequest, line, fmt.Sprintf(format, args...))
	}
	if len(body) > MaxRequestBytes {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes, more than %d", ErrRequest, len(body), MaxRequestBytes)
	}
	rest := body
	next := func() ([]byte, bool) {
		line, after, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, false
		}
		rest = after
		return line, true
	}
	first, ok := next()
	if !ok {
		return bad(1, "no old size line ending in a newline")
	}
	num, ok := bytes.CutPrefix(first, []byte("old "))
	if !ok {
		return bad(1, `want "old <size>"`)
	}
	oldSize, err = strconv.ParseUint(string(num), 10, 64)
	if err != nil || strconv.FormatUint(oldSize, 10) != string(num) {
		return bad(1, "the old size %q is not a decimal without leading zeros", num)
	}
	for n := 2; ; n++ {
		line, ok := next()
		if !ok {
			return bad(n, "no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == MaxProofLines {
			return bad(n, "more than %d proof lines", MaxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != hashSize || base64.StdEncoding.EncodeToString(h) != string(line) {
			return bad(n, "not one canonical base64 SHA-256 hash")
		}
		proof = append(proof, h)
	}
	if oldSize == 0 && len(proof) > 0 {
		return bad(2, "a proof from size 0 must be empty")
	}
	if len(rest) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: no checkpoint after the empty line", ErrRequest)
	}
	if len(rest) > MaxCheckpointBytes {
		return 0, nil, nil, fmt.Errorf("%w: a checkpoint of %d bytes, more than %d", ErrRequest, len(rest), MaxCheckpointBytes)
	}
	return oldSize, proof, bytes.Clone(rest), nil
}

// EncodeAddCheckpoint is the request body ParseAddCheckpoint reads.
func EncodeAddCheckpoint(oldSize uint64, proof [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	return b.Bytes()
}

// noteSize reads the tree size (the second line) of a checkpoint note
// without checking its signature: for messages about a checkpoint that
// was verified elsewhere. ok is false if there is none.
func noteSize(note []byte) (size uint64, ok bool) {
	_, rest, ok1 := bytes.Cut(note, []byte("\n"))
	line, _, ok2 := bytes.Cut(rest, []byte("\n"))
	if !ok1 || !ok2 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(line), 10, 64)
	return n, err == nil
}

// noteBody is a note's text: what precedes the blank line before the
// signatures (the whole note if there is none).
func noteBody(note []byte) []byte {
	if i := bytes.Index(note, []byte("\n\n")); i >= 0 {
		return note[:i+1]
	}
	return note
}
