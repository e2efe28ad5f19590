// Package store is Warden's replicated, transactional key-value store: a
// Raft log (hashicorp/raft, with raft-boltdb for the log and stable store)
// and a state machine kept in bbolt, so a restart resumes from the state on
// disk instead of replaying the whole log.
//
// The unit of change is a Txn: preconditions on key versions, then puts and
// deletes, applied atomically as one Raft command. Every key's version is the
// Raft index of the command that last changed it. Reads are linearizable by
// default (leadership confirmed, state caught up to the commit index), with
// concurrent reads sharing one confirmation round.
//
// store knows nothing about encryption: values are opaque bytes, and callers
// encrypt them before they reach a Txn.
package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/warden-sec/warden/internal/audit"
)

// logCacheSize is how many of the newest Raft log entries are kept in
// memory for replication (raft.LogCache).
const logCacheSize = 1024

// Config configures a Store.
type Config struct {
	Dir    string // required; created 0700
	NodeID string // default "node1"
	// Transport carries Raft traffic (see TLSTransport); the store closes it
	// on Close. Nil: an in-memory transport, and the node bootstraps itself
	// as a single-voter cluster on first start.
	Transport raft.Transport
	// Forwarder carries a follower's writes and read checks to the leader.
	// Nil: the Transport's own, if it has one (raftnet.NetTransport);
	// otherwise a follower answers ErrNotLeader. A Transport with a
	// ServePeers(*Store) method is asked to answer peers' requests.
	Forwarder Forwarder
	// OnRestore, if set, runs after the state was replaced by a snapshot
	// (an operator's restore, or a snapshot installed from the leader).
	OnRestore func()
	// Bootstrap a new cluster with Servers (or just this node) when no Raft
	// state exists. Always true when Transport is nil.
	Bootstrap bool
	Servers   []raft.Server
	Logger    *slog.Logger // Raft's warnings and errors go here; nil: discard

	SnapshotThreshold uint64        // default 8192 logs
	SnapshotInterval  time.Duration // default 2m
	TrailingLogs      uint64        // default 10240
	// LogBytes bounds the Raft log in bytes: as soon as the commands
	// applied since the last snapshot total this much, the node takes a
	// snapshot (and Raft compacts its log to TrailingLogs), without
	// waiting for the next SnapshotInterval check. 0: DefaultLogBytes. A
	// snapshot copies nothing (liveSnapshots), so it is cheap to take
	// often.
	LogBytes uint64
	// ApplyObserver, if set, gets the latency of every Txn's Raft apply.
	ApplyObserver func(time.Duration)

	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// ApplyTimeout bounds a Txn without a context deadline (default 10s).
	ApplyTimeout time.Duration
}

// Store is a replicated store. Safe for concurrent use.
type Store struct {
	cfg    Config
	raft   *raft.Raft
	fsm    *fsm
	logs   *raftboltdb.BoltStore
	trans  raft.Transport
	fwd    Forwarder
	snaps  *liveSnapshots
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once

	// Linearizable reads: readers join the next confirmation round.
	rmu     sync.Mutex
	next    *round
	running bool

	noopThrough atomic.Uint64 // logs up to here that the FSM never sees are known applied

	joinPeers atomic.Pointer[[]string] // see AcceptJoin
	cfgIdx    configIndex              // see ConfigurationIndex

	lmu         sync.Mutex
	leaderReady bool // this node is leader and has committed an entry of its term

	leafCheck atomic.Pointer[LeafCheck] // nil: sealed, no transaction is proposed
	// wmu pauses proposals: every apply through this node's Raft holds it
	// shared, a restore holds it exclusively from before it reads the audit
	// log until the restored state is installed.
	wmu sync.RWMutex
}

type round struct {
	done  chan struct{}
	index uint64 // the commit index the round confirmed
	err   error
}

// Open opens (or creates) the store in cfg.Dir and starts Raft.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: Dir is required")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node1"
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 2 * time.Minute
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = 10240
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	raftDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{cfg: cfg, log: log, closed: make(chan struct{})}
	// Give back the space the databases hold free (see compactFile).
	for _, p := range []string{filepath.Join(cfg.Dir, "fsm.db"), filepath.Join(raftDir, "raft.db")} {
		done, err := compactFile(p)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if done {
			log.Info("store: database compacted: its free pages were more than half of it", "file", p)
		}
	}
	var err error
	if s.fsm, err = newFSM(filepath.Join(cfg.Dir, "fsm.db")); err != nil {
		return nil, fmt.Errorf("store: state machine: %w", err)
	}
	s.fsm.logBytes = cfg.LogBytes
	if s.fsm.logBytes == 0 {
		s.fsm.logBytes = DefaultLogBytes
	}
	s.logs, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db"),
		BoltOptions: boltOptions()})
	if err != nil {
		s.fsm.close()
		if strings.Contains(err.Error(), "timeout") {
			return nil, fmt.Errorf("store: %s is in use by another process", raftDir)
		}
		return nil, fmt.Errorf("store: raft log: %w", err)
	}
	// A single node's own election is routine: only errors are worth a line.
	level := hclog.Warn
	if cfg.Transport == nil {
		level = hclog.Error
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, Output: &slogWriter{log: log}, DisableTime: true})
	// Snapshots hold the whole state (ciphertext, but with the keyring sealed
	// by the root key): only the owner may list or read them. Raft would
	// create the directory 0755.
	snapDir := filepath.Join(raftDir, "snapshots")
	err = os.MkdirAll(snapDir, 0o700)
	if err == nil {
		err = os.Chmod(snapDir, 0o700)
	}
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	// One snapshot is retained. Those this node takes of its own state
	// hold only their metadata (liveSnapshots): the state machine's
	// database is the durable state. Raft removes the older snapshot only
	// after the newer one is complete and synced (its directory renamed
	// into place), so a crash leaves one complete snapshot either way; a
	// stored snapshot being streamed to a follower when it is removed
	// stays readable through its open file.
	files, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 1, hlog)
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	snaps := &liveSnapshots{FileSnapshotStore: files, fsm: s.fsm}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	s.trans = cfg.Transport
	if s.trans == nil {
		_, s.trans = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
		cfg.Bootstrap = true
		rc.HeartbeatTimeout, rc.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
		rc.LeaderLeaseTimeout, rc.CommitTimeout = 100*time.Millisecond, 5*time.Millisecond
	}
	for _, o := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&rc.HeartbeatTimeout, cfg.HeartbeatTimeout}, {&rc.ElectionTimeout, cfg.ElectionTimeout},
		{&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout}, {&rc.CommitTimeout, cfg.CommitTimeout}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(s.logs, s.logs, snaps)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("store: %w", err)
		}
		if !has {
			servers := cfg.Servers
			if len(servers) == 0 {
				servers = []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}
			}
			if err := raft.BootstrapCluster(rc, s.logs, s.logs, snaps, s.trans, raft.Configuration{Servers: servers}); err != nil {
				s.closeFiles()
				return nil, fmt.Errorf("store: bootstrap: %w", err)
			}
		}
	}
	s.snaps = snaps
	s.fsm.restoredIndex = func() uint64 {
		// Raft saves a snapshot in the store before restoring it, so the
		// newest is the one being restored.
		if metas, err := snaps.List(); err == nil && len(metas) > 0 {
			return metas[0].Index
		}
		return 0
	}
	s.fsm.onRestore = cfg.OnRestore
	s.fwd = cfg.Forwarder
	if s.fwd == nil {
		s.fwd, _ = s.trans.(Forwarder)
	}
	// The leader reads back every entry it sends to a follower: keep the
	// newest in memory rather than reading each in its own bolt
	// transaction. (Writes go through to the store.)
	logs, err := raft.NewLogCache(logCacheSize, s.logs)
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("store: raft log cache: %w", err)
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.logs, snaps, s.trans)
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("store: raft: %w", err)
	}
	if ps, ok := s.trans.(interface{ ServePeers(*Store) }); ok {
		ps.ServePeers(s)
	}
	go s.watchLeadership()
	go s.boundLog()
	return s, nil
}

// DefaultLogBytes is Config.LogBytes when it is not set.
const DefaultLogBytes = 64 << 20

// boundLog takes a snapshot whenever the commands applied since the last
// one reach the log's byte bound (Config.LogBytes): Raft's own threshold,
// in entries, is checked only every SnapshotInterval (2 to 4 minutes), in
// which a busy node's log, whose commands carry values and audit leaves,
// grows by hundreds of megabytes, and the log database never gives back
// the space it once used.
func (s *Store) boundLog() {
	for {
		select {
		case <-s.closed:
			return
		case <-s.fsm.overBytes:
		}
		if s.fsm.sinceSnapshot.Load() < s.fsm.logBytes {
			continue
		}
		err := s.raft.Snapshot().Error()
		if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) && !errors.Is(err, raft.ErrRaftShutdown) {
			s.log.Warn("store: snapshot to bound the log failed", "err", err)
		}
	}
}

// watchLeadership marks the node ready for reads once, as leader, it has
// committed an entry of its own term (the barrier), so a new leader never
// serves a read from before its term's commit index is known.
func (s *Store) watchLeadership() {
	ch := s.raft.LeaderCh()
	for {
		select {
		case <-s.closed:
			return
		case leader := <-ch:
			s.lmu.Lock()
			s.leaderReady = false
			s.lmu.Unlock()
			if leader {
				go func() {
					if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err == nil && s.raft.State() == raft.Leader {
						s.lmu.Lock()
						s.leaderReady = true
						s.lmu.Unlock()
					}
				}()
			}
		}
	}
}

func (s *Store) ready() bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.leaderReady && s.raft.State() == raft.Leader
}

func (s *Store) closeFiles() {
	if s.logs != nil {
		s.logs.Close()
	}
	s.fsm.close()
}

// slogWriter forwards hclog's lines to slog at warn level.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			w.log.Warn(line, "component", "raft")
		}
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)

// Raft exposes the underlying Raft for cluster management.
func (s *Store) Raft() *raft.Raft { return s.raft }

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Role is this node's part in the cluster.
type Role string

// Roles.
const (
	RoleLeader   Role = "leader"
	RoleFollower Role = "follower"
	RoleStandby  Role = "standby" // candidate or shut down: no known leader
)

// Status describes this node for health checks.
type Status struct {
	Role         Role
	Leader       string    // leader's Raft address, "" if unknown
	LastContact  time.Time // last contact with the leader (zero on the leader)
	AppliedIndex uint64
	CommitIndex  uint64
}

// Status reports this node's role, leader and indexes.
func (s *Store) Status() Status {
	st := Status{AppliedIndex: s.AppliedIndex(), CommitIndex: s.raft.CommitIndex()}
	addr, _ := s.raft.LeaderWithID()
	st.Leader = string(addr)
	switch s.raft.State() {
	case raft.Leader:
		st.Role = RoleLeader
	case raft.Follower:
		st.Role = RoleFollower
		st.LastContact = s.raft.LastContact()
	default:
		st.Role = RoleStandby
	}
	return st
}

// AppliedIndex is the index of the last log applied to the local state.
func (s *Store) AppliedIndex() uint64 { return s.fsm.applied.Load() }

// WaitLeader blocks until this node knows a leader and, if it is the
// leader, is ready to serve reads; or until ctx ends (ErrNoLeader).
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		addr, _ := s.raft.LeaderWithID()
		if addr != "" && (s.raft.State() != raft.Leader || s.ready()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-s.closed:
			return ErrClosed
		case <-t.C:
		}
	}
}

// SetLeafCheck installs the check the leader runs on every audit leaf
// before it proposes a transaction, local or forwarded by a follower; nil
// removes it (on seal), and a leader without one refuses every transaction
// (ErrLeaderSealed).
func (s *Store) SetLeafCheck(check LeafCheck) {
	if check == nil {
		s.leafCheck.Store(nil)
		return
	}
	s.leafCheck.Store(&check)
}

// checkLeaves runs the LeafCheck on every leaf of a transaction this node is
// about to propose. Without a check it refuses: ErrLeaderSealed on the
// leader, raft.ErrNotLeader elsewhere (so a sealed follower still forwards).
func (s *Store) checkLeaves(leaves []AuditLeaf) error {
	p := s.leafCheck.Load()
	if p == nil {
		if s.raft.State() != raft.Leader {
			return raft.ErrNotLeader
		}
		return ErrLeaderSealed
	}
	for i, l := range leaves {
		if err := (*p)(l); err != nil {
			return fmt.Errorf("%w: %w: leaf %d: %v", ErrInvalid, ErrBadLeaf, i, err)
		}
	}
	return nil
}

// Txn applies t atomically as one Raft command and returns its index, the
// new version of every key it puts. A failed condition returns a
// *ConflictError and changes nothing. A change without an audit leaf is
// refused (ErrUnaudited), and so is a leaf the leader's LeafCheck refuses
// (ErrBadLeaf). If ctx ends first, Txn returns ctx.Err() but the command may
// still be applied.
func (s *Store) Txn(ctx context.Context, t Txn) (uint64, error) {
	if err := validate(t); err != nil {
		return 0, err
	}
	select {
	case <-s.closed:
		return 0, ErrClosed
	default:
	}
	if p := s.fsm.failed.Load(); p != nil {
		return 0, *p
	}
	cmd := encodeTxn(t)
	if s.raft.State() != raft.Leader {
		if s.fwd != nil {
			return s.forwardCmd(ctx, cmd)
		}
		// Just started or mid-election: wait, within ctx, for a leader to be
		// known rather than failing a write that a moment later would pass.
		if addr, _ := s.raft.LeaderWithID(); addr == "" {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			err := s.WaitLeader(wctx)
			cancel()
			if err != nil {
				return 0, err
			}
		}
	}
	idx, err := s.applyLocal(ctx, t, cmd)
	if errors.Is(err, raft.ErrNotLeader) && s.fwd != nil {
		// Lost leadership before the command was enqueued: nothing was
		// applied, so the new leader can take it.
		return s.forwardCmd(ctx, cmd)
	}
	return idx, raftErr(err)
}

// forwardCmd has the leader apply an encoded Txn.
func (s *Store) forwardCmd(ctx context.Context, cmd []byte) (uint64, error) {
	resp, err := s.forward(ctx, &PeerRequest{Op: PeerApply, Cmd: cmd})
	if err != nil {
		return 0, err
	}
	if err := resp.err(); err != nil {
		return 0, err
	}
	return resp.Index, nil
}

// applyLocal applies t, encoded as cmd, through this node's Raft, which must
// be the leader, after checking its audit leaves. Raft's own errors are
// returned unwrapped (see raftErr). It is the one way into raft.Apply.
func (s *Store) applyLocal(ctx context.Context, t Txn, cmd []byte) (uint64, error) {
	// The check runs before the pause lock: it may wait for core (a keyring
	// reload), which may itself be waiting to propose.
	if err := s.checkLeaves(t.Audit); err != nil {
		return 0, err
	}
	s.wmu.RLock()
	defer s.wmu.RUnlock()
	if err := ctx.Err(); err != nil {
		return 0, err // waited out a restore: propose nothing the caller gave up on
	}
	start := time.Now()
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := s.raft.Apply(cmd, timeout)
	done := make(chan struct{})
	var err error
	go func() { err = f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if s.cfg.ApplyObserver != nil {
		s.cfg.ApplyObserver(time.Since(start))
	}
	if err != nil {
		return 0, err
	}
	switch r := f.Response().(type) {
	case uint64:
		return r, nil
	case error:
		return 0, r
	}
	return 0, fmt.Errorf("store: unexpected apply response %T", f.Response())
}

func raftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// readBarrier confirms that this node may serve a linearizable read: it
// joins the next confirmation round (started only after the current one
// ends). On the leader a round verifies leadership with a quorum; on a
// follower it asks the leader for its confirmed commit index. Either way it
// then waits until the local state has applied that index.
func (s *Store) readBarrier(ctx context.Context) error {
	if stale(ctx) {
		return nil
	}
	_, err := s.joinRound(ctx)
	return err
}

func (s *Store) joinRound(ctx context.Context) (uint64, error) {
	if !s.ready() {
		// Just started, mid-election, or a new leader not yet ready: wait
		// (bounded) until the cluster settles.
		wctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		err := s.WaitLeader(wctx)
		cancel()
		if err != nil {
			return 0, err
		}
	}
	s.rmu.Lock()
	r := s.next
	if r == nil {
		r = &round{done: make(chan struct{})}
		s.next = r
		if !s.running {
			s.running = true
			go s.runRounds()
		}
	}
	s.rmu.Unlock()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
	}
}

func (s *Store) runRounds() {
	for {
		s.rmu.Lock()
		r := s.next
		s.next = nil
		if r == nil {
			s.running = false
			s.rmu.Unlock()
			return
		}
		s.rmu.Unlock()
		r.index, r.err = s.confirm()
		close(r.done)
	}
}

func (s *Store) confirm() (uint64, error) {
	var ci uint64
	switch {
	case s.ready():
		var err error
		if ci, err = s.leaderReadIndex(); err != nil {
			return 0, err
		}
	case s.raft.State() == raft.Leader:
		// Just elected, its first entry not yet committed (a few
		// milliseconds): wait for that rather than fail a read that it can
		// serve a moment later.
		if err := s.awaitReady(); err != nil {
			return 0, err
		}
		return s.confirm()
	case s.fwd != nil && s.raft.State() != raft.Leader:
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		resp, err := s.forward(ctx, &PeerRequest{Op: PeerReadIndex})
		cancel()
		if err != nil {
			return 0, err
		}
		if err := resp.err(); err != nil {
			return 0, err
		}
		ci = resp.Index
	default:
		return 0, ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	if err := s.WaitApplied(ctx, ci); err != nil {
		if errors.Is(err, ErrClosed) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: state machine did not catch up", ErrNoLeader)
	}
	return ci, nil
}

// WaitApplied blocks until this node's state reflects every log up to idx,
// or ctx ends.
func (s *Store) WaitApplied(ctx context.Context, idx uint64) error {
	// Logs the state machine never sees (no-ops, barriers) do not wake it:
	// look again now and then, too.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := s.fsm.waitCh()
		if s.caughtUp(idx) {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		}
	}
}

// awaitReady waits, up to ApplyTimeout, until this node, leader, is ready
// to serve reads, or is no longer leader (then nil too: the caller looks
// again). ErrNotLeader if neither happens in time.
func (s *Store) awaitReady() error {
	deadline := time.NewTimer(s.cfg.ApplyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !s.ready() && s.raft.State() == raft.Leader {
		select {
		case <-s.closed:
			return ErrClosed
		case <-deadline.C:
			return ErrNotLeader
		case <-tick.C:
		}
	}
	return nil
}

// leaderReadIndex confirms leadership with a quorum and returns the commit
// index seen before: every write acknowledged before the call is at or
// below it.
func (s *Store) leaderReadIndex() (uint64, error) {
	if !s.ready() {
		return 0, ErrNotLeader
	}
	ci := s.raft.CommitIndex()
	if s.soleVoter() {
		// No other node can be elected or commit: leadership needs no
		// confirmation round through Raft's busy leader loop.
		return ci, nil
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, raftErr(err)
	}
	return ci, nil
}

// soleVoter reports whether this node is the only voter of the latest
// configuration (committed or not).
func (s *Store) soleVoter() bool {
	voters, self := 0, false
	for _, sv := range s.raft.GetConfiguration().Configuration().Servers {
		if sv.Suffrage == raft.Voter {
			voters++
			self = self || sv.ID == raft.ServerID(s.cfg.NodeID)
		}
	}
	return voters == 1 && self
}

// caughtUp reports whether the local state reflects every log up to ci.
// Raft never hands no-op and barrier logs to the state machine, so the
// state machine's applied index can stay below the commit index while
// nothing is missing: the logs in between are checked, and the result is
// remembered.
func (s *Store) caughtUp(ci uint64) bool {
	a := s.fsm.applied.Load()
	if a >= ci || s.noopThrough.Load() >= ci {
		return true
	}
	if ci-a > 64 {
		return false
	}
	var l raft.Log
	for i := a + 1; i <= ci; i++ {
		if err := s.logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	s.noopThrough.Store(ci)
	return true
}

// Get reads key linearizably. ErrNotFound if absent; ErrNotLeader on a
// follower.
func (s *Store) Get(ctx context.Context, key string) (Entry, error) {
	if err := s.readBarrier(ctx); err != nil {
		return Entry{}, err
	}
	return s.fsm.get(key)
}

// GetMany reads keys linearizably, all from one read transaction after one
// confirmation round (not one round per key), and returns the entries of
// those that exist, in the order of keys; absent keys are left out. The
// caller bounds len(keys).
func (s *Store) GetMany(ctx context.Context, keys []string) ([]Entry, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	return s.fsm.getMany(keys)
}

// GetManyStale is GetMany from this node's local state, without the
// confirmation round.
func (s *Store) GetManyStale(keys []string) ([]Entry, error) { return s.fsm.getMany(keys) }

// ScanStale returns every entry under prefix, sorted by key, from one read
// transaction of this node's local state (no confirmation round), with the
// value of those for which values(key, version) is true; the others have a
// nil Value. values runs inside the read transaction: it must be quick and
// must not call the store.
func (s *Store) ScanStale(prefix string, values func(key string, version uint64) bool) ([]Entry, error) {
	return s.fsm.scan(prefix, 0, values)
}

// GetStale reads this node's local state without any leadership check.
func (s *Store) GetStale(key string) (Entry, error) { return s.fsm.get(key) }

// List returns the entries under prefix, sorted by key, linearizably; limit
// 0 means all.
func (s *Store) List(ctx context.Context, prefix string, limit int) ([]Entry, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	return s.fsm.list(prefix, limit)
}

// ListKeys is List without the values: the keys and versions under
// prefix, linearizably.
func (s *Store) ListKeys(ctx context.Context, prefix string, limit int) ([]Entry, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	return s.fsm.listKeys(prefix, limit)
}

// ListStale is List without the leadership check.
func (s *Store) ListStale(prefix string, limit int) ([]Entry, error) {
	return s.fsm.list(prefix, limit)
}

// AuditState returns the audit Merkle tree's size and compact range, from
// the local state.
func (s *Store) AuditState() (audit.TreeState, error) { return s.fsm.auditState() }

// AuditNodes serves stored audit tree nodes (audit.NodeStore) from the local
// state.
func (s *Store) AuditNodes() audit.NodeStore { return s.fsm }

// AuditLeaves returns up to count stored audit leaves from index start.
func (s *Store) AuditLeaves(start uint64, count int) ([]StoredLeaf, error) {
	return s.fsm.auditLeaves(start, count)
}

// Command returns the transaction of the Raft command at index, from this
// node's log: with StoredLeaf.RaftIndex, what the command that carried an
// audit record changed. ErrNotFound if the log no longer holds the index
// (compacted into a snapshot) or the entry there is not a transaction.
func (s *Store) Command(index uint64) (Txn, error) {
	var l raft.Log
	if err := s.logs.GetLog(index, &l); err != nil {
		return Txn{}, fmt.Errorf("%w: log %d: %v", ErrNotFound, index, err)
	}
	if l.Type != raft.LogCommand {
		return Txn{}, fmt.Errorf("%w: log %d is not a command", ErrNotFound, index)
	}
	return decodeTxn(bytes.Clone(l.Data))
}

// Snapshot takes a Raft snapshot now and compacts the log.
func (s *Store) Snapshot() error {
	return s.raft.Snapshot().Error()
}

// Close shuts Raft down and closes the files. Idempotent.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.raft.Shutdown().Error()
		if c, ok := s.trans.(io.Closer); ok {
			c.Close()
		}
		s.logs.Close()
		err = errors.Join(err, s.fsm.close())
	})
	return err
}
