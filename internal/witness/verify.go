package witness

import (
	"bytes"
	"errors"
	"fmt"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Verified is a checkpoint whose log signature and cosignatures verified.
type Verified struct {
	Origin    string
	Size      uint64
	Root      []byte
	Cosigners []string // names of the witnesses whose cosignatures verified
}

// VerifyCosigned checks a signed checkpoint's log signature and that at
// least quorum of witnessVKeys cosigned it.
//
// checkpoint is a signed note of a c2sp.org/tlog-checkpoint (at most
// MaxCheckpointSize bytes, a SHA-256 root); logVKey the log's note
// verifier key; witnessVKeys the witnesses' keys (cosignature/v1 vkeys of
// GenerateKey, or Ed25519 note vkeys, read as cosignature/v1 keys); the
// same key given twice counts once. Signatures by other keys are ignored;
// a signature by a given key that does not verify fails the whole note,
// as c2sp.org/signed-note requires. The origin is not checked against the
// log key's name: the caller compares Verified.Origin with what it
// expects. Cosigners lists each witness once, in the order of its lines.
//
// Errors wrap ErrMalformed (framing, body, size), ErrBadSignature (no
// valid signature by logVKey, or an invalid signature by any given key)
// or ErrNoQuorum; an unparsable key or a negative quorum is an error of
// its own.
func VerifyCosigned(checkpoint []byte, logVKey string, witnessVKeys []string, quorum int) (*Verified, error) {
	if quorum < 0 {
		return nil, fmt.Errorf("witness: quorum %d: want 0 or more", quorum)
	}
	logV, err := newLogVerifier(logVKey)
	if err != nil {
		return nil, fmt.Errorf("witness: log verifier key %q: %w", logVKey, err)
	}
	type nameHash struct {
		name string
		hash uint32
	}
	known := map[nameHash]bool{{logV.Name(), logV.KeyHash()}: true}
	verifiers := []note.Verifier{logV}
	witnesses := map[nameHash]bool{}
	for _, k := range witnessVKeys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("witness: witness verifier key %q: %w", k, err)
		}
		nh := nameHash{v.Name(), v.KeyHash()}
		if known[nh] {
			if witnesses[nh] {
				continue // the same key twice
			}
			return nil, fmt.Errorf("witness: witness verifier key %q has the name and key ID of the log's key", k)
		}
		known[nh], witnesses[nh] = true, true
		verifiers = append(verifiers, v)
	}
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	cp, err := parseCheckpoint(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	n, err := note.Open(checkpoint, note.VerifierList(verifiers...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("%w: no signature by the log's key %s", ErrBadSignature, logV.Name())
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("%w: the signature by %s does not verify", ErrBadSignature, invalid.Name)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	out := &Verified{Origin: cp.origin, Size: cp.size, Root: cp.root}
	logSigned := false
	for _, s := range n.Sigs { // note.Open keeps one signature per key
		nh := nameHash{s.Name, s.Hash}
		if witnesses[nh] {
			out.Cosigners = append(out.Cosigners, s.Name)
		} else {
			logSigned = true
		}
	}
	if !logSigned {
		return nil, fmt.Errorf("%w: no signature by the log's key %s", ErrBadSignature, logV.Name())
	}
	if len(out.Cosigners) < quorum {
		return nil, fmt.Errorf("%w: %d of the %d witnesses cosigned, want %d", ErrNoQuorum, len(out.Cosigners), len(witnesses), quorum)
	}
	return out, nil
}

// Combine returns checkpoint with the signature lines of cosigs appended
// (each line once).
//
// Lines of cosigs that are not note signature lines ("— name base64") are
// skipped, as are lines already in checkpoint. If checkpoint is not a
// well-framed signed note it is returned unchanged. The result is a new
// slice.
func Combine(checkpoint []byte, cosigs ...[]byte) []byte {
	have := sigLines(checkpoint)
	if have == nil {
		return bytes.Clone(checkpoint)
	}
	out := bytes.Clone(checkpoint)
	seen := make(map[string]bool, len(have))
	for _, l := range have {
		seen[string(l)] = true
	}
	for _, c := range cosigs {
		for l := range bytes.SplitSeq(c, []byte("\n")) {
			if _, _, ok := parseSigLine(l); !ok || seen[string(l)] {
				continue
			}
			seen[string(l)] = true
			out = append(append(out, l...), '\n')
		}
	}
	return out
}
