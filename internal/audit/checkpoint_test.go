package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "warden.local/audit/test"

// testRand is a seeded entropy source: keys, and so signatures, repeat.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// signBody signs any note text with skey, bypassing Sign's formatting, to
// make validly signed but malformed checkpoints.
func signBody(t testing.TB, skey SignerKey, body string) []byte {
	t.Helper()
	s, err := note.NewSigner(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestCheckpointVector freezes a signed checkpoint: Ed25519 signatures are
// deterministic, so a seeded key gives the same note every time. Its
// format is c2sp.org/tlog-checkpoint in a c2sp.org/signed-note.
func TestCheckpointVector(t *testing.T) {
	skey, vkey, err := GenerateSigner(testOrigin, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	root := LeafHash([]byte("x"))
	msg, err := Sign(skey, 7, root)
	if err != nil {
		t.Fatal(err)
	}
	// The root is SHA-256(0x00 || "x"), computed independently.
	const want = "warden.local/audit/test\n7\nPH6byTDck/AfppmF7yQtn56GHzxTVaokzl70tLinDMs=\n\n" +
		"— warden.local/audit/test MpTWdw4nJf3CREKuC68aV93QLAyjT9gl2UBQSCFYm65ipMueYnZNBnNRoEpN70RG0d4xVBd/pGlo20Qa+botUsaTCw8=\n"
	const wantV = "warden.local/audit/test+3294d677+AS2t66Y8jqA6iglM+/cf9SK9to/kWF5ZOKQuzBizIkt0"
	if string(msg) != want {
		t.Errorf("signed checkpoint:\n%s\nwant\n%s", msg, want)
	}
	if vkey != wantV {
		t.Errorf("verifier key %q, want %q", vkey, wantV)
	}
	cp, err := Open(msg, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Checkpoint{Origin: testOrigin, Size: 7, Root: root}); !reflect.DeepEqual(cp, want) {
		t.Fatalf("Open = %+v, want %+v", cp, want)
	}
	// The same seed makes the same key.
	if again, _, _ := GenerateSigner(testOrigin, testRand(1)); again != skey {
		t.Fatal("a seeded key is not reproducible")
	}
}

func TestOpen(t *testing.T) {
	skey, vkey, _ := GenerateSigner(testOrigin, testRand(1))
	_, otherVkey, _ := GenerateSigner(testOrigin, testRand(2)) // same name, another key
	otherLog, otherLogV, _ := GenerateSigner("other.example/log", testRand(3))
	witness, _, _ := GenerateSigner("witness.example", testRand(4))
	root := LeafHash([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(root)
	good, err := Sign(skey, 7, root)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := note.NewSigner(string(witness))
	cosigned, err := note.Sign(&note.Note{Text: testOrigin + "\n7\n" + b64 + "\n"}, mustSigner(t, skey), ws)
	if err != nil {
		t.Fatal(err)
	}
	body := func(lines ...string) []byte { return signBody(t, skey, strings.Join(lines, "\n")+"\n") }

	tests := []struct {
		name string
		msg  []byte
		vkey string
		want error // nil: success
		ext  []string
	}{
		{name: "good", msg: good, vkey: vkey},
		{name: "witness cosignature ignored", msg: cosigned, vkey: vkey},
		{name: "extension lines", msg: body(testOrigin, "7", b64, "ext one", "ext-two"), vkey: vkey, ext: []string{"ext one", "ext-two"}},
		{name: "wrong key", msg: good, vkey: otherVkey, want: ErrCheckpointSignature},
		{name: "another log's key", msg: good, vkey: otherLogV, want: ErrCheckpointSignature},
		{name: "modified size", msg: bytes.Replace(good, []byte("\n7\n"), []byte("\n8\n"), 1), vkey: vkey, want: ErrCheckpointSignature},
		{name: "modified root", msg: bytes.Replace(good, []byte(b64[:4]), []byte("AAAA"), 1), vkey: vkey, want: ErrCheckpointSignature},
		{name: "signature removed", msg: good[:bytes.Index(good, []byte("\n\n"))+2], vkey: vkey, want: ErrCheckpointSignature},
		{name: "signed by another log", msg: mustSign(t, otherLog, 7, root), vkey: vkey, want: ErrCheckpointSignature},
		{name: "wrong origin", msg: body("evil.example/log", "7", b64), vkey: vkey, want: ErrWrongOrigin},
		{name: "origin with trailing space", msg: body(testOrigin+" ", "7", b64), vkey: vkey, want: ErrWrongOrigin},
		{name: "two lines", msg: body(testOrigin, "7"), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "empty origin", msg: body("", "7", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "empty extension line", msg: body(testOrigin, "7", b64, "", "x"), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "size with leading zero", msg: body(testOrigin, "07", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "size with sign", msg: body(testOrigin, "+7", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "negative size", msg: body(testOrigin, "-7", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "size in hex", msg: body(testOrigin, "0x7", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "size with space", msg: body(testOrigin, "7 ", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "size beyond 64 bits", msg: body(testOrigin, "18446744073709551616", b64), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "root without padding", msg: body(testOrigin, "7", strings.TrimRight(b64, "=")), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "root in URL alphabet", msg: body(testOrigin, "7", base64.URLEncoding.EncodeToString(append(bytes.Repeat([]byte{0xff}, 31), 0xfb))), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "root with padding bits set", msg: body(testOrigin, "7", b64[:42]+"l="), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "root of 31 bytes", msg: body(testOrigin, "7", base64.StdEncoding.EncodeToString(root[:31])), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "root of 33 bytes", msg: body(testOrigin, "7", base64.StdEncoding.EncodeToString(append(root, 0))), vkey: vkey, want: ErrMalformedCheckpoint},
		{name: "oversized", msg: body(testOrigin, "7", b64, strings.Repeat("x", MaxCheckpointSize)), vkey: vkey, want: ErrMalformedCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := Open(tt.msg, tt.vkey)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				want := Checkpoint{Origin: testOrigin, Size: 7, Root: root, Extensions: tt.ext}
				if !reflect.DeepEqual(cp, want) {
					t.Fatalf("Open = %+v, want %+v", cp, want)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %+v, %v; want %v", cp, err, tt.want)
			}
		})
	}
	if _, err := Open(good, "not a key"); err == nil {
		t.Fatal("a malformed verifier key was accepted")
	}
}

func mustSigner(t *testing.T, k SignerKey) note.Signer {
	s, err := note.NewSigner(string(k))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t *testing.T, k SignerKey, size uint64, root []byte) []byte {
	msg, err := Sign(k, size, root)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestSignErrors(t *testing.T) {
	skey, _, _ := GenerateSigner(testOrigin, testRand(1))
	for _, n := range []int{0, 31, 33} {
		if _, err := Sign(skey, 1, make([]byte, n)); err == nil {
			t.Errorf("signed a root of %d bytes", n)
		}
	}
	broken := SignerKey(strings.Replace(string(skey), "PRIVATE+KEY", "PRIVATE+KYE", 1))
	_, err := Sign(broken, 1, make([]byte, HashSize))
	if err == nil || strings.Contains(err.Error(), string(skey)[30:]) {
		t.Fatalf("Sign with a malformed key: %v", err)
	}
	for _, origin := range []string{"", "a b", "a+b", "a\nb", "a\tb", "a\u00a0b", "a\x7fb", "\xff"} {
		if _, _, err := GenerateSigner(origin, testRand(1)); err == nil {
			t.Errorf("GenerateSigner accepted origin %q", origin)
		}
	}
}

// FuzzParseCheckpoint: a body the parser accepts is exactly the body of
// what it returns, with a SHA-256 root.
func FuzzParseCheckpoint(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString(LeafHash(nil))
	f.Add(testOrigin + "\n7\n" + b64 + "\n")
	f.Add(testOrigin + "\n0\n" + b64 + "\next\n")
	f.Add(testOrigin + "\n07\n" + b64 + "\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseCheckpoint(text)
		if err != nil {
			return
		}
		if c.Body() != text || len(c.Root) != HashSize || c.Origin == "" {
			t.Fatalf("accepted %q as %+v", text, c)
		}
	})
}

// FuzzOpenCheckpoint: whatever Open accepts carries the key's origin and a
// SHA-256 root.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, _ := GenerateSigner("o", testRand(1))
	msg, _ := Sign(skey, 3, LeafHash(nil))
	f.Add(msg)
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := Open(b, vkey)
		if err == nil && (cp.Origin != "o" || len(cp.Root) != HashSize) {
			t.Fatalf("bad checkpoint accepted: %+v", cp)
		}
	})
}
