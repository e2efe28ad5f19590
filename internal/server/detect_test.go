package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/detect"
	"github.com/warden-sec/warden/internal/detect/webhook"
	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/internal/store/kv"
)

func testHit(rule *sigma.Rule, key string, count int64, first, last time.Time, host string, refs ...uint64) sigma.Hit {
	ev := events.Event{"@timestamp": first.UTC().Format(time.RFC3339), "host.name": host, "source.ip": "203.0.113.7",
		"message": fmt.Sprintf("line for %s/%d", key, count)}
	return sigma.Hit{Key: key, Rule: rule, Group: map[string]string{"source.ip": "203.0.113.7"}, Count: count,
		First: first, Last: last, Hosts: []string{host}, Events: []events.Event{ev}, Refs: refs}
}

func decodeAlert(t testing.TB, b []byte) detect.Alert {
	t.Helper()
	var a detect.Alert
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("not an alert: %s", b)
	}
	return a
}

func listAlerts(t testing.TB, h *harness, root, query string) ([]detect.Alert, string) {
	t.Helper()
	r := h.want(h.do("GET", "/v1/alerts"+query, root, nil), 200)
	var out struct {
		Alerts []detect.Alert `json:"alerts"`
		Next   *string        `json:"next"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Alerts == nil || out.Next == nil {
		t.Fatalf("list %s: %s", query, r.body)
	}
	return out.Alerts, *out.Next
}

// TestAlertsRecordListStatus: Record is idempotent by the hit's key (one
// alert; count, last_seen and hosts only grow), List filters and pages
// newest first without repeating or skipping, ack and close keep notes
// and refuse to acknowledge a closed alert.
func TestAlertsRecordListStatus(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	al := h.srv.Alerts()
	brute := &sigma.Rule{ID: "ssh-brute", Title: "SSH brute force", Level: "high", Tags: []string{"attack.t1110"}}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

	a1, err := al.Record(ctx, testHit(brute, "ssh-brute|203.0.113.7|w0", 10, t0, t0.Add(30*time.Second), "web-1", 7))
	if err != nil {
		t.Fatal(err)
	}
	if a1.ID != detect.AlertID("ssh-brute|203.0.113.7|w0") || a1.Status != detect.StatusOpen || a1.Count != 10 || len(a1.Events) != 1 {
		t.Fatalf("created %+v", a1)
	}
	// The same hit again (a replay) changes nothing; a smaller count does
	// not lower it; a larger one and another host raise them.
	steps := []struct {
		hit   sigma.Hit
		count int64
		hosts []string
		last  time.Time
	}{
		{testHit(brute, "ssh-brute|203.0.113.7|w0", 10, t0, t0.Add(30*time.Second), "web-1", 7), 10, []string{"web-1"}, t0.Add(30 * time.Second)},
		{testHit(brute, "ssh-brute|203.0.113.7|w0", 4, t0, t0.Add(10*time.Second), "web-1", 7), 10, []string{"web-1"}, t0.Add(30 * time.Second)},
		{testHit(brute, "ssh-brute|203.0.113.7|w0", 12, t0, t0.Add(50*time.Second), "web-2", 9), 12, []string{"web-1", "web-2"}, t0.Add(50 * time.Second)},
	}
	for i, s := range steps {
		got, err := al.Record(ctx, s.hit)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a1.ID || got.Count != s.count || strings.Join(got.Hosts, ",") != strings.Join(s.hosts, ",") ||
			got.LastSeen != s.last.Format("2006-01-02T15:04:05.000000000Z07:00") {
			t.Fatalf("step %d: %+v", i, got)
		}
	}
	list, _ := listAlerts(t, h, root, "")
	if len(list) != 1 || list[0].Count != 12 || len(list[0].EventRefs) != 2 || len(list[0].Events) != 3 {
		t.Fatalf("after four records of one key: %+v", list)
	}

	// More alerts: other rules, levels, hosts.
	scan := &sigma.Rule{ID: "web-scan", Title: "Web scanning", Level: "medium"}
	for i := range 5 {
		if _, err := al.Record(ctx, testHit(scan, fmt.Sprintf("web-scan|w%d", i), 50, t0.Add(time.Duration(i)*time.Hour),
			t0.Add(time.Duration(i)*time.Hour+time.Minute), "web-3")); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		query string
		want  int
	}{
		{"", 6},
		{"?level=high", 1},
		{"?level=medium,high", 6},
		{"?rule=web-scan", 5},
		{"?host=web-2", 1},
		{"?host=web-3&rule=ssh-brute", 0},
		{"?status=open", 6},
		{"?since=" + t0.Add(3*time.Hour).Format(time.RFC3339), 2},
	}
	for _, tc := range cases {
		if got, _ := listAlerts(t, h, root, tc.query); len(got) != tc.want {
			t.Errorf("%q: %d alerts, want %d", tc.query, len(got), tc.want)
		}
	}
	h.want(h.do("GET", "/v1/alerts?level=severe", root, nil), 400)
	h.want(h.do("GET", "/v1/alerts?colour=red", root, nil), 400)
	// Pages of 4: newest first, every alert once.
	seen := map[string]bool{}
	var order []string
	cursor := ""
	for page := 0; ; page++ {
		q := "?limit=4"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		got, next := listAlerts(t, h, root, q)
		for _, a := range got {
			if seen[a.ID] {
				t.Fatalf("alert %s on two pages", a.ID)
			}
			seen[a.ID] = true
			order = append(order, a.Created)
		}
		if next == "" {
			break
		}
		if page > 3 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if len(seen) != 6 {
		t.Fatalf("pages held %d alerts, want 6", len(seen))
	}
	for i := 1; i < len(order); i++ {
		if order[i] > order[i-1] {
			t.Fatalf("not newest first: %v", order)
		}
	}

	// Ack, then close; a closed alert cannot be acknowledged, and more
	// matches of its window keep it closed.
	path := "/v1/alerts/" + a1.ID
	acked := decodeAlert(t, h.want(h.do("POST", path+"/ack", root, map[string]string{"comment": "looking"}), 200).body)
	if acked.Status != detect.StatusAcknowledged || len(acked.Notes) != 1 || acked.Notes[0].Comment != "looking" || acked.Notes[0].By != `Root::"root"` {
		t.Fatalf("ack: %+v", acked)
	}
	closed := decodeAlert(t, h.want(h.do("POST", path+"/close", root, map[string]string{"comment": "blocked at the edge"}), 200).body)
	if closed.Status != detect.StatusClosed || len(closed.Notes) != 2 {
		t.Fatalf("close: %+v", closed)
	}
	h.want(h.do("POST", path+"/ack", root, nil), 409)
	again, err := al.Record(ctx, testHit(brute, "ssh-brute|203.0.113.7|w0", 20, t0, t0.Add(55*time.Second), "web-1"))
	if err != nil || again.Status != detect.StatusClosed || again.Count != 20 {
		t.Fatalf("a match after close: %+v, %v", again, err)
	}
	if got, _ := listAlerts(t, h, root, "?status=closed"); len(got) != 1 || got[0].ID != a1.ID {
		t.Fatalf("closed: %+v", got)
	}
	// The counts: one closed high alert, five open medium ones.
	var counts detect.Counts
	if err := json.Unmarshal(h.want(h.do("GET", "/v1/alerts/counts", root, nil), 200).body, &counts); err != nil {
		t.Fatal(err)
	}
	if counts.Total != 6 || counts.Counts["closed"]["high"] != 1 || counts.Counts["open"]["medium"] != 5 ||
		len(counts.Counts["open"]) != 1 || len(counts.Counts["acknowledged"]) != 0 {
		t.Fatalf("counts: %+v", counts)
	}
	h.want(h.do("GET", "/v1/alerts/counts?status=open", root, nil), 400)
	h.want(h.do("GET", "/v1/alerts/counts?stale=true", root, nil), 200) // every GET takes stale
	h.want(h.do("GET", "/v1/alerts/"+strings.Repeat("0", 32), root, nil), 404)
	h.want(h.do("GET", "/v1/alerts/nope", root, nil), 400)
	if a := decodeAlert(t, h.want(h.do("GET", path, root, nil), 200).body); a.Count != 20 {
		t.Fatalf("show: %+v", a)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ event, id, data string }

// openStream opens GET /v1/alerts/stream and sends its events on a channel
// until the test ends.
func openStream(t *testing.T, h *harness, token string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.Addr()+"/v1/alerts/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("stream: %d %s", res.StatusCode, b)
	}
	return readSSE(ctx, res)
}

// TestAlertStream: a stream opened before an alert is created receives it,
// and its update; the stream outlives the request deadline.
func TestAlertStream(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.RequestTimeout = time.Second })
	_, root := h.initUnseal(1, 1)
	ch := openStream(t, h, root)
	rule := &sigma.Rule{ID: "root-token", Title: "Root token used", Level: "critical"}
	now := time.Now()
	// Past the request deadline (1s) the stream is still open.
	waitFor(t, "the request deadline to pass", func() bool { return time.Since(now) > 1500*time.Millisecond })
	a, err := h.srv.Alerts().Record(context.Background(), testHit(rule, "root-token|x", 1, now, now, "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{1, 3} {
		select {
		case ev := <-ch:
			got := decodeAlert(t, []byte(ev.data))
			if ev.event != "alert" || got.ID != a.ID || got.Count != want || ev.id == "" {
				t.Fatalf("event %+v, want alert %s count %d", ev, a.ID, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for count %d", want)
		}
		if want == 1 {
			if _, err := h.srv.Alerts().Record(context.Background(), testHit(rule, "root-token|x", 3, now, now.Add(time.Second), "srv-1")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// receiver is a webhook receiver that fails its first failures requests.
type receiver struct {
	mu        sync.Mutex
	failures  int
	attempts  int
	delivered []delivery
	secret    []byte
	verifyErr error
}

type delivery struct {
	header http.Header
	body   []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.attempts <= r.failures {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	if err := webhook.Verify(r.secret, req.Header, b, time.Now(), 5*time.Minute); err != nil {
		r.verifyErr = err
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.delivered = append(r.delivered, delivery{req.Header.Clone(), b})
}

func (r *receiver) state() (attempts int, delivered []delivery, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts, append([]delivery(nil), r.delivered...), r.verifyErr
}

// TestNotifyWebhookSurvivesRestart: a new alert at the notifier's level is
// queued in the alert's own transaction and POSTed signed; the receiver
// fails the first attempts, the server restarts in between, and the
// receiver finally gets the alert exactly once with a valid signature. An
// alert below the level is not sent; the secret is never returned.
func TestNotifyWebhookSurvivesRestart(t *testing.T) {
	secret := "s3cr3t-shared-with-the-receiver"
	rcv := &receiver{failures: 3, secret: []byte(secret)}
	ts := httptest.NewServer(rcv)
	defer ts.Close()
	h := start(t, t.TempDir(), func(c *server.Config) { c.NotifyMinBackoff = 50 * time.Millisecond })
	keys, root := h.initUnseal(1, 1)

	h.want(h.do("POST", "/v1/notifiers", root, map[string]string{"name": "soc", "url": "http://example.com/hook", "secret": secret}), 400)
	h.want(h.do("POST", "/v1/notifiers", root, map[string]string{"name": "soc", "url": ts.URL + "/hook", "secret": "short"}), 400)
	h.want(h.do("POST", "/v1/notifiers", root, map[string]string{"name": "soc", "url": ts.URL + "/hook", "secret": secret, "min_level": "high"}), 200)
	list := h.want(h.do("GET", "/v1/notifiers", root, nil), 200)
	if strings.Contains(string(list.body), secret) || !strings.Contains(string(list.body), `"name":"soc"`) {
		t.Fatalf("notifier list: %s", list.body)
	}

	now := time.Now()
	low, err := h.srv.Alerts().Record(context.Background(), testHit(&sigma.Rule{ID: "fim-etc", Title: "FIM", Level: "medium"}, "fim|1", 1, now, now, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := h.srv.Alerts().Record(context.Background(), testHit(&sigma.Rule{ID: "ssh-brute", Title: "SSH brute force", Level: "high"}, "ssh|1", 10, now, now, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.srv.Notifiers().Pending(context.Background()); err != nil || n != 1 {
		t.Fatalf("outbox: %d, %v", n, err)
	}
	waitFor(t, "two failed attempts", func() bool { n, _, _ := rcv.state(); return n >= 2 })
	h.restart()
	h.unseal(keys[:1])
	waitFor(t, "the delivery", func() bool { _, d, _ := rcv.state(); return len(d) > 0 })
	waitFor(t, "an empty outbox", func() bool {
		n, err := h.srv.Notifiers().Pending(context.Background())
		return err == nil && n == 0
	})
	attempts, got, verr := rcv.state()
	if verr != nil || len(got) != 1 || attempts < 4 {
		t.Fatalf("attempts %d, deliveries %d, verify error %v", attempts, len(got), verr)
	}
	d := got[0]
	sent := decodeAlert(t, d.body)
	if sent.ID != a.ID || sent.ID == low.ID || sent.RuleID != "ssh-brute" || sent.Count != 10 {
		t.Fatalf("delivered %+v", sent)
	}
	if d.header.Get(webhook.HeaderDelivery) != a.ID+".soc" || d.header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", d.header)
	}
	ts2 := d.header.Get(webhook.HeaderTimestamp)
	var tsn int64
	fmt.Sscan(ts2, &tsn)
	if d.header.Get(webhook.HeaderSignature) != webhook.Sign([]byte(secret), tsn, d.body) {
		t.Fatal("signature does not match the documented scheme")
	}
	if m := h.want(h.do("GET", "/metrics", root, nil), 200); !strings.Contains(string(m.body), `warden_notifications_total{outcome="delivered"} 1`) {
		t.Fatalf("metrics lack the delivery:\n%s", m.body)
	}
	h.want(h.do("DELETE", "/v1/notifiers/soc", root, nil), 204)
	h.want(h.do("DELETE", "/v1/notifiers/soc", root, nil), 404)
}

// BenchmarkAlertsRecord: alerts recorded per second on one node (each a
// Raft command with its audit record): new alerts, and updates of one.
func BenchmarkAlertsRecord(b *testing.B) {
	h := start(b, b.TempDir(), nil)
	h.initUnseal(1, 1)
	rule := &sigma.Rule{ID: "bench", Title: "bench", Level: "medium"}
	now := time.Now()
	ctx := context.Background()
	n := 0 // keys stay new when -count runs a sub-benchmark again on the same server
	b.Run("create", func(b *testing.B) {
		for ; b.Loop(); n++ {
			if _, err := h.srv.Alerts().Record(ctx, testHit(rule, fmt.Sprint("c", n), 1, now, now, "web-1")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		for ; b.Loop(); n++ {
			if _, err := h.srv.Alerts().Record(ctx, testHit(rule, "u", int64(n+1), now, now, "web-1")); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAlertsRecordBatch: many hits in one commit, with one audit record
// naming every alert it changed; a replay changes nothing; the bound holds.
func TestAlertsRecordBatch(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	ctx := context.Background()
	al := h.srv.Alerts()
	brute := &sigma.Rule{ID: "ssh-brute", Title: "SSH brute force", Level: "high"}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if _, err := al.Record(ctx, testHit(brute, "k1", 10, t0, t0, "web-1")); err != nil {
		t.Fatal(err)
	}
	batch := []sigma.Hit{
		testHit(brute, "k1", 15, t0, t0.Add(time.Minute), "web-1"),
		testHit(brute, "k2", 10, t0, t0, "web-2"),
		testHit(brute, "k3", 12, t0, t0, "web-3"),
	}
	if err := al.RecordBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"k1": 15, "k2": 10, "k3": 12}
	updated := map[string]string{}
	for k, n := range want {
		a, err := al.Get(ctx, detect.AlertID(k))
		if err != nil || a.Count != n {
			t.Fatalf("alert %s: %+v, %v; want count %d", k, a, err, n)
		}
		updated[k] = a.Updated
	}
	// A replay of the same hits changes nothing.
	if err := al.RecordBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if a, _ := al.Get(ctx, detect.AlertID(k)); a.Updated != updated[k] {
			t.Fatalf("alert %s rewritten by a replay", k)
		}
	}
	// One audit record names the three alerts.
	h.mergeAudit()
	var out struct {
		Entries []struct {
			Entry map[string]any `json:"entry"`
		} `json:"entries"`
	}
	r := h.want(h.do("GET", "/v1/audit/entries?start=0&count=1000", root, nil), 200)
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range out.Entries {
		res, _ := e.Entry["resource"].(string)
		if e.Entry["action"] == "alert.record" && strings.Count(res, "Alert::") == 3 {
			found = true
		}
	}
	if !found {
		t.Fatal("no alert.record audit record names the batch's three alerts")
	}
	big := make([]sigma.Hit, detect.MaxRecordBatch+1)
	for i := range big {
		big[i] = testHit(brute, fmt.Sprint("b", i), 1, t0, t0, "web-1")
	}
	if err := al.RecordBatch(ctx, big); err == nil {
		t.Fatal("a batch over the bound was taken")
	}
	if _, err := al.Get(ctx, detect.AlertID("b0")); err == nil {
		t.Fatal("a refused batch stored an alert")
	}
}

// BenchmarkAlertsList: a page of 50 open alerts and the counts, with
// 20,000 stored alerts, while every iteration commits one other change
// first (as each audited request does), so the index is brought up to
// date each time; "full read" is what List did before the index: read
// and decode every stored alert.
func BenchmarkAlertsList(b *testing.B) {
	h := start(b, b.TempDir(), nil)
	h.initUnseal(1, 1)
	ctx := context.Background()
	now := time.Now()
	levels := []string{"low", "medium", "high", "critical"}
	for i := 0; i < 20000; {
		var hits []sigma.Hit
		for ; i < 20000 && len(hits) < 64; i++ {
			rule := &sigma.Rule{ID: fmt.Sprint("r", i%50), Title: "bench", Level: levels[i%4]}
			hits = append(hits, testHit(rule, fmt.Sprint("k", i), 1, now, now.Add(time.Duration(i)), fmt.Sprint("web-", i%1000)))
		}
		if err := h.srv.Alerts().RecordBatch(ctx, hits); err != nil {
			b.Fatal(err)
		}
	}
	al := h.srv.Alerts()
	other := func(b *testing.B, i int) {
		rctx, _ := h.srv.Audit().Pending(ctx, auditlog.SystemEntry(now, "bench", "bench", `Bench::"x"`))
		if _, err := h.srv.Core().Txn(rctx, kv.Txn{Ops: []kv.Op{{Type: kv.OpPut, Key: "bench/x", Value: []byte(fmt.Sprint(i))}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("page", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			other(b, i)
			if as, _, err := al.List(ctx, detect.Filter{Status: "open", Limit: 50}); err != nil || len(as) != 50 {
				b.Fatal(len(as), err)
			}
		}
	})
	b.Run("counts", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			other(b, i)
			if c, err := al.Count(ctx); err != nil || c.Total != 20000 {
				b.Fatal(c.Total, err)
			}
		}
	})
	b.Run("full read", func(b *testing.B) {
		for b.Loop() {
			es, err := h.srv.Core().List(ctx, "detect/alerts/", 0)
			if err != nil || len(es) != 20000 {
				b.Fatal(len(es), err)
			}
			for _, e := range es {
				var a detect.Alert
				if err := json.Unmarshal(e.Value, &a); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
