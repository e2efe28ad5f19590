package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// C2SP publishes no test vectors for tlog-witness or tlog-cosignature
// (checked in github.com/C2SP/C2SP at 5ba5ee8), and
// github.com/transparency-dev/formats has no fixed cosignature/v1 vector
// with its key. These tests check the examples of the specifications that
// can be checked without a key, and cross-check the cosignatures with
// formats' independent implementation: Ed25519 is deterministic, so the
// same key, time and checkpoint must give the same bytes.

// The example request body of c2sp.org/tlog-witness, "add-checkpoint".
const specRequest = `old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
`

func TestSpecRequestExample(t *testing.T) {
	old, proof, cp, err := ParseAddCheckpoint([]byte(specRequest))
	if err != nil {
		t.Fatal(err)
	}
	if old != 20852014 || len(proof) != 4 {
		t.Fatalf("old %d, %d proof lines", old, len(proof))
	}
	text, sigs, err := splitNote(cp)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCheckpoint(text)
	if err != nil {
		t.Fatal(err)
	}
	if c.origin != "example.com/behind-the-sofa" || c.size != 20852163 || len(sigs) != 2 {
		t.Fatalf("checkpoint %+v, %d signatures", c, len(sigs))
	}
	if got := FormatAddCheckpoint(old, proof, cp); string(got) != specRequest {
		t.Fatalf("FormatAddCheckpoint does not give the example back:\n%s", got)
	}
}

// The example of c2sp.org/tlog-cosignature: a cosignature line whose
// timestamp is the one of the example signed message ("time 1679315147").
func TestSpecCosignatureExample(t *testing.T) {
	const line = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
	name, sig, ok := parseSigLine([]byte(line))
	if !ok || name != "witness.example.com/w1" {
		t.Fatalf("parse: %q %v", name, ok)
	}
	if len(sig) != 4+cosigLen {
		t.Fatalf("%d bytes, want key ID, timestamp and signature: %d", len(sig), 4+cosigLen)
	}
	if ts := binary.BigEndian.Uint64(sig[4:]); ts != 1679315147 {
		t.Fatalf("timestamp %d, want 1679315147", ts)
	}
	ft, err := fnote.CoSigV1Timestamp(note.Signature{Name: name, Base64: strings.Fields(line)[2]})
	if err != nil || ft.Unix() != 1679315147 {
		t.Fatalf("formats reads %v, %v", ft, err)
	}
}

// TestCosignatureCrossCheck: the witness's cosignature is, byte for byte,
// the one transparency-dev/formats makes with the same key at the same
// time, and verifies as c2sp.org/tlog-cosignature describes it, checked
// here from the specification's text with crypto/ed25519 alone.
func TestCosignatureCrossCheck(t *testing.T) {
	for _, ext := range []string{"", "an extension line\n"} {
		log := newTestLog(t, "example.com/log").grow(21)
		cp := log.checkpoint()
		if ext != "" {
			text, _, _ := splitNote(cp)
			cp = signText(t, log, string(text)+ext)
		}
		text, _, _ := splitNote(cp)
		skey, vkey, err := GenerateKey("witness.example/w1")
		if err != nil {
			t.Fatal(err)
		}

		// formats signs (at its own time.Now); our witness signs the same
		// checkpoint at that time.
		fs, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := note.Sign(&note.Note{Text: string(text)}, fs)
		if err != nil {
			t.Fatal(err)
		}
		_, theirSigs, _ := splitNote(theirs)
		_, theirSig, _ := parseSigLine(theirSigs[0])
		ts := binary.BigEndian.Uint64(theirSig[4:])
		s, _ := parseSigner(skey)
		ours := s.cosign(text, ts)
		if !bytes.Equal(ours, append(theirSigs[0], '\n')) {
			t.Fatalf("ours:   %s\ntheirs: %s", ours, theirSigs[0])
		}

		// Through the witness (its clock injected), then checked from the spec.
		w := openWitness(t, t.TempDir(), skey, log)
		cosig, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
		if err != nil {
			t.Fatal(err)
		}
		name, sig, ok := parseSigLine(bytes.TrimSuffix(cosig, []byte("\n")))
		if !ok || name != "witness.example/w1" || len(sig) != 4+8+64 {
			t.Fatalf("cosignature line %q", cosig)
		}
		parts := strings.SplitN(vkey, "+", 3)
		key, _ := base64.StdEncoding.DecodeString(parts[2])
		pub := ed25519.PublicKey(key[1:])
		id := sha256.Sum256(append([]byte("witness.example/w1\n\x04"), pub...))
		if !bytes.Equal(sig[:4], id[:4]) || parts[1] != strconv.FormatUint(uint64(binary.BigEndian.Uint32(id[:4]))|1<<32, 16)[1:] {
			t.Fatalf("key ID %x, want %x (vkey %s)", sig[:4], id[:4], vkey)
		}
		if got := binary.BigEndian.Uint64(sig[4:]); got != uint64(testTime.Unix()) {
			t.Fatalf("timestamp %d", got)
		}
		msg := "cosignature/v1\ntime " + strconv.FormatInt(testTime.Unix(), 10) + "\n" + string(text)
		if !ed25519.Verify(pub, []byte(msg), sig[12:]) {
			t.Fatal("the signature does not verify over the message of c2sp.org/tlog-cosignature")
		}
		// And golang.org/x/mod/sumdb/note with formats' verifier opens it.
		v, err := fnote.NewVerifierForCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(Combine(cp, cosig), note.VerifierList(v)); err != nil {
			t.Fatal(err)
		}
	}
}
