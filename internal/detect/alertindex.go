package detect

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
)

// alertIndex keeps, for every stored alert, the fields List filters and
// sorts on, in List's order, so that a page or a count decrypts only the
// alerts it returns. It is brought up to date on each use: after a read
// barrier, one read transaction of this node's copy lists the alerts' keys
// and reads again the alerts whose version moved since the last use, so
// the rows are one state of the store, at least as new as the barrier.
// While the applied index has not moved, nothing is read.
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

// alertRow is an alert's storage key and version with the fields of the
// alert that List filters and sorts on (ID, RuleID, Level, Status, Hosts,
// LastSeen, Created); the others are empty.
type alertRow struct {
	key     string
	version uint64
	al      Alert
}

func slim(key string, al *Alert, version uint64) alertRow {
	return alertRow{key: key, version: version, al: Alert{ID: al.ID, RuleID: al.RuleID, Level: al.Level, Status: al.Status,
		Hosts: al.Hosts, LastSeen: al.LastSeen, Created: al.Created}}
}

// forget drops the rows (the server sealed: they are decrypted data).
func (ix *alertIndex) forget() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.at, ix.rows, ix.pos = 0, nil, nil
}

// index returns the rows of every stored alert, newest first, as of one
// state of the store no older than a linearizable read. The slice is
// shared: callers must not change it.
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
	// The scan is of a state at least as new as applied: the next use
	// need not scan again until more is applied.
	ents, err := a.st.ScanStale(prefixAlert, func(key string, version uint64) bool {
		slot, ok := ix.pos[key]
		return !ok || slot.version != version
	})
	if err != nil {
		return nil, err
	}
	var changed []alertRow
	gone := map[int]bool{}
	known := 0 // keys of rows the index has
	for n, e := range ents {
		slot, ok := ix.pos[e.Key]
		if ok {
			known++
		}
		if e.Value == nil {
			continue // unchanged
		}
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if ok {
			gone[slot.i] = true
		}
		al, _, err := decodeAlert(strings.TrimPrefix(e.Key, prefixAlert), e, nil)
		if err != nil {
			return nil, err
		}
		changed = append(changed, slim(e.Key, al, e.Version))
	}
	if known < len(ix.pos) {
		// Some alerts were deleted: find which.
		live := make(map[string]bool, len(ents))
		for _, e := range ents {
			live[e.Key] = true
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
		pos[r.key] = alertSlot{i: i, version: r.version}
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

// pageAttempts bounds how often page reads the index again when alerts
// of the page changed between the index's state and the page's read.
const pageAttempts = 3

// page returns the alerts that keep selects, in List's order, from the
// first after the cursor after (nil: from the start), at most limit of
// them, and whether more are selected. The selection is made on the index
// and the alerts are then read in one read transaction; if any of them
// changed in between, the index is brought up to date and the page made
// again, so that a page is one state of the store. After pageAttempts
// (alerts changing faster than pages are read), the last read is returned
// with the alerts that no longer match left out.
func (a *Alerts) page(ctx context.Context, after *cursor, limit int, keep func(*Alert) bool) ([]Alert, bool, error) {
	for attempt := 1; ; attempt++ {
		rows, err := a.index(ctx)
		if err != nil {
			return nil, false, err
		}
		i := 0
		if after != nil {
			i = sort.Search(len(rows), func(i int) bool { return after.before(rows[i].al) })
		}
		var sel []*alertRow
		more := false
		for ; i < len(rows); i++ {
			if !keep(&rows[i].al) {
				continue
			}
			if len(sel) == limit {
				more = true
				break
			}
			sel = append(sel, &rows[i])
		}
		keys := make([]string, len(sel))
		for j, r := range sel {
			keys[j] = r.key
		}
		ents, err := a.st.GetManyStale(keys)
		if err != nil {
			return nil, false, err
		}
		same := len(ents) == len(sel)
		for j := 0; same && j < len(ents); j++ {
			same = ents[j].Key == sel[j].key && ents[j].Version == sel[j].version
		}
		if !same && attempt < pageAttempts {
			continue
		}
		out := make([]Alert, 0, len(ents))
		for _, e := range ents {
			al, _, err := decodeAlert(strings.TrimPrefix(e.Key, prefixAlert), e, nil)
			if err != nil {
				return nil, false, err
			}
			if same || keep(al) {
				out = append(out, *al)
			}
		}
		return out, more && len(out) > 0, nil
	}
}

// statusIn returns a filter of alerts whose status is one of ss.
func statusIn(ss ...string) func(*Alert) bool {
	return func(al *Alert) bool { return slices.Contains(ss, al.Status) }
}

// Forget drops what the alerts' index holds (decrypted fields of every
// alert): the server calls it when it seals.
func (a *Alerts) Forget() { a.idx.forget() }
