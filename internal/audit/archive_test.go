package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// archiveLog makes a log of n canonical entries and returns their leaf
// bytes and a function that builds the archive of [start, end).
func archiveLog(t testing.TB, n int) ([][]byte, func(start, end uint64) *Archive) {
	t.Helper()
	skey, vkey, err := GenerateSigner(testOrigin, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, n)
	for i := range leaves {
		e := Entry{Action: "kv.write", AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`,
			RequestID: fmt.Sprint("r-", i), Resource: `Secret::"app/<db>"`, SourceAddr: "127.0.0.1",
			Time: FormatTime(time.Date(2026, 12, 2, 12, 0, i, 5, time.UTC))}
		if leaves[i], err = e.Canonical(); err != nil {
			t.Fatal(err)
		}
	}
	hashes := make([][]byte, n)
	for i, l := range leaves {
		hashes[i] = LeafHash(l)
	}
	build := func(start, end uint64) *Archive {
		before, _, err := Append(TreeState{}, hashes[:start])
		if err != nil {
			t.Fatal(err)
		}
		cp, err := Sign(skey, end, RootOf(leaves[:end]))
		if err != nil {
			t.Fatal(err)
		}
		raft := make([]uint64, end-start)
		for i := range raft {
			raft[i] = 100 + start + uint64(i)
		}
		return NewArchive(testOrigin, vkey, start, before.Range, cp, leaves[start:end], raft)
	}
	return leaves, build
}

// TestArchiveRoundTrip: an archive marshals, parses back to the same
// bytes, verifies on its own, and consecutive archives chain; an archive
// that starts past 0 verifies without the earlier ones.
func TestArchiveRoundTrip(t *testing.T) {
	_, build := archiveLog(t, 23)
	var as []*Archive
	for _, r := range [][2]uint64{{0, 7}, {7, 7}, {7, 16}, {16, 23}} {
		a := build(r[0], r[1])
		b, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseArchive(b)
		if err != nil {
			t.Fatalf("parse [%d, %d): %v", r[0], r[1], err)
		}
		if again, _ := p.Marshal(); !bytes.Equal(again, b) {
			t.Fatal("parse and marshal changed the bytes")
		}
		if _, err := p.Verify(p.VerifierKey); err != nil {
			t.Fatalf("verify [%d, %d): %v", r[0], r[1], err)
		}
		as = append(as, p)
	}
	if _, err := VerifyChain(as, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyChain([]*Archive{as[0], as[3]}, ""); !errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), "starts at 16") {
		t.Fatalf("a gap between archives: %v", err)
	}
	if _, err := as[1].Verify("someone+else+key"); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("an untrusted key: %v", err)
	}
}

// TestArchiveTamperNamesEntry: changing one byte of an entry, of its hash,
// of the start range or of the checkpoint fails, naming the entry where
// there is one to name.
func TestArchiveTamperNamesEntry(t *testing.T) {
	_, build := archiveLog(t, 20)
	alterLeaf := func(a *Archive, i int) {
		l, _ := base64.StdEncoding.DecodeString(a.Entries[i].Leaf)
		l[bytes.Index(l, []byte("alice"))] = 'A'
		a.Entries[i].Leaf = base64.StdEncoding.EncodeToString(l)
	}
	cases := []struct {
		name   string
		change func(a *Archive)
		want   string
	}{
		{"leaf byte", func(a *Archive) { alterLeaf(a, 3) }, "entry 8 was altered"},
		{"leaf and hash", func(a *Archive) {
			alterLeaf(a, 3)
			l, _ := base64.StdEncoding.DecodeString(a.Entries[3].Leaf)
			a.Entries[3].Hash = base64.StdEncoding.EncodeToString(LeafHash(l))
		}, "is not the signed root"},
		{"not canonical", func(a *Archive) {
			l, _ := base64.StdEncoding.DecodeString(a.Entries[0].Leaf)
			l = append([]byte(" "), l...)
			a.Entries[0].Leaf = base64.StdEncoding.EncodeToString(l)
			a.Entries[0].Hash = base64.StdEncoding.EncodeToString(LeafHash(l))
		}, "entry 5 was altered: it is not a canonical entry"},
		{"start range", func(a *Archive) { a.StartRange[0] = base64.StdEncoding.EncodeToString(make([]byte, 32)) }, "is not the signed root"},
		{"checkpoint", func(a *Archive) { a.Checkpoint = strings.Replace(a.Checkpoint, "\n15\n", "\n16\n", 1) }, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := build(5, 15)
			c.change(a)
			b, _ := a.Marshal()
			p, err := ParseArchive(b)
			if err == nil {
				_, err = p.Verify("")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestParseArchiveStrict: bytes other than Marshal's are refused.
func TestParseArchiveStrict(t *testing.T) {
	_, build := archiveLog(t, 4)
	b, _ := build(1, 3).Marshal()
	for name, in := range map[string][]byte{
		"unknown member": bytes.Replace(b, []byte(`{"format"`), []byte(`{"x":1,"format"`), 1),
		"spacing":        bytes.Replace(b, []byte(`,"origin"`), []byte(`, "origin"`), 1),
		"trailing":       append(bytes.Clone(b), '{', '}'),
		"no newline":     b[:len(b)-1],
		"other format":   bytes.Replace(b, []byte(ArchiveFormat), []byte("warden-audit-archive/2"), 1),
		"index gap":      bytes.Replace(b, []byte(`"index":2`), []byte(`"index":3`), 1),
		"short range":    bytes.Replace(b, []byte(`"start":1`), []byte(`"start":2`), 1),
	} {
		if _, err := ParseArchive(in); !errors.Is(err, ErrMalformedArchive) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseArchive: the parser never panics, and what it accepts marshals
// back to the same bytes.
func FuzzParseArchive(f *testing.F) {
	_, build := archiveLog(f, 5)
	for _, r := range [][2]uint64{{0, 2}, {2, 5}, {5, 5}} {
		b, _ := build(r[0], r[1]).Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseArchive(b)
		if err != nil {
			return
		}
		again, err := a.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes that do not marshal back: %v", err)
		}
		_, _ = a.Verify("")
	})
}
