package auditlog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
)

// TestArchiveCutoffAndPrune: an archive by age stops at the first entry
// not older than the cutoff; it verifies against the log's key; a prune
// reaches no further than the archive; after it the pruned entries read
// as archived, a scrub passes, and an altered node in the pruned range is
// still found, because the nodes stay (named by its parent: without the
// leaf, which is in the archive, the scrub cannot tell which of the two
// disagrees).
func TestArchiveCutoffAndPrune(t *testing.T) {
	dir := logDir(t, 20) // entry 0 at time 0, entry i+1 at time i
	st, svc := openLog(t, dir)
	ctx := context.Background()
	change := func(action string) context.Context {
		c, _ := svc.Pending(ctx, auditlog.SystemEntry(time.Unix(100, 0), "n1", action, `AuditLog::"warden"`))
		return c
	}
	if _, err := svc.Prune(change("audit.prune"), 2); !errs.Is(err, errs.Precondition) {
		t.Fatalf("prune before an archive: %v", err)
	}
	a, err := svc.Archive(change("audit.archive"), auditlog.ArchiveRange{Cutoff: time.Unix(10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Start != 0 || a.End != 11 {
		t.Fatalf("archive [%d, %d), want [0, 11)", a.Start, a.End)
	}
	_, vkey, _ := svc.Verifier()
	if _, err := a.Verify(vkey); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Archive(change("audit.archive"), auditlog.ArchiveRange{Cutoff: time.Unix(0, 0)}); !errs.Is(err, errs.Invalid) {
		t.Fatalf("nothing older than the cutoff: %v", err)
	}
	if _, err := svc.Prune(change("audit.prune"), 12); !errs.Is(err, errs.Precondition) {
		t.Fatalf("prune beyond the archive: %v", err)
	}
	if p, err := svc.Prune(change("audit.prune"), 11); err != nil || p != 11 {
		t.Fatalf("prune: %d %v", p, err)
	}
	es, err := svc.Entries(9, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !es[0].Archived || !es[1].Archived || es[2].Archived || es[2].Altered != nil || len(es[0].LeafHash) != audit.HashSize {
		t.Fatalf("entries 9 to 11: %+v", es)
	}
	if err := svc.Scrub(ctx); err != nil {
		t.Fatalf("scrub after a prune: %v", err)
	}
	if _, err := svc.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// The next archive starts at the pruned bound.
	a2, err := svc.Archive(change("audit.archive"), auditlog.ArchiveRange{Before: 15})
	if err != nil || a2.Start != 11 || a2.End != 15 {
		t.Fatalf("second archive: %+v %v", a2, err)
	}
	if _, err := audit.VerifyChain([]*audit.Archive{a, a2}, vkey); err != nil {
		t.Fatal(err)
	}
	st.Close()
	corrupt(t, dir, "audit_nodes", nodeKey(0, 3), flip)
	_, svc = openLog(t, dir)
	if err := svc.Scrub(ctx); err == nil || !strings.Contains(err.Error(), "stored Merkle node (1, 1) altered") {
		t.Fatalf("an altered node in the pruned range: %v", err)
	}
}
