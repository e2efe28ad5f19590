package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/sigma"
)

// waitPlane waits for the server's event plane.
func waitPlane(t testing.TB, srv *server.Server) *events.Plane {
	t.Helper()
	select {
	case <-srv.EventPlaneReady():
		return srv.EventPlane()
	case <-time.After(60 * time.Second):
		t.Fatal("the event plane did not start within 60s")
	}
	return nil
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postBatchReq is a request of an already gzipped batch.
func (h *harness) postBatchReq(seq uint64, gzipped []byte) *http.Request {
	req, err := http.NewRequest("POST", h.srv.Addr()+"/v1/events", bytes.NewReader(gzipped))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Warden-Batch-Epoch", "00000000000000be")
	req.Header.Set("Warden-Batch-Seq", strconv.FormatUint(seq, 10))
	return req
}

// postBatch posts a batch as the node (gzip unless plain).
func (h *harness) postBatch(cl *http.Client, epoch string, seq uint64, body []byte, plain bool) resp {
	h.t.Helper()
	if !plain {
		body = gz(h.t, body)
	}
	req, err := http.NewRequest("POST", h.srv.Addr()+"/v1/events", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if !plain {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("Warden-Batch-Epoch", epoch)
	req.Header.Set("Warden-Batch-Seq", strconv.FormatUint(seq, 10))
	res, err := cl.Do(req)
	if err != nil {
		h.t.Fatalf("POST /v1/events: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b, header: res.Header}
}

func sshLines(n int, host string) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"@timestamp":"2026-12-02T10:00:%02dZ","event.module":"sshd","event.dataset":"sshd","source.ip":"203.0.113.7","user.name":"root","event.outcome":"failure","message":"Failed password for root from 203.0.113.7 port %d","host.name":%q,"agent.id":"forged"}`+"\n",
			i%60, 50000+i, host)
	}
	return b.Bytes()
}

// storedBatches returns every batch in the stream.
// waitServerEvent polls the stored events (up to 20 s) for one of this
// server's own events with action for user, and returns it.
func waitServerEvent(t testing.TB, p *events.Plane, action, user string) events.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, b := range storedBatches(t, p) {
			for _, ev := range b.Events {
				if ev.String("event.action") == action && ev.String("user.name") == user {
					return ev
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s server event for %s", action, user)
		}
		time.Sleep(50 * time.Millisecond) // polling an observable condition
	}
}

// builtinMatches returns the built-in Sigma rules ev matches.
func builtinMatches(t testing.TB, ev events.Event) []*sigma.Rule {
	t.Helper()
	rules, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	set, err := sigma.Compile(rules, sigma.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return set.Match(ev, nil)
}

func storedBatches(t testing.TB, p *events.Plane) []events.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	last, err := p.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Batch
	if last == 0 {
		return nil
	}
	stop := fmt.Errorf("stop")
	err = p.Consume(ctx, 1, func(b events.Batch) error {
		out = append(out, b)
		if b.StreamSeq >= last {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatal(err)
	}
	return out
}

// nodeBatches are the stored batches of one node.
func nodeBatches(bs []events.Batch, node string) (n int, evs []events.Event) {
	for _, b := range bs {
		if b.Node == node {
			n++
			evs = append(evs, b.Events...)
		}
	}
	return n, evs
}

// TestEventsIngest: a node's batches over mutual TLS are stored once each,
// stamped with the node's identity; a duplicate, a bad batch and a revoked
// node store nothing; searching finds the events; the revoked certificate
// is itself an event of the server.
func TestEventsIngest(t *testing.T) {
	h := start(t, t.TempDir(), func(c *server.Config) { c.EventsMaxBatchBytes = 256 << 10 })
	_, root := h.initUnseal(1, 1)
	p := waitPlane(t, h.srv)
	node := h.enroll(root, "web-1", "1h")
	cl := h.nodeClient(node)
	defer cl.CloseIdleConnections()
	const epoch = "0123456789abcdef"

	r := h.want(h.postBatch(cl, epoch, 1, sshLines(20, "forged-host"), false), 200).json(t)
	if r["events"] != float64(20) || r["duplicate"] != false || r["stream_seq"] == float64(0) {
		t.Fatalf("first batch: %v", r)
	}
	seq1 := r["stream_seq"]
	r = h.want(h.postBatch(cl, epoch, 1, sshLines(20, "forged-host"), false), 200).json(t)
	if r["duplicate"] != true || r["stream_seq"] != seq1 {
		t.Errorf("same batch again: %v", r)
	}
	n, evs := nodeBatches(storedBatches(t, p), "web-1")
	if n != 1 || len(evs) != 20 {
		t.Fatalf("stored %d batches, %d events of web-1; want 1, 20", n, len(evs))
	}
	for _, ev := range evs {
		if ev.String("host.name") != "web-1" || !strings.HasSuffix(ev.String("agent.id"), "/node/web-1") || ev.String("event.ingested") == "" {
			t.Fatalf("event not stamped from the certificate: %v", ev)
		}
	}

	big := `{"message":"` + strings.Repeat("x", events.MaxEventBytes) + `"}` + "\n"
	bad := []struct {
		name   string
		body   []byte
		plain  bool
		status int
		says   string
	}{
		{"invalid JSON on line 3", []byte("{\"message\":\"a\"}\n{\"message\":\"b\"}\n{\"message\":\n"), false, 400, "line 3"},
		{"not an object", []byte("[1,2]\n"), false, 400, "line 1"},
		{"nested object", []byte(`{"source":{"ip":"1.2.3.4"}}` + "\n"), false, 400, "nested"},
		{"event over 64 KiB", []byte("{\"message\":\"a\"}\n" + big), false, 413, "line 2"},
		{"batch over the limit, decompressed", bytes.Repeat([]byte(`{"message":"`+strings.Repeat("y", 1000)+`"}`+"\n"), 300), false, 413, "decompressed"},
		{"batch over the limit, plain", bytes.Repeat([]byte(`{"message":"`+strings.Repeat("y", 1000)+`"}`+"\n"), 300), true, 413, "larger than"},
		{"gzip header on a plain body", []byte("{\"message\":\"a\"}\n"), true, 400, ""},
		{"empty", nil, false, 400, "no events"},
	}
	for i, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			var rr resp
			if tc.name == "gzip header on a plain body" {
				req, _ := http.NewRequest("POST", h.srv.Addr()+"/v1/events", bytes.NewReader(body))
				req.Header.Set("Content-Encoding", "gzip")
				req.Header.Set("Warden-Batch-Epoch", epoch)
				req.Header.Set("Warden-Batch-Seq", "99")
				res, err := cl.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				rr = resp{status: res.StatusCode, body: b}
			} else {
				rr = h.postBatch(cl, epoch, uint64(10+i), body, tc.plain)
			}
			if rr.status != tc.status || !strings.Contains(string(rr.body), tc.says) {
				t.Errorf("status %d %s; want %d naming %q", rr.status, rr.body, tc.status, tc.says)
			}
		})
	}
	if n, _ := nodeBatches(storedBatches(t, p), "web-1"); n != 1 {
		t.Fatalf("refused batches stored something: %d batches", n)
	}
	// Headers are checked.
	for _, hdr := range [][2]string{{"0123", "2"}, {epoch, "0"}, {epoch, "x"}} {
		if rr := h.postBatch(cl, hdr[0], 0, sshLines(1, ""), false); rr.status != 400 {
			t.Errorf("epoch %q seq %q: %d", hdr[0], hdr[1], rr.status)
		}
	}
	// A token cannot send events, even root's: they come from nodes.
	nobody := h.token(root, "nobody")
	if rr := h.do("POST", "/v1/events", nobody, "{}\n"); rr.status != 403 {
		t.Errorf("token POST /v1/events: %d %s", rr.status, rr.body)
	}

	// Search, through the API.
	q := url.Values{"query": {`source.ip:203.0.113.7 AND event.outcome:failure AND host.name:web-1`}, "limit": {"5"}}
	sr := h.want(h.do("GET", "/v1/events?"+q.Encode(), root, nil), 200).json(t)
	if sr["matched"] != float64(20) || len(sr["events"].([]any)) != 5 || sr["truncated"] != true {
		t.Errorf("search: matched %v, %d events, truncated %v", sr["matched"], len(sr["events"].([]any)), sr["truncated"])
	}
	if h.do("GET", "/v1/events?query="+url.QueryEscape("a:("), root, nil).status != 400 {
		t.Error("a bad query is not refused")
	}
	if rr := h.do("GET", "/v1/events", nobody, nil); rr.status != 403 {
		t.Errorf("search without events.read: %d", rr.status)
	}

	// Revoked: refused (401), nothing stored, and the server says so in
	// its own events.
	h.want(h.do("POST", "/v1/nodes/web-1/revoke", root, nil), 204)
	if rr := h.postBatch(cl, epoch, 2, sshLines(3, ""), false); rr.status != 401 {
		t.Errorf("revoked node: status %d %s, want 401", rr.status, rr.body)
	}
	if n, _ := nodeBatches(storedBatches(t, p), "web-1"); n != 1 {
		t.Errorf("a revoked node's batch was stored")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var evs []events.Event
		for _, b := range storedBatches(t, p) {
			evs = append(evs, b.Events...)
		}
		var found bool
		for _, ev := range evs {
			if ev.String("event.action") == events.ActionRevokedCertificate && ev.String("user.name") == "web-1" &&
				ev.String("event.dataset") == "warden.server" && ev.String("source.ip") == "127.0.0.1" {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revoked_certificate server event in %v", evs)
		}
		time.Sleep(50 * time.Millisecond) // polling an observable condition
	}
}

// TestEventsTail: a tail sees the events stored after it opened, filtered
// by host and query, as server-sent events.
func TestEventsTail(t *testing.T) {
	h := start(t, t.TempDir(), nil)
	_, root := h.initUnseal(1, 1)
	waitPlane(t, h.srv)
	a, b := h.enroll(root, "web-1", "1h"), h.enroll(root, "web-2", "1h")
	ca, cb := h.nodeClient(a), h.nodeClient(b)
	req, _ := http.NewRequest("GET", h.srv.Addr()+"/v1/events/tail?host=web-2&query="+url.QueryEscape("user.name:root"), nil)
	req.Header.Set("Authorization", "Bearer "+root)
	res, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	h.want(h.postBatch(ca, "aaaaaaaaaaaaaaaa", 1, sshLines(2, ""), false), 200)
	h.want(h.postBatch(cb, "bbbbbbbbbbbbbbbb", 1, []byte(`{"user.name":"alice","message":"x"}`+"\n"+`{"user.name":"root","message":"y"}`+"\n"), false), 200)
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(buf, []byte("data: ")) || !bytes.Contains(buf, []byte("\n\n")) {
		if time.Now().After(deadline) {
			t.Fatalf("tail got %q", buf)
		}
		tmp := make([]byte, 4096)
		n, err := res.Body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("tail read: %v (%q)", err, buf)
		}
		if bytes.Count(buf, []byte("data: ")) >= 1 && bytes.HasSuffix(buf, []byte("\n\n")) {
			break
		}
	}
	_, data, _ := bytes.Cut(buf, []byte("data: "))
	data, _, _ = bytes.Cut(data, []byte("\n"))
	var ev map[string]any
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["host.name"] != "web-2" || ev["user.name"] != "root" || ev["message"] != "y" {
		t.Errorf("tail's first event: %v", ev)
	}
}
