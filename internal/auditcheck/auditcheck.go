// Package auditcheck is the verifier's side of the audit log's witnesses,
// shared by `warden audit verify` and the agent: it keeps, in a state
// file, the log's key, the witness keys it trusts (pinned on first use, or
// given) and the last checkpoint it verified; and it checks that a
// server's current checkpoint carries the cosignatures of a quorum of
// those witnesses and is consistent with the last one. A checkpoint that
// is not (the log forked, was rewritten or rolled back) is a *ForkError
// carrying both checkpoints as evidence.
//
// It trusts nothing the server says but what verifies with the pinned
// keys; what it cannot check on first use (which witness keys to trust,
// the log's key) it takes from the server then, once, and says so.
package auditcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/cosign"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/internal/witness"
	"github.com/warden-sec/warden/pkg/client"
)

// StateVersion is the version of the state file this package writes.
const StateVersion = 1

// maxStateBytes bounds a state file read.
const maxStateBytes = 1 << 20

// Witness kinds in the state.
const (
	KindServer   = "server"   // a server node's witness, pinned from the server's list
	KindExternal = "external" // an external witness, pinned from the server's list
	KindGiven    = "given"    // given by the user (--witness-key)
)

// PinnedWitness is a witness key the verifier trusts.
type PinnedWitness struct {
	VerifierKey string `json:"verifier_key"`
	Kind        string `json:"kind"`
	Name        string `json:"name,omitempty"` // the node ID or external name it was listed under
}

// State is what a verifier keeps between runs.
type State struct {
	Version   int             `json:"version"`
	Origin    string          `json:"origin"`
	LogKey    string          `json:"log_key"`
	Witnesses []PinnedWitness `json:"witnesses"`
	// Checkpoint is the last checkpoint verified (the signed note with
	// the cosignatures it had).
	Checkpoint string    `json:"checkpoint,omitempty"`
	Verified   time.Time `json:"verified,omitzero"`
}

// LoadState reads a state file; a missing file is (nil, nil). Unknown
// fields, another version, or a file over 1 MiB are errors naming the
// file.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", path, maxStateBytes)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, st.Version, StateVersion)
	}
	for i, w := range st.Witnesses {
		if _, err := cosign.CheckVerifierKey(w.VerifierKey); err != nil {
			return nil, fmt.Errorf("%s: witnesses[%d]: %w", path, i, err)
		}
	}
	return &st, nil
}

// Save writes st to path atomically, mode 0600 (its directory 0700).
func (st *State) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// StateFileName is a file name for the state of the log origin: the
// origin with every character but letters, digits, '.', '-' and '_'
// replaced by '_', and ".json".
func StateFileName(origin string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, origin) + ".json"
}

// Client is what Check needs of a server (*client.Client implements it).
type Client interface {
	AuditVerifierKey(ctx context.Context) (client.AuditVerifier, error)
	AuditWitnesses(ctx context.Context) (*client.AuditWitnesses, error)
	AuditCheckpoint(ctx context.Context) ([]byte, error)
	AuditCheckpointCosigned(ctx context.Context, want int) ([]byte, error)
	AuditConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error)
}

var _ Client = (*client.Client)(nil)

// Options configure Check.
type Options struct {
	// State is what the last run kept (nil: the first run; the log key
	// and the witness keys the server lists are pinned now).
	State *State
	// Quorum is how many trusted witnesses must have cosigned (0: a
	// majority of the trusted server witnesses; negative: none).
	Quorum int
	// Keys are witness verifier keys to trust in addition (pinned).
	Keys []string
	Now  func() time.Time
}

// Report is a verified checkpoint.
type Report struct {
	Checkpoint []byte // the signed note, with the cosignatures it came with
	Parsed     audit.Checkpoint
	Quorum     int
	Cosigners  []string // names of the trusted witnesses whose cosignatures verified
	Trusted    int      // witness keys trusted
	Pinned     []string // keys pinned in this run (first use, or Options.Keys)
	Untrusted  []string // witnesses the server lists whose keys are not trusted ("server n4", ...)
	Previous   *audit.Checkpoint
	// State is the state to save once the caller is done checking.
	State *State
}

// ForkError: the server's checkpoint is not an extension of the one
// verified before (or the log shrank): both are the evidence.
type ForkError struct {
	Reason   string
	Verified []byte // the checkpoint verified before
	Served   []byte // the checkpoint the server serves now
}

func (e *ForkError) Error() string {
	return "the audit log forked or was rewritten: " + e.Reason
}

// Evidence is the report a person reads: the reason and both checkpoints.
func (e *ForkError) Evidence() string {
	var b strings.Builder
	fmt.Fprintf(&b, "AUDIT LOG FORK: %s\n", e.Reason)
	fmt.Fprintf(&b, "--- checkpoint verified before ---\n%s", e.Verified)
	if !bytes.HasSuffix(e.Verified, []byte("\n")) {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "--- checkpoint served now ---\n%s", e.Served)
	if !bytes.HasSuffix(e.Served, []byte("\n")) {
		b.WriteByte('\n')
	}
	return b.String()
}

// ErrLogKeyChanged: the server's checkpoint key is not the one pinned.
var ErrLogKeyChanged = errors.New("the audit log's checkpoint key is not the one verified before")

// Check verifies the server's current checkpoint: signed by the log's
// (pinned) key, cosigned by Quorum trusted witnesses, and consistent with
// the checkpoint of o.State. Short of a quorum it still checks the
// server's plain checkpoint against the last one, so a fork is reported
// as one (*ForkError) even when the witnesses refuse it.
func Check(ctx context.Context, c Client, o Options) (*Report, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	v, err := c.AuditVerifierKey(ctx)
	if err != nil {
		return nil, err
	}
	st := &State{Version: StateVersion, Origin: v.Origin, LogKey: v.VerifierKey}
	rep := &Report{State: st}
	if o.State != nil {
		if o.State.LogKey != v.VerifierKey {
			return nil, fmt.Errorf("%w: pinned %s, the server has %s", ErrLogKeyChanged, o.State.LogKey, v.VerifierKey)
		}
		st.Witnesses = slices.Clone(o.State.Witnesses)
	}
	listed, err := c.AuditWitnesses(ctx)
	if err != nil {
		// A server that cannot sign says why there first.
		if _, cerr := c.AuditCheckpoint(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("witnesses: %w", err)
	}
	firstUse := o.State == nil || len(o.State.Witnesses) == 0
	pinned := func(k string) bool {
		return slices.ContainsFunc(st.Witnesses, func(w PinnedWitness) bool { return w.VerifierKey == k })
	}
	consider := func(kind, name, key string) {
		switch {
		case pinned(key):
		case firstUse:
			st.Witnesses = append(st.Witnesses, PinnedWitness{VerifierKey: key, Kind: kind, Name: name})
			rep.Pinned = append(rep.Pinned, key)
		default:
			rep.Untrusted = append(rep.Untrusted, kind+" "+name)
		}
	}
	// Keys given on the command line are pinned first, so that a listed
	// witness they name is trusted, not reported as untrusted.
	for _, k := range o.Keys {
		if _, err := cosign.CheckVerifierKey(k); err != nil {
			return nil, fmt.Errorf("witness key %q: %w", k, err)
		}
		if !pinned(k) {
			st.Witnesses = append(st.Witnesses, PinnedWitness{VerifierKey: k, Kind: KindGiven})
			rep.Pinned = append(rep.Pinned, k)
		}
	}
	for _, s := range listed.Servers {
		if s.Member {
			consider(KindServer, s.Node, s.VerifierKey)
		}
	}
	for _, e := range listed.External {
		consider(KindExternal, e.Name, e.VerifierKey)
	}
	var keys []string
	servers := 0
	for _, w := range st.Witnesses {
		keys = append(keys, w.VerifierKey)
		if w.Kind == KindServer {
			servers++
		}
	}
	rep.Trusted = len(keys)
	q := o.Quorum
	switch {
	case q < 0:
		q = 0
	case q == 0 && servers > 0:
		q = servers/2 + 1
	}
	if q > len(keys) {
		return nil, fmt.Errorf("witness quorum %d: only %d witness keys are trusted", q, len(keys))
	}
	rep.Quorum = q

	var prev *audit.Checkpoint
	var prevNote []byte
	if o.State != nil && o.State.Checkpoint != "" {
		prevNote = []byte(o.State.Checkpoint)
		p, err := audit.Open(prevNote, v.VerifierKey)
		if err != nil {
			return nil, fmt.Errorf("the saved checkpoint: %w", err)
		}
		prev = &p
		rep.Previous = prev
	}

	note, err := fetch(ctx, c, q, len(listed.Servers)+len(listed.External), keys, v.VerifierKey)
	if err != nil {
		// No quorum: the witnesses may have refused a fork. The plain
		// checkpoint says whether this is one.
		if prev != nil {
			if plain, perr := c.AuditCheckpoint(ctx); perr == nil {
				if cp, oerr := audit.Open(plain, v.VerifierKey); oerr == nil {
					if ferr := consistent(ctx, c, prev, prevNote, cp, plain); ferr != nil {
						return nil, ferr
					}
				}
			}
		}
		return nil, err
	}
	cp, err := audit.Open(note, v.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	rep.Checkpoint, rep.Parsed = note, cp
	if q > 0 {
		vf, err := witness.VerifyCosigned(note, v.VerifierKey, keys, q)
		if err != nil {
			return nil, fmt.Errorf("witness cosignatures: %w", err)
		}
		rep.Cosigners = vf.Cosigners
	}
	if prev != nil {
		if err := consistent(ctx, c, prev, prevNote, cp, note); err != nil {
			return nil, err
		}
	}
	st.Checkpoint, st.Verified = string(note), now().UTC()
	return rep, nil
}

// fetch asks for the checkpoint with q cosignatures (none: the plain
// one); if the server collected them but fewer are by trusted keys, it
// asks once more for all listed witnesses.
func fetch(ctx context.Context, c Client, q, listed int, keys []string, logKey string) ([]byte, error) {
	if q == 0 {
		return c.AuditCheckpoint(ctx)
	}
	note, err := c.AuditCheckpointCosigned(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("a checkpoint cosigned by %d witnesses: %w", q, err)
	}
	if _, err := witness.VerifyCosigned(note, logKey, keys, q); err == nil || listed <= q {
		return note, nil
	}
	return c.AuditCheckpointCosigned(ctx, listed)
}

// consistent checks that cp (note) extends prev (prevNote): a larger or
// equal size, and a consistency proof from the server that verifies. A
// server that cannot give a proof is an error, not a fork.
func consistent(ctx context.Context, c Client, prev *audit.Checkpoint, prevNote []byte, cp audit.Checkpoint, note []byte) error {
	fork := func(format string, args ...any) error {
		return &ForkError{Reason: fmt.Sprintf(format, args...), Verified: prevNote, Served: note}
	}
	switch {
	case cp.Size < prev.Size:
		return fork("the log shrank: size %d now, %d verified before", cp.Size, prev.Size)
	case cp.Size == prev.Size:
		if !bytes.Equal(cp.Root, prev.Root) {
			return fork("two checkpoints of size %d with different roots", cp.Size)
		}
		return nil
	}
	if prev.Size == 0 {
		return nil
	}
	p, err := c.AuditConsistencyProof(ctx, prev.Size, cp.Size)
	if err != nil {
		return fmt.Errorf("consistency proof from size %d to %d: %w", prev.Size, cp.Size, err)
	}
	if err := audit.VerifyConsistency(prev.Size, cp.Size, prev.Root, cp.Root, p); err != nil {
		return fork("the checkpoint of size %d is not consistent with the one of size %d verified before: %s", cp.Size, prev.Size,
			strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}
