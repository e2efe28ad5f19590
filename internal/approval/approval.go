// Package approval keeps the requests of dual control (docs/governance.md):
// operations that approval rules (annotated permit policies of the warden
// policy store, see internal/authz) hold until enough members of the rules'
// groups, other than the requester, approve them; and the cluster setting
// that turns dual control on or off.
//
// Everything is stored through the encrypted, replicated storage (values
// sealed by the barrier before they reach the Raft log), and every change
// is conditioned on the versions it read: an approval counts once however
// many arrive together, and an approved request is marked run by exactly
// one caller, before it runs. Every change carries the audit record the
// caller put in its context (or, for the changes the server makes on its
// own, a record made here with Auditor).
//
// approval knows nothing about HTTP or Raft: the API decides what a request
// is, which rules apply, who the caller is and which groups it is in, and
// it replays a request that approval has marked run.
package approval

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// Storage is the encrypted view approval works on (core.Core implements
// it): every value is encrypted before it reaches the Raft log, and every
// change must carry an audit record.
type Storage interface {
	Get(ctx context.Context, key string) (kv.Entry, error)
	GetStale(key string) (kv.Entry, error)
	List(ctx context.Context, prefix string, limit int) ([]kv.Entry, error)
	Txn(ctx context.Context, t kv.Txn) (uint64, error)
	// AppliedIndex is the Raft index this node has applied; it only grows.
	AppliedIndex() uint64
}

// Auditor makes the pending audit record of a change the server makes on
// its own (auditlog.Service implements it): the expiry of a request.
type Auditor interface {
	Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit)
}

// Encrypter encrypts a value for a storage key (core.Encrypter, at init).
type Encrypter interface {
	Encrypt(aad string, plaintext []byte) ([]byte, error)
}

// Keys. Everything of dual control lives under "approval/".
const (
	keyConfig     = ConfigKey
	prefixRequest = "approval/requests/" // + id → Request
	prefixBody    = "approval/bodies/"   // + id → the body, while the request is open
	prefixOpen    = "approval/open/"     // + hex SHA-256 of the requester → openIndex
)

// Limits and defaults.
const (
	// DefaultTTL is how long a request waits for its approvals and, once
	// approved, for its run.
	DefaultTTL = 24 * time.Hour
	// DefaultMaxOpen bounds the open (pending or approved, not expired)
	// requests of one principal.
	DefaultMaxOpen = 64
	// DefaultRetention is how long a finished request (run, denied,
	// cancelled, expired) is kept before the collector deletes it.
	DefaultRetention = 7 * 24 * time.Hour
	// MaxStoredBody is the largest body stored with a request (and
	// replayed by a run); a larger one keeps only its SHA-256, and runs
	// when the requester sends it again with the approved request's id.
	MaxStoredBody = 1 << 20
	// MaxComment bounds an approval's or denial's comment, in bytes.
	MaxComment = 1024
	// MaxVotes bounds the approvals a request keeps.
	MaxVotes = 64
	// MaxRules bounds the rules a request records.
	MaxRules = 16
	// MaxTarget bounds the request's path and query, together, in bytes.
	MaxTarget  = 8 << 10
	maxRetries = 16
)

// Statuses of a request. Pending and approved requests are open; the
// others are final. A request whose expiry has passed reads as expired
// even before the collector records it so.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusDenied    = "denied"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
	StatusRun       = "run"
)

// Rule is an approval rule that applied to a request when it was made.
type Rule struct {
	Policy    string `json:"policy"`    // the policy's name in the warden store
	Approvals int    `json:"approvals"` // approvals needed, 1 to 16
	Approvers string `json:"approvers"` // the group whose members approve, Group::"name"
}

// Vote is an approval or a denial.
type Vote struct {
	Principal string `json:"principal"`
	Time      string `json:"time"`
	Comment   string `json:"comment,omitempty"`
	// Groups are the approver groups of the request's rules the voter was
	// in when it voted: an approval counts for every rule of these groups.
	Groups []string `json:"groups,omitempty"`
}

// Outcome is what running an approved request answered.
type Outcome struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	Time   string `json:"time"`
}

// Request is a stored request. Its body is stored apart (Body) while the
// request is open.
type Request struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Requester string `json:"requester"`          // the principal, User::"alice" or Root::"root"
	Accessor  string `json:"accessor,omitempty"` // the requester's token accessor
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query,omitempty"`
	// BodySHA256 is the hex SHA-256 of the body: the approvals are bound
	// to it.
	BodySHA256 string `json:"body_sha256"`
	BodySize   int64  `json:"body_size"`
	// BodyStored says the body is stored (at most MaxStoredBody bytes), so
	// that a run can replay it.
	BodyStored bool   `json:"body_stored"`
	Rules      []Rule `json:"rules"`
	// Required is the approvals needed when every approver is in one
	// approver group only: per group, the most any of its rules needs,
	// summed over the groups.
	Required  int    `json:"required"`
	Approvals []Vote `json:"approvals"`
	Denials   []Vote `json:"denials"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"`
	// FinishedAt and FinishedBy say when and by whom the request left the
	// open statuses (the server, Server::"node", for an expiry).
	FinishedAt string   `json:"finished_at,omitempty"`
	FinishedBy string   `json:"finished_by,omitempty"`
	Outcome    *Outcome `json:"outcome,omitempty"`

	version uint64
}

// Open reports whether r is pending or approved (whatever its expiry).
func (r *Request) Open() bool { return r.Status == StatusPending || r.Status == StatusApproved }

// expired reports whether r is open and past its expiry at now.
func (r *Request) expired(now time.Time) bool {
	return r.Open() && !now.Before(parseTime(r.ExpiresAt))
}

// View returns r as read at now: an open request past its expiry reads
// as expired.
func (r Request) View(now time.Time) Request {
	if r.expired(now) {
		r.Status = StatusExpired
	}
	r.Approvals = nonNil(r.Approvals)
	r.Denials = nonNil(r.Denials)
	return r
}

func nonNil(v []Vote) []Vote {
	if v == nil {
		return []Vote{}
	}
	return v
}

// Config configures a Service. Zero fields take the defaults.
type Config struct {
	Storage Storage
	Audit   Auditor
	// Node names this server in the records of the changes it makes on
	// its own (expiries, collection).
	Node      string
	Now       func() time.Time
	TTL       time.Duration
	MaxOpen   int
	Retention time.Duration
}

// Service stores requests and the dual-control setting. Safe for
// concurrent use.
type Service struct {
	cfg Config

	mu      sync.Mutex
	cached  bool   // enabled, as read at applied
	applied uint64 // 0: nothing cached
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	return &Service{cfg: cfg}
}

// timeFormat is RFC 3339 UTC with a fixed nine-digit fraction, so that
// times sort as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// config is the stored dual-control setting.
type config struct {
	Enabled bool `json:"enabled"`
}

// Bootstrap returns the operation, encrypted with enc, that stores the
// dual-control setting at init.
func Bootstrap(enc Encrypter, enabled bool) ([]kv.Op, error) {
	b, _ := json.Marshal(config{Enabled: enabled})
	ct, err := enc.Encrypt(keyConfig, b)
	if err != nil {
		return nil, err
	}
	return []kv.Op{{Type: kv.OpPut, Key: keyConfig, Value: ct}}, nil
}

// ConfigKey is the storage key of the dual-control setting (compliance
// cites the record of its last change).
const ConfigKey = "approval/config"

// Enabled reports whether dual control is on, from this node's local
// state (as authorization reads policies): on the leader it reflects
// every acknowledged change. The answer is remembered until the local
// state changes. An error means the setting could not be read; callers
// fail closed.
func (s *Service) Enabled() (bool, error) {
	applied := s.cfg.Storage.AppliedIndex()
	s.mu.Lock()
	if s.applied != 0 && s.applied == applied {
		on := s.cached
		s.mu.Unlock()
		return on, nil
	}
	s.mu.Unlock()
	on := false
	e, err := s.cfg.Storage.GetStale(keyConfig)
	switch {
	case err == nil:
		var c config
		if err := json.Unmarshal(e.Value, &c); err != nil {
			return false, fmt.Errorf("approval: stored setting: %w", err)
		}
		on = c.Enabled
	case !errs.Is(err, errs.NotFound):
		return false, err
	}
	s.mu.Lock()
	s.cached, s.applied = on, applied
	s.mu.Unlock()
	return on, nil
}

// SetEnabled turns dual control on or off, with the audit record in ctx.
func (s *Service) SetEnabled(ctx context.Context, on bool) error {
	b, _ := json.Marshal(config{Enabled: on})
	_, err := s.cfg.Storage.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: keyConfig, Value: b}}})
	return err
}

// NewRequest is a request to store.
type NewRequest struct {
	// ID is the new request's id (NewID); "" makes one.
	ID                                    string
	Requester, Accessor, Action, Resource string
	Method, Path, Query                   string
	// BodySHA256 is the SHA-256 of the body (32 bytes); Body is the body
	// itself when it is stored (at most MaxStoredBody bytes), nil when
	// only its hash is kept.
	BodySHA256 []byte
	BodySize   int64
	Body       []byte
	Stored     bool
	Rules      []Rule
}

// ResourceOf is the resource of a request in audit records: Request::"id".
func ResourceOf(id string) string { return `Request::"` + id + `"` }

var requestID = regexp.MustCompile(`^req-[0-9a-f]{20}$`)

// CheckID refuses a malformed request id (errs.Invalid).
func CheckID(id string) error {
	if !requestID.MatchString(id) {
		return errs.E(errs.Invalid, "request id %q: want req- and 20 lower-case hex digits", clip(id))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// NewID returns a new request id: "req-" and 20 random hex digits.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "req-" + hex.EncodeToString(b[:])
}

// required is Request.Required of rules.
func required(rules []Rule) int {
	per := map[string]int{}
	for _, r := range rules {
		per[r.Approvers] = max(per[r.Approvers], r.Approvals)
	}
	n := 0
	for _, m := range per {
		n += m
	}
	return n
}

// openIndex is the open requests of one principal, by id, with their
// expiry: what bounds the requests one principal keeps open.
type openIndex struct {
	Principal string            `json:"principal"`
	Open      map[string]string `json:"open"` // id → expires_at
}

func openKey(principal string) string {
	h := sha256.Sum256([]byte(principal))
	return prefixOpen + hex.EncodeToString(h[:])
}

// readOpen reads a principal's index (version 0 when absent).
func (s *Service) readOpen(ctx context.Context, principal string) (openIndex, uint64, error) {
	idx := openIndex{Principal: principal, Open: map[string]string{}}
	e, err := s.cfg.Storage.Get(ctx, openKey(principal))
	if errs.Is(err, errs.NotFound) {
		return idx, 0, nil
	}
	if err != nil {
		return idx, 0, err
	}
	if err := json.Unmarshal(e.Value, &idx); err != nil {
		return idx, 0, fmt.Errorf("approval: decode %s: %w", e.Key, err)
	}
	if idx.Open == nil {
		idx.Open = map[string]string{}
	}
	return idx, e.Version, nil
}

// indexOps returns the operation that stores idx (a delete when empty)
// and the condition on the version read.
func indexOps(idx openIndex, ver uint64) (kv.Op, kv.Cond) {
	key := openKey(idx.Principal)
	cond := kv.Cond{Key: key, Version: ver}
	if len(idx.Open) == 0 {
		return kv.Op{Type: kv.OpDelete, Key: key}, cond
	}
	b, _ := json.Marshal(idx)
	return kv.Op{Type: kv.OpPut, Key: key, Value: b}, cond
}

// Create stores a new pending request, with the audit record in ctx. The
// requester may have at most MaxOpen open requests (errs.Conflict beyond).
func (s *Service) Create(ctx context.Context, in NewRequest) (*Request, error) {
	switch {
	case len(in.Rules) == 0 || len(in.Rules) > MaxRules:
		return nil, errs.E(errs.Invalid, "rules: want 1 to %d, got %d", MaxRules, len(in.Rules))
	case len(in.BodySHA256) != sha256.Size:
		return nil, errs.E(errs.Invalid, "body hash: want %d bytes", sha256.Size)
	case in.Stored && int64(len(in.Body)) != in.BodySize, len(in.Body) > MaxStoredBody:
		return nil, errs.E(errs.Invalid, "body: a stored body is at most %d bytes and its whole size", MaxStoredBody)
	case len(in.Path)+len(in.Query) > MaxTarget:
		return nil, errs.E(errs.TooLarge, "path and query: longer than %d bytes together; such a request cannot be held for approval", MaxTarget)
	case in.Requester == "" || in.Action == "" || in.Method == "" || in.Path == "":
		return nil, errs.E(errs.Invalid, "requester, action, method and path: required")
	}
	for _, r := range in.Rules {
		if r.Approvals < 1 || r.Approvals > 16 || r.Approvers == "" {
			return nil, errs.E(errs.Invalid, "rule %q: approvals must be 1 to 16 and approvers a group", r.Policy)
		}
	}
	if in.ID == "" {
		in.ID = NewID()
	} else if err := CheckID(in.ID); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	r := &Request{ID: in.ID, Status: StatusPending, Requester: in.Requester, Accessor: in.Accessor,
		Action: in.Action, Resource: in.Resource, Method: in.Method, Path: in.Path, Query: in.Query,
		BodySHA256: hex.EncodeToString(in.BodySHA256), BodySize: in.BodySize, BodyStored: in.Stored,
		Rules: slices.Clone(in.Rules), Required: required(in.Rules), Approvals: []Vote{}, Denials: []Vote{},
		CreatedAt: formatTime(now), ExpiresAt: formatTime(now.Add(s.cfg.TTL))}
	rec, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		idx, ver, err := s.readOpen(ctx, in.Requester)
		if err != nil {
			return nil, err
		}
		for id, exp := range idx.Open {
			if !now.Before(parseTime(exp)) {
				delete(idx.Open, id) // expired: no longer counts
			}
		}
		if len(idx.Open) >= s.cfg.MaxOpen {
			return nil, errs.E(errs.Conflict, "%s has %d open requests, the most allowed: cancel some (warden request cancel) or let them expire",
				in.Requester, len(idx.Open))
		}
		idx.Open[r.ID] = r.ExpiresAt
		iop, icond := indexOps(idx, ver)
		ops := []kv.Op{{Type: kv.OpPut, Key: prefixRequest + r.ID, Value: rec}, iop}
		if in.Stored {
			body := in.Body
			if body == nil {
				body = []byte{}
			}
			ops = append(ops, kv.Op{Type: kv.OpPut, Key: prefixBody + r.ID, Value: body})
		}
		v, err := s.cfg.Storage.Txn(ctx, kv.Txn{Conds: []kv.Cond{icond, {Key: prefixRequest + r.ID}}, Ops: ops})
		if err == nil {
			r.version = v
			return r, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return nil, err
		}
	}
}

func decode(e kv.Entry) (*Request, error) {
	var r Request
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return nil, fmt.Errorf("approval: decode %s: %w", e.Key, err)
	}
	r.version = e.Version
	return &r, nil
}

// get reads request id linearizably. errs.NotFound if absent.
func (s *Service) get(ctx context.Context, id string) (*Request, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	e, err := s.cfg.Storage.Get(ctx, prefixRequest+id)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "request %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	return decode(e)
}

// Get returns request id as read now. errs.NotFound if absent.
func (s *Service) Get(ctx context.Context, id string) (Request, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	return r.View(s.cfg.Now()), nil
}

// Body returns the stored body of request id: errs.NotFound when none is
// stored (too large, or the request is finished).
func (s *Service) Body(ctx context.Context, id string) ([]byte, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	e, err := s.cfg.Storage.Get(ctx, prefixBody+id)
	if errs.Is(err, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "request %s has no stored body", id)
	}
	if err != nil {
		return nil, err
	}
	return e.Value, nil
}

// List returns the requests, newest first; with open, only those still
// pending or approved and not expired.
func (s *Service) List(ctx context.Context, open bool) ([]Request, error) {
	es, err := s.cfg.Storage.List(ctx, prefixRequest, 0)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	out := make([]Request, 0, len(es))
	for _, e := range es {
		r, err := decode(e)
		if err != nil {
			return nil, err
		}
		v := r.View(now)
		if open && !v.Open() {
			continue
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt > out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Voter is who approves or denies: its principal and the groups it is in
// (Group::"name").
type Voter struct {
	Principal string
	Groups    []string
}

// finalError is the refusal of a change to a request that is no longer
// open (errs.Conflict), or nil.
func (r *Request) finalError(now time.Time) error {
	switch {
	case r.Status == StatusRun:
		return errs.E(errs.Conflict, "request %s was already run", r.ID)
	case r.Status == StatusDenied:
		return errs.E(errs.Conflict, "request %s was denied", r.ID)
	case r.Status == StatusCancelled:
		return errs.E(errs.Conflict, "request %s was cancelled", r.ID)
	case r.Status == StatusExpired || r.expired(now):
		return errs.E(errs.Conflict, "request %s expired at %s", r.ID, r.ExpiresAt)
	}
	return nil
}

// groupsOf returns the approver groups of r's rules that v is in.
func (r *Request) groupsOf(v Voter) []string {
	var gs []string
	for _, rule := range r.Rules {
		if slices.Contains(v.Groups, rule.Approvers) && !slices.Contains(gs, rule.Approvers) {
			gs = append(gs, rule.Approvers)
		}
	}
	return gs
}

func (r *Request) approverGroups() string {
	var gs []string
	for _, rule := range r.Rules {
		if !slices.Contains(gs, rule.Approvers) {
			gs = append(gs, rule.Approvers)
		}
	}
	return strings.Join(gs, ", ")
}

// checkVoter refuses a vote of the requester (errs.Denied), of a principal
// in none of the approver groups (errs.Denied) or of one that voted
// already (errs.Conflict), and returns the groups the vote counts for.
func (r *Request) checkVoter(v Voter, what string) ([]string, error) {
	if v.Principal == r.Requester {
		return nil, errs.E(errs.Denied, "the requester cannot %s its own request", what)
	}
	gs := r.groupsOf(v)
	if len(gs) == 0 {
		return nil, errs.E(errs.Denied, "%s is not in an approver group of request %s (%s)", v.Principal, r.ID, r.approverGroups())
	}
	for _, a := range r.Approvals {
		if a.Principal == v.Principal {
			return nil, errs.E(errs.Conflict, "request %s is already approved by %s", r.ID, v.Principal)
		}
	}
	return gs, nil
}

func checkComment(c string) error {
	if len(c) > MaxComment {
		return errs.E(errs.Invalid, "comment: longer than %d bytes", MaxComment)
	}
	if !utf8.ValidString(c) {
		return errs.E(errs.Invalid, "comment: not valid UTF-8")
	}
	return nil
}

// Satisfied reports whether approvals meet every rule: each rule needs its
// number of distinct approvers from its group, and one approval counts
// for every rule whose group the approver was in.
func Satisfied(rules []Rule, approvals []Vote) bool {
	return unmet(rules, approvals) == ""
}

// unmet names the first rule approvals do not meet, or "".
func unmet(rules []Rule, approvals []Vote) string {
	for _, rule := range rules {
		n := 0
		for _, a := range approvals {
			if slices.Contains(a.Groups, rule.Approvers) {
				n++
			}
		}
		if n < rule.Approvals {
			return fmt.Sprintf("%s needs %d approvals from %s, has %d", rule.Policy, rule.Approvals, rule.Approvers, n)
		}
	}
	return ""
}

// update applies change to request id and stores it, conditioned on the
// version read (again on a conflict). change returns the extra operations
// and conditions of the change, or an error that refuses it. final marks a
// change that closes the request: its body is deleted and it leaves its
// requester's index.
func (s *Service) update(ctx context.Context, id string, change func(r *Request, now time.Time) (final bool, err error)) (*Request, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		now := s.cfg.Now()
		final, err := change(r, now)
		if err != nil {
			return nil, err
		}
		rec, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		ops := []kv.Op{{Type: kv.OpPut, Key: prefixRequest + id, Value: rec}}
		conds := []kv.Cond{{Key: prefixRequest + id, Version: r.version}}
		if final {
			ops = append(ops, kv.Op{Type: kv.OpDelete, Key: prefixBody + id})
			idx, ver, err := s.readOpen(ctx, r.Requester)
			if err != nil {
				return nil, err
			}
			if _, ok := idx.Open[id]; ok {
				delete(idx.Open, id)
				op, cond := indexOps(idx, ver)
				ops, conds = append(ops, op), append(conds, cond)
			}
		}
		v, err := s.cfg.Storage.Txn(ctx, kv.Txn{Conds: conds, Ops: ops})
		if err == nil {
			r.version = v
			return r, nil
		}
		if !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return nil, err
		}
	}
}

// Approve records v's approval of request id, with the audit record in
// ctx. Refused: the requester (errs.Denied, "the requester cannot approve
// its own request"), a principal in no approver group of the request
// (errs.Denied; the root token is in no group), a second approval by one
// principal, or a request that is no longer open or has expired
// (errs.Conflict). When the approvals meet every rule the request becomes
// approved.
func (s *Service) Approve(ctx context.Context, id string, v Voter, comment string) (Request, error) {
	if err := checkComment(comment); err != nil {
		return Request{}, err
	}
	r, err := s.update(ctx, id, func(r *Request, now time.Time) (bool, error) {
		if err := r.finalError(now); err != nil {
			return false, err
		}
		gs, err := r.checkVoter(v, "approve")
		if err != nil {
			return false, err
		}
		if len(r.Approvals) >= MaxVotes {
			return false, errs.E(errs.Conflict, "request %s has %d approvals, the most it keeps", r.ID, MaxVotes)
		}
		r.Approvals = append(r.Approvals, Vote{Principal: v.Principal, Time: formatTime(now), Comment: comment, Groups: gs})
		if Satisfied(r.Rules, r.Approvals) {
			r.Status = StatusApproved
		}
		return false, nil
	})
	if err != nil {
		return Request{}, err
	}
	return r.View(s.cfg.Now()), nil
}

// Deny records v's denial of request id, which closes it, with the audit
// record in ctx. Refused as Approve refuses (the requester cancels its own
// request instead).
func (s *Service) Deny(ctx context.Context, id string, v Voter, comment string) (Request, error) {
	if err := checkComment(comment); err != nil {
		return Request{}, err
	}
	r, err := s.update(ctx, id, func(r *Request, now time.Time) (bool, error) {
		if err := r.finalError(now); err != nil {
			return false, err
		}
		if v.Principal == r.Requester {
			return false, errs.E(errs.Denied, "the requester cannot deny its own request; cancel it instead")
		}
		gs, err := r.checkVoter(v, "deny")
		if err != nil {
			return false, err
		}
		r.Denials = append(r.Denials, Vote{Principal: v.Principal, Time: formatTime(now), Comment: comment, Groups: gs})
		r.Status, r.FinishedAt, r.FinishedBy = StatusDenied, formatTime(now), v.Principal
		return true, nil
	})
	if err != nil {
		return Request{}, err
	}
	return r.View(s.cfg.Now()), nil
}

// Cancel closes request id on behalf of by, with the audit record in ctx.
// Only the requester may, or (approver) a holder of the right to approve
// requests (errs.Denied otherwise); a request no longer open or expired
// is refused (errs.Conflict).
func (s *Service) Cancel(ctx context.Context, id, by string, approver bool) (Request, error) {
	r, err := s.update(ctx, id, func(r *Request, now time.Time) (bool, error) {
		if by != r.Requester && !approver {
			return false, errs.E(errs.Denied, "only the requester (%s) or an approver may cancel request %s", r.Requester, r.ID)
		}
		if err := r.finalError(now); err != nil {
			return false, err
		}
		r.Status, r.FinishedAt, r.FinishedBy = StatusCancelled, formatTime(now), by
		return true, nil
	})
	if err != nil {
		return Request{}, err
	}
	return r.View(s.cfg.Now()), nil
}

// Claim is a caller's attempt to run an approved request: who it is, what
// it asks to do, and the approval rules that apply to that now.
type Claim struct {
	Principal        string
	Action, Resource string
	Method, Path     string
	Query            string
	Rules            []Rule
}

// Check returns request id if claim may run it, before the body is read:
// the caller is the requester (errs.Denied otherwise), the request is the
// same operation (action, resource, method, path and query; errs.Conflict
// otherwise), approved, not expired nor finished, and its approvals meet
// the rules that apply now (errs.Conflict otherwise: the rules may have
// changed since).
func (s *Service) Check(ctx context.Context, id string, claim Claim) (*Request, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := r.check(claim, s.cfg.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) check(claim Claim, now time.Time) error {
	if claim.Principal != r.Requester {
		return errs.E(errs.Denied, "only the requester (%s) can run request %s", r.Requester, r.ID)
	}
	if claim.Action != r.Action || claim.Resource != r.Resource || claim.Method != r.Method || claim.Path != r.Path || claim.Query != r.Query {
		q := ""
		if r.Query != "" {
			q = "?" + r.Query
		}
		return errs.E(errs.Conflict, "request %s was approved for %s %s%s (%s on %s), not this request", r.ID, r.Method, r.Path, q, r.Action, r.Resource)
	}
	if err := r.finalError(now); err != nil {
		return err
	}
	if r.Status != StatusApproved {
		return errs.E(errs.Conflict, "request %s is not approved yet: %d of %d approvals", r.ID, len(r.Approvals), r.Required)
	}
	if why := unmet(claim.Rules, r.Approvals); why != "" {
		return errs.E(errs.Conflict, "request %s: the approval rules changed since it was approved (%s); make a new request", r.ID, why)
	}
	return nil
}

// ErrBodyDiffers is the refusal of a body other than the approved one.
var ErrBodyDiffers = errs.E(errs.Conflict, "the body differs from the approved request")

// MarkRun marks r (as Check returned it) run before it runs, with the
// audit record in ctx, if body256 (the SHA-256 of the body about to run)
// is the approved body's: at most one caller marks a request run, however
// many try at once (the change is conditioned on the version Check read;
// the loser is told why, as read again). by is the caller. A run that
// then fails leaves the request run: see Finish.
func (s *Service) MarkRun(ctx context.Context, r *Request, claim Claim, body256 []byte) (Request, error) {
	want, err := hex.DecodeString(r.BodySHA256)
	if err != nil || subtle.ConstantTimeCompare(want, body256) != 1 {
		return Request{}, ErrBodyDiffers
	}
	// update reads the request again and checks it as it reads now: a
	// request that changed since Check (another run marked it) is refused
	// for what it has become.
	out, err := s.update(ctx, r.ID, func(cur *Request, now time.Time) (bool, error) {
		if err := cur.check(claim, now); err != nil {
			return false, err
		}
		if cur.BodySHA256 != r.BodySHA256 {
			return false, ErrBodyDiffers
		}
		cur.Status, cur.FinishedAt, cur.FinishedBy = StatusRun, formatTime(now), claim.Principal
		return true, nil
	})
	if err != nil {
		return Request{}, err
	}
	return out.View(s.cfg.Now()), nil
}

// Finish records the outcome of request id's run (the HTTP status, and
// the error shown when it failed), with the audit record in ctx. A
// request that is not (or no longer: a restored snapshot) there is
// errs.NotFound.
func (s *Service) Finish(ctx context.Context, id string, status int, msg string) error {
	_, err := s.update(ctx, id, func(r *Request, now time.Time) (bool, error) {
		if r.Status != StatusRun {
			return false, errs.E(errs.Conflict, "request %s was not run", id)
		}
		r.Outcome = &Outcome{Status: status, Error: clip(msg), Time: formatTime(now)}
		return false, nil
	})
	return err
}

// Collect is the leader's chore: it records as expired every open request
// past its expiry (its body deleted, one audited change each, by this
// server) and deletes the finished requests older than the retention.
func (s *Service) Collect(ctx context.Context) error {
	es, err := s.cfg.Storage.List(ctx, prefixRequest, 0)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	node := "Server::" + strconv.Quote(s.cfg.Node)
	for _, e := range es {
		r, err := decode(e)
		if err != nil {
			return err
		}
		switch {
		case r.expired(now):
			entry := auditlog.SystemEntry(now, s.cfg.Node, "requests.expire", ResourceOf(r.ID))
			actx, _ := s.cfg.Audit.Pending(ctx, entry)
			_, err := s.update(actx, r.ID, func(cur *Request, now time.Time) (bool, error) {
				if !cur.expired(now) {
					return false, errNothing
				}
				cur.Status, cur.FinishedAt, cur.FinishedBy = StatusExpired, formatTime(now), node
				return true, nil
			})
			if err != nil && err != errNothing {
				return err
			}
		case !r.Open() && r.FinishedAt != "" && now.Sub(parseTime(r.FinishedAt)) > s.cfg.Retention:
			entry := auditlog.SystemEntry(now, s.cfg.Node, "requests.delete", ResourceOf(r.ID))
			actx, _ := s.cfg.Audit.Pending(ctx, entry)
			_, err := s.cfg.Storage.Txn(actx, kv.Txn{Conds: []kv.Cond{{Key: e.Key, Version: r.version}},
				Ops: []kv.Op{{Type: kv.OpDelete, Key: e.Key}, {Type: kv.OpDelete, Key: prefixBody + r.ID}}})
			if err != nil && !errs.Is(err, errs.Conflict) {
				return err
			}
		}
	}
	return nil
}

// errNothing ends an update that has nothing to change.
var errNothing = errs.E(errs.Conflict, "nothing to change")
