package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/authz"
)

func echo(req *request) (int, any, error) { return http.StatusOK, map[string]string{"ok": "yes"}, nil }

// TestRouteDeclarations: a route that does not declare what it is cannot
// be registered; New panics, naming the route.
func TestRouteDeclarations(t *testing.T) {
	tf := fixed(authz.ActionKVRead, authz.TypeSecret, "x")
	cases := []struct {
		name string
		rt   route
		want string
	}{
		{"no audit class", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, status: 200, h: echo}, "no audit class"},
		{"none not on the list", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, audit: auditNone, status: 200, h: echo}, "allowed only for the routes notAudited lists"},
		{"public none not on the list", route{method: "GET", pattern: "/t", name: "test.public", public: true, audit: auditNone, status: 200, h: echo}, "notAudited"},
		{"neither target nor public", route{method: "GET", pattern: "/t", name: "kv.read", audit: auditRead, status: 200, h: echo}, "exactly one"},
		{"both target and public", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, public: true, audit: auditRead, status: 200, h: echo}, "exactly one"},
		{"no status", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, audit: auditRead, h: echo}, "success status 0"},
		{"status 202", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, audit: auditRead, status: 202, h: echo}, "success status 202"},
		{"no handler", route{method: "GET", pattern: "/t", name: "kv.read", target: tf, audit: auditRead, status: 200}, "no handler"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				v := recover()
				msg, _ := v.(string)
				if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "GET /t") {
					t.Fatalf("panic %v, want one naming GET /t and %q", v, tc.want)
				}
			}()
			s := New(Config{RateLimit: -1, testRoutes: []route{tc.rt}})
			s.Close()
		})
	}
}

// TestRouteTable walks the table: every route is registered with a
// declared class and status, the unaudited ones are exactly the reviewed
// list, and the routes that give out protected data are audited.
func TestRouteTable(t *testing.T) {
	s := New(Config{RateLimit: -1, Gather: prometheus.NewRegistry()})
	defer s.Close()
	allowed := notAudited()
	used := map[string]bool{}
	byName := map[string]RouteInfo{}
	for _, rt := range s.Routes() {
		byName[rt.Name] = rt
		switch rt.Audit {
		case "none":
			if allowed[rt.Name] == "" {
				t.Errorf("%s %s is not audited and not on the list", rt.Method, rt.Pattern)
			}
			used[rt.Name] = true
		case "change", "read":
		default:
			t.Errorf("%s %s: audit class %q", rt.Method, rt.Pattern, rt.Audit)
		}
		if rt.Status != 200 && rt.Status != 201 && rt.Status != 204 {
			t.Errorf("%s %s: status %d", rt.Method, rt.Pattern, rt.Status)
		}
	}
	for name := range allowed {
		if !used[name] {
			t.Errorf("notAudited lists %s, which no unaudited route has: remove it", name)
		}
	}
	for name, class := range map[string]string{"audit.hash": "read", "kv.read": "read", "raft.snapshot.save": "read",
		"audit.entries": "read", "token.lookup": "read", "kv.write": "change", "pki.enroll": "change", "metrics.read": "none"} {
		if byName[name].Audit != class {
			t.Errorf("%s: class %q, want %q", name, byName[name].Audit, class)
		}
	}
	if m := byName["metrics.read"]; !m.Auth || m.Pattern != "/metrics" {
		t.Errorf("/metrics: %+v, want a guarded route", m)
	}
	pub := New(Config{RateLimit: -1, Gather: prometheus.NewRegistry(), MetricsPublic: true})
	defer pub.Close()
	for _, rt := range pub.Routes() {
		if rt.Name == "metrics.read" && rt.Auth {
			t.Error("/metrics guarded with MetricsPublic")
		}
	}
}

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPanicIsLoud: a panic in a handler answers a JSON 500 naming the
// request id, and is logged at ERROR with the route and that id; the
// server keeps serving.
func TestPanicIsLoud(t *testing.T) {
	var logs lockedBuffer
	s := New(Config{RateLimit: -1, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		testRoutes: []route{
			{method: "GET", pattern: "/v1/test/panic", name: "sys.health", public: true, audit: auditNone, status: 200,
				h: func(*request) (int, any, error) { panic("storage is corrupt") }},
		}})
	defer s.Close()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/v1/test/panic", nil))
	if w.Code != 500 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var body errorBody
	id := w.Header().Get("X-Request-Id")
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || id == "" || !strings.Contains(body.Errors[0], id) {
		t.Fatalf("body %s, request id %q", w.Body, id)
	}
	var line map[string]any
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "panic") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["level"] != "ERROR" || line["route"] != "sys.health" || line["request_id"] != id || line["panic"] != "storage is corrupt" {
		t.Fatalf("log line %v; logs:\n%s", line, logs.String())
	}
}

// TestSlowBodyCut: a client that sends half its body and stalls gets a
// JSON 408 at the request deadline, not a hang until the connection's
// read timeout.
func TestSlowBodyCut(t *testing.T) {
	s := New(Config{RateLimit: -1, RequestTimeout: 200 * time.Millisecond,
		testRoutes: []route{
			{method: "POST", pattern: "/v1/test/slow", name: "sys.init", public: true, audit: auditNone, status: 200,
				h: func(req *request) (int, any, error) {
					var in initRequest
					if err := req.decode(&in, false); err != nil {
						return 0, nil, err
					}
					return http.StatusOK, in, nil
				}},
		}})
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"key_shares": 1, "key_threshold": 1}`
	half := body[:len(body)/2]
	if _, err := io.WriteString(conn, "POST /v1/test/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+half); err != nil {
		t.Fatal(err)
	}
	// The client sends nothing more; the server answers on its own.
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a stalled body: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var e errorBody
	if res.StatusCode != http.StatusRequestTimeout || json.Unmarshal(b, &e) != nil || len(e.Errors) != 1 ||
		!strings.Contains(e.Errors[0], "request deadline") {
		t.Fatalf("status %d, body %s", res.StatusCode, b)
	}
}

// TestAuthFailureTable: the failure budget throttles after its burst, the
// table sums per (address, reason), and addresses beyond its bound fold
// into one row.
func TestAuthFailureTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newAuthFailures(5, 20, 3)
	for i := range 20 {
		if th, _ := f.add("a", "authenticate", 401, now); th {
			t.Fatalf("throttled at failure %d of a burst of 20", i+1)
		}
	}
	th, wait := f.add("a", "authenticate", 401, now)
	if !th || wait != 1 {
		t.Fatalf("21st failure: throttled %v, wait %d", th, wait)
	}
	if out, _ := f.exhausted("a", now); !out {
		t.Fatal("budget not exhausted")
	}
	if out, _ := f.exhausted("a", now.Add(time.Second)); out {
		t.Fatal("budget not refilled after a second at 5/s")
	}
	if out, _ := f.exhausted("b", now); out {
		t.Fatal("another address is exhausted")
	}
	f.add("a", "pki.enroll", 400, now)
	f.add("c", "authenticate", 401, now) // the third row
	f.add("d", "authenticate", 401, now) // beyond the bound
	f.add("e", "authenticate", 401, now)
	rows := f.take(now)
	want := map[failKey]uint64{{"a", "authenticate"}: 21, {"a", "pki.enroll"}: 1, {"c", "authenticate"}: 1, {otherAddr, "authenticate"}: 2}
	if len(rows) != len(want) {
		t.Fatalf("rows %v", rows)
	}
	for k, n := range want {
		if rows[k] == nil || rows[k].count != n {
			t.Errorf("row %v: %+v, want count %d", k, rows[k], n)
		}
	}
	if rows[failKey{"a", "authenticate"}].status != 429 {
		t.Errorf("the last status of a throttled row: %d", rows[failKey{"a", "authenticate"}].status)
	}
	if len(f.take(now)) != 0 {
		t.Fatal("take did not empty the table")
	}
	if len(f.budgets) > 3+1 {
		t.Fatalf("%d budgets for a bound of 3", len(f.budgets))
	}
}

// TestAuditFailedTellsTheTruth: the log says a record was not committed
// only when that is known; a record abandoned at the deadline may still
// commit, and the log says so.
func TestAuditFailedTellsTheTruth(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"deadline", fmt.Errorf("audit record not committed in time: %w", context.DeadlineExceeded), "not confirmed before the request's deadline (it may still commit)"},
		{"sink", fmt.Errorf("emit: %w", auditlog.ErrSinkFailed), "audit record not committed;"},
		{"other", errors.New("leadership lost"), "not confirmed committed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			s := New(Config{RateLimit: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer s.Close()
			w := httptest.NewRecorder()
			req := &request{Request: httptest.NewRequest("GET", "/", nil), w: w, s: s, id: "r-1"}
			if got := s.auditFailed(req, tc.err); got != http.StatusServiceUnavailable {
				t.Fatalf("status %d", got)
			}
			if !strings.Contains(logs.String(), tc.want) || !strings.Contains(logs.String(), "level=ERROR") {
				t.Fatalf("log %q, want %q", logs.String(), tc.want)
			}
		})
	}
}

// TestRouteTimeout: a route that declares its own timeout gives its handler
// that deadline instead of the server's request timeout (the join waits
// for the leader to promote the node, longer than a request on a loaded
// cluster).
func TestRouteTimeout(t *testing.T) {
	deadlines := make(chan time.Duration, 2)
	h := func(req *request) (int, any, error) {
		d, ok := req.Context().Deadline()
		if !ok {
			return 0, nil, errors.New("no deadline")
		}
		deadlines <- time.Until(d)
		return http.StatusOK, map[string]string{}, nil
	}
	s := New(Config{RateLimit: -1, RequestTimeout: time.Second,
		testRoutes: []route{
			{method: "GET", pattern: "/v1/test/long", name: "sys.health", public: true, audit: auditNone, status: 200, h: h, timeout: time.Hour},
			{method: "GET", pattern: "/v1/test/short", name: "sys.health", public: true, audit: auditNone, status: 200, h: h},
		}})
	defer s.Close()
	for _, path := range []string{"/v1/test/long", "/v1/test/short"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	if long, short := <-deadlines, <-deadlines; long <= 30*time.Minute || short > time.Second {
		t.Fatalf("handler deadlines: %v with a route timeout of 1h, %v with the server's 1s", long, short)
	}
	for _, rt := range s.routes {
		if rt.name == "raft.join-cluster" && rt.timeout != JoinTimeout {
			t.Fatalf("the join route's timeout is %v, want %v", rt.timeout, JoinTimeout)
		}
	}
}

// TestRouteTimeoutOutlivesWriteTimeout: over real TLS, a route with a
// timeout of its own answers after the server's write timeout has passed
// and the client reads the answer intact (it read "tls: bad record MAC"
// when the server's write deadline cut the response: CI, the raft join).
func TestRouteTimeoutOutlivesWriteTimeout(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	h := func(req *request) (int, any, error) {
		// The answer is written once the server's write deadline passed.
		<-time.After(2 * writeTimeout)
		return http.StatusOK, map[string]string{"joined": "yes"}, nil
	}
	s := New(Config{RateLimit: -1, RequestTimeout: time.Second,
		testRoutes: []route{{method: "GET", pattern: "/v1/test/long", name: "sys.health", public: true, audit: auditNone, status: 200, h: h, timeout: 10 * time.Second}}})
	defer s.Close()
	srv := httptest.NewUnstartedServer(s)
	srv.Config.WriteTimeout = writeTimeout
	srv.StartTLS()
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/v1/test/long")
	if err != nil {
		t.Fatalf("the answer after the write timeout: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(b), `"joined":"yes"`) {
		t.Fatalf("status %d, body %q, err %v", res.StatusCode, b, err)
	}
}
