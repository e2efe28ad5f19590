package cosign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/witness"
)

// Log is what the cosigner needs of the audit log (auditlog.Service
// implements it): its current checkpoint, signed, and consistency proofs
// between sizes of its tree.
type Log interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(old, new uint64) ([][]byte, error)
}

// Submitter is a witness's add-checkpoint operation: *witness.Client over
// HTTP, or a node's own witness (Guard).
type Submitter interface {
	AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error)
}

var (
	_ Submitter = (*witness.Client)(nil)
	_ Submitter = (*Guard)(nil)
)

// Target is one witness a round submits to.
type Target struct {
	// ID names the witness in results and errors: "server <node>" or
	// "external <name>". Unique among the targets.
	ID          string
	VerifierKey string
	Submit      Submitter
}

// Targets returns the witnesses to submit to now.
type Targets func(ctx context.Context) ([]Target, error)

// CosignerConfig configures a Cosigner.
type CosignerConfig struct {
	Log     Log
	Targets Targets
	// Timeout bounds one submission to one witness (0: 5 s).
	Timeout time.Duration
	// MaxWait bounds how long Cosigned waits for cosignatures (0: 10 s),
	// below the caller's deadline.
	MaxWait time.Duration
	// RetryAfter is how long a finished round of the current checkpoint
	// answers for it before a caller short of cosignatures may start
	// another (0: 5 s): a witness that is down is not asked on every
	// request.
	RetryAfter time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Cosigner gets a node's checkpoints cosigned by the witnesses. It keeps,
// per witness (by verifier key), the size that witness last cosigned or
// reported, so a submission carries the consistency proof from there; and
// the newest round: the checkpoint submitted and what each witness
// answered. Rounds are coalesced: at most one is in flight, callers of the
// same checkpoint (or an older one) share it, and callers that arrive
// while a round of an older checkpoint is in flight share the next one.
// Safe for concurrent use.
type Cosigner struct {
	cfg CosignerConfig

	mu     sync.Mutex
	sizes  map[string]uint64         // by verifier key
	status map[string]*WitnessStatus // by target ID
	cur    *round                    // the newest round (in flight or done)
	next   *queued                   // the round to start after cur
}

// WitnessStatus is what this node last heard from a witness.
type WitnessStatus struct {
	Size     uint64    `json:"size,omitempty"` // the size it last cosigned, as this node knows
	Cosigned time.Time `json:"cosigned,omitzero"`
	Error    string    `json:"error,omitempty"` // why the last submission failed
	At       time.Time `json:"at,omitzero"`     // when it last answered or failed
}

// NewCosigner returns a cosigner.
func NewCosigner(cfg CosignerConfig) *Cosigner {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cosigner{cfg: cfg, sizes: map[string]uint64{}, status: map[string]*WitnessStatus{}}
}

// round is one checkpoint submitted to every target.
type round struct {
	cp    []byte // the checkpoint as the log signed it
	body  string // its text, without signatures
	size  uint64
	ids   []string          // the targets, in order
	cos   map[string][]byte // target ID → cosignature lines
	ref   map[string]string // target ID → why it did not cosign
	ahead bool              // a witness has seen a newer size than this checkpoint
	done  chan struct{}     // closed when every target answered or timed out
	ended time.Time
	// changed is closed and replaced whenever a target answers.
	changed chan struct{}
}

// queued is the round to start once the one in flight ends.
type queued struct {
	cp      []byte
	body    string
	size    uint64
	started chan struct{} // closed when it becomes cur
	r       *round
}

// Refusal is a witness that did not cosign, and why.
type Refusal struct {
	Witness string `json:"witness"`
	Reason  string `json:"reason"`
}

// Result is a checkpoint with the cosignatures collected for it.
type Result struct {
	// Checkpoint is the log's signed checkpoint with the cosignature
	// lines of the witnesses that cosigned it appended.
	Checkpoint []byte
	Size       uint64
	Cosigners  []string  // target IDs that cosigned
	Refusals   []Refusal // targets that refused or failed
	Pending    []string  // targets that have not answered yet
}

// QuorumError: fewer witnesses cosigned than asked for, within the time
// allowed. It says which refused and why.
type QuorumError struct {
	Want   int
	Result *Result
}

func (e *QuorumError) Error() string {
	var why []string
	for _, r := range e.Result.Refusals {
		why = append(why, r.Witness+": "+r.Reason)
	}
	for _, p := range e.Result.Pending {
		why = append(why, p+": no answer in time")
	}
	msg := fmt.Sprintf("%d of the %d witness cosignatures asked for on the checkpoint of size %d", len(e.Result.Cosigners), e.Want, e.Result.Size)
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return msg
}

// Unwrap makes a QuorumError an errs.Unavailable error.
func (e *QuorumError) Unwrap() error { return errs.E(errs.Unavailable, "%s", e.Error()) }

// All asks Cosigned to wait for every witness.
const All = -1

// Cosigned returns the log's current checkpoint with the cosignatures of
// the witnesses that cosigned it, once want of them did (All: once every
// witness answered). want 0 returns at once with the cosignatures already
// collected for the current checkpoint, starting no round. It waits at
// most MaxWait and until ctx ends; with fewer than want cosignatures by
// then it returns the result and a *QuorumError. want above the number of
// witnesses is an Invalid error.
func (c *Cosigner) Cosigned(ctx context.Context, want int) (*Result, error) {
	if want < All {
		return nil, errs.E(errs.Invalid, "witnesses: must be 0 or more, got %d", want)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MaxWait)
	defer cancel()
	var behind *Result // a round short because a witness is ahead of it
	for {
		cp, err := c.cfg.Log.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		body := string(noteBody(cp))
		size, ok := noteSize(cp)
		if !ok {
			return nil, errors.New("cosign: the log's checkpoint has no size line")
		}
		if behind != nil && size <= behind.Size {
			// Signing again gave nothing newer: this node is behind.
			return behind, &QuorumError{Want: want, Result: behind}
		}
		r, wait, err := c.roundFor(ctx, cp, body, size, want)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return &Result{Checkpoint: cp, Size: size}, nil // want 0, nothing collected
		}
		if wait != nil {
			// An older round is in flight; ours starts after it.
			select {
			case <-ctx.Done():
				return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "no witness round could start in time (one is in flight)")
			case <-wait.started:
				r = wait.r
			}
		}
		res, again := c.await(ctx, r, want)
		if want == All {
			want = len(r.ids)
		}
		if again {
			behind = res
			continue // a witness had seen a newer checkpoint: sign again
		}
		if len(res.Cosigners) < want {
			return res, &QuorumError{Want: want, Result: res}
		}
		return res, nil
	}
}

// roundFor returns the round that answers a caller of the checkpoint
// (cp, body, size): the current one if it is of this checkpoint or a newer
// one, else a new one; or, while an older round is in flight, the queued
// next one (wait). nil, nil: want is 0 and nothing is collected.
func (c *Cosigner) roundFor(ctx context.Context, cp []byte, body string, size uint64, want int) (*round, *queued, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.cur
	if r != nil && (r.body == body || r.size > size) {
		if want > len(r.ids) {
			return nil, nil, errs.E(errs.Invalid, "witnesses: %d asked for, but %d witnesses are configured", want, len(r.ids))
		}
		select {
		case <-r.done:
			need := want
			if need == All {
				need = len(r.ids)
			}
			// A round that got every cosignature asked for is an answer
			// however old; one short of them is asked again once
			// RetryAfter has passed since it ended.
			stale := c.cfg.Now().Sub(r.ended) >= c.cfg.RetryAfter
			if need != 0 && len(r.cos) < need && stale && r.body == body {
				break // short of cosignatures, and long enough ago: ask again
			}
			return r, nil, nil
		default:
			return r, nil, nil
		}
	}
	if want == 0 {
		return nil, nil, nil
	}
	targets, err := c.cfg.Targets(ctx)
	if err != nil {
		return nil, nil, err
	}
	if want != All && want > len(targets) {
		return nil, nil, errs.E(errs.Invalid, "witnesses: %d asked for, but %d witnesses are configured", want, len(targets))
	}
	if r != nil {
		select {
		case <-r.done:
		default:
			if c.next == nil {
				c.next = &queued{started: make(chan struct{})}
			}
			if q := c.next; q.cp == nil || size > q.size {
				q.cp, q.body, q.size = cp, body, size
			}
			return nil, c.next, nil
		}
	}
	return c.startLocked(cp, body, size, targets), nil, nil
}

// startLocked makes and runs the round of cp; c.mu is held.
func (c *Cosigner) startLocked(cp []byte, body string, size uint64, targets []Target) *round {
	r := &round{cp: cp, body: body, size: size, cos: map[string][]byte{}, ref: map[string]string{},
		done: make(chan struct{}), changed: make(chan struct{})}
	for _, t := range targets {
		r.ids = append(r.ids, t.ID)
	}
	c.cur = r
	go c.run(r, targets)
	return r
}

// run submits r to every target at once, then starts the queued round.
func (c *Cosigner) run(r *round, targets []Target) {
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
			defer cancel()
			cos, err := c.submit(ctx, t, r)
			c.mu.Lock()
			defer c.mu.Unlock()
			st := c.status[t.ID]
			if st == nil {
				st = &WitnessStatus{}
				c.status[t.ID] = st
			}
			st.At = c.cfg.Now().UTC()
			if err != nil {
				reason := refusal(err)
				r.ref[t.ID] = reason
				var ah *aheadError
				if errors.As(err, &ah) {
					r.ahead = true
				}
				st.Error = reason
				c.cfg.Logger.Warn("audit witness did not cosign", "witness", t.ID, "size", r.size, "reason", reason)
			} else {
				r.cos[t.ID] = cos
				st.Error, st.Size, st.Cosigned = "", r.size, st.At
			}
			close(r.changed)
			r.changed = make(chan struct{})
		}()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	r.ended = c.cfg.Now()
	close(r.done)
	if q := c.next; q != nil {
		c.next = nil
		targets, err := c.cfg.Targets(context.Background())
		if err != nil {
			c.cfg.Logger.Warn("audit witnesses: cannot list the witnesses", "err", err)
		}
		q.r = c.startLocked(q.cp, q.body, q.size, targets)
		close(q.started)
	}
}

// await waits until r has want cosignatures (All: every answer), r is
// done, or ctx ends, and returns what r has then. again: r is done short
// of want because a witness had seen a newer checkpoint, and ctx has time
// left: the caller should sign a new checkpoint.
func (c *Cosigner) await(ctx context.Context, r *round, want int) (res *Result, again bool) {
	for {
		c.mu.Lock()
		done := false
		select {
		case <-r.done:
			done = true
		default:
		}
		enough := want != All && len(r.cos) >= want
		if enough || done || ctx.Err() != nil {
			res := c.resultLocked(r)
			again = done && !enough && r.ahead && ctx.Err() == nil && want != 0
			c.mu.Unlock()
			return res, again
		}
		ch := r.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// resultLocked is r as collected so far; c.mu is held.
func (c *Cosigner) resultLocked(r *round) *Result {
	res := &Result{Size: r.size}
	var cos [][]byte
	for _, id := range r.ids {
		switch {
		case r.cos[id] != nil:
			res.Cosigners = append(res.Cosigners, id)
			cos = append(cos, r.cos[id])
		case r.ref[id] != "":
			res.Refusals = append(res.Refusals, Refusal{Witness: id, Reason: r.ref[id]})
		default:
			res.Pending = append(res.Pending, id)
		}
	}
	res.Checkpoint = witness.Combine(slices.Clone(r.cp), cos...)
	return res
}

// Status returns what this node last heard from each witness, by target
// ID.
func (c *Cosigner) Status() map[string]WitnessStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]WitnessStatus, len(c.status))
	for id, st := range c.status {
		out[id] = *st
	}
	return out
}

// aheadError: the witness has cosigned a size newer than the checkpoint
// being submitted (this node is behind); no proof can be made.
type aheadError struct{ witnessSize, size uint64 }

func (e *aheadError) Error() string {
	return fmt.Sprintf("it has cosigned size %d, newer than this checkpoint (size %d)", e.witnessSize, e.size)
}

// sameSizeError: the witness answered 409 with the very size submitted as
// the old one: it holds another checkpoint of that size.
type sameSizeError struct{ size uint64 }

func (e *sameSizeError) Error() string {
	return fmt.Sprintf("it cosigned a different checkpoint of size %d: the log forked", e.size)
}

// submit submits r's checkpoint to t with a consistency proof from the
// size t is known to have; on 409 it tries again from the size t reports
// (at most twice).
func (c *Cosigner) submit(ctx context.Context, t Target, r *round) ([]byte, error) {
	c.mu.Lock()
	old := c.sizes[t.VerifierKey]
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if old > r.size {
			return nil, &aheadError{witnessSize: old, size: r.size}
		}
		var proof [][]byte
		if old > 0 && old < r.size {
			p, err := c.cfg.Log.ConsistencyProof(old, r.size)
			if err != nil {
				return nil, fmt.Errorf("this node cannot prove consistency from size %d: %w", old, err)
			}
			proof = p
		}
		cos, err := t.Submit.AddCheckpoint(ctx, old, proof, r.cp)
		var ce *witness.ConflictError
		switch {
		case errors.As(err, &ce) && ce.Size == old:
			return nil, &sameSizeError{size: old}
		case errors.As(err, &ce) && attempt < 2:
			if ce.Size < old {
				c.cfg.Logger.Warn("audit witness reports a size below the one it cosigned before: its state was lost or rolled back",
					"witness", t.ID, "size", ce.Size, "cosigned_before", old)
			}
			old = ce.Size
			c.mu.Lock()
			c.sizes[t.VerifierKey] = old
			c.mu.Unlock()
			continue
		case err != nil:
			return nil, err
		}
		c.mu.Lock()
		if r.size > c.sizes[t.VerifierKey] {
			c.sizes[t.VerifierKey] = r.size
		}
		c.mu.Unlock()
		return cos, nil
	}
}

// refusal says why a witness did not cosign, in one line for the caller.
func refusal(err error) string {
	var fe *witness.ForkError
	var ce *witness.ConflictError
	switch {
	case errors.As(err, &fe):
		return "refused: " + fe.Error()
	case errors.Is(err, witness.ErrBadProof):
		return "refused: the checkpoint is not consistent with the one it cosigned before (the consistency proof does not verify): a fork or a rewrite of the log"
	case errors.Is(err, witness.ErrBadSignature):
		return "refused: the log's signature does not verify with the key it has for this log"
	case errors.Is(err, witness.ErrUnknownLog):
		return "refused: it does not know this log"
	case errors.Is(err, witness.ErrMalformed):
		return "refused the request as malformed"
	case errors.As(err, &ce):
		return fmt.Sprintf("refused: it keeps answering that it has size %d", ce.Size)
	}
	var se *sameSizeError
	var ae *aheadError
	if errors.As(err, &se) || errors.As(err, &ae) {
		return err.Error()
	}
	return "failed: " + err.Error()
}
