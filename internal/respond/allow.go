package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/names"
	"github.com/warden-sec/warden/internal/store/kv"
)

// AllowInput is an entry of the never-block list as asked for: a range
// (or a single address) or a node, exactly one.
type AllowInput struct {
	CIDR   string `json:"cidr"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// PrepareAllow validates in and returns the entry it would store. A
// single address is stored as /32 or /128.
func (d *Decisions) PrepareAllow(ctx context.Context, in AllowInput, by string, now time.Time) (AllowEntry, error) {
	if len(in.Reason) > maxReason {
		return AllowEntry{}, errs.E(errs.Invalid, "reason: %d bytes, at most %d", len(in.Reason), maxReason)
	}
	e := AllowEntry{ID: newID("allow-"), Reason: in.Reason, CreatedBy: by, CreatedTime: rfc3339(now)}
	switch {
	case (in.CIDR == "") == (in.Node == ""):
		return AllowEntry{}, errs.E(errs.Invalid, "cidr, node: give exactly one")
	case in.CIDR != "":
		p, err := ParseAllowPrefix("cidr", in.CIDR)
		if err != nil {
			return AllowEntry{}, err
		}
		e.CIDR = p.String()
	default:
		n, err := names.Canonical(in.Node)
		if err != nil {
			return AllowEntry{}, errs.E(errs.Invalid, "node %q: %s", in.Node, err.Error())
		}
		if d.cfg.NodeAddresses != nil {
			if _, err := d.cfg.NodeAddresses(ctx, n); errs.Is(err, errs.NotFound) {
				return AllowEntry{}, errs.E(errs.Invalid, "node %q: no such node", in.Node)
			} else if err != nil {
				return AllowEntry{}, err
			}
		}
		e.Node = n
	}
	return e, nil
}

// AddAllow adds an entry to the never-block list with the audit record
// ctx carries. An entry that covers an active ban is allowed: the ban
// stays stored, and agents stop applying it.
func (d *Decisions) AddAllow(ctx context.Context, in AllowInput, by string) (AllowEntry, error) {
	e, err := d.PrepareAllow(ctx, in, by, d.cfg.Now())
	if err != nil {
		return AllowEntry{}, err
	}
	b, _ := json.Marshal(e)
	rev, err := d.cfg.Storage.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixAllow + e.ID, Version: 0}},
		Ops: []kv.Op{{Type: kv.OpPut, Key: prefixAllow + e.ID, Value: b}}})
	if err != nil {
		return AllowEntry{}, err
	}
	e.Revision = rev
	return e, nil
}

func decodeAllow(e kv.Entry) (AllowEntry, error) {
	var a AllowEntry
	if err := json.Unmarshal(e.Value, &a); err != nil {
		return AllowEntry{}, fmt.Errorf("respond: decode %s: %w", e.Key, err)
	}
	a.Revision = e.Version
	return a, nil
}

// listAllow returns the live entries of the never-block list, read
// linearizably, oldest first.
func (d *Decisions) listAllow(ctx context.Context) ([]AllowEntry, error) {
	es, err := d.cfg.Storage.List(ctx, prefixAllow, 0)
	if err != nil {
		return nil, err
	}
	out := []AllowEntry{}
	for _, e := range es {
		a, err := decodeAllow(e)
		if err != nil {
			return nil, err
		}
		if !a.Deleted {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedTime != out[j].CreatedTime {
			return out[i].CreatedTime < out[j].CreatedTime
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ListAllow returns the never-block list, oldest entry first.
func (d *Decisions) ListAllow(ctx context.Context) ([]AllowEntry, error) { return d.listAllow(ctx) }

// DeleteAllow removes entry id from the never-block list (a tombstone the
// stream carries).
func (d *Decisions) DeleteAllow(ctx context.Context, id string) error {
	if !allowID.MatchString(id) {
		return errs.E(errs.Invalid, "id %q: want allow- and 16 lowercase hex digits", id)
	}
	for attempt := 0; ; attempt++ {
		e, err := d.cfg.Storage.Get(ctx, prefixAllow+id)
		if errs.Is(err, errs.NotFound) {
			return errs.E(errs.NotFound, "never-block entry %s not found", id)
		}
		if err != nil {
			return err
		}
		a, err := decodeAllow(e)
		if err != nil {
			return err
		}
		if a.Deleted {
			return errs.E(errs.NotFound, "never-block entry %s not found (deleted)", id)
		}
		a.Deleted, a.DeletedTime, a.Revision = true, rfc3339(d.cfg.Now()), 0
		b, _ := json.Marshal(a)
		_, err = d.cfg.Storage.Txn(ctx, kv.Txn{Conds: []kv.Cond{{Key: prefixAllow + id, Version: e.Version}},
			Ops: []kv.Op{{Type: kv.OpPut, Key: prefixAllow + id, Value: b}}})
		if err == nil || !errs.Is(err, errs.Conflict) || attempt >= maxRetries {
			return err
		}
	}
}
