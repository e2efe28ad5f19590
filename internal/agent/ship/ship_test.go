package ship

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/source"
	"github.com/warden-sec/warden/internal/agent/tail"
	"github.com/warden-sec/warden/internal/events"
)

// testPKI is a CA that signs the node's client certificate.
type testPKI struct {
	pool              *x509.CertPool
	certFile, keyFile string
	caKey             *ecdsa.PrivateKey
	caCert            *x509.Certificate
	serverCA, dataDir string
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{pool: x509.NewCertPool(), caKey: caKey, caCert: ca, dataDir: t.TempDir()}
	p.pool.AddCert(ca)
	p.certFile, p.keyFile = filepath.Join(p.dataDir, "svid.pem"), filepath.Join(p.dataDir, "svid-key.pem")
	p.issue(t, 2)
	return p
}

// issue writes a new client certificate (as renewal does).
func (p *testPKI) issue(t *testing.T, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := url.Parse("spiffe://warden/node/web-1")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "web-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{id},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	os.WriteFile(p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// fakeServer is POST /v1/events as design12.md specifies it, with a script
// deciding failures.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	last     map[string]uint64 // epoch → last stored seq
	stored   []events.Event
	seqs     []uint64
	dropped  uint64 // sum of Warden-Dropped of stored batches
	dups     int
	limited  int             // 429s answered
	failed   int             // other failures answered
	serials  map[string]bool // client certificate serials seen
	// script answers request number n (from 1) for seq: status, and
	// whether to store the batch first (a 500 after storing is a lost
	// answer).
	script func(n int, seq uint64) (status int, store bool)
}

func newServer(t *testing.T, p *testPKI, script func(int, uint64) (int, bool)) *fakeServer {
	t.Helper()
	fs := &fakeServer{last: map[string]uint64{}, serials: map[string]bool{}, script: script}
	fs.Server = httptest.NewUnstartedServer(http.HandlerFunc(fs.handle))
	fs.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
	fs.StartTLS()
	t.Cleanup(fs.Close)
	p.serverCA = filepath.Join(t.TempDir(), "server-ca.pem")
	os.WriteFile(p.serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fs.Certificate().Raw}), 0o644)
	return fs
}

func (fs *fakeServer) handle(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[%q]}`, msg)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
		fail(404, "no route")
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Content-Encoding") != "gzip" {
		fail(400, "content type or encoding")
		return
	}
	epoch := r.Header.Get(HeaderEpoch)
	seq, err := strconv.ParseUint(r.Header.Get(HeaderSeq), 10, 64)
	if len(epoch) != 16 || err != nil || seq == 0 {
		fail(400, "epoch or seq")
		return
	}
	var dropped uint64
	if h := r.Header.Get(HeaderDropped); h != "" {
		if dropped, err = strconv.ParseUint(h, 10, 64); err != nil {
			fail(400, "dropped")
			return
		}
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		fail(400, "gzip")
		return
	}
	var evs []events.Event
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) > events.MaxEventBytes {
			fail(413, fmt.Sprintf("line %d: event over 64 KiB", n))
			return
		}
		var ev events.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fail(400, fmt.Sprintf("line %d: invalid JSON", n))
			return
		}
		evs = append(evs, ev)
	}
	if sc.Err() != nil {
		fail(400, "body")
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.serials[r.TLS.PeerCertificates[0].SerialNumber.String()] = true
	fs.requests++
	status, store := fs.script(fs.requests, seq)
	if status == 429 {
		fs.limited++
		w.Header().Set("Retry-After", "0")
		fail(429, "overloaded")
		return
	}
	dup := seq <= fs.last[epoch]
	if (status == 200 || store) && !dup {
		fs.last[epoch] = seq
		fs.stored = append(fs.stored, evs...)
		fs.seqs = append(fs.seqs, seq)
		fs.dropped += dropped
	}
	if status != 200 {
		fs.failed++
		fail(status, "scripted failure")
		return
	}
	if dup {
		fs.dups++
	}
	fmt.Fprintf(w, `{"events":%d,"duplicate":%t,"stream_seq":%d}`, len(evs), dup, len(fs.seqs))
}

func (fs *fakeServer) messages(dataset string) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	for _, ev := range fs.stored {
		if dataset == "" || ev.String(events.FieldDataset) == dataset {
			out = append(out, ev.String(events.FieldMessage))
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type agentRun struct {
	s    *Shipper
	stop func()
}

func startShipper(t *testing.T, cfg Config, srcs ...source.Source) *agentRun {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, src := range srcs {
		if err := s.Start(src); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	r := &agentRun{s: s, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

func writeLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "sshd line %d\n", i)
	}
	f.WriteString(b.String())
}

// TestExactlyOnce: lines appended to a file, rotated, while the server
// fails (500 before and after storing, 429) and the shipper is restarted
// twice, all arrive exactly once and in order; the renewed client
// certificate is picked up without a restart.
func TestExactlyOnce(t *testing.T) {
	p := newPKI(t)
	fs := newServer(t, p, func(n int, seq uint64) (int, bool) {
		switch {
		case n%7 == 3:
			return 500, false
		case n%7 == 5:
			return 503, true // stored, but the answer is lost
		case n%11 == 4:
			return 429, false
		}
		return 200, true
	})
	logPath := filepath.Join(t.TempDir(), "auth.log")
	cfg := Config{Servers: []string{"https://127.0.0.1:1", fs.URL}, CACertFile: p.serverCA, CertFile: p.certFile,
		KeyFile: p.keyFile, DataDir: p.dataDir, BatchEvents: 50, BatchInterval: 20 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond}
	newTail := func() *tail.Tail {
		tl, err := tail.New(tail.Config{Path: logPath, Poll: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	var want []string
	add := func(from, to int) {
		writeLines(t, logPath, from, to)
		for i := from; i <= to; i++ {
			want = append(want, fmt.Sprintf("sshd line %d", i))
		}
	}
	r := startShipper(t, cfg, newTail())
	add(1, 400)
	waitFor(t, "some lines stored", func() bool { return len(fs.messages("raw")) >= 100 })
	add(401, 600)
	r.stop() // mid-way: some batches spooled, some not sent
	add(601, 800)
	p.issue(t, 3) // renewal rewrote the files
	r = startShipper(t, cfg, newTail())
	os.Rename(logPath, logPath+".1")
	add(801, 1000)
	waitFor(t, "more lines stored", func() bool { return len(fs.messages("raw")) >= 850 })
	r.stop()
	add(1001, 1200)
	startShipper(t, cfg, newTail())
	waitFor(t, "every line", func() bool { return len(fs.messages("raw")) >= len(want) })
	got := fs.messages("raw")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored %d lines, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i := 1; i < len(fs.seqs); i++ {
		if fs.seqs[i] <= fs.seqs[i-1] {
			t.Fatalf("stored seqs out of order: %v", fs.seqs)
		}
	}
	if fs.dups == 0 {
		t.Fatal("no duplicate was answered: the lost-answer path was not exercised")
	}
	if !fs.serials["3"] {
		t.Fatal("the renewed certificate was not used")
	}
	if fs.limited == 0 || fs.failed == 0 {
		t.Fatalf("429s %d, failures %d: the script was not exercised", fs.limited, fs.failed)
	}
	for _, ev := range fs.stored {
		if ev.String(events.FieldFilePath) != logPath {
			t.Fatalf("event without log.file.path: %v", ev)
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// counter is a source that emits n numbered events, resuming after the
// number in its state.
type counter struct {
	n    int
	body string
}

func (c *counter) Name() string { return "test:counter" }

func (c *counter) Run(ctx context.Context, state []byte, emit source.Emit) error {
	i := 0
	if state != nil {
		i, _ = strconv.Atoi(string(state))
	}
	for i < c.n {
		i++
		ev := events.Event{events.FieldMessage: fmt.Sprintf("ev %d", i), events.FieldDataset: "test", "pad": c.body}
		if err := emit(ev, []byte(strconv.Itoa(i))); err != nil {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// TestFullSpoolAndRefusals: while no server answers, a full spool drops
// its oldest batches; the count goes to the server with the next batch
// (Warden-Dropped) and as a spool_dropped event; what is left arrives in
// order; a batch refused with 413 is dropped and counted, and the ones after
// it go on.
func TestFullSpoolAndRefusals(t *testing.T) {
	p := newPKI(t)
	var mu sync.Mutex
	down := true
	fs := newServer(t, p, func(n int, seq uint64) (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case down:
			return 503, false
		case seq == 150:
			return 413, false
		}
		return 200, true
	})
	var rnd [512]byte
	rand.Read(rnd[:])
	cfg := Config{Servers: []string{fs.URL}, CACertFile: p.serverCA, CertFile: p.certFile, KeyFile: p.keyFile,
		DataDir: p.dataDir, SpoolMaxBytes: 64 << 10, BatchEvents: 10, BatchInterval: 20 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond}
	const n = 2000
	src := &counter{n: n, body: fmt.Sprintf("%x", rnd)}
	r := startShipper(t, cfg, src)
	waitFor(t, "every event spooled", func() bool { return r.s.Stats().EventsSpooled >= n })
	st := r.s.Stats()
	if st.Dropped == 0 || st.SpoolBytes > 64<<10 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, "the spool drained", func() bool { st := r.s.Stats(); return st.SpoolBatches == 0 })
	st = r.s.Stats()
	got := fs.messages("test")
	last := 0
	for _, m := range got {
		i, _ := strconv.Atoi(strings.TrimPrefix(m, "ev "))
		if i <= last {
			t.Fatalf("event %d after %d", i, last)
		}
		last = i
	}
	if last != n {
		t.Fatalf("the last event is %d, want %d", last, n)
	}
	fs.mu.Lock()
	reported := fs.dropped
	var obs []events.Event
	for _, ev := range fs.stored {
		if ev.String(events.FieldDataset) == "warden.agent" {
			obs = append(obs, ev)
		}
	}
	fs.mu.Unlock()
	if reported == 0 || reported > st.Dropped {
		t.Fatalf("reported %d dropped, the spool dropped %d", reported, st.Dropped)
	}
	if len(got)+int(st.Dropped)+int(st.EventsRefused) < n || len(obs) == 0 {
		t.Fatalf("stored %d + dropped %d + refused %d of %d; observations %v", len(got), st.Dropped, st.EventsRefused, n, obs)
	}
	if obs[0].String(events.FieldAction) != "spool_dropped" || obs[0].String(FieldDropped) == "" {
		t.Fatalf("observation %v", obs[0])
	}
	if st.BatchesRefused == 0 && st.Dropped < 1490 { // seq 150 may itself have been dropped
		t.Fatalf("no batch refused: %+v", st)
	}
	if r.s.spool.Dropped() != 0 {
		t.Fatalf("the dropped count was not reset after the report: %d", r.s.spool.Dropped())
	}
}

// TestEncodeEvent: an event over 64 KiB is cut to fit and marked.
func TestEncodeEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   events.Event
		cut  bool
	}{
		{"small", events.Event{"message": "hi <b>"}, false},
		{"long message", events.Event{"message": strings.Repeat("é", 40<<10), "user.name": "root"}, true},
		{"escapes", events.Event{"message": strings.Repeat("\x01", 20<<10)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, err := encodeEvent(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(line)-1 > events.MaxEventBytes || line[len(line)-1] != '\n' {
				t.Fatalf("line of %d bytes", len(line))
			}
			var back events.Event
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			if (back[FieldTruncated] == true) != tc.cut {
				t.Fatalf("truncated mark %v", back[FieldTruncated])
			}
			if tc.name == "small" && !strings.Contains(string(line), "<b>") {
				t.Fatalf("HTML escaped: %s", line)
			}
		})
	}
}
