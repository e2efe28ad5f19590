package audit

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// packVectors are leaves as the server writes them (captured from a dev
// server), plus edge cases.
var packVectors = []struct{ name, leaf string }{
	{"init", `{"action":"sys.init","auth_method":"system","outcome":200,"principal":"Server::\"node1\"","raft_index":0,"request_id":"","resource":"System::\"warden\"","source_addr":"","time":"2026-12-02T13:17:04.067434676Z"}`},
	{"kv.write", `{"accessor":"496b2627e73368f1baa4fda6e644e44c","action":"kv.write","auth_method":"token","hashes":{"data":"hmac-sha256:0792b73ca24f2c2e7fd51381fc933ef6eab16e29cc4254b6b212c4021bea9b0b"},"outcome":200,"principal":"Root::\"root\"","raft_index":0,"request_id":"f286fcf817c6-1","resource":"Secret::\"bench/a\"","source_addr":"127.0.0.1","time":"2026-12-02T13:17:04.22398245Z"}`},
	{"token.create", `{"accessor":"496b2627e73368f1baa4fda6e644e44c","action":"token.create","auth_method":"token","outcome":200,"principal":"Root::\"root\"","raft_index":0,"request_id":"f286fcf817c6-3","resource":"Token::\"token:496b2627e73368f1baa4fda6e644e44c\"","source_addr":"127.0.0.1","time":"2026-12-02T13:17:04.271704495Z"}`},
	{"kv.read", `{"accessor":"496b2627e73368f1baa4fda6e644e44c","action":"kv.read","auth_method":"token","hashes":{"data":"hmac-sha256:0792b73ca24f2c2e7fd51381fc933ef6eab16e29cc4254b6b212c4021bea9b0b"},"outcome":200,"principal":"Root::\"root\"","raft_index":0,"request_id":"f286fcf817c6-2","resource":"Secret::\"bench/a\"","source_addr":"127.0.0.1","time":"2026-12-02T13:17:04.260933719Z"}`},
	{"tiny", `{"action":"a","auth_method":"","outcome":200,"principal":"","raft_index":0,"request_id":"","resource":"","source_addr":"","time":"2026-01-01T00:00:00Z"}`},
	{"large", `{"action":"kv.write","auth_method":"token","error":"` + strings.Repeat("é", 20000) + `","outcome":400,"principal":"","raft_index":0,"request_id":"","resource":"","source_addr":"","time":"2026-01-01T00:00:00Z"}`},
}

func TestPackLeafRoundTrip(t *testing.T) {
	for _, v := range packVectors {
		t.Run(v.name, func(t *testing.T) {
			if _, err := DecodeEntry([]byte(v.leaf)); err != nil {
				t.Fatalf("vector is not canonical: %v", err)
			}
			p := PackLeaf([]byte(v.leaf))
			got, err := UnpackLeaf(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(v.leaf)) {
				t.Fatalf("round trip changed the leaf:\n got %s\nwant %s", got, v.leaf)
			}
			if len(p) > len(v.leaf) {
				t.Fatalf("packed %d bytes, longer than the leaf's %d", len(p), len(v.leaf))
			}
			t.Logf("%d → %d bytes", len(v.leaf), len(p))
		})
	}
}

// TestUnpackLeafUnpacked: leaves stored before packing existed (the
// canonical bytes themselves) read back as they are.
func TestUnpackLeafUnpacked(t *testing.T) {
	for _, v := range packVectors {
		got, err := UnpackLeaf([]byte(v.leaf))
		if err != nil || !bytes.Equal(got, []byte(v.leaf)) {
			t.Fatalf("%s: %q, %v", v.name, got, err)
		}
	}
}

// TestPackLeafFixed pins the format: a leaf packed by this release must
// unpack in every later one, so the dictionary (and the tag) may not
// change. The vector was packed when the format was introduced.
func TestPackLeafFixed(t *testing.T) {
	leaf := []byte(packVectors[1].leaf)
	p := PackLeaf(leaf)
	if p[0] != packDeflate {
		t.Fatalf("tag 0x%02x", p[0])
	}
	// Decompress with nothing but the standard library and the documented
	// dictionary.
	r := flate.NewReaderDict(bytes.NewReader(p[1:]), []byte(packDict))
	var out bytes.Buffer
	if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), leaf) {
		t.Fatalf("raw DEFLATE with the dictionary: %v", err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(packDict))); got != packDictSHA256 {
		t.Fatalf("the dictionary changed (SHA-256 %s, was %s): leaves packed with the old one would no longer unpack; add a new tag instead", got, packDictSHA256)
	}
}

// packDictSHA256 is the SHA-256 of packDict as released with tag 0x01.
const packDictSHA256 = "038bf324c4279c1e8ccc2f4c4a02f52d95646903c53002ab70ba0a6897adcc95"

func TestUnpackLeafRefuses(t *testing.T) {
	bomb := func() []byte {
		var b bytes.Buffer
		b.WriteByte(packDeflate)
		w, _ := flate.NewWriterDict(&b, flate.BestCompression, []byte(packDict))
		w.Write([]byte("{" + strings.Repeat("a", MaxEntrySize+10)))
		w.Close()
		return b.Bytes()
	}()
	notEntry := func() []byte {
		var b bytes.Buffer
		b.WriteByte(packDeflate)
		w, _ := flate.NewWriterDict(&b, flate.BestCompression, []byte(packDict))
		w.Write([]byte("hello"))
		w.Close()
		return b.Bytes()
	}()
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated", PackLeaf([]byte(packVectors[1].leaf))[:20]},
		{"over MaxEntrySize", bomb},
		{"not an entry", notEntry},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := UnpackLeaf(c.in); !errors.Is(err, errUnpack) {
				t.Fatalf("got %v, want errUnpack", err)
			}
		})
	}
}

func FuzzUnpackLeaf(f *testing.F) {
	for _, v := range packVectors {
		f.Add(PackLeaf([]byte(v.leaf)))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := UnpackLeaf(p)
		switch {
		case err != nil:
		case p[0] != packDeflate:
			if !bytes.Equal(b, p) {
				t.Fatal("an unpacked form did not read as it is")
			}
		case len(b) > MaxEntrySize || b[0] != '{':
			t.Fatalf("unpacked to %d bytes starting %q", len(b), b[:1])
		}
	})
}

func BenchmarkPackLeaf(b *testing.B) {
	leaf := []byte(packVectors[1].leaf)
	b.ReportAllocs()
	for b.Loop() {
		PackLeaf(leaf)
	}
}

// BenchmarkUnpackLeaf is the store's check of every record it commits.
func BenchmarkUnpackLeaf(b *testing.B) {
	p := PackLeaf([]byte(packVectors[1].leaf))
	if p[0] != packDeflate {
		b.Fatal("vector not packed")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnpackLeaf(p); err != nil {
			b.Fatal(err)
		}
	}
}
