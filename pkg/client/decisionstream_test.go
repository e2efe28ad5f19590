package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests speak the stream's wire format (docs/response.md, "The
// decision stream") from an httptest server, for the protocol's edge
// cases: resumption, reset, malformed input, silence, failover. The
// follower against real servers is tested in internal/server.

// streamConn is one stream request the test answers by hand: the lines
// it sends are written by the handler's goroutine.
type streamConn struct {
	since string
	out   chan []string
	end   chan struct{} // closed by the test: the handler returns
	gone  <-chan struct{}
}

// send has the handler write lines; once the follower has hung up, it
// does nothing.
func (c *streamConn) send(t *testing.T, lines ...string) {
	t.Helper()
	select {
	case c.out <- lines:
	case <-c.gone:
	}
}

// streamServer hands every stream request to the test on conns; a
// request gets status instead while status is not 200.
type streamServer struct {
	conns  chan *streamConn
	client *Client
	mu     sync.Mutex
	status int
}

func newStreamServer(t *testing.T) *streamServer {
	s := &streamServer{conns: make(chan *streamConn, 16), status: 200}
	_, s.client = tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/decisions/stream" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "not the stream", 404)
			return
		}
		s.mu.Lock()
		st := s.status
		s.mu.Unlock()
		if st != 200 {
			w.WriteHeader(st)
			io.WriteString(w, `{"errors": ["sealed"]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		c := &streamConn{since: r.URL.Query().Get("since"), out: make(chan []string), end: make(chan struct{}), gone: r.Context().Done()}
		s.conns <- c
		for {
			select {
			case lines := <-c.out:
				for _, l := range lines {
					io.WriteString(w, l+"\n")
				}
				w.(http.Flusher).Flush()
			case <-c.end:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	return s
}

func (s *streamServer) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func (s *streamServer) next(t *testing.T) *streamConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the follower to connect")
		return nil
	}
}

// changes records the states OnChange sees.
type changes chan *DecisionState

func (ch changes) next(t *testing.T) *DecisionState {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a change")
		return nil
	}
}

func ban(id string, rev uint64, ip string, exp time.Time) DecisionRecord {
	return DecisionRecord{ID: id, Revision: rev, Type: "ban", Target: DecisionTarget{IP: ip}, ExpiresAt: exp.UTC().Format(time.RFC3339)}
}

func event(t *testing.T, kind string, id uint64, v any) []string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"event: " + kind, fmt.Sprint("id: ", id), "data: " + string(b), ""}
}

func syncEvent(rev uint64) []string {
	return []string{"event: sync", fmt.Sprint("id: ", rev), fmt.Sprintf(`data: {"revision": %d}`, rev), ""}
}

func startFollower(t *testing.T, cfg FollowerConfig) (*Follower, changes) {
	t.Helper()
	ch := make(changes, 64)
	cfg.OnChange = func(st *DecisionState) { ch <- st }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == 0 {
		cfg.Backoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	f, err := NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})
	return f, ch
}

// TestFollowerResetResumeDelete: a first connection gets a reset; a
// reconnection resumes with since = the last sync; changes, tombstones
// and a reset on a resumed stream are applied; nothing is in force before
// its sync.
func TestFollowerResetResumeDelete(t *testing.T) {
	srv := newStreamServer(t)
	exp := time.Now().Add(time.Hour)
	f, ch := startFollower(t, FollowerConfig{Clients: []*Client{srv.client}})
	select {
	case <-f.Synced():
		t.Fatal("synced before any sync")
	default:
	}
	if st := f.State(); st == nil || st.Revision != 0 || len(st.Decisions) != 0 {
		t.Fatalf("initial state %+v", st)
	}

	c := srv.next(t)
	if c.since != "" {
		t.Fatalf("first connection since=%q", c.since)
	}
	c.send(t, `event: reset`, `data: {"revision": 10}`, ``)
	c.send(t, event(t, "decision", 5, ban("dec-a", 5, "203.0.113.7", exp))...)
	c.send(t, event(t, "allow", 6, AllowEntry{ID: "allow-1", CIDR: "10.0.0.0/8"})...)
	c.send(t, event(t, "revocation", 7, Revocation{Serial: "00AB12", ExpiresAt: exp.Format(time.RFC3339), Revision: 7})...)
	c.send(t, syncEvent(10)...)
	st := ch.next(t)
	<-f.Synced()
	if st.Revision != 10 || len(st.Decisions) != 1 || len(st.Allow) != 1 || !st.RevokedSerial("ab12") || f.State() != st {
		t.Fatalf("after reset: %+v", st)
	}
	if _, ok := st.BannedIP(netip.MustParseAddr("::ffff:203.0.113.7"), "", time.Now()); !ok {
		t.Fatal("mapped address of a banned IP not banned")
	}

	// A change, then a tombstone, each followed by a sync.
	c.send(t, event(t, "decision", 11, ban("dec-b", 11, "198.51.100.1", exp))...)
	c.send(t, syncEvent(11)...)
	if st := ch.next(t); st.Revision != 11 || len(st.Decisions) != 2 {
		t.Fatalf("after add: %+v", st)
	}
	del := ban("dec-a", 12, "203.0.113.7", exp)
	del.Deleted = true
	c.send(t, event(t, "decision", 12, del)...)
	c.send(t, syncEvent(12)...)
	if st := ch.next(t); st.Revision != 12 || len(st.Decisions) != 1 || st.Decisions["dec-b"].ID == "" {
		t.Fatalf("after delete: %+v", st)
	}

	// A change without its sync, then the connection breaks: not in force;
	// the follower resumes from 12 and gets it again.
	c.send(t, event(t, "decision", 13, ban("dec-c", 13, "192.0.2.1", exp))...)
	close(c.end)
	c = srv.next(t)
	if c.since != "12" {
		t.Fatalf("resumed with since=%q, want 12", c.since)
	}
	if st := f.State(); st.Revision != 12 || len(st.Decisions) != 1 {
		t.Fatalf("a change without its sync is in force: %+v", st)
	}
	c.send(t, event(t, "decision", 13, ban("dec-c", 13, "192.0.2.1", exp))...)
	c.send(t, syncEvent(13)...)
	if st := ch.next(t); st.Revision != 13 || len(st.Decisions) != 2 {
		t.Fatalf("after resume: %+v", st)
	}

	// A resumed stream may still reset (the server's horizon passed it):
	// the new set replaces the old one entirely, at its sync.
	close(c.end)
	c = srv.next(t)
	c.send(t, `event: reset`, `data: {"revision": 40}`, ``)
	c.send(t, event(t, "decision", 39, ban("dec-z", 39, "192.0.2.99", exp))...)
	if st := f.State(); st.Revision != 13 {
		t.Fatalf("a reset is in force before its sync: %+v", st)
	}
	c.send(t, syncEvent(40)...)
	if st := ch.next(t); st.Revision != 40 || len(st.Decisions) != 1 || st.Decisions["dec-z"].ID == "" || len(st.Allow) != 0 {
		t.Fatalf("after a second reset: %+v", st)
	}
}

// TestFollowerMalformed: a stream that breaks the protocol is dropped and
// the state kept; unknown events and fields are skipped.
func TestFollowerMalformed(t *testing.T) {
	srv := newStreamServer(t)
	exp := time.Now().Add(time.Hour)
	f, ch := startFollower(t, FollowerConfig{Clients: []*Client{srv.client}})
	c := srv.next(t)
	c.send(t, `event: reset`, `data: {"revision": 3}`, ``)
	c.send(t, `: heartbeat`, `retry: 100`, `event: later-feature`, `data: {}`, ``, `nonsense-without-colon`, ``)
	c.send(t, event(t, "decision", 2, ban("dec-a", 2, "203.0.113.7", exp))...)
	c.send(t, syncEvent(3)...)
	if st := ch.next(t); st.Revision != 3 || len(st.Decisions) != 1 {
		t.Fatalf("with skipped lines: %+v", st)
	}
	for name, lines := range map[string][]string{
		"decision not JSON":  {"event: decision", "data: {not json", ""},
		"decision no id":     {"event: decision", `data: {"type": "ban"}`, ""},
		"sync no revision":   {"event: sync", `data: {}`, ""},
		"line too long":      {"data: " + strings.Repeat("x", MaxStreamLine+1)},
		"event too large":    {"event: decision", "data: " + strings.Repeat("x", MaxStreamEvent/2), "data: " + strings.Repeat("x", MaxStreamEvent/2), ""},
		"revocation no key":  {"event: revocation", `data: {"serial": ""}`, ""},
		"allow not an entry": {"event: allow", `data: []`, ""},
	} {
		c.send(t, lines...)
		select {
		case <-c.gone:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the follower kept the stream", name)
		}
		c = srv.next(t)
		if c.since != "3" {
			t.Fatalf("%s: resumed with since=%q", name, c.since)
		}
		if st := f.State(); st.Revision != 3 || len(st.Decisions) != 1 {
			t.Fatalf("%s: state changed: %+v", name, st)
		}
	}
}

// TestFollowerSilenceAndFailover: a stream that goes silent is dropped
// and the next server tried; a server that refuses (503) is skipped; the
// state is kept throughout.
func TestFollowerSilenceAndFailover(t *testing.T) {
	a, b := newStreamServer(t), newStreamServer(t)
	exp := time.Now().Add(time.Hour)
	f, ch := startFollower(t, FollowerConfig{Clients: []*Client{a.client, b.client}, Silence: 300 * time.Millisecond})
	c := a.next(t)
	c.send(t, `event: reset`, `data: {"revision": 7}`, ``)
	c.send(t, event(t, "decision", 7, ban("dec-a", 7, "203.0.113.7", exp))...)
	c.send(t, syncEvent(7)...)
	ch.next(t)
	// Then nothing: the follower gives up on a and goes to b.
	a.setStatus(503)
	c2 := b.next(t)
	select {
	case <-c.gone:
	case <-time.After(20 * time.Second):
		t.Fatal("the silent stream from a is still open")
	}
	if c2.since != "7" {
		t.Fatalf("b: since=%q", c2.since)
	}
	// b breaks too: a refuses (503), so the follower comes back to b.
	close(c2.end)
	c3 := b.next(t)
	if c3.since != "7" {
		t.Fatalf("back to b: since=%q", c3.since)
	}
	if st := f.State(); st.Revision != 7 || len(st.Decisions) != 1 {
		t.Fatalf("state lost during failover: %+v", st)
	}
	c3.send(t, syncEvent(8)...)
	if st := ch.next(t); st.Revision != 8 || len(st.Decisions) != 1 {
		t.Fatalf("after failover: %+v", st)
	}
}

// TestFollowerHeartbeatsKeepAlive: heartbeats alone keep a stream open
// past the silence limit.
func TestFollowerHeartbeatsKeepAlive(t *testing.T) {
	srv := newStreamServer(t)
	_, ch := startFollower(t, FollowerConfig{Clients: []*Client{srv.client}, Silence: 2 * time.Second})
	c := srv.next(t)
	c.send(t, syncEvent(1)...)
	ch.next(t)
	// Heartbeats every 400 ms for longer than the silence limit (5 × 400
	// ms > 2 s): the stream must survive. A dropped stream shows as a
	// closed request.
	for i := 0; i < 5; i++ {
		select {
		case <-c.gone:
			t.Fatalf("stream dropped despite heartbeats (after %d)", i)
		case <-time.After(400 * time.Millisecond): // the heartbeat period under test, not synchronisation
		}
		c.send(t, ": heartbeat")
	}
	c.send(t, syncEvent(2)...)
	if st := ch.next(t); st.Revision != 2 {
		t.Fatalf("revision %d", st.Revision)
	}
}

// TestFollowerCache: the synced state is written (0600) and loaded by a
// new follower, which enforces it before any server answers, and resumes
// from its revision.
func TestFollowerCache(t *testing.T) {
	srv := newStreamServer(t)
	file := filepath.Join(t.TempDir(), "decisions.json")
	exp := time.Now().Add(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := NewFollower(FollowerConfig{Clients: []*Client{srv.client}, CacheFile: file, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	c := srv.next(t)
	c.send(t, `event: reset`, `data: {"revision": 5}`, ``)
	c.send(t, event(t, "decision", 5, ban("dec-a", 5, "203.0.113.7", exp))...)
	c.send(t, syncEvent(5)...)
	<-f.Synced()
	cancel()
	<-done
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}

	srv.setStatus(503) // the cluster is unreachable
	g, ch := startFollower(t, FollowerConfig{Clients: []*Client{srv.client}, CacheFile: file})
	if st := ch.next(t); st.Revision != 5 { // OnChange at start, from the cache
		t.Fatalf("cached state: %+v", st)
	}
	if _, ok := g.State().BannedIP(netip.MustParseAddr("203.0.113.7"), "", time.Now()); !ok {
		t.Fatal("the cached ban is not enforced")
	}
	select {
	case <-g.Synced():
		t.Fatal("a cache load counts as a sync")
	default:
	}
	srv.setStatus(200)
	if c := srv.next(t); c.since != "5" {
		t.Fatalf("resumed from the cache with since=%q", c.since)
	}

	// A damaged cache file is ignored.
	for _, bad := range []string{`{`, `{"version": 2}`, `{"version": 1, "decisions": [{"id": ""}]}`, `{"version": 1, "x": 1}`, `{"version":1} {}`} {
		if _, err := decodeDecisionCache([]byte(bad)); err == nil {
			t.Errorf("cache %q accepted", bad)
		}
	}
}

// TestDecisionStateHelpers: what the enforcers ask of a state.
func TestDecisionStateHelpers(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	later, past := now.Add(time.Hour), now.Add(-time.Second)
	withZone := func(d DecisionRecord, z string) DecisionRecord { d.Zone = z; return d }
	sim := ban("dec-sim", 1, "192.0.2.2", later)
	sim.Simulated = true
	pend := ban("dec-pend", 1, "192.0.2.3", later)
	pend.PendingApproval = true
	cidr := DecisionRecord{ID: "dec-cidr", Type: "ban", Target: DecisionTarget{CIDR: "198.51.100.0/24"}, ExpiresAt: later.Format(time.RFC3339)}
	mapped := DecisionRecord{ID: "dec-mapped", Type: "ban", Target: DecisionTarget{CIDR: "::ffff:100.64.0.0/112"}, ExpiresAt: later.Format(time.RFC3339)}
	office := ban("dec-office", 1, "10.1.2.3", later)
	q := DecisionRecord{ID: "dec-q", Type: "quarantine", Target: DecisionTarget{Node: "web-3"}, ExpiresAt: later.Format(time.RFC3339)}
	qAllowed := DecisionRecord{ID: "dec-q2", Type: "quarantine", Target: DecisionTarget{Node: "gw-1"}, ExpiresAt: later.Format(time.RFC3339)}
	s := &DecisionState{Decisions: map[string]DecisionRecord{}, Allow: map[string]AllowEntry{
		"allow-1": {ID: "allow-1", CIDR: "10.0.0.0/8"}, "allow-2": {ID: "allow-2", Node: "gw-1"}},
		Revoked: map[string]Revocation{"ab12": {Serial: "ab12"}}}
	for _, d := range []DecisionRecord{ban("dec-ip", 1, "203.0.113.7", later), ban("dec-old", 1, "192.0.2.1", past),
		withZone(ban("dec-dmz", 1, "192.0.2.4", later), "dmz"), sim, pend, cidr, mapped, office, q, qAllowed,
		ban("dec-v6", 1, "2001:db8::1", later), {ID: "dec-bad", Type: "ban", Target: DecisionTarget{IP: "192.0.2.5"}, ExpiresAt: "soon"}} {
		s.Decisions[d.ID] = d
	}
	for _, tc := range []struct {
		ip, zone, want string
	}{
		{"203.0.113.7", "", "dec-ip"},
		{"::ffff:203.0.113.7", "plant", "dec-ip"},
		{"203.0.113.8", "", ""},
		{"192.0.2.1", "", ""}, // expired
		{"192.0.2.4", "dmz", "dec-dmz"},
		{"192.0.2.4", "plant", ""},
		{"192.0.2.4", "", ""},
		{"192.0.2.2", "", ""}, // simulated
		{"192.0.2.3", "", ""}, // pending approval
		{"192.0.2.5", "", ""}, // expiry does not parse
		{"198.51.100.77", "", "dec-cidr"},
		{"100.64.3.4", "", "dec-mapped"},
		{"10.1.2.3", "", ""}, // never-block list
		{"2001:db8::1", "", "dec-v6"},
		{"2001:db8::2", "", ""},
	} {
		d, ok := s.BannedIP(netip.MustParseAddr(tc.ip), tc.zone, now)
		if d.ID != tc.want || ok != (tc.want != "") {
			t.Errorf("BannedIP(%s, %q) = %s %v, want %q", tc.ip, tc.zone, d.ID, ok, tc.want)
		}
	}
	if d, ok := s.Quarantined("web-3", now); !ok || d.ID != "dec-q" {
		t.Errorf("Quarantined(web-3) = %v %v", d.ID, ok)
	}
	if _, ok := s.Quarantined("web-3", later); ok {
		t.Error("quarantine in force at its expiry")
	}
	if _, ok := s.Quarantined("gw-1", now); ok {
		t.Error("allow-listed node quarantined")
	}
	if e, ok := s.AllowHit(office); !ok || e.ID != "allow-1" {
		t.Errorf("AllowHit(office) = %v %v", e, ok)
	}
	if e, ok := s.AllowHit(DecisionRecord{Type: "ban", Target: DecisionTarget{CIDR: "10.200.0.0/16"}}); !ok || e.ID != "allow-1" {
		t.Errorf("AllowHit(overlapping cidr) = %v %v", e, ok)
	}
	if e, ok := s.AllowHit(DecisionRecord{Type: "quarantine", Target: DecisionTarget{Node: "db-1"}, Addresses: []string{"10.9.9.9"}}); !ok || e.ID != "allow-1" {
		t.Errorf("AllowHit(quarantine of an allow-listed address) = %v %v", e, ok)
	}
	for _, serial := range []string{"ab12", "AB12", "00ab12"} {
		if !s.RevokedSerial(serial) {
			t.Errorf("RevokedSerial(%s) false", serial)
		}
	}
	if s.RevokedSerial("ab13") {
		t.Error("RevokedSerial(ab13)")
	}
	var ids []string
	for _, d := range s.Active(now) {
		ids = append(ids, d.ID)
	}
	want := "dec-cidr dec-dmz dec-ip dec-mapped dec-office dec-q dec-q2 dec-sim dec-v6"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("Active = %s\nwant     %s", got, want)
	}
}

// FuzzDecisionStream: any bytes from a server are read within the bounds
// and either applied or refused; never a panic, never more than
// MaxDecisionItems held, nothing in force before a sync.
func FuzzDecisionStream(f *testing.F) {
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	f.Add([]byte("event: reset\ndata: {\"revision\": 3}\n\nevent: decision\nid: 2\ndata: {\"id\":\"dec-a\",\"type\":\"ban\",\"target\":{\"ip\":\"203.0.113.7\"},\"expires_at\":\"" + exp + "\"}\n\nevent: sync\ndata: {\"revision\": 3}\n\n"))
	f.Add([]byte(": heartbeat\r\n\r\nevent: allow\r\ndata: {\"id\":\"allow-1\",\"cidr\":\"::ffff:10.0.0.0/104\"}\r\n\r\nevent: sync\ndata: {\"revision\": 1}\n\n"))
	f.Add([]byte("event: revocation\ndata: {\"serial\": \"00\"}\n\nevent: decision\ndata: {\"id\":\"x\",\"deleted\":true}\n\nevent: sync\ndata: {\"revision\": 0}\n\n"))
	f.Add([]byte("data\ndata:\ndata: a\n\nevent\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := newSSEReader(bytes.NewReader(b), nil)
		ap := &applier{cur: emptyState(), now: func() time.Time { return time.Unix(1e9, 0) }}
		ap.cur.idx = buildIndex(ap.cur)
		published := ap.cur
		for {
			ev, err := rd.next()
			if err != nil {
				break
			}
			if len(ev.Data) > MaxStreamEvent {
				t.Fatalf("event of %d bytes", len(ev.Data))
			}
			st, err := ap.apply(ev)
			if err != nil {
				break
			}
			if st != nil {
				published = st
			}
			if ap.cur != published {
				t.Fatal("the current state changed without a sync")
			}
		}
		if published.items() > MaxDecisionItems {
			t.Fatal("too many items")
		}
		for _, ip := range []string{"203.0.113.7", "10.1.1.1", "::1"} {
			published.BannedIP(netip.MustParseAddr(ip), "", time.Unix(1e9, 0))
		}
		for _, d := range published.Decisions {
			published.AllowHit(d)
			published.Quarantined(d.Target.Node, time.Unix(1e9, 0))
		}
	})
}

// FuzzDecisionCache: a damaged cache file is refused or loaded within the
// bounds, never a panic.
func FuzzDecisionCache(f *testing.F) {
	f.Add([]byte(`{"version":1,"revision":5,"decisions":[{"id":"dec-a","type":"ban","target":{"ip":"203.0.113.7"},"expires_at":"2030-01-01T00:00:00Z"}],"allow":[],"revoked":[{"serial":"0a"}]}`))
	f.Add([]byte(`{"version":1,"decisions":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeDecisionCache(b)
		if err != nil {
			return
		}
		if st.items() > MaxDecisionItems {
			t.Fatal("too many items")
		}
		st.BannedIP(netip.MustParseAddr("203.0.113.7"), "", time.Unix(1e9, 0))
	})
}
