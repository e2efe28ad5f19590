package cosign

import (
	"bytes"
	"strconv"
)

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
