package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/warden-sec/warden/internal/core"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

// Cluster is what the API needs of a server running in cluster mode.
type Cluster interface {
	// BeforeInit makes a node without cluster state a cluster of one.
	BeforeInit(ctx context.Context) error
	// Unsealed runs after this node was unsealed.
	Unsealed(ctx context.Context) error
	// Join asks the cluster at leaderAddr to admit this node, with the
	// caller's token.
	Join(ctx context.Context, leaderAddr string, leaderCA []byte, token string) error
	// Admit certifies a joining node and records it as a member, in one
	// transaction with the request's audit record (ctx carries it), then
	// has it added to the configuration.
	Admit(ctx context.Context, r JoinRequest) (*JoinResponse, error)
	// RemovePeer records a member as removed and revokes its server
	// certificates, in one transaction with the request's audit record,
	// then has it dropped from the configuration.
	RemovePeer(ctx context.Context, id string) error
}

// JoinRequest is what a joining node sends a member of the cluster.
type JoinRequest struct {
	NodeID      string   `json:"node_id"`
	ClusterAddr string   `json:"cluster_addr"`
	CSR         string   `json:"csr"`
	Hosts       []string `json:"hosts,omitempty"` // more SANs for its certificate
}

// JoinResponse admits a node: its certificate (PEM, then the intermediate),
// the trust bundle, the commit index it must catch up to, and the voters
// of the configuration that admitted it (the only nodes it accepts Raft
// traffic from until it has a configuration of its own).
type JoinResponse struct {
	Certificate string   `json:"certificate"`
	Bundle      string   `json:"bundle"`
	Index       uint64   `json:"index"`
	Members     []string `json:"members"`
}

type joinCall struct {
	LeaderAPIAddr string `json:"leader_api_addr"`
	LeaderCACert  string `json:"leader_ca_cert"`
}

var errNotCluster = errs.E(errs.Invalid, "this server is not in cluster mode (start it with --node-id and --cluster-listen)")

// raftJoin runs on the joining node (uninitialized, without cluster state):
// it passes the caller's credentials to the cluster, which authenticates
// and authorizes them.
func (s *Server) raftJoin(req *request) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, errNotCluster
	}
	var in joinCall
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.LeaderAPIAddr == "" {
		return 0, nil, errs.E(errs.Invalid, "leader_api_addr: required")
	}
	tok := req.Header.Get("X-Warden-Token")
	if scheme, rest, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(rest)
	}
	if tok == "" {
		return 0, nil, errs.E(errs.Unauthenticated, "missing token: the cluster authorizes a join with the caller's token (action raft.join)")
	}
	if err := s.cfg.Cluster.Join(req.Context(), in.LeaderAPIAddr, []byte(in.LeaderCACert), tok); err != nil {
		return 0, nil, err
	}
	s.log.Info("joined a cluster; unseal this node with the cluster's unseal keys", "leader", in.LeaderAPIAddr)
	return http.StatusOK, map[string]bool{"joined": true}, nil
}

func (s *Server) raftAdmit(req *request) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, errNotCluster
	}
	var in JoinRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.NodeID == "" || in.ClusterAddr == "" || in.CSR == "" {
		return 0, nil, errs.E(errs.Invalid, "node_id, cluster_addr and csr: required")
	}
	out, err := s.cfg.Cluster.Admit(req.Context(), in)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("admitted a node to the cluster", "node_id", in.NodeID, "cluster_addr", in.ClusterAddr)
	return http.StatusOK, out, nil
}

func (s *Server) raftPeers(req *request) (int, any, error) {
	ps, err := s.cfg.Core.Store().Peers()
	if err != nil {
		return 0, nil, storeError(err)
	}
	if ps == nil {
		ps = []store.Peer{}
	}
	return http.StatusOK, map[string][]store.Peer{"peers": ps}, nil
}

func (s *Server) raftRemove(req *request) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, errNotCluster
	}
	id := req.PathValue("id")
	if err := s.cfg.Cluster.RemovePeer(req.Context(), id); err != nil {
		return 0, nil, storeError(err)
	}
	s.log.Info("removed a node from the cluster", "node_id", id)
	return http.StatusNoContent, nil, nil
}

// A snapshot file is a header line, the SHA-256 of the state database
// sealed by the barrier (length-prefixed), then the database:
//
//	"WARDEN-SNAPSHOT 1\n" | uint16 big-endian length | sealed digest | database
//
// Only this cluster can seal the digest, so a restore opens nothing but
// databases this cluster produced, unchanged.
const (
	snapshotMagic     = "WARDEN-SNAPSHOT 1\n"
	snapshotDigestAAD = "sys/snapshot-digest"
	maxSealedDigest   = 1024
)

// raftSnapshotSave streams a snapshot of the state: linearizable (the node
// first catches up with the leader's commit index), ciphertext only. The
// database goes through an unlinked temporary file (snapshots can be larger
// than memory), hashed on the way for the sealed digest.
func (s *Server) raftSnapshotSave(req *request) (int, any, error) {
	st := s.cfg.Core.Store()
	if err := st.Barrier(req.Context()); err != nil {
		return 0, nil, storeError(err)
	}
	f, err := os.CreateTemp(st.SnapshotDir(), "save-*.tmp")
	if err != nil {
		return 0, nil, err
	}
	os.Remove(f.Name()) // gone once closed, whatever happens to the request
	h := sha256.New()
	if _, err := st.SaveSnapshot(io.MultiWriter(f, h)); err != nil {
		f.Close()
		return 0, nil, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	var sealed []byte
	if err == nil {
		sealed, err = s.cfg.Core.Encrypt(snapshotDigestAAD, h.Sum(nil))
	}
	if err != nil {
		f.Close()
		return 0, nil, err
	}
	head := append([]byte(snapshotMagic), 0, 0)
	binary.BigEndian.PutUint16(head[len(snapshotMagic):], uint16(len(sealed)))
	head = append(head, sealed...)
	return http.StatusOK, fileBody{contentType: "application/octet-stream", head: head, f: f, size: size}, nil
}

// readSnapshotHeader reads the header of a snapshot file and returns the
// sealed digest.
func readSnapshotHeader(r io.Reader) ([]byte, error) {
	bad := errs.E(errs.Invalid, "snapshot: not a Warden snapshot file (no %q header)", strings.TrimSpace(snapshotMagic))
	head := make([]byte, len(snapshotMagic)+2)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, bad
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, bad
	}
	n := int(binary.BigEndian.Uint16(head[len(snapshotMagic):]))
	if n == 0 || n > maxSealedDigest {
		return nil, errs.E(errs.Invalid, "snapshot: sealed digest of %d bytes", n)
	}
	sealed := make([]byte, n)
	if _, err := io.ReadFull(r, sealed); err != nil {
		return nil, errs.E(errs.Invalid, "snapshot: truncated header")
	}
	return sealed, nil
}

// raftSnapshotRestore replaces the cluster's state with a snapshot of the
// same cluster, on the leader. The audit log is not restored: it keeps every
// record, and the record of the restore is installed with the restore
// (core.Restore).
func (s *Server) raftSnapshotRestore(req *request) (int, any, error) {
	st := s.cfg.Core.Store()
	if !st.IsLeader() {
		leader := "unknown"
		if ps, err := st.Peers(); err == nil {
			for _, p := range ps {
				if p.Leader {
					leader = "node " + p.ID + " at cluster address " + p.Address
				}
			}
		}
		return 0, nil, errs.E(errs.Invalid, "restore a snapshot on the leader (%s), not on this follower", leader)
	}
	sealed, err := readSnapshotHeader(req.Body)
	if err != nil {
		return 0, nil, err
	}
	want, err := s.cfg.Core.Decrypt(snapshotDigestAAD, sealed)
	if err != nil {
		return 0, nil, errs.E(errs.Invalid, "snapshot: not made by this cluster, or altered (its seal does not open)")
	}
	h := sha256.New()
	f, err := st.OpenSnapshotFile(io.TeeReader(req.Body, h), func() error {
		if subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
			return errs.E(errs.Invalid, "snapshot: altered or truncated (digest mismatch)")
		}
		return nil
	})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return 0, nil, errs.E(errs.TooLarge, "snapshot: larger than %d bytes", mbe.Limit)
		}
		if errors.Is(err, store.ErrBadSnapshot) {
			return 0, nil, errs.E(errs.Invalid, "%v", err)
		}
		return 0, nil, storeError(err)
	}
	defer f.Close()
	if err := s.cfg.Core.CheckSnapshot(f); err != nil {
		return 0, nil, err
	}
	idx, err := s.cfg.Core.Restore(req.Context(), f)
	if err != nil {
		return 0, nil, storeError(err)
	}
	s.log.Warn("restored a snapshot: the cluster's state is back to the snapshot's; the audit log kept every record and gained this restore's", "index", idx, "request_id", req.id)
	return http.StatusOK, map[string]uint64{"index": idx}, nil
}

// storeError maps store errors that reach a handler directly.
func storeError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errs.E(errs.Invalid, "request body: truncated")
	}
	return core.StoreError(err)
}
