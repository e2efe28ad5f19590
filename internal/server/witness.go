package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/cosign"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/fsutil"
	"github.com/warden-sec/warden/internal/raftnet"
	"github.com/warden-sec/warden/internal/store"
	"github.com/warden-sec/warden/internal/witness"
)

// DefaultWitnessInterval is how often the leader has the audit log's
// latest checkpoint cosigned by every witness (when the log grew), so
// that each witness stays recent and a checkpoint request finds
// consistency proofs short and witnesses answering at once.
const DefaultWitnessInterval = 10 * time.Second

// Files of a node's witness, in <data dir>/witness: its key pair (made at
// the first unsealed start, so at init or after a join) and its state, the
// last checkpoint it cosigned of the cluster's log, outside Raft.
const (
	witnessKeyFile   = "witness.key" // the note signer key, 0600
	witnessPubFile   = "witness.pub" // the note verifier key, for operators and verifiers to pin
	witnessStateDir  = "state"
	witnessKeyPrefix = "warden-witness/" // + node ID: the key's name
)

// witnessNode is this server node as a witness of the cluster's audit log
// (every server node is one), and the cosigning of the checkpoints it
// serves. It implements api.Witnesses.
type witnessNode struct {
	s        *Server
	dir      string
	interval time.Duration // <= 0: no background rounds
	cfg      *cosign.Config
	cosigner *cosign.Cosigner

	mu    sync.Mutex
	skey  string        // the signer key: in memory and in the 0600 key file only
	vkey  string        // its verifier key
	guard *cosign.Guard // nil until the witness is open
	// checked is when ensure last found the witness open and registered
	// (Unix nanoseconds); the checkpoint and list routes, which witnesses
	// and agents poll, check again at most every recheckEvery.
	checked atomic.Int64

	extMu sync.Mutex
	ext   map[string]*http.Client // by external witness (name, URL, CA)

	stop context.CancelFunc
	done chan struct{}
}

func newWitnessNode(s *Server, interval time.Duration) *witnessNode {
	if interval == 0 {
		interval = DefaultWitnessInterval
	}
	w := &witnessNode{s: s, dir: filepath.Join(s.cfg.DataDir, "witness"), interval: interval,
		cfg: cosign.NewConfig(s.core, s.cfg.Now), ext: map[string]*http.Client{}}
	w.cosigner = cosign.NewCosigner(cosign.CosignerConfig{Log: &barrierLog{s: s}, Targets: w.targets, Logger: s.log, Now: s.cfg.Now})
	return w
}

// barrierLog is the audit log as the cosigner signs it: after a read
// barrier, so the checkpoint is at least as new as every write
// acknowledged before (and so as every checkpoint a witness cosigned
// before the call, whichever node submitted it).
type barrierLog struct{ s *Server }

func (l *barrierLog) Checkpoint(ctx context.Context) ([]byte, error) {
	if noBarrier, _ := ctx.Value(localCheckpoint{}).(bool); !noBarrier {
		if err := l.s.st.Barrier(ctx); err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "the cluster cannot confirm this node is current")
		}
	}
	return l.s.audit.Checkpoint(ctx)
}

// localCheckpoint marks a context whose checkpoint is signed over this
// node's local state, without a read barrier: one that waits for no
// witness (?witnesses=0) is served as before witnesses, even while the
// leader cannot be reached.
type localCheckpoint struct{}

func (l *barrierLog) ConsistencyProof(old, new uint64) ([][]byte, error) {
	return l.s.audit.ConsistencyProof(old, new)
}

// loadKey reads the witness key, or makes it (the first time this node is
// unsealed), and keeps its verifier key in witness.pub for operators to
// pin. w.mu is held.
func (w *witnessNode) loadKey() error {
	if w.skey != "" {
		return nil
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return err
	}
	skey, vkey, created, err := witness.LoadKey(filepath.Join(w.dir, witnessKeyFile), witnessKeyPrefix+w.s.st.NodeID())
	if err != nil {
		return fmt.Errorf("witness key: %w", err)
	}
	// The public half is derived from the key: written after it, and
	// again if a crash between the two lost it.
	pubFile := filepath.Join(w.dir, witnessPubFile)
	if pk, err := os.ReadFile(pubFile); err != nil || strings.TrimSpace(string(pk)) != vkey {
		if err := fsutil.WriteFileAtomic(pubFile, []byte(vkey+"\n"), 0o644); err != nil {
			return err
		}
	}
	w.skey, w.vkey = skey, vkey
	if created {
		w.s.log.Info("made this node's audit witness key", "verifier_key", vkey, "file", pubFile)
	}
	return nil
}

// ensure opens this node's witness (making its key the first time) and
// registers its verifier key in the cluster configuration if the entry
// there is missing or different. It needs the node unsealed: the log's
// key is read from the store, and the entry is written through Raft with
// its audit record.
func (w *witnessNode) ensure(ctx context.Context) error {
	s := w.s
	if s.core.Sealed() {
		return errs.E(errs.Unavailable, "sealed")
	}
	w.mu.Lock()
	if w.guard == nil {
		if err := w.loadKey(); err != nil {
			w.mu.Unlock()
			return err
		}
		origin, logKey, err := s.audit.Verifier()
		if err != nil {
			w.mu.Unlock()
			return err
		}
		wt, err := witness.Open(witness.Config{Dir: filepath.Join(w.dir, witnessStateDir), Signer: w.skey,
			Logs: map[string]string{origin: logKey}, Now: s.cfg.Now})
		if err != nil {
			w.mu.Unlock()
			return fmt.Errorf("witness: %w", err)
		}
		wt.SetLogger(s.log)
		w.guard = &cosign.Guard{W: wt, OnFork: w.onFork, Log: s.log}
		if s.trans != nil {
			s.trans.ServeWitness(cosign.PeerHandler(w.guard, raftnet.PeerNode))
		}
		s.log.Info("audit witness running", "name", wt.Name(), "verifier_key", w.vkey)
	}
	vkey := w.vkey
	w.mu.Unlock()

	id := s.st.NodeID()
	reg, err := w.cfg.Registered(id)
	if err == nil && reg == vkey {
		w.checked.Store(s.now().UnixNano())
	}
	if err != nil || reg == vkey || !w.member(id) {
		return err
	}
	entry := auditlog.SystemEntry(s.now(), id, "audit.witness.register", `AuditLog::"warden"`)
	entry.RequestID, entry.SourceAddr = "witness-"+keyID(vkey), s.st.ClusterAddr()
	rctx, _ := s.audit.Pending(store.WithPrincipal(ctx, entry.Principal), entry)
	if err := w.cfg.Register(rctx, id, vkey); err != nil {
		return fmt.Errorf("register this node's witness: %w", err)
	}
	s.log.Info("registered this node's audit witness in the cluster configuration", "node_id", id, "verifier_key", vkey)
	w.checked.Store(s.now().UnixNano())
	return nil
}

// recheckEvery is how often the polled routes check the witness's
// registration again (a storage read), at most.
const recheckEvery = 10 * time.Second

// ensureRecent is ensure, skipped when it succeeded within recheckEvery.
func (w *witnessNode) ensureRecent(ctx context.Context) error {
	if at := w.checked.Load(); at != 0 && w.s.now().Sub(time.Unix(0, at)) < recheckEvery {
		return nil
	}
	return w.ensure(ctx)
}

// keyID is a short name of a verifier key for request IDs.
func keyID(vkey string) string {
	h := sha256.Sum256([]byte(vkey))
	return hex.EncodeToString(h[:6])
}

// member reports whether node id is in this node's Raft configuration.
func (w *witnessNode) member(id string) bool {
	return w.s.st.CheckPeer(id, store.PeerWitness) == nil
}

// onFork reports, on this node (the witness that refused), a checkpoint
// that is not an extension of the one it cosigned: logged at ERROR and
// sent as a server event (audit_fork) with both checkpoints, which the
// built-in rule "Warden audit log fork" turns into a critical alert.
func (w *witnessNode) onFork(from string, fe *witness.ForkError) {
	s := w.s
	if from == "" {
		from = s.st.NodeID() + " (this node)"
	}
	msg := fmt.Sprintf("the audit witness of %s refused a checkpoint of the cluster's log submitted by %s: %s", s.st.NodeID(), from,
		strings.Join(strings.Fields(fe.Reason), " "))
	s.log.Error("audit log fork: "+msg, "submitted_by", from, "cosigned", string(fe.Cosigned), "offered", string(fe.Offered))
	s.emitter.EmitThrottled("audit_fork|"+from, events.ActionAuditFork, events.Event{
		events.FieldMessage:          msg,
		events.FieldOutcome:          "failure",
		"warden.witness.submitter":   from,
		"warden.checkpoint.cosigned": string(fe.Cosigned),
		"warden.checkpoint.offered":  string(fe.Offered),
	})
}

// targets are the witnesses to submit to: this node's own, the witnesses
// of the other members (over the cluster port) and the external ones, as
// this node's state records them.
func (w *witnessNode) targets(ctx context.Context) ([]cosign.Target, error) {
	s := w.s
	sctx := store.WithStale(ctx)
	srvs, err := w.cfg.Servers(sctx)
	if err != nil {
		return nil, err
	}
	exts, err := w.cfg.Externals(sctx)
	if err != nil {
		return nil, err
	}
	addr := map[string]string{}
	if ps, err := s.st.Peers(); err == nil {
		for _, p := range ps {
			addr[p.ID] = p.Address
		}
	}
	w.mu.Lock()
	guard, own := w.guard, w.vkey
	w.mu.Unlock()
	self := s.st.NodeID()
	var out []cosign.Target
	for _, sw := range srvs {
		id := cosign.ServerID(sw.Node)
		switch a, member := addr[sw.Node]; {
		case sw.Node == self:
			if guard != nil && sw.VerifierKey == own {
				out = append(out, cosign.Target{ID: id, VerifierKey: sw.VerifierKey, Submit: guard})
			}
		case member && s.trans != nil:
			out = append(out, cosign.Target{ID: id, VerifierKey: sw.VerifierKey, Submit: &witness.Client{
				URL: "https://" + a + raftnet.WitnessPath, VerifierKey: sw.VerifierKey, HTTP: s.trans.PeerClient()}})
		}
	}
	for _, e := range exts {
		hc, err := w.extClient(e)
		if err != nil {
			return nil, err
		}
		out = append(out, cosign.Target{ID: cosign.ExternalID(e.Name), VerifierKey: e.VerifierKey,
			Submit: &witness.Client{URL: e.URL, VerifierKey: e.VerifierKey, HTTP: hc}})
	}
	return out, nil
}

// extClient is the HTTPS client of an external witness (kept, so its
// connections are reused).
func (w *witnessNode) extClient(e cosign.ExternalWitness) (*http.Client, error) {
	h := sha256.Sum256([]byte(e.Name + "\n" + e.URL + "\n" + e.CACert))
	k := string(h[:])
	w.extMu.Lock()
	defer w.extMu.Unlock()
	if c := w.ext[k]; c != nil {
		return c, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CACert != "" {
		pool, err := cosign.CAPool([]byte(e.CACert))
		if err != nil {
			return nil, fmt.Errorf("external witness %q: ca_cert: %w", e.Name, err)
		}
		tc.RootCAs = pool
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	if len(w.ext) >= 4*cosign.MaxExternal {
		clear(w.ext)
	}
	w.ext[k] = c
	return c, nil
}

// start runs the loop that opens and registers the witness once the node
// is unsealed, and on the leader keeps the witnesses recent.
func (w *witnessNode) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
}

// close stops the loop and releases the witness's state directory.
func (w *witnessNode) close() {
	if w.stop != nil {
		w.stop()
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.guard != nil {
		if err := w.guard.W.Close(); err != nil {
			w.s.log.Warn("audit witness: close", "err", err)
		}
	}
}

func (w *witnessNode) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastErr string
	var lastRound time.Time
	var lastSize uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.s.core.Sealed() {
			continue
		}
		if err := w.ensure(ctx); err != nil {
			if err.Error() != lastErr {
				w.s.log.Warn("audit witness: not running yet", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if w.interval <= 0 || !w.s.st.IsLeader() || time.Since(lastRound) < w.interval {
			continue
		}
		size, err := w.s.audit.Size()
		if err != nil || size == lastSize {
			continue
		}
		lastRound = time.Now()
		if res, err := w.cosigner.Cosigned(ctx, cosign.All); err == nil || res != nil {
			lastSize = res.Size
		}
	}
}

// Unsealed implements api.Witnesses: the witness is opened (its key made
// the first time) and registered before the unseal is answered.
func (w *witnessNode) Unsealed(ctx context.Context) error { return w.ensure(ctx) }

// Cosigned implements api.Witnesses: the current checkpoint with want
// cosignatures (see cosign.Cosigner.Cosigned).
func (w *witnessNode) Cosigned(ctx context.Context, want int) (*cosign.Result, error) {
	if err := w.ensureRecent(ctx); err != nil && !errs.Is(err, errs.Unavailable) {
		w.s.log.Warn("audit witness: not running", "err", err)
	}
	if want == 0 {
		ctx = context.WithValue(ctx, localCheckpoint{}, true)
	}
	return w.cosigner.Cosigned(ctx, want)
}

// List implements api.Witnesses.
func (w *witnessNode) List(ctx context.Context) (*cosign.Listing, error) {
	if err := w.ensureRecent(ctx); err != nil && !errs.Is(err, errs.Unavailable) {
		w.s.log.Warn("audit witness: not running", "err", err)
	}
	members := map[string]bool{}
	if ps, err := w.s.st.Peers(); err == nil {
		for _, p := range ps {
			members[p.ID] = true
		}
	}
	return w.cfg.List(ctx, members, w.cosigner.Status())
}

// AddExternal implements api.Witnesses.
func (w *witnessNode) AddExternal(ctx context.Context, e cosign.ExternalWitness) (*cosign.ExternalWitness, error) {
	return w.cfg.AddExternal(ctx, e)
}

// RemoveExternal implements api.Witnesses.
func (w *witnessNode) RemoveExternal(ctx context.Context, name string) error {
	return w.cfg.RemoveExternal(ctx, name)
}
