package detect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/server/servertest"
	"github.com/warden-sec/warden/internal/store/kv"
)

// TestUnclosed: open and acknowledged alerts, newest first, at most max;
// closed ones left out.
func TestUnclosed(t *testing.T) {
	srv := servertest.Dev(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i, status := range []string{detect.StatusClosed, detect.StatusAcknowledged, detect.StatusOpen, detect.StatusOpen, detect.StatusOpen} {
		al := detect.Alert{ID: fmt.Sprintf("a%d", i), RuleID: "r", Level: "high", Status: status,
			Created: t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano)}
		b, _ := json.Marshal(al)
		rctx, _ := srv.Audit().Pending(ctx, auditlog.SystemEntry(t0, "test", "alert.record", `Alert::"`+al.ID+`"`))
		if _, err := srv.Core().Txn(rctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: "detect/alerts/" + al.ID, Value: b}}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := srv.Alerts().Unclosed(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != "a4" || got[2].ID != "a2" {
		t.Fatalf("unclosed, 3 at most: %+v", got)
	}
	all, err := srv.Alerts().Unclosed(ctx, 100)
	if err != nil || len(all) != 4 {
		t.Fatalf("%d unclosed of 5 with one closed (%v)", len(all), err)
	}
}
