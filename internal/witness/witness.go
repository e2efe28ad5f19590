// Package witness is a witness of transparency logs in the C2SP
// tlog-witness sense, and the client side of that protocol.
//
// A Witness keeps, for every log it knows (origin → the log's note
// verifier key), the last checkpoint it cosigned, in files on its own disk
// (never in Raft: a witness must not trust the state it witnesses). It
// cosigns a new checkpoint (C2SP tlog-cosignature, cosignature/v1) only if
// the log's signature verifies and a consistency proof shows it extends
// the last one it cosigned; otherwise it refuses, and the refusal carries
// both checkpoints as evidence of a fork.
//
// Specifications: https://c2sp.org/tlog-witness (the add-checkpoint call
// and the monitoring GET), https://c2sp.org/tlog-cosignature (Ed25519
// cosignature/v1 only: not ML-DSA-44, not sign-subtree),
// https://c2sp.org/tlog-checkpoint and https://c2sp.org/signed-note.
//
// It must not: trust anything but its own state and the log keys it was
// given, write its state anywhere but its directory, or hold a key in a
// log line or error.
package witness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/warden-sec/warden/internal/fsutil"
)

// Errors of AddCheckpoint, each mapped to the status the C2SP tlog-witness
// protocol gives it by Handler.
var (
	ErrMalformed    = errors.New("witness: malformed request")            // 400
	ErrBadSignature = errors.New("witness: checkpoint signature invalid") // 403
	ErrUnknownLog   = errors.New("witness: unknown log origin")           // 404
	ErrBadProof     = errors.New("witness: consistency proof invalid")    // 422
)

// ErrNoQuorum: VerifyCosigned found fewer valid cosignatures by distinct
// known witnesses than the quorum.
var ErrNoQuorum = errors.New("witness: not enough cosignatures")

// ErrLocked: Open found the state directory held by another Witness (in
// this process or another) that has not been closed.
var ErrLocked = errors.New("witness: state directory is in use by another witness")

// ConflictError is the answer when the submitter's old size is not the
// witness's latest size for the log (409 with that size).
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string { return "witness: old size does not match the witnessed size" }

// ForkError reports a checkpoint that is not an extension of the one the
// witness cosigned before: both, as evidence.
//
// AddCheckpoint returns it when the offered checkpoint has the size of the
// cosigned one and another root hash (both signed by the log: proof of a
// fork by themselves), or when the consistency proof from the cosigned
// checkpoint to the offered one does not verify (evidence that needs the
// log to be asked for the proof; an honest log never sends a bad one).
// errors.Is(err, ErrBadProof) holds for it: Handler answers 422, as
// c2sp.org/tlog-witness requires.
//
// A checkpoint smaller than the cosigned one is not a ForkError: the
// protocol carries no proof between the two (an honest submitter may just
// be late), so it is answered *ConflictError with the witness's size
// (409), or ErrMalformed (400) when the submitter claims the old size is
// the larger one; verifiers that keep the larger checkpoint detect a
// rollback themselves.
type ForkError struct {
	Cosigned []byte // the checkpoint the witness cosigned last (signed note)
	Offered  []byte // the checkpoint refused (signed note)
	Reason   string
}

func (e *ForkError) Error() string {
	return "witness: checkpoint is not consistent with the one cosigned before: " + e.Reason
}

// Unwrap returns ErrBadProof.
func (e *ForkError) Unwrap() error { return ErrBadProof }

// Config configures Open.
type Config struct {
	Dir    string            // state directory (created 0700; files 0600)
	Signer string            // the witness's note signer key (see GenerateKey)
	Logs   map[string]string // origin → the log's note verifier key
	Now    func() time.Time  // nil: time.Now
}

// Witness cosigns checkpoints of the logs it knows. Safe for concurrent use.
//
// Its state is one file per origin in its directory, named after the
// SHA-256 of the origin ("<hex>.checkpoint"), holding the last checkpoint
// it cosigned: the checkpoint body, the log's signature(s) it verified and
// its own cosignature. AddCheckpoint calls for one origin are serialized;
// a state file is written to a temporary file, fsynced, renamed and the
// directory fsynced before the cosignature is returned.
//
// A Witness holds an exclusive lock on its directory until Close.
type Witness struct {
	s    *signer
	dir  string
	now  func() time.Time
	lock *os.File

	mu     sync.RWMutex
	logs   map[string]*logState
	closed bool
	logger *slog.Logger
}

// logState is what the witness knows of one log. sem (capacity 1)
// serializes AddCheckpoint for the origin and guards the other fields.
type logState struct {
	sem      chan struct{}
	vkey     string
	verifier note.Verifier
	size     uint64
	root     []byte
	latest   []byte // the stored note, nil before the first cosignature
}

func (ls *logState) acquire(ctx context.Context) error {
	select {
	case ls.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ls *logState) release() { <-ls.sem }

// lockFile is the name of the lock file in the state directory.
const lockFile = "LOCK"

// stateSuffix ends the name of every state file.
const stateSuffix = ".checkpoint"

// Open opens (creating if needed) a witness's state directory.
//
// It reads the state file of every log of cfg.Logs: a state file that
// cannot be read or parsed, or that names another origin, is an error
// (never a reset to an empty state, which would let a fork through).
// State files of origins not in cfg.Logs are left alone. Open fails with
// ErrLocked if another open Witness holds the directory.
func Open(cfg Config) (*Witness, error) {
	if cfg.Dir == "" {
		return nil, errors.New("witness: Config.Dir is required")
	}
	s, err := parseSigner(cfg.Signer)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness: state directory: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil { // an existing directory too
		return nil, fmt.Errorf("witness: state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("witness: state directory lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.Dir)
		}
		return nil, fmt.Errorf("witness: state directory lock: %w", err)
	}
	w := &Witness{s: s, dir: cfg.Dir, now: now, lock: lock, logs: make(map[string]*logState)}
	// Temporary files of writes a crash interrupted.
	if tmps, err := filepath.Glob(filepath.Join(cfg.Dir, ".tmp-*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	for _, origin := range slices.Sorted(maps.Keys(cfg.Logs)) {
		if err := w.AddLog(origin, cfg.Logs[origin]); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Close releases the state directory. Calls after Close fail.
func (w *Witness) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.lock.Close() // closing the descriptor releases the flock
}

// Name is the witness's key name; VerifierKey its note verifier key.
func (w *Witness) Name() string        { return w.s.name }
func (w *Witness) VerifierKey() string { return w.s.vkey }

// checkOrigin checks an origin line: non-empty UTF-8 text without control
// characters.
func checkOrigin(origin string) error {
	if origin == "" || len(origin) > 1024 || strings.ContainsFunc(origin, func(r rune) bool { return r < 0x20 || r == 0x7f }) || !strings.ContainsFunc(origin, func(r rune) bool { return r > ' ' }) {
		return fmt.Errorf("witness: log origin %q: want a non-empty line of text, at most 1024 bytes", origin)
	}
	return nil
}

func (w *Witness) statePath(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, hex.EncodeToString(sum[:])+stateSuffix)
}

// AddLog makes the witness accept checkpoints of origin signed by vkey.
//
// vkey is a note verifier key of a type golang.org/x/mod/sumdb/note or
// github.com/transparency-dev/formats/note knows (Ed25519, ECDSA, RFC 6962
// STH); a cosignature key (a witness's) is refused. AddLog for a known origin replaces its key and keeps its state.
// The origin's state file, if any, is read (see Open).
func (w *Witness) AddLog(origin, vkey string) error {
	if err := checkOrigin(origin); err != nil {
		return err
	}
	v, err := newLogVerifier(vkey)
	if err != nil {
		return fmt.Errorf("witness: log %q: verifier key %q: %w", origin, vkey, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("witness: closed")
	}
	if ls, ok := w.logs[origin]; ok {
		ls.sem <- struct{}{}
		ls.vkey, ls.verifier = vkey, v
		ls.release()
		return nil
	}
	ls := &logState{sem: make(chan struct{}, 1), vkey: vkey, verifier: v}
	if err := w.load(origin, ls); err != nil {
		return err
	}
	w.logs[origin] = ls
	return nil
}

// load reads the state file of origin into ls, if there is one.
func (w *Witness) load(origin string, ls *logState) error {
	path := w.statePath(origin)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("witness: state of log %q: %w", origin, err)
	}
	text, _, err := splitNote(b)
	if err == nil {
		var cp checkpoint
		if cp, err = parseCheckpoint(text); err == nil && cp.origin != origin {
			err = fmt.Errorf("it holds a checkpoint of %q", cp.origin)
		} else if err == nil {
			ls.size, ls.root, ls.latest = cp.size, cp.root, b
			return nil
		}
	}
	return fmt.Errorf("witness: state file %s of log %q is corrupt: %v", path, origin, err)
}

// lookup returns the state of origin, or nil.
func (w *Witness) lookup(origin string) (*logState, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil, errors.New("witness: closed")
	}
	return w.logs[origin], nil
}

// AddCheckpoint is the tlog-witness add-checkpoint operation: checkpoint
// is a signed note, oldSize the size the submitter believes the witness
// has seen, proof the consistency proof from oldSize to the checkpoint's
// size. It returns the cosignature's note signature line(s) ("— name
// base64\n") and has persisted the checkpoint (fsynced) before returning.
//
// Errors, in the order of c2sp.org/tlog-witness: ErrMalformed (a
// checkpoint that is not a well-formed signed tlog-checkpoint with a
// SHA-256 root, a proof of more than 63 hashes or of hashes not 32 bytes
// long, oldSize above the checkpoint's size), ErrUnknownLog, ErrBadSignature
// (no valid signature by the log's key, or an invalid one by it),
// *ConflictError (oldSize is not the size last cosigned), ErrBadProof (a
// size-0 checkpoint without the empty root, a proof given from size 0),
// *ForkError (see there). Nothing is written on error. The same checkpoint
// submitted again is cosigned again.
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	if len(proof) > maxProofLines {
		return nil, fmt.Errorf("%w: %d consistency proof hashes, more than %d", ErrMalformed, len(proof), maxProofLines)
	}
	for i, h := range proof {
		if len(h) != HashSize {
			return nil, fmt.Errorf("%w: consistency proof hash %d is %d bytes, want %d", ErrMalformed, i+1, len(h), HashSize)
		}
	}
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	cp, err := parseCheckpoint(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ls, err := w.lookup(cp.origin)
	if err != nil {
		return nil, err
	}
	if ls == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, cp.origin)
	}
	if err := ls.acquire(ctx); err != nil {
		return nil, err
	}
	defer ls.release()

	n, err := note.Open(checkpoint, note.VerifierList(ls.verifier))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) {
			return nil, fmt.Errorf("%w: no signature by the key of log %q", ErrBadSignature, cp.origin)
		}
		if errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w: the signature by the key of log %q does not verify", ErrBadSignature, cp.origin)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if oldSize > cp.size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's size %d", ErrMalformed, oldSize, cp.size)
	}
	if oldSize != ls.size {
		return nil, &ConflictError{Size: ls.size}
	}
	if cp.size == 0 && string(cp.root) != string(emptyRoot[:]) {
		return nil, fmt.Errorf("%w: a checkpoint of size 0 must have the root of the empty tree", ErrBadProof)
	}
	if ls.latest == nil {
		if len(proof) != 0 {
			return nil, fmt.Errorf("%w: a consistency proof from size 0 must be empty", ErrBadProof)
		}
	} else if cp.size == ls.size {
		if string(cp.root) != string(ls.root) {
			return nil, &ForkError{Cosigned: ls.latest, Offered: checkpoint,
				Reason: fmt.Sprintf("size %d with another root hash than the checkpoint of that size cosigned before", cp.size)}
		}
		if len(proof) != 0 {
			return nil, fmt.Errorf("%w: a consistency proof between checkpoints of the same size must be empty", ErrBadProof)
		}
	} else if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, ls.size, cp.size, proof, ls.root, cp.root); err != nil {
		return nil, &ForkError{Cosigned: ls.latest, Offered: checkpoint,
			Reason: fmt.Sprintf("the consistency proof from size %d to size %d does not verify: %v", ls.size, cp.size, err)}
	}

	t := w.now().Unix()
	if t <= 0 {
		return nil, fmt.Errorf("witness: the clock reads %d, before 1970: refusing a cosignature with no valid time", t)
	}
	cosig := w.s.cosign(text, uint64(t))
	// The stored note: the body, the log's signature lines that verified,
	// and the cosignature; signatures of other keys are not kept.
	stored := append([]byte(nil), text...)
	stored = append(stored, '\n')
	for _, s := range n.Sigs {
		stored = append(stored, sigPrefix+s.Name+" "+s.Base64+"\n"...)
	}
	stored = append(stored, cosig...)
	if err := fsutil.WriteFileAtomic(w.statePath(cp.origin), stored, 0o600); err != nil {
		return nil, fmt.Errorf("witness: persist the state of log %q: %w", cp.origin, err)
	}
	ls.size, ls.root, ls.latest = cp.size, cp.root, stored
	return cosig, nil
}

// maxProofLines is the most consistency proof lines a client may send
// (c2sp.org/tlog-witness).
const maxProofLines = 63

// Latest returns the last checkpoint cosigned for origin (with its
// signatures), or nil.
func (w *Witness) Latest(origin string) []byte {
	ls, err := w.lookup(origin)
	if err != nil || ls == nil {
		return nil
	}
	ls.sem <- struct{}{}
	defer ls.release()
	return slices.Clone(ls.latest)
}

// Size returns the size of the last checkpoint cosigned for origin and
// whether the origin is known (0 before the first cosignature).
func (w *Witness) Size(origin string) (uint64, bool) {
	ls, err := w.lookup(origin)
	if err != nil || ls == nil {
		return 0, false
	}
	ls.sem <- struct{}{}
	defer ls.release()
	return ls.size, true
}

// Logs returns the origins the witness knows, sorted.
func (w *Witness) Logs() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return slices.Sorted(maps.Keys(w.logs))
}

// formatSize is the body of a 409 answer: the size and a newline.
func formatSize(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }
