// Package auditlog keeps Warden's audit trail in the replicated store: it
// makes entries into leaves (canonical bytes hashed per RFC 6962, stored
// encrypted), group-commits the records of reads, denies and failed
// requests, signs checkpoints and serves entries and proofs. The Merkle tree
// itself is maintained by the store's state machine (internal/audit holds
// the pure algorithms). auditlog knows nothing about HTTP.
package auditlog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

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
	Encrypt(aad string, pt []byte) ([]byte, error)
	Decrypt(aad string, ct []byte) ([]byte, error)
	AppendAudit(ctx context.Context, leaves []store.AuditLeaf) error
}

// Tree is what the service needs of the store's audit tree.
type Tree interface {
	AuditState() (audit.TreeState, error)
	AuditNodes() audit.NodeStore
	AuditLeaves(start uint64, count int) ([]store.StoredLeaf, error)
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

	mu     sync.Mutex
	hasher *audit.Hasher
	signer audit.SignerKey
	vkey   string

	bmu     sync.Mutex
	next    *batch
	running bool
}

type batch struct {
	leaves []store.AuditLeaf
	lines  [][]byte
	done   chan struct{}
	err    error
}

// Options configure a Service.
type Options struct {
	Sinks         []*Sink
	Logger        *slog.Logger
	OnSinkFailure func(name string)
}

// New returns a Service.
func New(c Core, t Tree, o Options) *Service {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{core: c, tree: t, sinks: o.Sinks, log: log, onSinkFailure: o.OnSinkFailure}
}

// Close closes the sinks.
func (s *Service) Close() error {
	var err error
	for _, k := range s.sinks {
		err = errors.Join(err, k.Close())
	}
	return err
}

// ErrSinkFailed: a required sink could not be written.
var ErrSinkFailed = errors.New("auditlog: a required audit sink failed")

// emit writes lines to every sink. A failed required sink is an error; a
// failed best-effort sink is only logged. Sinks are written in parallel.
func (s *Service) emit(lines [][]byte) error {
	if len(s.sinks) == 0 {
		return nil
	}
	errc := make([]error, len(s.sinks))
	var wg sync.WaitGroup
	for i, k := range s.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc[i] = k.Write(lines)
		}()
	}
	wg.Wait()
	var failed error
	for i, err := range errc {
		if err == nil {
			continue
		}
		k := s.sinks[i]
		s.log.Error("audit sink write failed", "sink", k.Name, "required", k.Required, "err", err)
		if s.onSinkFailure != nil {
			s.onSinkFailure(k.Name)
		}
		if k.Required {
			failed = fmt.Errorf("%w: %s: %v", ErrSinkFailed, k.Name, err)
		}
	}
	return failed
}

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
// canonical bytes encrypted under audit.LeafAAD of that hash (what the
// store's leader checks, and what Entries opens with the tree's hash).
func makeLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, []byte, error) {
	b, err := e.Canonical()
	if err != nil {
		return store.AuditLeaf{}, nil, err
	}
	h := audit.LeafHash(b)
	ct, err := enc.Encrypt(audit.LeafAAD(h), b)
	if err != nil {
		return store.AuditLeaf{}, nil, err
	}
	return store.AuditLeaf{Hash: h, Value: ct}, b, nil
}

// ChangeLeaf makes the leaf that rides in a change's Raft command, after
// writing the entry to the sinks: if a required sink fails, the change is
// refused before anything is committed.
func (s *Service) ChangeLeaf(e *audit.Entry) (store.AuditLeaf, error) {
	return s.changeLeaf(s.core, e)
}

// InitLeaf is ChangeLeaf for init's own record, encrypted with the keyring
// init makes (the barrier is still sealed).
func (s *Service) InitLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, error) {
	return s.changeLeaf(enc, e)
}

func (s *Service) changeLeaf(enc Encrypter, e *audit.Entry) (store.AuditLeaf, error) {
	leaf, line, err := makeLeaf(enc, e)
	if err != nil {
		return store.AuditLeaf{}, err
	}
	if err := s.emit([][]byte{line}); err != nil {
		return store.AuditLeaf{}, errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; the request was refused")
	}
	return leaf, nil
}

// Record commits an entry on its own. Concurrent records are group-committed:
// one Raft command per batch, and every caller waits for its batch, so a
// response is never sent before its record is durable (fail closed).
func (s *Service) Record(ctx context.Context, e *audit.Entry) error {
	leaf, line, err := s.Leaf(e)
	if err != nil {
		return err
	}
	s.bmu.Lock()
	b := s.next
	if b == nil {
		b = &batch{done: make(chan struct{})}
		s.next = b
	}
	b.leaves = append(b.leaves, leaf)
	b.lines = append(b.lines, line)
	if !s.running {
		s.running = true
		go s.flush()
	}
	s.bmu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return errs.Wrap(errs.Unavailable, ctx.Err(), "audit record not committed in time")
	}
}

func (s *Service) flush() {
	for {
		s.bmu.Lock()
		b := s.next
		s.next = nil
		if b == nil {
			s.running = false
			s.bmu.Unlock()
			return
		}
		s.bmu.Unlock()
		if err := s.emit(b.lines); err != nil {
			b.err = errs.Wrap(errs.Unavailable, err, "the audit log is unavailable; the request was refused")
			close(b.done)
			continue
		}
		for len(b.leaves) > 0 {
			n := min(len(b.leaves), 512)
			if err := s.core.AppendAudit(context.Background(), b.leaves[:n]); err != nil {
				b.err = err
				break
			}
			b.leaves = b.leaves[n:]
		}
		close(b.done)
	}
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

// Checkpoint signs the current tree state.
func (s *Service) Checkpoint() ([]byte, error) {
	_, sk, _, err := s.keys()
	if err != nil {
		return nil, err
	}
	st, err := s.tree.AuditState()
	if err != nil {
		return nil, err
	}
	root, err := st.Root()
	if err != nil {
		return nil, err
	}
	return audit.Sign(sk, st.Size, root)
}

// StoredEntry is one entry with its exact leaf bytes and the index of the
// Raft command that committed it.
type StoredEntry struct {
	Index     uint64
	RaftIndex uint64
	Leaf      []byte
	Entry     audit.Entry
}

// Entries returns up to count entries from start.
func (s *Service) Entries(start uint64, count int) ([]StoredEntry, error) {
	if count <= 0 || count > MaxEntries {
		return nil, errs.E(errs.Invalid, "count: must be 1 to %d", MaxEntries)
	}
	raw, err := s.tree.AuditLeaves(start, count)
	if err != nil {
		return nil, err
	}
	out := make([]StoredEntry, len(raw))
	nodes := s.tree.AuditNodes()
	for i, sl := range raw {
		// A stored leaf opens only under the hash the tree holds for its
		// index (level 0): moved or swapped, it does not open.
		h, err := nodes.GetNode(0, start+uint64(i))
		if err != nil {
			return nil, fmt.Errorf("auditlog: entry %d: %w", start+uint64(i), err)
		}
		b, err := s.core.Decrypt(audit.LeafAAD(h), sl.Value)
		if err != nil {
			return nil, err
		}
		e, err := audit.DecodeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("auditlog: entry %d: %w", start+uint64(i), err)
		}
		out[i] = StoredEntry{Index: start + uint64(i), RaftIndex: sl.RaftIndex, Leaf: b, Entry: e}
	}
	return out, nil
}

// Size is the tree size.
func (s *Service) Size() (uint64, error) {
	st, err := s.tree.AuditState()
	return st.Size, err
}

// InclusionProof and ConsistencyProof serve proofs from stored nodes.
func (s *Service) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := s.checkSize(size); err != nil {
		return nil, err
	}
	p, err := audit.InclusionProof(s.tree.AuditNodes(), index, size)
	return p, argErr(err)
}

// ConsistencyProof proves the tree of size old is a prefix of size new.
func (s *Service) ConsistencyProof(old, new uint64) ([][]byte, error) {
	if err := s.checkSize(new); err != nil {
		return nil, err
	}
	p, err := audit.ConsistencyProof(s.tree.AuditNodes(), old, new)
	return p, argErr(err)
}

func (s *Service) checkSize(size uint64) error {
	cur, err := s.Size()
	if err != nil {
		return err
	}
	if size > cur || size == 0 {
		return errs.E(errs.Invalid, "tree_size: %d is not in 1..%d (the current tree size)", size, cur)
	}
	return nil
}

func argErr(err error) error {
	if errors.Is(err, audit.ErrArgument) {
		return errs.Wrap(errs.Invalid, err, "%s", err.Error())
	}
	return err
}
