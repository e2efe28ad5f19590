package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

type staleKey struct{}

// WithStale marks ctx so reads through it skip the linearizability check
// and answer from this node's local state, which may be behind the leader.
func WithStale(ctx context.Context) context.Context {
	return context.WithValue(ctx, staleKey{}, true)
}

func stale(ctx context.Context) bool {
	v, _ := ctx.Value(staleKey{}).(bool)
	return v
}

// Peer is one member of the Raft configuration.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// Peers lists the cluster's members as this node knows them.
func (s *Store) Peers() ([]Peer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftErr(err)
	}
	_, leader := s.raft.LeaderWithID()
	var out []Peer
	for _, sv := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(sv.ID), Address: string(sv.Address),
			Voter: sv.Suffrage == raft.Voter, Leader: sv.ID == leader})
	}
	return out, nil
}

// CheckPeer decides whether node id, authenticated on the cluster port, may
// make a request of kind op (a Peer* operation, or PeerRaft for Raft's own
// traffic) now: it must be in this node's latest Raft configuration, and a
// voter to ask for a membership change. It reads the configuration Raft
// holds in memory, so it is cheap enough to ask on every request, and a
// removal takes effect on this node as soon as it has the new configuration
// (on the leader: when it appends it).
//
// A node without any configuration yet (it is joining) accepts the servers
// it was configured with (Config.Servers) and those named by AcceptJoin,
// and nothing but Raft traffic and status requests from them.
func (s *Store) CheckPeer(id, op string) error {
	if id == "" {
		return fmt.Errorf("%w: no node identity", ErrPeerRefused)
	}
	servers := s.raft.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		if (op == PeerRaft || op == PeerStatus) && s.joinPeer(id) {
			return nil
		}
		return fmt.Errorf("%w: node %q: this node has no cluster configuration yet", ErrPeerRefused, id)
	}
	for _, sv := range servers {
		if sv.ID != raft.ServerID(id) {
			continue
		}
		switch op {
		case PeerAddNonvoter, PeerAddVoter, PeerRemove:
			if sv.Suffrage != raft.Voter {
				return fmt.Errorf("%w: node %q is not a voter and may not change the membership", ErrPeerRefused, id)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: node %q is not a member of the cluster", ErrPeerRefused, id)
}

func (s *Store) joinPeer(id string) bool {
	for _, sv := range s.cfg.Servers {
		if sv.ID == raft.ServerID(id) {
			return true
		}
	}
	if m := s.joinPeers.Load(); m != nil {
		return slices.Contains(*m, id)
	}
	return false
}

// AcceptJoin names the members this node, while it has no configuration
// (it was just admitted), accepts Raft traffic and status requests from:
// those of the configuration that admitted it.
func (s *Store) AcceptJoin(ids []string) {
	ids = slices.Clone(ids)
	s.joinPeers.Store(&ids)
}

// configIndex remembers where this node's latest configuration entry is,
// and how far the log was scanned for it.
type configIndex struct {
	mu      sync.Mutex
	scanned uint64 // the log was scanned down from here
	index   uint64
}

// ConfigurationIndex is the index of the log entry that holds this node's
// latest Raft configuration (committed or not; 0 if none): the newest
// configuration entry of the log, or the newest snapshot's configuration
// index if it is newer. (raft 1.7's GetConfiguration does not report it.)
// The log is scanned once back to a configuration entry, then only the
// entries appended since.
func (s *Store) ConfigurationIndex() uint64 {
	c := &s.cfgIdx
	c.mu.Lock()
	defer c.mu.Unlock()
	first, err1 := s.logs.FirstIndex()
	last, err2 := s.logs.LastIndex()
	if err1 != nil || err2 != nil {
		return c.index
	}
	if last < c.scanned {
		c.scanned, c.index = 0, 0 // the log was truncated: scan again
	}
	var l raft.Log
	for i := last; i > c.scanned && i >= first && i > 0; i-- {
		if err := s.logs.GetLog(i, &l); err != nil {
			break
		}
		if l.Type == raft.LogConfiguration {
			c.index = max(c.index, i)
			break
		}
	}
	c.scanned = last
	if metas, err := s.snaps.List(); err == nil && len(metas) > 0 {
		c.index = max(c.index, metas[0].ConfigurationIndex)
	}
	return c.index
}

// NodeID is this node's Raft ID.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// ClusterAddr is the address peers reach this node's Raft on.
func (s *Store) ClusterAddr() string { return string(s.trans.LocalAddr()) }

// HasState reports whether this node has any Raft state (it bootstrapped
// or joined a cluster).
func (s *Store) HasState() bool {
	return s.raft.LastIndex() > 0
}

// BootstrapSelf makes this node, which has no Raft state, a cluster of one.
func (s *Store) BootstrapSelf() error {
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{ID: raft.ServerID(s.cfg.NodeID), Address: s.trans.LocalAddr()}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("%w: this node already has cluster state", ErrInvalid)
	}
	return err
}

// AddNonvoter adds a node that replicates but does not vote, on the leader
// (forwarded from a follower). A joining node starts so; AddVoter promotes
// it once it has caught up, so a new member never stalls the quorum.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) error {
	return s.membership(ctx, &PeerRequest{Op: PeerAddNonvoter, ID: id, Addr: addr})
}

// AddVoter makes a member a voter.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.membership(ctx, &PeerRequest{Op: PeerAddVoter, ID: id, Addr: addr})
}

// RemovePeer removes a member from the configuration.
func (s *Store) RemovePeer(ctx context.Context, id string) error {
	return s.membership(ctx, &PeerRequest{Op: PeerRemove, ID: id})
}

func (s *Store) membership(ctx context.Context, req *PeerRequest) error {
	if s.raft.State() == raft.Leader {
		err := s.membershipLocal(req)
		if !errors.Is(err, ErrNotLeader) || s.fwd == nil {
			return err
		}
	}
	resp, err := s.forward(ctx, req)
	if err != nil {
		return err
	}
	return resp.err()
}

func (s *Store) membershipLocal(req *PeerRequest) error {
	if req.ID == "" {
		return fmt.Errorf("%w: peer id is required", ErrInvalid)
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return raftErr(err)
	}
	var member *raft.Server
	for _, sv := range cf.Configuration().Servers {
		switch {
		case sv.ID == raft.ServerID(req.ID):
			member = &sv
		case req.Addr != "" && string(sv.Address) == req.Addr:
			return fmt.Errorf("%w: address %s belongs to member %q", ErrInvalid, req.Addr, sv.ID)
		}
	}
	id, addr := raft.ServerID(req.ID), raft.ServerAddress(req.Addr)
	var f raft.IndexFuture
	switch req.Op {
	case PeerAddNonvoter, PeerAddVoter:
		switch {
		case req.Addr == "":
			return fmt.Errorf("%w: peer address is required", ErrInvalid)
		case member != nil && member.Address != addr:
			return fmt.Errorf("%w: node id %q is already a member at %s; remove it first", ErrInvalid, req.ID, member.Address)
		case member != nil && req.Op == PeerAddNonvoter && member.Suffrage == raft.Voter:
			return nil // already a voter: joining again changes nothing
		case req.Op == PeerAddNonvoter:
			f = s.raft.AddNonvoter(id, addr, 0, s.cfg.ApplyTimeout)
		default:
			f = s.raft.AddVoter(id, addr, 0, s.cfg.ApplyTimeout)
		}
	case PeerRemove:
		if member == nil {
			return fmt.Errorf("%w: no member with id %q", ErrNotFound, req.ID)
		}
		f = s.raft.RemoveServer(id, 0, s.cfg.ApplyTimeout)
	default:
		return fmt.Errorf("%w: unknown membership operation %q", ErrInvalid, req.Op)
	}
	return raftErr(f.Error())
}

// PeerStatus asks the member at addr for its applied and commit index.
func (s *Store) PeerStatus(ctx context.Context, addr string) (applied, commit uint64, err error) {
	if raft.ServerAddress(addr) == s.trans.LocalAddr() {
		return s.AppliedIndex(), s.raft.CommitIndex(), nil
	}
	if s.fwd == nil {
		return 0, 0, errors.New("store: no peer transport")
	}
	resp, err := s.fwd.Forward(ctx, raft.ServerAddress(addr), &PeerRequest{Op: PeerStatus})
	if err != nil {
		return 0, 0, err
	}
	return resp.Applied, resp.Index, resp.err()
}

// SaveSnapshot takes a Raft snapshot on this node and writes it to w: the
// state machine's database as stored (values are ciphertext). Run it on
// the leader so the snapshot holds every acknowledged write.
func (s *Store) SaveSnapshot(w io.Writer) (uint64, error) {
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	var (
		meta *raft.SnapshotMeta
		rc   io.ReadCloser
		err  error
	)
	if f.Error() == nil {
		meta, rc, err = f.Open()
	} else {
		// Nothing changed since the last snapshot: stream that one.
		metas, lerr := s.snaps.List()
		if lerr != nil || len(metas) == 0 {
			return 0, fmt.Errorf("store: snapshot: no snapshot to save")
		}
		meta, rc, err = s.snaps.Open(metas[0].ID)
	}
	if err != nil {
		return 0, fmt.Errorf("store: open snapshot: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return 0, fmt.Errorf("store: write snapshot: %w", err)
	}
	return meta.Index, nil
}

// ErrBadSnapshot: a file given for restore is not a Warden state database.
var ErrBadSnapshot = errors.New("snapshot: not a Warden state database")

// SnapshotFile is an operator's snapshot, checked and opened read-only so
// the caller can inspect it before restoring.
type SnapshotFile struct {
	path string
	size int64
	db   *bolt.DB
}

// OpenSnapshotFile reads a snapshot from r into a temporary file in the
// store's directory, calls verify, and only if verify accepts opens it and
// checks that it is a Warden state database. bbolt is not hardened against
// crafted files (a truncated one can crash the process), so verify must
// authenticate the bytes r delivered (the API checks a digest sealed by the
// barrier, so only snapshots this cluster produced are opened).
func (s *Store) OpenSnapshotFile(r io.Reader, verify func() error) (*SnapshotFile, error) {
	f, err := os.CreateTemp(s.cfg.Dir, "restore-*.db")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("store: read snapshot: %w", err)
	}
	if err := verify(); err != nil {
		os.Remove(path)
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%w (%v)", ErrBadSnapshot, err)
	}
	err = checkSnapshotDB(db)
	if err != nil {
		db.Close()
		os.Remove(path)
		return nil, err
	}
	return &SnapshotFile{path: path, size: n, db: db}, nil
}

// Get reads a key from the snapshot.
func (f *SnapshotFile) Get(key string) (Entry, error) {
	var e Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if len(v) < 8 {
			return ErrNotFound
		}
		e = Entry{Key: key, Version: version(v), Value: append([]byte(nil), v[8:]...)}
		return nil
	})
	return e, err
}

// Close removes the temporary file.
func (f *SnapshotFile) Close() error {
	err := f.db.Close()
	os.Remove(f.path)
	return err
}

// SnapshotDir is where Raft keeps its snapshots (for operators).
func (s *Store) SnapshotDir() string { return filepath.Join(s.cfg.Dir, "raft") }

// Barrier waits until this node's state reflects every write acknowledged
// before the call (a linearizable read with nothing to read).
func (s *Store) Barrier(ctx context.Context) error { return s.readBarrier(ctx) }

// checkSnapshotDB checks that a database has Warden's buckets.
func checkSnapshotDB(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketMeta, bucketAuditNodes, bucketAuditLeaves} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w (no %q bucket)", ErrBadSnapshot, b)
			}
		}
		return nil
	})
}
