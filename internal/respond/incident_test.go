package respond

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
	"github.com/warden-sec/warden/internal/store/kv"
)

// memLog is an in-memory store with its audit log: the transactions'
// pending records become leaves stored with the transaction's index, in
// a Merkle tree built by the pure audit package (no server; the server
// test runs the same round trip over a real cluster).
type memLog struct {
	mu     sync.Mutex
	index  uint64
	kv     map[string]kv.Entry
	leaves [][]byte
	raft   []uint64
	st     audit.TreeState
	nodes  map[[2]uint64][]byte
	skey   audit.SignerKey
	vkey   string
}

func newMemLog(t testing.TB) *memLog {
	skey, vkey, err := audit.GenerateKey("warden.test/audit", rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	return &memLog{index: 10, kv: map[string]kv.Entry{}, nodes: map[[2]uint64][]byte{}, skey: skey, vkey: vkey}
}

func (m *memLog) Get(_ context.Context, key string) (kv.Entry, error) { return m.GetStale(key) }
func (m *memLog) GetStale(key string) (kv.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.kv[key]
	if !ok {
		return kv.Entry{}, errs.Wrap(errs.NotFound, kv.ErrNotFound, "%s not found", key)
	}
	e.Value = bytes.Clone(e.Value)
	return e, nil
}
func (m *memLog) List(_ context.Context, prefix string, _ int) ([]kv.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []kv.Entry
	for k, e := range m.kv {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e)
		}
	}
	return out, nil
}
func (m *memLog) ListKeys(ctx context.Context, prefix string, limit int) ([]kv.Entry, error) {
	return m.List(ctx, prefix, limit)
}
func (m *memLog) Barrier(context.Context) error { return nil }

func (m *memLog) AppliedIndex() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.index }

func (m *memLog) Txn(ctx context.Context, t kv.Txn) (uint64, error) {
	p := kv.PendingFrom(ctx)
	if p == nil || p.Committed() {
		return 0, errors.New("memLog: a change without its audit record")
	}
	leaf, err := p.Leaf()
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range t.Conds {
		if m.kv[c.Key].Version != c.Version {
			return 0, errs.Wrap(errs.Conflict, &kv.ConflictError{Key: c.Key, Want: c.Version, Have: m.kv[c.Key].Version}, "conflict")
		}
	}
	m.index++
	for _, op := range t.Ops {
		m.kv[op.Key] = kv.Entry{Key: op.Key, Value: bytes.Clone(op.Value), Version: m.index}
	}
	next, nodes, err := audit.Append(m.st, [][]byte{leaf.Hash})
	if err != nil {
		return 0, err
	}
	m.st = next
	for _, n := range nodes {
		m.nodes[[2]uint64{uint64(n.Level), n.Index}] = n.Hash
	}
	m.leaves = append(m.leaves, leaf.Value)
	m.raft = append(m.raft, m.index)
	p.MarkCommitted()
	return m.index, nil
}

// Pending makes the record's leaf value its canonical bytes.
func (m *memLog) Pending(ctx context.Context, e *audit.Entry) (context.Context, *kv.PendingAudit) {
	p := kv.NewPendingAudit(func() (kv.AuditLeaf, error) {
		b, err := e.Canonical()
		if err != nil {
			return kv.AuditLeaf{}, err
		}
		return kv.AuditLeaf{Hash: audit.LeafHash(b), Value: b}, nil
	})
	return kv.WithPendingAudit(ctx, p), p
}

func (m *memLog) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m.nodes[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, kv.ErrNotFound
	}
	return h, nil
}

func (m *memLog) EntriesAt(_ context.Context, raftIndex uint64) ([]auditlog.StoredEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []auditlog.StoredEntry
	for i, r := range m.raft {
		if r == raftIndex {
			e, err := audit.DecodeEntry(m.leaves[i])
			if err != nil {
				return nil, err
			}
			out = append(out, auditlog.StoredEntry{Index: uint64(i), RaftIndex: r, Leaf: m.leaves[i], Entry: e})
		}
	}
	return out, nil
}

func (m *memLog) Checkpoint(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	root, err := m.st.Root()
	if err != nil {
		return nil, err
	}
	return audit.Sign(m.skey, m.st.Size, root)
}

func (m *memLog) InclusionProof(index, size uint64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return audit.InclusionProof(m, index, size)
}

func (m *memLog) Verifier() (string, string, error) { return "warden.test/audit", m.vkey, nil }

// request runs f as a request would: with a pending record of action.
func (m *memLog) request(action string, f func(ctx context.Context, rec *audit.Entry) error) error {
	e := &audit.Entry{Action: action, AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`, Resource: `System::"warden"`,
		Time: audit.FormatTime(time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC))}
	ctx, _ := m.Pending(context.Background(), e)
	return f(ctx, e)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func newTestIncidents(t testing.TB) (*Incidents, *memLog, *fakeClock) {
	m := newMemLog(t)
	clk := &fakeClock{t: time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)}
	return NewIncidents(m, m, "node-1", clk.now, rand.NewChaCha8([32]byte{3})), m, clk
}

// buildReport makes the test's incident: created with an alert, assigned,
// commented, triaged with a comment, a playbook's decision attached, then
// closed; and returns its report.
func buildReport(t testing.TB) (Report, *memLog) {
	t.Helper()
	s, m, _ := newTestIncidents(t)
	var inc Incident
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.request("incidents.write", func(ctx context.Context, rec *audit.Entry) (err error) {
		inc, err = s.Create(ctx, CreateInput{Title: "SSH brute force on web-1 <b>|x|</b>", Severity: "high",
			Alerts: []string{"0123456789abcdef0123456789abcdef"}}, `User::"alice"`, rec)
		return err
	}))
	must(m.request("incidents.write", func(ctx context.Context, rec *audit.Entry) (err error) {
		_, err = s.Comment(ctx, inc.ID, "looking at it\n```\nsecond line", `User::"alice"`, rec)
		return err
	}))
	tri, bob := StatusTriaged, "bob"
	must(m.request("incidents.write", func(ctx context.Context, rec *audit.Entry) (err error) {
		_, err = s.Update(ctx, inc.ID, UpdateInput{Status: &tri, Assignee: &bob, Comment: "real"}, `User::"alice"`, rec)
		return err
	}))
	if _, err := s.Record(context.Background(), Attach{IncidentID: inc.ID, DecisionID: "dec-3f9a0c1b2e4d5f67"}); err != nil {
		t.Fatal(err)
	}
	must(m.request("incidents.write", func(ctx context.Context, rec *audit.Entry) (err error) {
		_, err = s.Close(ctx, inc.ID, "done", `User::"alice"`, rec)
		return err
	}))
	r, err := s.Report(context.Background(), m, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r, m
}

// TestReportRoundTrip: a report of a real timeline verifies, as JSON and
// as Markdown, and its header is what its timeline says.
func TestReportRoundTrip(t *testing.T) {
	r, m := buildReport(t)
	if got := len(r.Incident.Timeline); got != 7 {
		t.Fatalf("%d timeline items, want 7: %+v", got, r.Incident.Timeline)
	}
	inc := r.Incident
	if inc.Status != StatusClosed || inc.Assignee != "bob" || inc.Severity != "high" || len(inc.Alerts) != 1 || len(inc.Decisions) != 1 {
		t.Fatalf("header %+v", inc)
	}
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyReport(js, m.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Items != 7 || v.Incident != inc.ID || v.Format != "json" {
		t.Fatalf("verified %+v", v)
	}
	md, err := r.Markdown()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := VerifyReport(md, m.vkey); err != nil || v.Format != "markdown" {
		t.Fatalf("markdown: %+v %v\n%s", v, err, md)
	}
	// The same report renders to the same bytes.
	again, _ := r.Markdown()
	if !bytes.Equal(again, md) {
		t.Fatal("Markdown is not deterministic")
	}
}

// TestReportTamper: changing any one byte of a report, JSON or Markdown,
// makes it fail, and so does another log's key.
func TestReportTamper(t *testing.T) {
	r, m := buildReport(t)
	js, _ := r.JSON()
	md, _ := r.Markdown()
	for _, doc := range []struct {
		name string
		b    []byte
	}{{"json", js}, {"markdown", md}} {
		t.Run(doc.name, func(t *testing.T) {
			// Every byte, changed in its lowest bit; every seventh also in
			// its case bit.
			for i := range doc.b {
				xs := []byte{0x01}
				if i%7 == 0 {
					xs = append(xs, 0x20)
				}
				for _, x := range xs {
					b := bytes.Clone(doc.b)
					b[i] ^= x
					if _, err := VerifyReport(b, m.vkey); err == nil {
						t.Fatalf("byte %d (%q) xor %#x: the report still verifies", i, doc.b[i], x)
					} else if !errors.Is(err, ErrReport) {
						t.Fatalf("byte %d: %v does not wrap ErrReport", i, err)
					}
				}
			}
		})
	}
	_, other, err := audit.GenerateKey("warden.test/audit", rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReport(js, other); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("another key: %v", err)
	}
}

// TestReportReasons: each kind of change is named.
func TestReportReasons(t *testing.T) {
	r, m := buildReport(t)
	edit := func(f func(r *Report)) []byte {
		c := r
		c.Incident.Timeline = append([]Item(nil), r.Incident.Timeline...)
		c.Evidence = append([]Evidence(nil), r.Evidence...)
		f(&c)
		b, err := c.JSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	js, _ := r.JSON()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"white space", append(bytes.Clone(js), ' '), "canonical"},
		{"unknown member", bytes.Replace(js, []byte(`"format"`), []byte(`"x":1,"format"`), 1), "not a report"},
		{"title", edit(func(r *Report) { r.Incident.Title = "nothing happened" }), "title"},
		{"a comment's text", edit(func(r *Report) { r.Incident.Timeline[2].Text = "nothing" }), "does not carry the item's hash"},
		{"an item dropped", edit(func(r *Report) {
			r.Incident.Timeline = append(r.Incident.Timeline[:2], r.Incident.Timeline[3:]...)
			r.Evidence = append(r.Evidence[:2], r.Evidence[3:]...)
		}), "timeline item 3: seq 4, want 3"},
		{"a leaf index", edit(func(r *Report) { r.Evidence[1].LeafIndex++ }), "not in the log"},
		{"format", edit(func(r *Report) { r.Format = "x" }), "format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyReport(tc.b, m.vkey)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestOpenOrAttach: alerts of one host or rule group into one open
// incident within the window; a closed one, another host or an old one
// opens a new incident; an alert attached twice adds nothing.
func TestOpenOrAttach(t *testing.T) {
	s, m, clk := newTestIncidents(t)
	ctx := context.Background()
	a1, err := s.Record(ctx, Attach{AlertID: "a1", Host: "web-1", RuleID: "ssh-brute-force", DecisionID: "dec-1", Severity: "high"})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Title != "ssh-brute-force on web-1" || len(a1.Timeline) != 3 || a1.Timeline[0].Actor != `Server::"node-1"` {
		t.Fatalf("opened %+v", a1)
	}
	// Three items in one change: three hashes in one record.
	es, _ := m.EntriesAt(ctx, a1.Version)
	if len(es) != 1 || len(es[0].Entry.Hashes) != 3 || es[0].Entry.Hashes["incident-item.2"] != ItemHash(a1.Timeline[1]) {
		t.Fatalf("record %+v", es)
	}
	same, err := s.Record(ctx, Attach{AlertID: "a2", RuleID: "ssh-brute-force", Host: "web-2"})
	if err != nil || same.ID != a1.ID || len(same.Alerts) != 2 {
		t.Fatalf("same rule: %+v %v", same, err)
	}
	byHost, err := s.Record(ctx, Attach{AlertID: "a3", RuleID: "other", Host: "web-1"})
	if err != nil || byHost.ID != a1.ID {
		t.Fatalf("same host: %+v %v", byHost, err)
	}
	again, err := s.Record(ctx, Attach{AlertID: "a3", RuleID: "other", Host: "web-1"})
	if err != nil || again.Version != byHost.Version {
		t.Fatalf("attached twice: %+v %v", again, err)
	}
	other, err := s.Record(ctx, Attach{AlertID: "b1", RuleID: "x", Host: "db-1"})
	if err != nil || other.ID == a1.ID {
		t.Fatalf("other host and rule: %+v %v", other, err)
	}
	clk.t = clk.t.Add(2 * time.Hour)
	late, err := s.Record(ctx, Attach{AlertID: "a4", RuleID: "ssh-brute-force", Host: "web-1"})
	if err != nil || late.ID == a1.ID {
		t.Fatalf("beyond the window: %+v %v", late, err)
	}
	closed := StatusClosed
	if err := m.request("incidents.write", func(ctx context.Context, rec *audit.Entry) error {
		_, err := s.Update(ctx, late.ID, UpdateInput{Status: &closed}, "x", rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	next, err := s.Record(ctx, Attach{AlertID: "a5", RuleID: "ssh-brute-force", Host: "web-1"})
	if err != nil || next.ID == late.ID {
		t.Fatalf("after close: %+v %v", next, err)
	}
	if _, err := s.Record(ctx, Attach{IncidentID: late.ID, AlertID: "a6"}); !errs.Is(err, errs.Conflict) {
		t.Fatalf("attach to a closed incident: %v", err)
	}
	list, err := s.List(ctx, Filter{Status: "new"})
	if err != nil || len(list) != 3 {
		t.Fatalf("list new: %d %v", len(list), err)
	}
	if _, err := s.List(ctx, Filter{Severity: "urgent"}); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "severity") {
		t.Fatalf("bad severity filter: %v", err)
	}
}

// TestBadInput: refusals name the field and store nothing.
func TestBadInput(t *testing.T) {
	s, m, _ := newTestIncidents(t)
	bad := "urgent"
	for _, tc := range []struct {
		field string
		f     func(ctx context.Context, rec *audit.Entry) error
	}{
		{"title", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Create(ctx, CreateInput{}, "x", rec)
			return err
		}},
		{"title", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Create(ctx, CreateInput{Title: strings.Repeat("a", MaxTitleLen+1)}, "x", rec)
			return err
		}},
		{"severity", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Create(ctx, CreateInput{Title: "t", Severity: "urgent"}, "x", rec)
			return err
		}},
		{"alerts", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Create(ctx, CreateInput{Title: "t", Alerts: []string{"a b"}}, "x", rec)
			return err
		}},
		{"status", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Update(ctx, "inc-0000000000000000", UpdateInput{Status: &bad}, "x", rec)
			return err
		}},
		{"incident id", func(ctx context.Context, rec *audit.Entry) error {
			_, err := s.Get(ctx, "inc-xyz")
			return err
		}},
	} {
		err := m.request("incidents.write", tc.f)
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
	if len(m.kv) != 0 || len(m.leaves) != 0 {
		t.Fatalf("refusals stored %d keys, %d records", len(m.kv), len(m.leaves))
	}
	if _, err := s.Get(context.Background(), "inc-0000000000000000"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("absent: %v", err)
	}
}

// TestItemCanonical freezes an item's hashed bytes (RFC 8785 order and
// escaping; no raft_index).
func TestItemCanonical(t *testing.T) {
	it := Item{Incident: "inc-0123456789abcdef", Seq: 2, Time: "2026-12-02T18:00:00Z", Actor: `User::"alice"`, Kind: KindComment,
		Text: "a\n<b>\u2028", Status: StatusNew, Salt: strings.Repeat("ab", 16), RaftIndex: 99}
	want := `{"actor":"User::\"alice\"","host":"","incident":"inc-0123456789abcdef","kind":"comment","ref":"","rule":"","salt":"abababababababababababababababab","seq":2,"status":"new","text":"a\n<b>` + "\u2028" + `","time":"2026-12-02T18:00:00Z"}`
	if got := string(CanonicalItem(it)); got != want {
		t.Fatalf("canonical\n got %s\nwant %s", got, want)
	}
	if h := ItemHash(it); !strings.HasPrefix(h, "sha256:") || len(h) != 71 {
		t.Fatalf("hash %s", h)
	}
	e := audit.Entry{Action: "incidents.write", Outcome: 200, Time: "2026-12-02T18:00:00Z", Hashes: map[string]string{ItemHashName: ItemHash(it)}}
	if _, err := e.Canonical(); err != nil {
		t.Fatalf("an audit entry refuses the item hash: %v", err)
	}
}

// FuzzVerifyReport: no input panics the parser and verifier, and
// whatever verifies is exactly a canonical report (JSON or its Markdown).
// The seeds are whole reports (20 KB): run it with -fuzzminimizetime 0,
// or the fuzzer spends its time minimizing each new input.
func FuzzVerifyReport(f *testing.F) {
	r, m := buildReport(f)
	js, _ := r.JSON()
	md, _ := r.Markdown()
	f.Add(js)
	f.Add(md)
	f.Add([]byte(`{}`))
	f.Add([]byte("# x\n```json\n{}\n```\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := VerifyReport(b, m.vkey)
		if err != nil {
			if !errors.Is(err, ErrReport) {
				t.Fatalf("%v does not wrap ErrReport", err)
			}
			return
		}
		want := js
		if v.Format == "markdown" {
			want = md
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("a report other than the one built verifies:\n%s", fmt.Sprintf("%q", b))
		}
	})
}

func (m *memLog) ScanStale(prefix string, values func(string, uint64) bool) ([]kv.Entry, error) {
	return scanOf(m.List(context.Background(), prefix, 0))(values)
}

func (m *memLog) GetManyStale(keys []string) ([]kv.Entry, error) { return getManyOf(m.GetStale, keys) }
