package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func openTestPlane(t *testing.T) *Plane {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := OpenPlane(ctx, PlaneConfig{Dir: t.TempDir(), ServerName: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPlaneAppendDedupConsume: a batch is stored once per (node, epoch,
// seq); Consume delivers the stored batches in order and follows new ones.
func TestPlaneAppendDedupConsume(t *testing.T) {
	p := openTestPlane(t)
	ctx := context.Background()
	line := func(i int) []byte { return []byte(fmt.Sprintf(`{"message":"line %d","host.name":"web-1.dc"}`, i)) }
	steps := []struct {
		name        string
		node, epoch string
		seq         uint64
		wantDup     bool
		wantSeq     uint64
	}{
		{"first", "web-1.dc", "aaaaaaaaaaaaaaaa", 1, false, 1},
		{"next", "web-1.dc", "aaaaaaaaaaaaaaaa", 2, false, 2},
		{"same again", "web-1.dc", "aaaaaaaaaaaaaaaa", 2, true, 2},
		{"older", "web-1.dc", "aaaaaaaaaaaaaaaa", 1, true, 0},
		{"other node same seq", "web-2", "aaaaaaaaaaaaaaaa", 2, false, 3},
		{"new epoch", "web-1.dc", "bbbbbbbbbbbbbbbb", 1, false, 4},
	}
	for i, st := range steps {
		seq, dup, err := p.Append(ctx, st.node, "spiffe://x/node/"+st.node, st.epoch, st.seq, [][]byte{line(i), line(i + 100)})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if dup != st.wantDup || seq != st.wantSeq {
			t.Errorf("%s: seq %d dup %v, want %d %v", st.name, seq, dup, st.wantSeq, st.wantDup)
		}
	}
	// A cold cache (another server's view) finds the duplicate in the stream.
	p.mu.Lock()
	clear(p.last)
	p.mu.Unlock()
	if seq, dup, err := p.Append(ctx, "web-1.dc", "id", "bbbbbbbbbbbbbbbb", 1, [][]byte{line(9)}); err != nil || !dup || seq != 4 {
		t.Errorf("cold duplicate: %d %v %v", seq, dup, err)
	}
	if last, err := p.LastSeq(ctx); err != nil || last != 4 {
		t.Errorf("LastSeq = %d, %v", last, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []Batch
	errDone := errors.New("done")
	go func() {
		// Stored while Consume follows.
		for {
			if _, _, err := p.Append(ctx, "web-3", "id", "cccccccccccccccc", 1, [][]byte{line(7)}); err == nil {
				return
			}
		}
	}()
	err := p.Consume(cctx, 2, func(b Batch) error {
		got = append(got, b)
		if len(got) == 4 {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	for i, b := range got {
		if b.StreamSeq != uint64(i+2) || len(b.Events) == 0 {
			t.Errorf("batch %d: seq %d, %d events", i, b.StreamSeq, len(b.Events))
		}
	}
	if got[0].Node != "web-1.dc" || got[0].Events[0].String("message") != "line 1" {
		t.Errorf("batch 2 = %+v", got[0])
	}
	if got[3].Node != "web-3" {
		t.Errorf("followed batch = %+v", got[3])
	}
	kv, err := p.KV(ctx, "runtime_test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	kv2, err := p.KV(ctx, "runtime_test")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv2.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Errorf("KV get: %v", err)
	}
}

func TestSubject(t *testing.T) {
	for in, want := range map[string]string{
		"web-1":        "warden.events.web-1",
		"web-1.dc.lan": "warden.events.web-1_dc_lan",
		"Web 1":        "warden.events.x_5765622031",
		"":             "warden.events.x_",
	} {
		if got := Subject(in); got != want {
			t.Errorf("Subject(%q) = %q, want %q", in, got, want)
		}
	}
}
