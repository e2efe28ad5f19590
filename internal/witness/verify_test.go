package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestVerifyCosigned(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(7)
	cp := log.checkpoint()
	var vkeys []string
	var cosigs [][]byte
	for _, name := range []string{"w1", "w2", "w3"} {
		w, _, vkey, _ := newTestWitness(t, name, log)
		cosig, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
		if err != nil {
			t.Fatal(err)
		}
		vkeys = append(vkeys, vkey)
		cosigs = append(cosigs, cosig)
	}
	stranger, _, _, _ := newTestWitness(t, "w4", log)
	strangerCosig, err := stranger.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	all := Combine(cp, cosigs...)

	for q := 0; q <= 3; q++ {
		v, err := VerifyCosigned(all, log.vkey, vkeys, q)
		if err != nil {
			t.Fatalf("quorum %d: %v", q, err)
		}
		if v.Origin != log.origin || v.Size != 7 || !slices.Equal(v.Cosigners, []string{"w1", "w2", "w3"}) {
			t.Fatalf("verified %+v", v)
		}
	}

	// A cosignature for another checkpoint (size 6), moved onto this one.
	w1again := openWitnessFresh(t, "w1moved", log)
	moved, err := w1again.w.AddCheckpoint(context.Background(), 0, nil, log.checkpointAt(6))
	if err != nil {
		t.Fatal(err)
	}
	name, sig, _ := parseSigLine(bytes.TrimSuffix(cosigs[0], []byte("\n")))
	sig[len(sig)-1] ^= 1
	badCosig := []byte("— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
	text, sigs, _ := splitNote(cp)
	noLogSig := Combine(append(bytes.Clone(text), append([]byte("\n"), cosigs[0]...)...), cosigs[1])
	other := newTestLog(t, log.origin).grow(7)

	for _, c := range []struct {
		name   string
		note   []byte
		logKey string
		keys   []string
		quorum int
		want   error
		msg    string
	}{
		{name: "quorum above the cosignatures", note: all, keys: vkeys, quorum: 4, want: ErrNoQuorum},
		{name: "two of three", note: Combine(cp, cosigs[0], cosigs[2]), keys: vkeys, quorum: 3, want: ErrNoQuorum},
		{name: "a key given twice counts once", note: Combine(cp, cosigs[0]), keys: []string{vkeys[0], vkeys[0]}, quorum: 2, want: ErrNoQuorum},
		{name: "a line twice counts once", note: append(Combine(cp, cosigs[0]), cosigs[0]...), keys: vkeys, quorum: 2, want: ErrNoQuorum},
		{name: "unknown witnesses do not count", note: Combine(cp, strangerCosig), keys: vkeys, quorum: 1, want: ErrNoQuorum},
		{name: "an invalid cosignature by a known witness", note: Combine(cp, badCosig, cosigs[1], cosigs[2]), keys: vkeys, quorum: 2, want: ErrBadSignature},
		{name: "a cosignature of another checkpoint", note: Combine(cp, cosigs[1], cosigs[2], moved), keys: append(slices.Clone(vkeys), w1again.vkey), quorum: 2, want: ErrBadSignature},
		{name: "no log signature", note: noLogSig, keys: vkeys, quorum: 2, want: ErrBadSignature},
		{name: "another log key", note: all, logKey: other.vkey, keys: vkeys, quorum: 1, want: ErrBadSignature},
		{name: "not a note", note: []byte("example.com/log\n7\n"), keys: vkeys, want: ErrMalformed},
		{name: "too large", note: append(bytes.Clone(all), bytes.Repeat(append([]byte(nil), sigs[0]...), MaxCheckpointSize/len(sigs[0]))...), keys: vkeys, want: ErrMalformed},
		{name: "negative quorum", note: all, keys: vkeys, quorum: -1, msg: "quorum -1"},
		{name: "bad witness key", note: all, keys: []string{"w1+00000000+AAAA"}, msg: "witness verifier key"},
		{name: "bad log key", note: all, logKey: "x", keys: vkeys, msg: "log verifier key"},
		{name: "a witness key as the log key", note: all, logKey: vkeys[0], keys: vkeys[1:], msg: "not a log key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logKey := c.logKey
			if logKey == "" {
				logKey = log.vkey
			}
			_, err := VerifyCosigned(c.note, logKey, c.keys, c.quorum)
			if err == nil {
				t.Fatal("verified")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want it to mention %q", err, c.msg)
			}
		})
	}
}

type freshWitness struct {
	w    *Witness
	vkey string
}

func openWitnessFresh(t *testing.T, name string, logs ...*testLog) freshWitness {
	w, _, vkey, _ := newTestWitness(t, name, logs...)
	return freshWitness{w, vkey}
}

func TestCombine(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(2)
	cp := log.checkpoint()
	orig := bytes.Clone(cp)
	a := []byte("— w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	b := []byte("— w2 BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n— w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	got := Combine(cp, a, b, []byte("not a signature\n"), []byte("— w3 !!!\n"), a)
	want := string(cp) + "— w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n— w2 BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"
	if string(got) != want {
		t.Fatalf("Combine:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Equal(cp, orig) {
		t.Fatal("Combine changed its argument")
	}
	// The checkpoint's own lines are not repeated.
	_, sigs, _ := splitNote(cp)
	if got := Combine(cp, append(sigs[0], '\n')); !bytes.Equal(got, cp) {
		t.Fatalf("Combine repeated the log's line:\n%s", got)
	}
	// Not a note: unchanged.
	if got := Combine([]byte("hello"), a); string(got) != "hello" {
		t.Fatalf("Combine of a non-note: %q", got)
	}
	// No lines, no change.
	if got := Combine(cp); !bytes.Equal(got, cp) {
		t.Fatal("Combine without cosignatures changed the checkpoint")
	}
}
