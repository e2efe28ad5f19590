package cosign

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/witness"
)

// TestPeerHandler: the cluster port's witness answers as the protocol
// says, and reports a fork with the member that submitted it.
func TestPeerHandler(t *testing.T) {
	l := newMemLog(t)
	l.add(t, leaves("a", 4)...)
	tw := newTestWitness(t, "w1", l, true)
	post := func(body []byte) (*http.Response, string) {
		t.Helper()
		res, err := http.Post(tw.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	cp4, _ := l.Checkpoint(context.Background())
	if res, body := post(witness.FormatAddCheckpoint(0, nil, cp4)); res.StatusCode != 200 || !strings.HasPrefix(body, "— ") {
		t.Fatalf("first: %d %q", res.StatusCode, body)
	}
	l.add(t, "b")
	cp5, _ := l.Checkpoint(context.Background())
	if res, body := post(witness.FormatAddCheckpoint(0, nil, cp5)); res.StatusCode != 409 || body != "4\n" || res.Header.Get("Content-Type") != "text/x.tlog.size" {
		t.Fatalf("stale old size: %d %q %s", res.StatusCode, body, res.Header.Get("Content-Type"))
	}
	if res, _ := post([]byte("old 4\nnot base64\n\n")); res.StatusCode != 400 {
		t.Fatalf("malformed: %d", res.StatusCode)
	}
	if res, _ := http.Get(tw.srv.URL + "/add-checkpoint"); res.StatusCode != 404 {
		t.Fatalf("GET: %d", res.StatusCode)
	}
	forked := leaves("a", 4)
	forked[0] = "x"
	f := l.fork(t, append(forked, "b"))
	fcp, _ := f.Checkpoint(context.Background())
	p, _ := f.ConsistencyProof(4, 5)
	if res, _ := post(witness.FormatAddCheckpoint(4, p, fcp)); res.StatusCode != 422 {
		t.Fatalf("fork: %d", res.StatusCode)
	}
	select {
	case fe := <-tw.forks:
		if !bytes.Equal(noteBody(fe.Offered), noteBody(fcp)) {
			t.Fatalf("evidence %s", fe.Offered)
		}
	default:
		t.Fatal("no fork reported")
	}
}
