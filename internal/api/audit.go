package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authz"
	"github.com/warden-sec/warden/internal/errs"
)

var auditLog = fixed(authz.ActionAuditRead, authz.TypeAuditLog, "warden")

type verifierResponse struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
}

func (s *Server) auditVerifier(req *request) (int, any, error) {
	origin, vkey, err := s.cfg.Audit.Verifier()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, verifierResponse{Origin: origin, VerifierKey: vkey}, nil
}

// rawText marks a handler result written as text/plain.
type rawText []byte

// entryView is one entry; a damaged one has Altered set, an Error naming
// it ("entry N was altered: ...") and no leaf or entry.
type entryView struct {
	Index     uint64       `json:"index"`
	RaftIndex uint64       `json:"raft_index"` // the Raft command that committed the entry (and its change)
	Leaf      string       `json:"leaf"`
	Entry     *audit.Entry `json:"entry,omitempty"`
	Altered   bool         `json:"altered,omitempty"`
	Error     string       `json:"error,omitempty"`
	// Archived: the entry was archived and its body pruned; LeafHash is
	// its RFC 6962 leaf hash (base64), which still proves its place.
	Archived bool   `json:"archived,omitempty"`
	LeafHash string `json:"leaf_hash,omitempty"`
}

type entriesResponse struct {
	Entries []entryView `json:"entries"`
}

func queryRequired(req *request, name string) (uint64, error) {
	v := req.URL.Query().Get(name)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errs.E(errs.Invalid, "%s: required, a non-negative integer; got %q", name, v)
	}
	return n, nil
}

func (s *Server) auditEntries(req *request) (int, any, error) {
	start, err := queryRequired(req, "start")
	if err != nil {
		return 0, nil, err
	}
	count, err := queryRequired(req, "count")
	if err != nil {
		return 0, nil, err
	}
	if count == 0 || count > 1000 {
		return 0, nil, errs.E(errs.Invalid, "count: must be 1 to 1000")
	}
	es, err := s.cfg.Audit.Entries(start, int(count))
	if err != nil {
		return 0, nil, err
	}
	out := entriesResponse{Entries: make([]entryView, len(es))}
	for i, e := range es {
		if e.Archived {
			out.Entries[i] = entryView{Index: e.Index, Archived: true, LeafHash: base64.StdEncoding.EncodeToString(e.LeafHash),
				Error: fmt.Sprintf("entry %d is archived: its body was pruned from the live log; verify it with warden audit verify --archive", e.Index)}
			continue
		}
		if e.Altered != nil {
			out.Entries[i] = entryView{Index: e.Index, RaftIndex: e.RaftIndex, Altered: true, Error: e.Altered.Error()}
			continue
		}
		out.Entries[i] = entryView{Index: e.Index, RaftIndex: e.RaftIndex, Leaf: base64.StdEncoding.EncodeToString(e.Leaf), Entry: &e.Entry}
	}
	return http.StatusOK, out, nil
}

type proofResponse struct {
	Hashes []string `json:"hashes"`
}

func proofView(p [][]byte) proofResponse {
	out := proofResponse{Hashes: make([]string, len(p))}
	for i, h := range p {
		out.Hashes[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

func (s *Server) auditInclusion(req *request) (int, any, error) {
	index, err := queryRequired(req, "index")
	if err != nil {
		return 0, nil, err
	}
	size, err := queryRequired(req, "tree_size")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.cfg.Audit.InclusionProof(index, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, proofView(p), nil
}

func (s *Server) auditConsistency(req *request) (int, any, error) {
	old, err := queryRequired(req, "old")
	if err != nil {
		return 0, nil, err
	}
	nw, err := queryRequired(req, "new")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.cfg.Audit.ConsistencyProof(old, nw)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, proofView(p), nil
}

type hashRequest struct {
	Value json.RawMessage `json:"value"`
}

type hashResponse struct {
	Hash string `json:"hash"`
}

// auditHash returns the HMAC an entry would hold for a value: a JSON string
// is hashed as its text, any other JSON value as its compact encoding (the
// form KV data takes in entries).
func (s *Server) auditHash(req *request) (int, any, error) {
	var in hashRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Value == nil {
		return 0, nil, errs.E(errs.Invalid, "value: required")
	}
	var str string
	b := []byte(in.Value)
	if json.Unmarshal(in.Value, &str) == nil {
		b = []byte(str)
	}
	h, err := s.cfg.Audit.Hash(b)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, hashResponse{Hash: h}, nil
}

type archiveRequest struct {
	// Before: archive the entries below this index (0: no bound).
	Before uint64 `json:"before"`
	// OlderThan: archive only entries whose time is older than this Go
	// duration before now ("" : no cutoff).
	OlderThan string `json:"older_than"`
}

// auditArchive exports the oldest live entries as a sealed archive
// (audit.Archive) and records its end as the bound prune may reach.
func (s *Server) auditArchive(req *request) (int, any, error) {
	var in archiveRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	r := auditlog.ArchiveRange{Before: in.Before}
	if in.OlderThan != "" {
		d, err := time.ParseDuration(in.OlderThan)
		if err != nil || d <= 0 {
			return 0, nil, errs.E(errs.Invalid, "older_than: must be a positive Go duration such as 2160h, got %q", in.OlderThan)
		}
		r.Cutoff = s.now().Add(-d)
	}
	if in.Before == 0 && in.OlderThan == "" {
		return 0, nil, errs.E(errs.Invalid, "before or older_than: one is required")
	}
	a, err := s.cfg.Audit.Archive(req.Context(), r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a, nil
}

type pruneRequest struct {
	Before uint64 `json:"before"`
}

type pruneResponse struct {
	// Pruned: the entries below it are archived and their bodies removed.
	Pruned uint64 `json:"pruned"`
}

// auditPrune removes the bodies of archived entries below before.
func (s *Server) auditPrune(req *request) (int, any, error) {
	var in pruneRequest
	if err := req.decode(&in, false); err != nil {
		return 0, nil, err
	}
	if in.Before == 0 {
		return 0, nil, errs.E(errs.Invalid, "before: required, a positive entry index")
	}
	p, err := s.cfg.Audit.Prune(req.Context(), in.Before)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pruneResponse{Pruned: p}, nil
}
