package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func post(t *testing.T, url string, body []byte) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestHTTPRefusals runs the refusals of TestRefusals over HTTP: the
// status codes of c2sp.org/tlog-witness, and the errors Client maps them
// back to.
func TestHTTPRefusals(t *testing.T) {
	f := newRefusalFixture(t)
	srv := httptest.NewServer(http.StripPrefix("/witness", f.w.Handler()))
	defer srv.Close()
	c := &Client{URL: srv.URL + "/witness/", VerifierKey: f.w.VerifierKey()}
	for _, r := range refusals(t, f) {
		t.Run(r.name, func(t *testing.T) {
			body := FormatAddCheckpoint(r.old, r.proof, r.cp)
			code, ctype, msg := post(t, srv.URL+"/witness/add-checkpoint", body)
			if code != r.status {
				t.Fatalf("status %d (%s), want %d", code, msg, r.status)
			}
			if code == 409 && (ctype != "text/x.tlog.size" || msg != strings.TrimSpace(msg)+"\n" || strings.TrimSpace(msg) != itoa(r.conflict)) {
				t.Fatalf("409 answer %q of type %q, want %d", msg, ctype, r.conflict)
			}
			f.unchanged(t)
			_, err := c.AddCheckpoint(context.Background(), r.old, r.proof, r.cp)
			switch {
			case code == 409:
				var conflict *ConflictError
				if !errors.As(err, &conflict) || conflict.Size != r.conflict {
					t.Fatalf("Client: %v, want a conflict at %d", err, r.conflict)
				}
			case r.fork:
				if !errors.Is(err, ErrBadProof) {
					t.Fatalf("Client: %v, want ErrBadProof", err)
				}
			default:
				if !errors.Is(err, r.want) {
					t.Fatalf("Client: %v, want %v", err, r.want)
				}
			}
			f.unchanged(t)
		})
	}
}

func itoa(n uint64) string { return string(formatSize(n)) }

// TestHTTPMalformedBodies: bodies that are not add-checkpoint requests.
func TestHTTPMalformedBodies(t *testing.T) {
	f := newRefusalFixture(t)
	srv := httptest.NewServer(f.w.Handler())
	defer srv.Close()
	cp := f.log.checkpoint()
	for name, body := range map[string]string{
		"empty":                 "",
		"no old line":           "\n" + string(cp),
		"old without a size":    "old \n\n" + string(cp),
		"old with a zero":       "old 05\n\n" + string(cp),
		"old negative":          "old -5\n\n" + string(cp),
		"old twice spaced":      "old  5\n\n" + string(cp),
		"proof not base64":      "old 5\n!!!!\n\n" + string(cp),
		"proof without padding": "old 5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\n" + string(cp),
		"no empty line":         "old 5\n",
		"no checkpoint":         "old 5\n\n",
		"CRLF":                  "old 5\r\n\r\n" + string(cp),
	} {
		t.Run(name, func(t *testing.T) {
			if code, _, msg := post(t, srv.URL+"/add-checkpoint", []byte(body)); code != 400 {
				t.Fatalf("status %d (%s), want 400", code, msg)
			}
			f.unchanged(t)
		})
	}
	t.Run("too large", func(t *testing.T) {
		body := "old 5\n\n" + strings.Repeat("x", MaxRequestSize)
		if code, _, msg := post(t, srv.URL+"/add-checkpoint", []byte(body)); code != 413 {
			t.Fatalf("status %d (%s), want 413", code, msg)
		}
	})
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/add-checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("status %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("other path", func(t *testing.T) {
		if code, _, _ := post(t, srv.URL+"/add-checkpoints", FormatAddCheckpoint(5, nil, cp)); code != 404 {
			t.Fatalf("status %d, want 404", code)
		}
	})
}

// TestHTTPHappyPathAndMonitoring: Client over HTTP through growths, and
// the monitoring GET serving the latest cosigned checkpoint.
func TestHTTPHappyPathAndMonitoring(t *testing.T) {
	log := newTestLog(t, "example.com/log")
	fresh := newTestLog(t, "example.com/fresh")
	w, _, wvkey, _ := newTestWitness(t, "witness.example/w1", log, fresh)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	c := &Client{URL: srv.URL, VerifierKey: wvkey, HTTP: srv.Client()}
	get := func(origin string) (int, string) {
		sum := sha256.Sum256([]byte(origin))
		resp, err := http.Get(srv.URL + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(log.origin); code != 404 {
		t.Fatalf("monitoring before any cosignature: %d", code)
	}
	known := uint64(0) // the caller does not know the witness's size
	for _, n := range []uint64{1, 6, 9, 50} {
		log.grow(n)
		cp := log.checkpoint()
		cosig, prev, err := c.Submit(context.Background(), cp, known, log.proofFn(log.st.Size))
		if err != nil {
			t.Fatalf("size %d: %v", log.st.Size, err)
		}
		if prev > log.st.Size {
			t.Fatalf("previous size %d", prev)
		}
		if _, err := VerifyCosigned(Combine(cp, cosig), log.vkey, []string{wvkey}, 1); err != nil {
			t.Fatal(err)
		}
		code, body := get(log.origin)
		if code != 200 || body != string(Combine(cp, cosig)) {
			t.Fatalf("monitoring: %d\n%s", code, body)
		}
	}
	if code, _ := get(fresh.origin); code != 404 {
		t.Fatalf("monitoring of a log never cosigned: %d", code)
	}
	if code, _ := get("example.com/unknown"); code != 404 {
		t.Fatalf("monitoring of an unknown log: %d", code)
	}
	// A stale checkpoint: Submit gives back the conflict.
	var conflict *ConflictError
	if _, _, err := c.Submit(context.Background(), log.checkpointAt(3), 0, log.proofFn(3)); !errors.As(err, &conflict) || conflict.Size != log.st.Size {
		t.Fatalf("stale Submit: %v", err)
	}
}

// TestClientChecksTheAnswer: Client accepts only a valid cosignature by
// the witness it was given. The servers here answer what a broken or
// malicious witness would; the real witness is tested above.
func TestClientChecksTheAnswer(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(4)
	w, _, wvkey, _ := newTestWitness(t, "w1", log)
	other, _, _, _ := newTestWitness(t, "w2", log)
	cp := log.checkpoint()
	good, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := other.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	name, sig, _ := parseSigLine(bytes.TrimSuffix(good, []byte("\n")))
	sig[len(sig)-1] ^= 1 // a bit of the Ed25519 signature
	tampered := []byte("— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
	for _, c := range []struct {
		name   string
		status int
		ctype  string
		body   string
		want   string
	}{
		{name: "valid", status: 200, body: string(good)},
		{name: "valid among others", status: 200, body: string(byOther) + string(good)},
		{name: "by another witness only", status: 200, body: string(byOther), want: "no cosignature by w1"},
		{name: "tampered", status: 200, body: string(tampered), want: "does not verify"},
		{name: "no newline", status: 200, body: strings.TrimSuffix(string(good), "\n"), want: "newline"},
		{name: "garbage", status: 200, body: "hello\n", want: "malformed signature line"},
		{name: "empty", status: 200, body: "", want: "newline"},
		{name: "409 without its type", status: 409, body: "5\n", want: "not a text/x.tlog.size"},
		{name: "409 not a size", status: 409, ctype: "text/x.tlog.size", body: "five\n", want: "not a text/x.tlog.size"},
		{name: "500", status: 500, body: "oops", want: "answered 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if c.ctype != "" {
					rw.Header().Set("Content-Type", c.ctype)
				}
				rw.WriteHeader(c.status)
				io.WriteString(rw, c.body)
			}))
			defer srv.Close()
			got, err := (&Client{URL: srv.URL, VerifierKey: wvkey}).AddCheckpoint(context.Background(), 0, nil, cp)
			if c.want == "" {
				if err != nil || !bytes.Equal(got, good) {
					t.Fatalf("got %q, %v; want %q", got, err, good)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := (&Client{URL: "http://127.0.0.1:1", VerifierKey: "bad"}).AddCheckpoint(context.Background(), 0, nil, cp); err == nil || !strings.Contains(err.Error(), "verifier key") {
		t.Fatalf("a bad verifier key: %v", err)
	}
}

// TestServe: Serve answers the protocol on a listener and returns nil once
// its context is done, after which nothing listens.
func TestServe(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(3)
	w, _, wvkey, _ := newTestWitness(t, "w1", log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	c := &Client{URL: "http://" + ln.Addr().String(), VerifierKey: wvkey}
	if _, err := c.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := c.AddCheckpoint(context.Background(), 3, nil, log.checkpoint()); err == nil {
		t.Fatal("answered after Serve returned")
	}
}
