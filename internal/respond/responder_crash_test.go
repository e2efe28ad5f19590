package respond

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// failingStore is the in-memory storage (feed_test.go) with failures:
// fail, if set, is asked before and after each transaction applies. An
// error before leaves the store as it was (a crash before the commit), an
// error after is returned although the transaction applied (a crash after
// the commit, before the caller learnt of it).
type failingStore struct {
	*memStorage
	fail func(applied bool) error
}

func (m *failingStore) Txn(ctx context.Context, t kv.Txn) (uint64, error) {
	if m.fail != nil {
		if err := m.fail(false); err != nil {
			return 0, err
		}
	}
	idx, err := m.memStorage.Txn(ctx, t)
	if err == nil && m.fail != nil {
		if err := m.fail(true); err != nil {
			return 0, err
		}
	}
	return idx, err
}

type noAudit struct{}

func (noAudit) Pending(ctx context.Context, _ *audit.Entry) (context.Context, *kv.PendingAudit) {
	return ctx, nil
}

// fakeDecisions stores a decision per Prepare under respond/decisions/.
type fakeDecisions struct{ n int }

func (f *fakeDecisions) Prepare(_ context.Context, in Input, by string, now time.Time) (Decision, []kv.Op, []kv.Cond, error) {
	f.n++
	d := Decision{ID: "dec-" + strings.Repeat("0", 15) + string(rune('0'+f.n%10)), Type: in.Type, Target: in.Target,
		Origin: in.Origin, AlertID: in.AlertID, CreatedBy: by, Simulated: in.Simulated, PendingApproval: in.PendingApproval}
	b, _ := json.Marshal(d)
	return d, []kv.Op{{Type: kv.OpPut, Key: "respond/decisions/" + d.ID, Value: b}}, []kv.Cond{{Key: "respond/decisions/" + d.ID}}, nil
}

type noIncidents struct{}

func (noIncidents) OpenOrAttach(context.Context, Attach) ([]kv.Op, []kv.Cond, Incident, Item, error) {
	return nil, nil, Incident{}, Item{}, nil
}

type noNodes struct{}

func (noNodes) RevokeOps(context.Context, string) ([]kv.Op, []kv.Cond, error) { return nil, nil, nil }
func (noNodes) NodeZone(context.Context, string) (string, error)              { return "", nil }

// TestResponderCrashes: whether the leader fails before its run commits
// or after (before it learns that it did), the next step — on it or on a
// new leader starting from the stored cursor — bans each alert's source
// exactly once.
func TestResponderCrashes(t *testing.T) {
	for _, crashAfter := range []bool{false, true} {
		name := "before the commit"
		if crashAfter {
			name = "after the commit"
		}
		t.Run(name, func(t *testing.T) {
			st := &failingStore{memStorage: newMem()}
			now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			pbs := NewPlaybooks(st, nil, clock)
			if _, err := pbs.Put(context.Background(), []byte("name: ban\nactions:\n  - ban: {duration: 1h}\n"), `User::"o"`); err != nil {
				t.Fatal(err)
			}
			alerts := detect.NewAlerts(st, noAudit{}, "n1", clock)
			dec := &fakeDecisions{}
			newResponder := func() *Responder {
				return NewResponder(ResponderConfig{Storage: st, Audit: noAudit{}, Node: "n1", Alerts: alerts, Playbooks: pbs,
					Decisions: dec, Incidents: noIncidents{}, Notify: nil, Nodes: noNodes{}, Now: clock})
			}
			ctx := context.Background()
			for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
				al := detect.Alert{ID: detect.AlertID(ip), RuleID: "r", Level: "high", Group: map[string]string{"source.ip": ip},
					Created: now.Format(time.RFC3339Nano)}
				b, _ := json.Marshal(al)
				if _, err := st.Txn(ctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: "detect/alerts/" + al.ID, Value: b}}}); err != nil {
					t.Fatal(err)
				}
			}
			crashes := 0
			st.fail = func(applied bool) error {
				if applied == crashAfter && crashes == 0 {
					crashes++
					return errs.E(errs.Unavailable, "the leader went away")
				}
				return nil
			}
			if _, err := newResponder().Step(ctx); err == nil {
				t.Fatal("the crash was not reported")
			}
			// A new leader, from the stored cursor, then more steps.
			r := newResponder()
			for range 3 {
				if _, err := r.Step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ents, _ := st.List(ctx, "respond/decisions/", 0)
			runs, _ := st.List(ctx, prefixRun, 0)
			if len(ents) != 2 || len(runs) != 2 {
				t.Fatalf("%d decisions and %d runs, want 2 and 2", len(ents), len(runs))
			}
			seen := map[string]bool{}
			for _, e := range ents {
				var d Decision
				_ = json.Unmarshal(e.Value, &d)
				if seen[d.Target.IP] || d.Origin != "playbook:ban" || d.CreatedBy != `User::"o"` {
					t.Fatalf("decision %+v (seen %v)", d, seen)
				}
				seen[d.Target.IP] = true
			}
		})
	}
}
