// Package auditlog keeps Warden's audit trail in the replicated store: it
// makes entries into leaves (canonical bytes hashed per RFC 6962, stored
// encrypted), group-commits the records of reads, denies and failed
// requests, signs checkpoints and serves entries and proofs. The Merkle tree
// itself is maintained by the store's state machine (internal/audit holds
// the pure algorithms). auditlog knows nothing about HTTP.
package auditlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	store "github.com/warden-sec/warden/internal/store/kv" // the store's plain types, without Raft
)

const (
	keyHMAC     = "audit/hmac-key"
	keySigner   = "audit/signer-key"
	keyVerifier = "audit/verifier-key"
	// MaxEntries bounds one entries request.
	MaxEntries = 1000
)

// Encrypter encrypts a value for a storage key.
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// Core is what the service needs of internal/core.
type Core interface {
	GetStale(key string) (store.Entry, error)
	// Get reads key linearizably (the archive bound, before a prune).
	Get(ctx context.Context, key string) (store.Entry, error)
	Encrypt(aad string, pt []byte) ([]byte, error)
	Decrypt(aad string, ct []byte) ([]byte, error)
	AppendAudit(ctx context.Context, leaves []store.AuditLeaf) error
	// Txn encrypts t's puts and commits t with its audit leaves in one
	// Raft command (the merge of journaled records with their cursor).
	Txn(ctx context.Context, t store.Txn) (uint64, error)
	Sealed() bool
}

// Tree is what the service needs of the store's audit tree: consistent
// views of the local state machine's tree, and its database's page check.
type Tree interface {
	ViewAudit(fn func(store.AuditView) error) error
	CheckDatabase() error
	// AppliedIndex and WaitApplied let sink tailers wait for commits.
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, idx uint64) error
}

// Bootstrap makes the ops that init commits: the audit HMAC key and the
// checkpoint signing key, whose origin names the cluster.
func Bootstrap(enc Encrypter, clusterID string) ([]store.Op, error) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, err
	}
	defer clear(key)
	skey, vkey, err := audit.GenerateKey("warden.local/audit/"+clusterID, rand.Reader)
	if err != nil {
		return nil, err
	}
	var ops []store.Op
	for k, v := range map[string][]byte{keyHMAC: key, keySigner: []byte(skey), keyVerifier: []byte(vkey)} {
		ct, err := enc.Encrypt(k, v)
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.Op{Type: store.OpPut, Key: k, Value: ct})
	}
	return ops, nil
}

// Service is the audit log. Safe for concurrent use.
type Service struct {
	core  Core
	tree  Tree
	sinks []*Sink
	log   *slog.Logger
	// OnSinkFailure, if set, is called with the sink's name on every failed
	// write (for metrics).
	onSinkFailure func(name string)
	onDamaged     func(error)
	maxSinkLag    uint64
	sinkRetry     time.Duration

	tailers  []*tailer
	stopTail context.CancelFunc
	tailWG   sync.WaitGroup
	tmu      sync.Mutex
	tailCh   chan struct{} // closed and replaced after every delivery attempt

	mu     sync.Mutex
	hasher *audit.Hasher
	signer audit.SignerKey
	vkey   string

	records groupCommit[store.AuditLeaf] // without a journal

	merge *merger // nil: records commit through Raft before Record returns

	damage    atomic.Pointer[audit.Damage] // the first damage found; nil: none
	lastScrub atomic.Pointer[time.Time]    // the end of the last complete, clean scrub
	scrubMu   sync.Mutex                   // serializes scrub passes
	checked   atomic.Bool                  // a full pass, leaves included, completed
	dbChecked atomic.Bool                  // the database passed its page check once
}

// Options configure a Service.
type Options struct {
	// Sinks receive every entry after it committed (see tailer).
	Sinks []*Sink
	// SinkCursorDir holds one cursor file per sink, so a restart resumes
	// delivery where it stopped; "" keeps cursors in memory (a restart
	// then starts each sink at the end of the log).
	SinkCursorDir string
	// MaxSinkLag (0: DefaultMaxSinkLag) and SinkRetry (0:
	// DefaultSinkRetry): see Healthy and the tailer.
	MaxSinkLag    uint64
	SinkRetry     time.Duration
	Logger        *slog.Logger
	OnSinkFailure func(name string)
	// OnDamaged, if set, is called once when the log's integrity check
	// first finds damage (it must not block).
	OnDamaged func(error)
	// Journal, if set, is where Record writes records (see merge.go and
	// docs/audit.md, "The journal"); the service merges them into the
	// replicated log and closes the journal on Close. NodeID names the
	// node in the journal's cursor key ("" stands for "local").
	Journal *Journal
	NodeID  string
	// MaxMergeDelay (0: DefaultMaxMergeDelay) bounds the time from a
	// journaled record's acknowledgement to its merge, while merging is
	// possible; MaxJournalLag (0: DefaultMaxJournalLag) bounds how many
	// records may wait.
	MaxMergeDelay time.Duration
	MaxJournalLag int
}

// New returns a Service and starts feeding its sinks.
func New(c Core, t Tree, o Options) (*Service, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{core: c, tree: t, sinks: o.Sinks, log: log, onSinkFailure: o.OnSinkFailure, onDamaged: o.OnDamaged,
		maxSinkLag: o.MaxSinkLag, sinkRetry: o.SinkRetry, tailCh: make(chan struct{})}
	s.records.commit = s.appendAudit
	if s.maxSinkLag == 0 {
		s.maxSinkLag = DefaultMaxSinkLag
	}
	if s.sinkRetry <= 0 {
		s.sinkRetry = DefaultSinkRetry
	}
	if err := s.startTailers(o.SinkCursorDir); err != nil {
		return nil, err
	}
	if o.Journal != nil {
		s.startMerge(o)
	}
	return s, nil
}

// Close stops feeding the sinks and closes them. Entries not delivered yet
// are delivered after the next start (from the cursor files).
func (s *Service) Close() error {
	if s.stopTail != nil {
		s.stopTail()
	}
	s.tailWG.Wait()
	err := s.stopMerge()
	for _, k := range s.sinks {
		err = errors.Join(err, k.Close())
	}
	return err
}

// ErrSinkFailed: a required sink could not be written.
var ErrSinkFailed = errors.New("auditlog: a required audit sink failed")

// Forget drops the keys from memory (called on seal).
func (s *Service) Forget() {
	s.mu.Lock()
	s.hasher, s.signer, s.vkey = nil, "", ""
	s.mu.Unlock()
}

func (s *Service) keys() (*audit.Hasher, audit.SignerKey, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasher != nil {
		return s.hasher, s.signer, s.vkey, nil
	}
	get := func(k string) ([]byte, error) {
		e, err := s.core.GetStale(k)
		if err != nil {
			return nil, fmt.Errorf("auditlog: %s: %w", k, err)
		}
		return e.Value, nil
	}
	hk, err := get(keyHMAC)
	if err != nil {
		return nil, "", "", err
	}
	sk, err := get(keySigner)
	if err != nil {
		return nil, "", "", err
	}
	vk, err := get(keyVerifier)
	if err != nil {
		return nil, "", "", err
	}
	h, err := audit.NewHasher(hk)
	clear(hk)
	if err != nil {
		return nil, "", "", err
	}
	s.hasher, s.signer, s.vkey = h, audit.SignerKey(sk), string(vk)
	return s.hasher, s.signer, s.vkey, nil
}

// Hash returns the HMAC that stands in an entry for a sensitive value.
func (s *Service) Hash(value []byte) (string, error) {
	h, _, _, err := s.keys()
	if err != nil {
		return "", err
	}
	return h.Sum(value), nil
}

// Leaf makes the stored leaf of an entry and returns its canonical bytes.
func (s *Service) Leaf(e *audit.Entry) (store.AuditLeaf, []byte, error) { return makeLeaf(s.core, e) }

// makeLeaf makes the stored leaf of an entry: its leaf hash, and its
// canonical bytes, packed (audit.PackLeaf) and encrypted under
// audit.LeafAAD of that hash (what the store's leader checks, and what
// Entries opens with the tree's hash). Packing compresses before
// encrypting; docs/audit.md ("Stored leaves") says why the length this
// reveals to whoever sees the ciphertext is no secret.
func makeLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, []byte, error) {
	b, err := e.Canonical()
	if err != nil {
		return store.AuditLeaf{}, nil, err
	}
	h := audit.LeafHash(b)
	ct, err := enc.Encrypt(audit.LeafAAD(h), audit.PackLeaf(b))
	if err != nil {
		return store.AuditLeaf{}, nil, err
	}
	return store.AuditLeaf{Hash: h, Value: ct}, b, nil
}

// ChangeLeaf makes the leaf that rides in a change's Raft command. It
// refuses (Unavailable) while the log is not Healthy, so nothing commits
// while a required sink is failing or behind. Sinks receive the entry
// once it has committed.
func (s *Service) ChangeLeaf(e *audit.Entry) (store.AuditLeaf, error) {
	return s.changeLeaf(s.core, e)
}

// InitLeaf is ChangeLeaf for init's own record, encrypted with the keyring
// init makes (the barrier is still sealed).
func (s *Service) InitLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, error) {
	return s.changeLeaf(enc, e)
}

func (s *Service) changeLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, error) {
	if err := s.Healthy(); err != nil {
		return store.AuditLeaf{}, err
	}
	leaf, _, err := makeLeaf(enc, e)
	return leaf, err
}

// Record makes an entry durable on its own, so a response is never sent
// before its record is (fail closed). With a journal (Options.Journal) the
// record is written to it, one fsync per batch of concurrent records, and
// merged into the replicated log within the maximum merge delay; without
// one, concurrent records are group-committed, one Raft command per batch.
// Like ChangeLeaf it refuses while the log is not Healthy.
func (s *Service) Record(ctx context.Context, e *audit.Entry) error {
	if err := s.Healthy(); err != nil {
		return err
	}
	leaf, _, err := s.Leaf(e)
	if err != nil {
		return err
	}
	if s.merge != nil {
		return s.journal(ctx, leaf)
	}
	_, err = s.records.add(ctx, leaf, "audit record")
	return err
}

// appendAudit commits a batch of records, 512 to a Raft command.
func (s *Service) appendAudit(leaves []store.AuditLeaf) (uint64, error) {
	for len(leaves) > 0 {
		n := min(len(leaves), 512)
		if err := s.core.AppendAudit(context.Background(), leaves[:n]); err != nil {
			return 0, err
		}
		leaves = leaves[n:]
	}
	return 0, nil
}

// Verifier returns the checkpoint origin and the note verifier key.
func (s *Service) Verifier() (origin, vkey string, err error) {
	_, _, vk, err := s.keys()
	if err != nil {
		return "", "", err
	}
	name, _, _ := strings.Cut(vk, "+")
	return name, vk, nil
}

// Checkpoint signs the current tree state: its root is the one the state
// machine computed incrementally from every leaf hash it appended (the
// compact range), never one read back from stored nodes. It refuses, with
// an Unavailable error naming the damage, while the log is marked damaged;
// and before signing the first checkpoint since start (or since a restore)
// it runs a full check of the stored tree ([Service.Scrub]) if none has
// completed, so nothing is signed over a tree this process has not checked.
// It first merges this node's journal (a failed merge is logged, and the
// checkpoint signs what is merged).
func (s *Service) Checkpoint(ctx context.Context) ([]byte, error) {
	_, sk, _, err := s.keys()
	if err != nil {
		return nil, err
	}
	s.flushForRead(ctx)
	if err := s.ensureChecked(ctx); err != nil {
		return nil, err
	}
	var st audit.TreeState
	err = s.tree.ViewAudit(func(v store.AuditView) error {
		if st, err = v.State(); err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		return audit.CheckRange(v, st)
	})
	if err := s.refuseDamaged(err); err != nil {
		return nil, err
	}
	root, err := st.Root()
	if err != nil {
		return nil, err
	}
	return audit.Sign(sk, st.Size, root)
}

// StoredEntry is one entry with its exact leaf bytes and the index of the
// Raft command that committed it. An entry whose stored leaf does not open
// under its own hash, does not decode, or hashes to something else has
// Altered set (its Damage says how) and no Leaf or Entry. An entry below
// the pruned bound (archived, its body removed) has Archived set and only
// its LeafHash (the stored level-0 node), no RaftIndex, Leaf or Entry.
type StoredEntry struct {
	Index     uint64
	RaftIndex uint64
	Leaf      []byte
	Entry     audit.Entry
	Altered   *audit.Damage
	Archived  bool
	LeafHash  []byte
}

// Entries returns up to count entries from start, fewer at the end of the
// log. A damaged entry is returned marked Altered (and marks the log
// damaged), never as an error, so a reader learns which entry it is. Like
// Checkpoint, it first merges this node's journal, so the records this
// node acknowledged before the call are there.
func (s *Service) Entries(start uint64, count int) ([]StoredEntry, error) {
	if s.readable() == nil {
		s.flushForRead(context.Background())
	}
	return s.entries(start, count)
}

// entries is Entries without the merge (the sink tailers read what is
// committed).
func (s *Service) entries(start uint64, count int) ([]StoredEntry, error) {
	if count <= 0 || count > MaxEntries {
		return nil, errs.E(errs.Invalid, "count: must be 1 to %d", MaxEntries)
	}
	if err := s.readable(); err != nil {
		return nil, err
	}
	var out []StoredEntry
	err := s.tree.ViewAudit(func(v store.AuditView) error {
		st, err := v.State()
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		if start >= st.Size {
			return nil
		}
		n := min(uint64(count), st.Size-start)
		pruned, err := v.Pruned()
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
		}
		for ; n > 0 && start < pruned; start, n = start+1, n-1 {
			h, err := v.GetNode(0, start)
			if err != nil {
				return &audit.Damage{Kind: audit.DamagedNode, Index: start, Detail: "it is missing"}
			}
			out = append(out, StoredEntry{Index: start, Archived: true, LeafHash: h})
		}
		if n == 0 {
			return nil
		}
		raw, err := v.Leaves(start, int(n))
		if err != nil {
			return err
		}
		for i := range n {
			idx := start + i
			if i >= uint64(len(raw)) {
				out = append(out, StoredEntry{Index: idx, Altered: &audit.Damage{Kind: audit.DamagedEntry, Index: idx, Detail: "it is missing"}})
				continue
			}
			e, err := s.openLeaf(v, idx, raw[i])
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return s.opened(out, err)
}

// opened ends a read of entries: a damage error refuses it (and marks
// the log damaged), and so does every entry found altered.
func (s *Service) opened(out []StoredEntry, err error) ([]StoredEntry, error) {
	if err != nil {
		return nil, s.refuseDamaged(err)
	}
	for _, e := range out {
		if e.Altered != nil {
			s.markDamaged(e.Altered)
		}
	}
	return out, nil
}

// legacyLeafAAD is the additional data of leaves written by releases that
// sealed every leaf under one constant (before issue 10); they are read, never
// written.
const legacyLeafAAD = "audit/leaf"

// openLeaf decrypts the stored leaf idx under its own hash (its level-0
// node) and decodes it. A leaf that fails is returned marked Altered; the
// error is only for failures that say nothing about the data (sealed).
func (s *Service) openLeaf(v store.AuditView, idx uint64, sl store.StoredLeaf) (StoredEntry, error) {
	out := StoredEntry{Index: idx, RaftIndex: sl.RaftIndex}
	altered := func(detail string) (StoredEntry, error) {
		out.Altered = &audit.Damage{Kind: audit.DamagedEntry, Index: idx, Detail: detail}
		return out, nil
	}
	h, err := v.GetNode(0, idx)
	if err != nil {
		return altered("its leaf hash is missing")
	}
	b, err := s.core.Decrypt(audit.LeafAAD(h), sl.Value)
	if err != nil && !errs.Is(err, errs.Unavailable) {
		// Leaves written before they were sealed under their own hash
		// used one fixed additional data. Such a leaf still has to hash
		// to the tree's hash at its index below, so a moved or swapped
		// one is found all the same.
		b, err = s.core.Decrypt(legacyLeafAAD, sl.Value)
	}
	if errs.Is(err, errs.Unavailable) {
		return StoredEntry{}, err
	}
	if err != nil {
		return altered("it does not open under its leaf hash")
	}
	// Leaves written before packing hold the canonical bytes themselves,
	// which UnpackLeaf returns as they are.
	if b, err = audit.UnpackLeaf(b); err != nil {
		return altered("it does not unpack")
	}
	e, err := audit.DecodeEntry(b)
	if err != nil {
		return altered("it is not a canonical entry")
	}
	if !bytes.Equal(audit.LeafHash(b), h) {
		return altered("it does not hash to its leaf hash")
	}
	out.Leaf, out.Entry = b, e
	return out, nil
}

// Size is the tree size.
func (s *Service) Size() (uint64, error) {
	var st audit.TreeState
	err := s.tree.ViewAudit(func(v store.AuditView) (err error) {
		st, err = v.State()
		return err
	})
	return st.Size, err
}

// InclusionProof returns the proof of entry index in the tree of the given
// size, built from stored nodes and verified before it is returned against
// the root this server would sign for that size (see trustedRoot). A proof
// that does not verify marks the log damaged and is refused (Unavailable).
func (s *Service) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	var p [][]byte
	err := s.tree.ViewAudit(func(v store.AuditView) error {
		st, root, err := s.trustedRoot(v, size)
		if err != nil {
			return err
		}
		if index >= size {
			return argErr(&audit.ArgumentError{Arg: "index", Value: index, Want: fmt.Sprintf("below tree_size %d", size)})
		}
		if p, err = audit.InclusionProof(v, index, size); err != nil {
			return proofErr(err)
		}
		leaf, err := v.GetNode(0, index)
		if err != nil {
			return &audit.Damage{Kind: audit.DamagedNode, Level: 0, Index: index, Detail: err.Error()}
		}
		if err := audit.VerifyInclusionHash(leaf, index, size, root, p); err != nil {
			return &audit.Damage{Kind: audit.DamagedNode, Detail: fmt.Sprintf("the inclusion proof of entry %d in tree size %d (current %d) does not verify: %v", index, size, st.Size, err)}
		}
		return nil
	})
	if err != nil {
		return nil, s.refuseDamaged(err)
	}
	return p, nil
}

// ConsistencyProof proves the tree of size old is a prefix of size new,
// verified like InclusionProof before it is returned.
func (s *Service) ConsistencyProof(old, new uint64) ([][]byte, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	var p [][]byte
	err := s.tree.ViewAudit(func(v store.AuditView) error {
		_, newRoot, err := s.trustedRoot(v, new)
		if err != nil {
			return err
		}
		if old > new {
			return argErr(&audit.ArgumentError{Arg: "old", Value: old, Want: fmt.Sprintf("at most new %d", new)})
		}
		oldRoot := audit.EmptyRoot()
		if old > 0 {
			if _, oldRoot, err = s.trustedRoot(v, old); err != nil {
				return err
			}
		}
		if p, err = audit.ConsistencyProof(v, old, new); err != nil {
			return proofErr(err)
		}
		if old == 0 {
			return nil
		}
		if err := audit.VerifyConsistency(old, new, oldRoot, newRoot, p); err != nil {
			return &audit.Damage{Kind: audit.DamagedNode, Detail: fmt.Sprintf("the consistency proof from %d to %d does not verify: %v", old, new, err)}
		}
		return nil
	})
	if err != nil {
		return nil, s.refuseDamaged(err)
	}
	return p, nil
}

// trustedRoot returns the state and the root of the tree of the given size
// that this server stands behind: for the current size, the root of the
// incrementally computed compact range (after checking that range against
// the stored nodes); for an earlier size, the root of its stored compact
// range, accepted only if the consistency proof from it to the current
// root verifies, so a stored node altered on the way shows as damage.
func (s *Service) trustedRoot(v store.AuditView, size uint64) (audit.TreeState, []byte, error) {
	if d := s.damage.Load(); d != nil {
		return audit.TreeState{}, nil, d
	}
	st, err := v.State()
	if err != nil {
		return st, nil, &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
	}
	if size == 0 || size > st.Size {
		return st, nil, errs.E(errs.Invalid, "tree_size: %d is not in 1..%d (the current tree size)", size, st.Size)
	}
	if err := audit.CheckRange(v, st); err != nil {
		return st, nil, err
	}
	cur, err := st.Root()
	if err != nil {
		return st, nil, &audit.Damage{Kind: audit.DamagedState, Detail: err.Error()}
	}
	if size == st.Size {
		return st, cur, nil
	}
	root, err := audit.RootAt(v, size)
	if err != nil {
		return st, nil, proofErr(err)
	}
	p, err := audit.ConsistencyProof(v, size, st.Size)
	if err != nil {
		return st, nil, proofErr(err)
	}
	if err := audit.VerifyConsistency(size, st.Size, root, cur, p); err != nil {
		return st, nil, &audit.Damage{Kind: audit.DamagedNode, Detail: fmt.Sprintf("the stored root of tree size %d is not consistent with the current root: %v", size, err)}
	}
	return st, root, nil
}

// proofErr makes a missing stored node, which a proof needs, damage.
func proofErr(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, audit.ErrCorrupt) {
		return &audit.Damage{Kind: audit.DamagedNode, Detail: err.Error()}
	}
	return argErr(err)
}

func argErr(err error) error {
	if errors.Is(err, audit.ErrArgument) {
		return errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	return err
}
