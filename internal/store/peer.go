package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrPeerRefused: the node that sent a request on the cluster port may not
// make it (it is not a member of the current configuration, or not a voter
// and asked for a membership change, or it claims to forward for another
// node). Nothing was done.
var ErrPeerRefused = errors.New("store: peer refused")

// ErrUnreachable wraps a Forwarder's error when the request certainly did
// not reach the peer (it could not be dialed), so it may be sent elsewhere.
var ErrUnreachable = errors.New("store: peer unreachable")

// Forwarder carries a follower's request to another node (the leader, or a
// peer asked for its status). raftnet.NetTransport is the production one;
// tests plug in-process ones.
type Forwarder interface {
	Forward(ctx context.Context, addr raft.ServerAddress, req *PeerRequest) (*PeerResponse, error)
}

// Peer operations.
const (
	PeerApply       = "apply"        // Cmd: an encoded Txn
	PeerReadIndex   = "read_index"   // the leader's confirmed commit index
	PeerAddNonvoter = "add_nonvoter" // ID, Addr
	PeerAddVoter    = "add_voter"    // ID, Addr: promote a caught-up non-voter
	PeerRemove      = "remove"       // ID
	PeerStatus      = "status"       // the node's own indexes (any node answers)

	// PeerRaft is not a request: it names Raft's own traffic for
	// CheckPeer.
	PeerRaft = "raft"
	// PeerWitness is not a store request either: it names the requests
	// to a node's witness on the cluster port (raftnet.WitnessPath), which
	// members may make, for CheckPeer.
	PeerWitness = "witness"
)

// PeerRequest is one request between nodes.
//
// The node that sends it is known from its TLS certificate, never from the
// request: Node is what the sender says it is, and a request whose Node
// differs from the authenticated one is refused (a relay or a forgery).
// Principal is the authenticated caller a forwarded write is made for, as
// the forwarding node's API authenticated it; the leader passes it on with
// the transaction (PrincipalOf) and trusts it as far as it trusts the
// forwarding member.
type PeerRequest struct {
	Op        string `json:"op"`
	Cmd       []byte `json:"cmd,omitempty"`
	ID        string `json:"id,omitempty"`
	Addr      string `json:"addr,omitempty"`
	Node      string `json:"node,omitempty"`
	Principal string `json:"principal,omitempty"`
}

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated caller a write is
// made for; a write forwarded to the leader carries it along.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// PrincipalOf returns the caller WithPrincipal put in ctx, or "".
func PrincipalOf(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

type forwardedKey struct{}

// ForwardedBy returns the member that forwarded the write being applied
// with ctx (authenticated by its certificate), or "" for a local write.
func ForwardedBy(ctx context.Context) string {
	n, _ := ctx.Value(forwardedKey{}).(string)
	return n
}

// PeerResponse answers a PeerRequest. Err is empty on success, else one of
// the error kinds below with a message.
type PeerResponse struct {
	Index    uint64         `json:"index,omitempty"`
	Applied  uint64         `json:"applied,omitempty"`
	Err      string         `json:"err,omitempty"`
	Msg      string         `json:"msg,omitempty"`
	Conflict *ConflictError `json:"conflict,omitempty"`
}

// Error kinds in PeerResponse.Err.
const (
	peerErrNotLeader = "not_leader" // nothing was done: retry on the leader
	peerErrNoLeader  = "no_leader"
	peerErrConflict  = "conflict"
	peerErrInvalid   = "invalid"
	peerErrClosed    = "closed"
	peerErrRefused   = "refused" // the sender may not ask: nothing was done
	peerErrFailed    = "failed"  // the outcome is unknown
)

func peerError(err error) *PeerResponse {
	r := &PeerResponse{Msg: err.Error()}
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		r.Err, r.Conflict = peerErrConflict, ce
	case errors.Is(err, ErrNotLeader):
		r.Err = peerErrNotLeader
	case errors.Is(err, ErrNoLeader):
		r.Err = peerErrNoLeader
	case errors.Is(err, ErrInvalid):
		r.Err = peerErrInvalid
	case errors.Is(err, ErrClosed):
		r.Err = peerErrClosed
	case errors.Is(err, ErrPeerRefused):
		r.Err = peerErrRefused
	default:
		r.Err = peerErrFailed
	}
	return r
}

func (r *PeerResponse) err() error {
	switch r.Err {
	case "":
		return nil
	case peerErrConflict:
		if r.Conflict != nil {
			return r.Conflict
		}
		return ErrConflict
	case peerErrNotLeader:
		return fmt.Errorf("%w: %s", ErrNotLeader, r.Msg)
	case peerErrNoLeader:
		return fmt.Errorf("%w: %s", ErrNoLeader, r.Msg)
	case peerErrInvalid:
		return fmt.Errorf("%w: %s", ErrInvalid, r.Msg)
	case peerErrClosed:
		return fmt.Errorf("%w: leader is shutting down", ErrNoLeader)
	case peerErrRefused:
		return fmt.Errorf("%w: %s", ErrPeerRefused, r.Msg)
	}
	return fmt.Errorf("store: leader: %s", r.Msg)
}

// HandlePeer answers a request from node from, the member its TLS
// certificate authenticates (the transport's Gate says which). Every request
// is checked against the current configuration first (CheckPeer). Only the
// leader applies, confirms reads or changes membership; any node answers a
// status request.
//
// A forwarded write goes through Txn like a local one, with the caller's
// principal and the forwarding member in its context (PrincipalOf,
// ForwardedBy), so the leader's checks of a transaction apply to it too.
func (s *Store) HandlePeer(ctx context.Context, from string, req *PeerRequest) *PeerResponse {
	if req.Node != "" && req.Node != from {
		return peerError(fmt.Errorf("%w: node %q sent a request as %q", ErrPeerRefused, from, req.Node))
	}
	if err := s.CheckPeer(from, req.Op); err != nil {
		return peerError(err)
	}
	if req.Op == PeerStatus {
		return &PeerResponse{Applied: s.AppliedIndex(), Index: s.raft.CommitIndex()}
	}
	if s.raft.State() != raft.Leader {
		return peerError(ErrNotLeader)
	}
	switch req.Op {
	case PeerApply:
		t, err := decodeTxn(req.Cmd)
		if err != nil {
			return peerError(fmt.Errorf("%w: %v", ErrInvalid, err))
		}
		if err := validate(t); err != nil {
			return peerError(err)
		}
		ctx = context.WithValue(WithPrincipal(ctx, req.Principal), forwardedKey{}, from)
		idx, err := s.applyLocal(ctx, t, req.Cmd)
		if errors.Is(err, raft.ErrLeadershipLost) {
			// Leadership was lost after the command was appended: it may
			// still commit. The outcome is unknown, and the follower must
			// not send it again.
			return &PeerResponse{Err: peerErrFailed, Msg: raftErr(err).Error()}
		}
		err = raftErr(err)
		if err != nil {
			return peerError(err)
		}
		return &PeerResponse{Index: idx}
	case PeerReadIndex:
		idx, err := s.joinRound(ctx)
		if err != nil {
			return peerError(err)
		}
		return &PeerResponse{Index: idx}
	case PeerAddNonvoter, PeerAddVoter, PeerRemove:
		if err := s.membershipLocal(req); err != nil {
			return peerError(err)
		}
		return &PeerResponse{}
	}
	return peerError(fmt.Errorf("%w: unknown peer operation %q", ErrInvalid, req.Op))
}

// forward sends req to the leader, waiting (bounded by ctx and the apply
// timeout) for one to be known. A leader that answers "not the leader" did
// nothing, so the request is retried on the next one.
func (s *Store) forward(ctx context.Context, req *PeerRequest) (*PeerResponse, error) {
	if s.fwd == nil {
		return nil, ErrNotLeader
	}
	fr := *req
	fr.Node = s.cfg.NodeID
	if fr.Principal == "" {
		fr.Principal = PrincipalOf(ctx)
	}
	req = &fr
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	var last error
	var addr raft.ServerAddress
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Back off a little before asking again (an election may be
			// under way), but no longer than until another leader is known.
			if err := s.awaitLeaderChange(ctx, addr, min(time.Duration(attempt)*20*time.Millisecond, 100*time.Millisecond)); err != nil {
				if errors.Is(err, ErrClosed) {
					return nil, err
				}
				return nil, fmt.Errorf("%w: %v (last: %v)", ErrNoLeader, err, last)
			}
		}
		if err := s.WaitLeader(ctx); err != nil {
			if last != nil {
				return nil, fmt.Errorf("%w (last: %v)", err, last)
			}
			return nil, err
		}
		addr, _ = s.raft.LeaderWithID()
		resp, err := s.ask(ctx, addr, req)
		if errors.Is(err, ErrPeerRefused) {
			return nil, err // this node may not ask: nothing was done
		}
		if err != nil {
			if req.Op == PeerApply && !errors.Is(err, ErrUnreachable) {
				// The leader may have applied it: the outcome is unknown.
				return nil, fmt.Errorf("%w: forwarding to the leader at %s: %v", ErrNoLeader, addr, err)
			}
			last = err
			continue
		}
		if resp.Err == peerErrNotLeader || (resp.Err == peerErrNoLeader && req.Op != PeerApply) {
			last = resp.err()
			continue
		}
		return resp, nil
	}
}

// awaitLeaderChange waits for d, or until this node knows a leader other
// than addr (or none), looking every 5 ms: a follower that failed to reach
// a dead leader asks the new one as soon as it is known. It returns ctx's
// error or ErrClosed if those end first.
func (s *Store) awaitLeaderChange(ctx context.Context, addr raft.ServerAddress, d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); {
		if now, _ := s.raft.LeaderWithID(); now != addr {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// ask sends req to the node at addr; this node answers its own requests
// directly (it became the leader meanwhile). A read-index request may come
// from a confirmation round, which must not wait for the next round.
func (s *Store) ask(ctx context.Context, addr raft.ServerAddress, req *PeerRequest) (*PeerResponse, error) {
	switch {
	case addr != s.trans.LocalAddr():
		return s.fwd.Forward(ctx, addr, req)
	case req.Op == PeerReadIndex:
		idx, err := s.leaderReadIndex()
		if err != nil {
			return peerError(err), nil
		}
		return &PeerResponse{Index: idx}, nil
	}
	return s.HandlePeer(ctx, s.cfg.NodeID, req), nil
}

// EncodeTxn returns the command a PeerApply request carries for t.
func EncodeTxn(t Txn) []byte { return encodeTxn(t) }
