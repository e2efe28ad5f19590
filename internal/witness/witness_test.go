package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/warden-sec/warden/internal/audit"
)

func TestGenerateKey(t *testing.T) {
	skey, vkey, err := GenerateKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if s.vkey != vkey || s.name != "witness.example/w1" {
		t.Fatalf("parsed signer: vkey %q name %q, want %q", s.vkey, s.name, vkey)
	}
	// The keys are the cosignature/v1 keys (type 0x04) of transparency-dev/formats.
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyHash() != s.id || fs.KeyHash() != s.id || v.Name() != s.name {
		t.Fatalf("key IDs: ours %08x, formats verifier %08x, formats signer %08x", s.id, v.KeyHash(), fs.KeyHash())
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(vkey, fmt.Sprintf("witness.example/w1+%08x+", s.id))); err != nil || len(k) != 33 || k[0] != 0x04 {
		t.Fatalf("vkey %q is not a type 0x04 vkey", vkey)
	}
	_, vkey2, _ := GenerateKey("witness.example/w1")
	if vkey2 == vkey {
		t.Fatal("two keys are the same")
	}
	for _, name := range []string{"", "a b", "a+b", "a\nb", "\xff"} {
		if _, _, err := GenerateKey(name); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", name)
		}
	}
}

func TestParseSignerRefuses(t *testing.T) {
	skey, _, _ := GenerateKey("w1")
	parts := strings.SplitN(skey, "+", 5)
	otherSkey, _, _ := GenerateKey("w2")
	otherParts := strings.SplitN(otherSkey, "+", 5)
	stdSkey, _, _ := note.GenerateKey(nil, "w1") // type 0x01
	for name, k := range map[string]string{
		"empty":          "",
		"four parts":     strings.Join(parts[:4], "+"),
		"not PRIVATE":    "SECRET+" + strings.Join(parts[1:], "+"),
		"wrong key id":   strings.Join([]string{parts[0], parts[1], parts[2], "00000000", parts[4]}, "+"),
		"another's seed": strings.Join([]string{parts[0], parts[1], parts[2], parts[3], otherParts[4]}, "+"),
		"renamed":        strings.Join([]string{parts[0], parts[1], "w3", parts[3], parts[4]}, "+"),
		"not base64":     strings.Join([]string{parts[0], parts[1], parts[2], parts[3], "!!"}, "+"),
		"type 0x01 key":  stdSkey,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseSigner(k)
			if !errors.Is(err, errSignerKey) {
				t.Fatalf("err = %v, want errSignerKey", err)
			}
			if k != "" && strings.Contains(err.Error(), parts[4]) {
				t.Fatal("the error quotes the key")
			}
		})
	}
}

// TestHappyPath cosigns a log over several growths, from an empty tree,
// and checks each cosignature, the stored state and its file.
func TestHappyPath(t *testing.T) {
	log := newTestLog(t, "example.com/log")
	w, _, wvkey, dir := newTestWitness(t, "witness.example/w1", log)
	if w.Name() != "witness.example/w1" || w.VerifierKey() != wvkey {
		t.Fatalf("Name %q VerifierKey %q", w.Name(), w.VerifierKey())
	}
	if w.Latest(log.origin) != nil {
		t.Fatal("Latest before any cosignature")
	}
	old := uint64(0)
	for _, grow := range []uint64{0, 1, 1, 3, 3, 0, 5, 87, 1000} {
		log.grow(grow)
		cp := log.checkpoint()
		size := log.st.Size
		var p [][]byte
		if old > 0 {
			p = log.proof(old, size)
		}
		cosig, err := w.AddCheckpoint(context.Background(), old, p, cp)
		if err != nil {
			t.Fatalf("size %d → %d: %v", old, size, err)
		}
		if bytes.Count(cosig, []byte("\n")) != 1 || !bytes.HasPrefix(cosig, []byte("— witness.example/w1 ")) {
			t.Fatalf("cosignature %q: want one line by witness.example/w1", cosig)
		}
		v, err := VerifyCosigned(Combine(cp, cosig), log.vkey, []string{wvkey}, 1)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if v.Origin != log.origin || v.Size != size || len(v.Cosigners) != 1 || v.Cosigners[0] != w.Name() {
			t.Fatalf("size %d: verified %+v", size, v)
		}
		// The cosignature's time is the injected clock.
		sig, err := base64.StdEncoding.DecodeString(strings.Fields(string(cosig))[2])
		if err != nil {
			t.Fatal(err)
		}
		if ts, _ := fnote.CoSigV1Timestamp(note.Signature{Base64: base64.StdEncoding.EncodeToString(sig)}); !ts.Equal(testTime) {
			t.Fatalf("cosignature time %v, want %v", ts, testTime)
		}
		// Persisted before returning: the file is the latest checkpoint,
		// with the log's signature and the cosignature.
		latest := w.Latest(log.origin)
		if !bytes.Equal(latest, Combine(cp, cosig)) {
			t.Fatalf("Latest:\n%s\nwant:\n%s", latest, Combine(cp, cosig))
		}
		sum := sha256.Sum256([]byte(log.origin))
		path := filepath.Join(dir, hex.EncodeToString(sum[:])+".checkpoint")
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, latest) {
			t.Fatalf("state file %s: %v\n%s", path, err, b)
		}
		if s, ok := w.Size(log.origin); !ok || s != size {
			t.Fatalf("Size = %d, %v; want %d", s, ok, size)
		}
		old = size
	}
	sum := sha256.Sum256([]byte(log.origin))
	assertMode(t, filepath.Join(dir, hex.EncodeToString(sum[:])+".checkpoint"), 0o600)
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, filepath.Join(dir, "LOCK"), 0o600)
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

// TestSameCheckpointAgain: submitting the cosigned checkpoint again is
// cosigned again, with a new time.
func TestSameCheckpointAgain(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(4)
	skey, wvkey, _ := GenerateKey("w1")
	now := testTime
	w, err := Open(Config{Dir: t.TempDir(), Signer: skey, Logs: map[string]string{log.origin: log.vkey}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cp := log.checkpoint()
	first, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	second, err := w.AddCheckpoint(context.Background(), 4, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, second) {
		t.Fatal("the second cosignature is the first: the time did not change")
	}
	if _, err := VerifyCosigned(Combine(cp, second), log.vkey, []string{wvkey}, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Latest(log.origin), Combine(cp, second)) {
		t.Fatal("Latest is not the checkpoint with the second cosignature")
	}
}

// refusalFixture: a witness that cosigned log at size 5 (the log has 8
// leaves) and knows fresh (never cosigned).
type refusalFixture struct {
	w            *Witness
	log, fresh   *testLog
	latest       []byte
	stateFile    string
	stateContent []byte
}

func newRefusalFixture(t *testing.T) *refusalFixture {
	log := newTestLog(t, "example.com/log").grow(5)
	fresh := newTestLog(t, "example.com/fresh").grow(3)
	w, _, _, dir := newTestWitness(t, "w1", log, fresh)
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); err != nil {
		t.Fatal(err)
	}
	log.grow(3)
	sum := sha256.Sum256([]byte(log.origin))
	f := &refusalFixture{w: w, log: log, fresh: fresh, latest: w.Latest(log.origin), stateFile: filepath.Join(dir, hex.EncodeToString(sum[:])+".checkpoint")}
	var err error
	if f.stateContent, err = os.ReadFile(f.stateFile); err != nil {
		t.Fatal(err)
	}
	return f
}

// unchanged checks that a refusal changed nothing.
func (f *refusalFixture) unchanged(t *testing.T) {
	t.Helper()
	if !bytes.Equal(f.w.Latest(f.log.origin), f.latest) {
		t.Error("Latest changed")
	}
	if b, err := os.ReadFile(f.stateFile); err != nil || !bytes.Equal(b, f.stateContent) {
		t.Errorf("state file changed: %v", err)
	}
	if s, _ := f.w.Size(f.fresh.origin); s != 0 || f.w.Latest(f.fresh.origin) != nil {
		t.Errorf("the fresh log's state changed: size %d", s)
	}
}

type refusal struct {
	name     string
	old      uint64
	proof    [][]byte
	cp       []byte
	want     error // a sentinel, or a *ConflictError / *ForkError target
	conflict uint64
	fork     bool
	status   int
}

// signText signs an arbitrary note text with the log's key.
func signText(t testing.TB, l *testLog, text string) []byte {
	t.Helper()
	s, err := note.NewSigner(string(l.skey))
	if err != nil {
		t.Fatal(err)
	}
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refusals(t *testing.T, f *refusalFixture) []refusal {
	log, fresh := f.log, f.fresh
	cp8 := log.checkpoint()
	text8, _, _ := splitNote(cp8)
	root8 := strings.Split(string(text8), "\n")[2]

	// A signature by the log's key that does not verify.
	badSig := func() []byte {
		_, sigs, _ := splitNote(cp8)
		name, sig, _ := parseSigLine(sigs[0])
		sig[len(sig)-1] ^= 1
		return []byte(string(text8) + "\n— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
	}()
	other := newTestLog(t, log.origin).grow(8) // same origin, another key
	unknown := newTestLog(t, "example.com/unknown").grow(8)
	badProof := log.proof(5, 8)
	badProof[0] = bytes.Clone(badProof[0])
	badProof[0][0] ^= 1
	forked := log.fork(3).grow(5)                                          // size 8, the first 3 leaves only in common
	sameSize := log.fork(4).grow(1)                                        // size 5, another root
	zeroBad, err := audit.Sign(fresh.skey, 0, bytes.Repeat([]byte{1}, 32)) // size 0, not the empty root
	if err != nil {
		t.Fatal(err)
	}
	hashes := func(n int) [][]byte {
		p := make([][]byte, n)
		for i := range p {
			p[i] = make([]byte, 32)
		}
		return p
	}
	return []refusal{
		{name: "not a note", old: 5, cp: []byte("hello\n"), want: ErrMalformed, status: 400},
		{name: "no signature lines", old: 5, cp: append(bytes.Clone(text8), '\n'), want: ErrMalformed, status: 400},
		{name: "signature line malformed", old: 5, cp: append(bytes.Clone(text8), "\n— example.com/log\n"...), want: ErrMalformed, status: 400},
		{name: "two-line body", old: 5, cp: signText(t, log, "example.com/log\n8\n"), want: ErrMalformed, status: 400},
		{name: "size with a leading zero", old: 5, cp: signText(t, log, "example.com/log\n08\n"+root8+"\n"), want: ErrMalformed, status: 400},
		{name: "root of 20 bytes", old: 5, cp: signText(t, log, "example.com/log\n8\n"+base64.StdEncoding.EncodeToString(make([]byte, 20))+"\n"), want: ErrMalformed, status: 400},
		{name: "empty extension line", old: 5, cp: signText(t, log, "example.com/log\n8\n"+root8+"\n\nx\n"), want: ErrMalformed, status: 400},
		{name: "control character", old: 5, cp: signText(t, log, "example.com/log\n8\n"+root8+"\nx\x01\n"), want: ErrMalformed, status: 400},
		{name: "checkpoint too large", old: 5, cp: signText(t, log, "example.com/log\n8\n"+root8+"\n"+strings.Repeat("x", MaxCheckpointSize)+"\n"), want: ErrMalformed, status: 400},
		{name: "proof hash of 31 bytes", old: 5, proof: [][]byte{make([]byte, 31)}, cp: cp8, want: ErrMalformed, status: 400},
		{name: "64 proof hashes", old: 5, proof: hashes(64), cp: cp8, want: ErrMalformed, status: 400},
		{name: "unknown origin", old: 0, cp: unknown.checkpoint(), want: ErrUnknownLog, status: 404},
		{name: "signed by another key", old: 5, proof: log.proof(5, 8), cp: other.checkpoint(), want: ErrBadSignature, status: 403},
		{name: "log signature does not verify", old: 5, proof: log.proof(5, 8), cp: badSig, want: ErrBadSignature, status: 403},
		{name: "old size above the checkpoint's", old: 9, cp: cp8, want: ErrMalformed, status: 400},
		{name: "old size behind", old: 3, proof: log.proof(3, 8), cp: cp8, conflict: 5, status: 409},
		{name: "old size ahead", old: 6, proof: log.proof(6, 8), cp: cp8, conflict: 5, status: 409},
		{name: "old size 0", old: 0, cp: cp8, conflict: 5, status: 409},
		{name: "smaller checkpoint", old: 3, cp: log.checkpointAt(3), conflict: 5, status: 409},
		{name: "smaller checkpoint, old size the witness's", old: 5, cp: log.checkpointAt(3), want: ErrMalformed, status: 400},
		{name: "bad proof", old: 5, proof: badProof, cp: cp8, fork: true, status: 422},
		{name: "proof between other sizes", old: 5, proof: log.proof(4, 8), cp: cp8, fork: true, status: 422},
		{name: "no proof", old: 5, cp: cp8, fork: true, status: 422},
		{name: "forked log", old: 5, proof: forked.proof(5, 8), cp: forked.checkpoint(), fork: true, status: 422},
		{name: "same size, another root", old: 5, cp: sameSize.checkpoint(), fork: true, status: 422},
		{name: "same size, a proof", old: 5, proof: log.proof(4, 5), cp: log.checkpointAt(5), want: ErrBadProof, status: 422},
		{name: "fresh: size 0 with a non-empty root", old: 0, cp: zeroBad, want: ErrBadProof, status: 422},
		{name: "fresh: a proof from size 0", old: 0, proof: hashes(1), cp: fresh.checkpoint(), want: ErrBadProof, status: 422},
		{name: "fresh: old size not 0", old: 2, proof: fresh.proof(2, 3), cp: fresh.checkpoint(), conflict: 0, status: 409},
	}
}

func (c refusal) check(t *testing.T, f *refusalFixture, err error) {
	t.Helper()
	var conflict *ConflictError
	var fork *ForkError
	switch {
	case c.status == 409:
		if !errors.As(err, &conflict) || conflict.Size != c.conflict {
			t.Fatalf("err = %v, want a ConflictError with size %d", err, c.conflict)
		}
	case c.fork:
		if !errors.As(err, &fork) || !errors.Is(err, ErrBadProof) {
			t.Fatalf("err = %v, want a ForkError", err)
		}
	default:
		if !errors.Is(err, c.want) || errors.As(err, &fork) {
			t.Fatalf("err = %v, want %v", err, c.want)
		}
	}
	f.unchanged(t)
}

// TestRefusals submits every kind of bad request directly; each is refused
// with the error c2sp.org/tlog-witness asks for, and changes nothing.
func TestRefusals(t *testing.T) {
	f := newRefusalFixture(t)
	for _, c := range refusals(t, f) {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.w.AddCheckpoint(context.Background(), c.old, c.proof, c.cp)
			c.check(t, f, err)
			var fork *ForkError
			if errors.As(err, &fork) {
				if !bytes.Equal(fork.Cosigned, f.latest) || !bytes.Equal(fork.Offered, c.cp) || fork.Reason == "" {
					t.Fatalf("fork evidence: cosigned %q offered %q reason %q", fork.Cosigned, fork.Offered, fork.Reason)
				}
			}
		})
	}
}

// TestForkEvidence: the two checkpoints of a ForkError are both signed by
// the log, the same size, and different: proof of a fork that anyone with
// the log's key can check.
func TestForkEvidence(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(10)
	w, _, wvkey, _ := newTestWitness(t, "w1", log)
	cosig, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	evil := log.fork(6).grow(4) // rewrites leaves 6..9
	_, err = w.AddCheckpoint(context.Background(), 10, nil, evil.checkpoint())
	var fork *ForkError
	if !errors.As(err, &fork) {
		t.Fatalf("err = %v, want a ForkError", err)
	}
	a, err := audit.Open(fork.Cosigned, log.vkey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := audit.Open(fork.Offered, log.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != b.Size || bytes.Equal(a.Root, b.Root) {
		t.Fatalf("evidence: sizes %d and %d, roots equal %v", a.Size, b.Size, bytes.Equal(a.Root, b.Root))
	}
	// The cosigned one carries the witness's cosignature.
	if _, err := VerifyCosigned(fork.Cosigned, log.vkey, []string{wvkey}, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(fork.Cosigned, cosig) {
		t.Fatal("the cosigned evidence does not carry the cosignature")
	}
	// Growing the fork further is refused as well.
	evil.grow(5)
	if _, err := w.AddCheckpoint(context.Background(), 10, evil.proof(10, 15), evil.checkpoint()); !errors.As(err, &fork) {
		t.Fatalf("err = %v, want a ForkError", err)
	}
	// And the honest log goes on.
	log.grow(5)
	if _, err := w.AddCheckpoint(context.Background(), 10, log.proof(10, 15), log.checkpoint()); err != nil {
		t.Fatal(err)
	}
}

// TestRestart: a witness reopened on its directory keeps what it cosigned.
func TestRestart(t *testing.T) {
	log := newTestLog(t, "example.com/log")
	other := newTestLog(t, "example.com/other").grow(2)
	skey, _, _ := GenerateKey("w1")
	dir := t.TempDir()
	w := openWitness(t, dir, skey, log, other)
	old := uint64(0)
	for _, n := range []uint64{3, 4, 9} {
		log.grow(n)
		var p [][]byte
		if old > 0 {
			p = log.proof(old, log.st.Size)
		}
		if _, err := w.AddCheckpoint(context.Background(), old, p, log.checkpoint()); err != nil {
			t.Fatal(err)
		}
		old = log.st.Size
	}
	latest := w.Latest(log.origin)
	if _, err := Open(Config{Dir: dir, Signer: skey, Logs: map[string]string{log.origin: log.vkey}}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second Open: %v, want ErrLocked", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(context.Background(), 16, nil, log.checkpoint()); err == nil {
		t.Fatal("AddCheckpoint after Close succeeded")
	}

	w = openWitness(t, dir, skey, log, other)
	if s, _ := w.Size(log.origin); s != 16 || !bytes.Equal(w.Latest(log.origin), latest) {
		t.Fatalf("after reopening: size %d, latest equal %v", s, bytes.Equal(w.Latest(log.origin), latest))
	}
	if s, ok := w.Size(other.origin); s != 0 || !ok {
		t.Fatalf("the other log: size %d known %v", s, ok)
	}
	var conflict *ConflictError
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); !errors.As(err, &conflict) || conflict.Size != 16 {
		t.Fatalf("old size 0 after reopening: %v, want a conflict at 16", err)
	}
	evil := log.fork(10).grow(6)
	if _, err := w.AddCheckpoint(context.Background(), 16, nil, evil.checkpoint()); !errors.As(err, new(*ForkError)) {
		t.Fatalf("a fork after reopening: %v", err)
	}
	log.grow(1)
	if _, err := w.AddCheckpoint(context.Background(), 16, log.proof(16, 17), log.checkpoint()); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// Reopened without the log, the state file stays; with it again, it is read.
	w2, err := Open(Config{Dir: dir, Signer: skey})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Latest(log.origin) != nil {
		t.Fatal("Latest of a log not configured")
	}
	if err := w2.AddLog(log.origin, log.vkey); err != nil {
		t.Fatal(err)
	}
	if s, _ := w2.Size(log.origin); s != 17 {
		t.Fatalf("after AddLog: size %d, want 17", s)
	}
	w2.Close()
}

// TestOpenRefuses: bad configuration and a corrupt state are errors, never
// an empty state.
func TestOpenRefuses(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(3)
	skey, _, _ := GenerateKey("w1")
	dir := t.TempDir()
	w := openWitness(t, dir, skey, log)
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sum := sha256.Sum256([]byte(log.origin))
	state := filepath.Join(dir, hex.EncodeToString(sum[:])+".checkpoint")
	good, _ := os.ReadFile(state)

	otherLog := newTestLog(t, "example.com/other").grow(1)
	otherState := bytes.Replace(good, []byte("example.com/log\n"), []byte("example.com/other\n"), 1)
	for _, c := range []struct {
		name  string
		cfg   Config
		state []byte
		want  string
	}{
		{name: "no dir", cfg: Config{Signer: skey}, want: "Dir"},
		{name: "bad signer", cfg: Config{Dir: dir, Signer: "PRIVATE+KEY+w1+00000000+AAAA"}, want: "signer key is malformed"},
		{name: "bad log key", cfg: Config{Dir: dir, Signer: skey, Logs: map[string]string{log.origin: "nope"}}, want: "verifier key"},
		{name: "bad origin", cfg: Config{Dir: dir, Signer: skey, Logs: map[string]string{"a\nb": log.vkey}}, want: "origin"},
		{name: "truncated state", cfg: Config{Dir: dir, Signer: skey, Logs: map[string]string{log.origin: log.vkey}}, state: good[:len(good)-10], want: "corrupt"},
		{name: "state of another origin", cfg: Config{Dir: dir, Signer: skey, Logs: map[string]string{log.origin: log.vkey, otherLog.origin: otherLog.vkey}}, state: otherState, want: "corrupt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.state != nil {
				if err := os.WriteFile(state, c.state, 0o600); err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(state, good, 0o600)
			}
			w, err := Open(c.cfg)
			if err == nil {
				w.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	// Unharmed by the refusals: the directory opens again (the lock was released).
	w = openWitness(t, dir, skey, log)
	if s, _ := w.Size(log.origin); s != 3 {
		t.Fatalf("size %d, want 3", s)
	}
}

// TestConcurrentSubmissions: submissions of many sizes of one log race;
// the checks and the writes are serialized, so the witness never rolls
// back and ends at the largest size.
func TestConcurrentSubmissions(t *testing.T) {
	const n = 12
	log := newTestLog(t, "example.com/log").grow(n)
	w, _, wvkey, _ := newTestWitness(t, "w1", log)
	var wg sync.WaitGroup
	for k := uint64(1); k <= n; k++ {
		cp := log.checkpointAt(k)
		wg.Go(func() {
			old := uint64(0)
			for {
				var p [][]byte
				if old > 0 {
					p = log.proof(old, k)
				}
				cosig, err := w.AddCheckpoint(context.Background(), old, p, cp)
				var conflict *ConflictError
				if errors.As(err, &conflict) {
					if conflict.Size > k {
						return // stale: a larger checkpoint was cosigned first
					}
					old = conflict.Size
					continue
				}
				if err != nil {
					t.Errorf("size %d: %v", k, err)
					return
				}
				if _, err := VerifyCosigned(Combine(cp, cosig), log.vkey, []string{wvkey}, 1); err != nil {
					t.Errorf("size %d: %v", k, err)
				}
				if s, _ := w.Size(log.origin); s < k {
					t.Errorf("after cosigning size %d the witness is at %d: rolled back", k, s)
				}
				return
			}
		})
	}
	wg.Wait()
	if s, _ := w.Size(log.origin); s != n {
		t.Fatalf("size %d, want %d", s, n)
	}
}

func TestAddCheckpointContext(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(1)
	w, _, _, _ := newTestWitness(t, "w1", log)
	ls, _ := w.lookup(log.origin)
	ls.sem <- struct{}{} // another submission holds the log
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.AddCheckpoint(ctx, 0, nil, log.checkpoint()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	ls.release()
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); err != nil {
		t.Fatal(err)
	}
}

func TestAddLog(t *testing.T) {
	log := newTestLog(t, "example.com/log").grow(2)
	w, _, _, _ := newTestWitness(t, "w1")
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); !errors.Is(err, ErrUnknownLog) {
		t.Fatalf("err = %v, want ErrUnknownLog", err)
	}
	if err := w.AddLog(log.origin, "not a key"); err == nil {
		t.Fatal("AddLog with a bad key succeeded")
	}
	if err := w.AddLog(log.origin, w.VerifierKey()); err == nil || !strings.Contains(err.Error(), "not a log key") {
		t.Fatalf("AddLog with a witness key: %v", err)
	}
	if err := w.AddLog(log.origin, log.vkey); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, log.checkpoint()); err != nil {
		t.Fatal(err)
	}
	// A new key for the origin: the old one no longer verifies, the state stays.
	rotated := newTestLog(t, log.origin).grow(3)
	if err := w.AddLog(log.origin, rotated.vkey); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(context.Background(), 2, log.proof(2, 2), log.checkpoint()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature", err)
	}
	if _, err := w.AddCheckpoint(context.Background(), 2, rotated.proof(2, 3), rotated.checkpoint()); err != nil {
		t.Fatal(err)
	}
	if got := w.Logs(); len(got) != 1 || got[0] != log.origin {
		t.Fatalf("Logs = %v", got)
	}
}
