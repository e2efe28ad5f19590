package detect

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/warden-sec/warden/internal/errs"
)

// alertIndex keeps, for every stored alert, the fields List filters and
// sorts on, in List's order, so that a page or a count decrypts only the
// alerts it returns. It is brought up to date on each use: after a read
// barrier, the keys whose version moved since the last use are read again
// (from this node's copy, which the barrier made current); while the
// applied index has not moved, nothing is read.
type alertIndex struct {
	mu   sync.Mutex
	at   uint64               // the applied index the rows reflect, at least
	rows []alertRow           // newest first; never changed in place
	pos  map[string]alertSlot // by storage key: position in rows and version
}

type alertSlot struct {
	i       int
	version uint64
}

// alertRow is an alert's version with the fields of the alert that List
// filters and sorts on (ID, RuleID, Level, Status, Hosts, LastSeen,
// Created); the others are empty.
type alertRow struct {
	version uint64
	al      Alert
}

func slim(al *Alert, version uint64) alertRow {
	return alertRow{version: version, al: Alert{ID: al.ID, RuleID: al.RuleID, Level: al.Level, Status: al.Status,
		Hosts: al.Hosts, LastSeen: al.LastSeen, Created: al.Created}}
}

// index returns the rows of every stored alert, newest first, as of a
// linearizable read. The slice is shared: callers must not change it.
func (a *Alerts) index(ctx context.Context) ([]alertRow, error) {
	if err := a.st.Barrier(ctx); err != nil {
		return nil, err
	}
	ix := &a.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	applied := a.st.AppliedIndex()
	if ix.pos != nil && applied == ix.at {
		return ix.rows, nil
	}
	keys, err := a.st.ListKeys(ctx, prefixAlert, 0)
	if err != nil {
		return nil, err
	}
	// The keys reflect at least applied: the next use need not list them
	// again until more is applied.
	var changed []alertRow
	gone := map[int]bool{}
	known := 0 // keys of rows the index has
	for _, k := range keys {
		slot, ok := ix.pos[k.Key]
		if ok {
			known++
		}
		if ok && slot.version == k.Version {
			continue
		}
		if ok {
			gone[slot.i] = true
		}
		e, err := a.st.GetStale(k.Key)
		if errs.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		al, _, err := decodeAlert(strings.TrimPrefix(k.Key, prefixAlert), e, nil)
		if err != nil {
			return nil, err
		}
		changed = append(changed, slim(al, e.Version))
	}
	if known < len(ix.pos) {
		// Some alerts were deleted: find which.
		live := make(map[string]bool, len(keys))
		for _, k := range keys {
			live[k.Key] = true
		}
		for key, slot := range ix.pos {
			if !live[key] {
				gone[slot.i] = true
			}
		}
	}
	if len(changed) == 0 && len(gone) == 0 {
		ix.at = applied
		if ix.pos == nil {
			ix.pos = map[string]alertSlot{}
		}
		return ix.rows, nil
	}
	// Merge the rows read again (sorted) into the old rows left: an
	// alert's place (created_time, id) never changes, so the old rows stay
	// in order.
	sort.Slice(changed, func(i, j int) bool { return newer(changed[i].al, changed[j].al) })
	rows := make([]alertRow, 0, len(ix.rows)-len(gone)+len(changed))
	old := ix.rows
	for i := 0; i < len(old) || len(changed) > 0; {
		switch {
		case i < len(old) && gone[i]:
			i++
		case i < len(old) && (len(changed) == 0 || newer(old[i].al, changed[0].al)):
			rows = append(rows, old[i])
			i++
		default:
			rows = append(rows, changed[0])
			changed = changed[1:]
		}
	}
	pos := make(map[string]alertSlot, len(rows))
	for i, r := range rows {
		pos[prefixAlert+r.al.ID] = alertSlot{i: i, version: r.version}
	}
	ix.rows, ix.pos, ix.at = rows, pos, applied
	return rows, nil
}

// Counts is how many alerts there are by status, then level.
type Counts struct {
	Total  int                       `json:"total"`
	Counts map[string]map[string]int `json:"counts"` // status → level → alerts
}

// Count counts the stored alerts by status and level, linearizably,
// decrypting none unless they changed since the last count or list.
func (a *Alerts) Count(ctx context.Context) (Counts, error) {
	rows, err := a.index(ctx)
	if err != nil {
		return Counts{}, err
	}
	c := Counts{Total: len(rows), Counts: map[string]map[string]int{}}
	for _, s := range []string{StatusOpen, StatusAcknowledged, StatusClosed} {
		c.Counts[s] = map[string]int{}
	}
	for i := range rows {
		al := &rows[i].al
		m := c.Counts[al.Status]
		if m == nil {
			m = map[string]int{}
			c.Counts[al.Status] = m
		}
		m[al.Level]++
	}
	return c, nil
}

// page returns the alerts of rows (List's order) that keep selects, from
// the first after the cursor after (nil: from the start), at most limit of
// them, read in full from this node's copy, and whether more rows were
// selected. An alert changed since the rows were made is kept only if it
// still matches.
func (a *Alerts) page(rows []alertRow, after *cursor, limit int, keep func(*Alert) bool) ([]Alert, bool, error) {
	i := 0
	if after != nil {
		i = sort.Search(len(rows), func(i int) bool { return after.before(rows[i].al) })
	}
	out := []Alert{}
	for ; i < len(rows); i++ {
		if !keep(&rows[i].al) {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		id := rows[i].al.ID
		e, err := a.st.GetStale(prefixAlert + id)
		al, _, err := decodeAlert(id, e, err)
		if err != nil {
			return nil, false, err
		}
		if al != nil && keep(al) {
			out = append(out, *al)
		}
	}
	return out, false, nil
}

// statusIn returns a filter of alerts whose status is one of ss.
func statusIn(ss ...string) func(*Alert) bool {
	return func(al *Alert) bool { return slices.Contains(ss, al.Status) }
}
