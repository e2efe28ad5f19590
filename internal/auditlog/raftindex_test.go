package auditlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store"
)

// TestEntriesAt: the entries a Raft command appended are found by its
// index, one or several, in log order; an index whose command carried no
// record finds none; the index 0 is refused.
func TestEntriesAt(t *testing.T) {
	dir := logDir(t, 7)
	st, svc := openLog(t, dir)
	ctx := context.Background()
	commit := func(n int, tag string) uint64 {
		t.Helper()
		var leaves []store.AuditLeaf
		for i := range n {
			e := &audit.Entry{Action: "incidents.write", Outcome: 200, Resource: fmt.Sprintf("%s-%d", tag, i), Time: audit.FormatTime(time.Unix(1000, 0))}
			l, _, err := svc.Leaf(e)
			if err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, l)
		}
		idx, err := st.Txn(ctx, store.Txn{Ops: []store.Op{{Type: store.OpPut, Key: "k/" + tag, Value: []byte("v")}}, Audit: leaves})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	one := commit(1, "one")
	three := commit(3, "three")
	last := commit(1, "last")
	for _, tc := range []struct {
		name  string
		index uint64
		want  []string
	}{
		{"one record", one, []string{"one-0"}},
		{"three records of one command", three, []string{"three-0", "three-1", "three-2"}},
		{"a command without a record (the cluster's first configuration)", 1, nil},
		{"the last command", last, []string{"last-0"}},
		{"beyond the log", last + 1000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			es, err := svc.EntriesAt(wctx, tc.index)
			if tc.index > last {
				// Not applied yet: the wait ends with the context.
				if err == nil {
					t.Fatalf("index %d beyond the applied one: %d entries, no error", tc.index, len(es))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				if e.RaftIndex != tc.index || e.Altered != nil {
					t.Fatalf("entry %d: raft index %d, altered %v", e.Index, e.RaftIndex, e.Altered)
				}
				got = append(got, e.Entry.Resource)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("entries at %d: %v, want %v", tc.index, got, tc.want)
			}
		})
	}
	if _, err := svc.EntriesAt(ctx, 0); !errs.Is(err, errs.Invalid) {
		t.Fatalf("index 0: %v", err)
	}
}
