package witness

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzParseAddCheckpoint: the add-checkpoint body parser never panics,
// refuses with ErrMalformed, and what it accepts is canonical: formatting
// it gives the same bytes.
func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte(specRequest))
	f.Add([]byte("old 0\n\nx\n"))
	f.Add([]byte("old 5\n\n"))
	f.Add([]byte("old 05\nAAAA\n\n"))
	log := newTestLog(f, "example.com/log").grow(9)
	f.Add(FormatAddCheckpoint(4, log.proof(4, 9), log.checkpoint()))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, cp, err := ParseAddCheckpoint(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, not ErrMalformed", err)
			}
			return
		}
		if len(proof) > maxProofLines {
			t.Fatalf("%d proof lines", len(proof))
		}
		if got := FormatAddCheckpoint(old, proof, cp); !bytes.Equal(got, body) {
			t.Fatalf("not canonical:\n%q\n%q", body, got)
		}
	})
}

// FuzzVerifyCosigned: VerifyCosigned never panics on any note, and
// accepts only a note that carries the log's signature and the quorum.
func FuzzVerifyCosigned(f *testing.F) {
	log := newTestLog(f, "example.com/log").grow(5)
	w, _, wvkey, _ := newTestWitness(f, "w1", log)
	cp := log.checkpoint()
	cosig, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(Combine(cp, cosig), 1)
	f.Add(cp, 0)
	f.Add(cp, 1)
	f.Add(append(Combine(cp, cosig), cosig...), 2)
	f.Add([]byte("example.com/log\n5\n\n— w1 AAAA\n"), 0)
	f.Fuzz(func(t *testing.T, msg []byte, quorum int) {
		v, err := VerifyCosigned(msg, log.vkey, []string{wvkey}, quorum)
		if err != nil {
			return
		}
		if quorum > 1 || len(v.Cosigners) < quorum || v.Origin != log.origin {
			t.Fatalf("verified %+v with quorum %d", v, quorum)
		}
		// The witness agrees on the note's framing and the log's signature.
		if _, err := w.AddCheckpoint(context.Background(), v.Size+1, nil, msg); !errors.Is(err, ErrMalformed) {
			t.Fatalf("the witness refused a note VerifyCosigned accepted with %v (old size above the size is the only fault)", err)
		}
	})
}

// FuzzAddCheckpoint: any body posted to the handler's parser and
// AddCheckpoint is refused or cosigned, never a panic, and a witness that
// cosigned is at the checkpoint's size.
func FuzzAddCheckpoint(f *testing.F) {
	log := newTestLog(f, "example.com/log").grow(6)
	f.Add(FormatAddCheckpoint(0, nil, log.checkpointAt(3)))
	f.Add(FormatAddCheckpoint(0, nil, log.checkpointAt(6)))
	f.Add(FormatAddCheckpoint(3, log.proof(3, 6), log.checkpointAt(6)))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, _, _, _ := newTestWitness(t, "w1", log)
		old, proof, cp, err := ParseAddCheckpoint(body)
		if err != nil {
			return
		}
		if _, err := w.AddCheckpoint(context.Background(), old, proof, cp); err != nil {
			if w.Latest(log.origin) != nil {
				t.Fatalf("refused (%v) but changed the state", err)
			}
			return
		}
		text, _, _ := splitNote(cp)
		c, _ := parseCheckpoint(text)
		if s, _ := w.Size(log.origin); s != c.size {
			t.Fatalf("cosigned size %d, the witness is at %d", c.size, s)
		}
	})
}
