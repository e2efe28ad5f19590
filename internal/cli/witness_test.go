package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/witness"
)

func TestWitnessUsage(t *testing.T) {
	dir := t.TempDir()
	_, vkey, err := audit.GenerateSigner("example.com/log", nil)
	if err != nil {
		t.Fatal(err)
	}
	log := "--log=example.com/log=" + vkey
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data dir", []string{"witness", log}, ExitUsage, "--data-dir is required"},
		{"no log", []string{"witness", "--data-dir", dir}, ExitUsage, "at least one --log"},
		{"log without =", []string{"witness", "--data-dir", dir, "--log", "example.com/log"}, ExitUsage, "want ORIGIN=VKEY"},
		{"log twice", []string{"witness", "--data-dir", dir, log, log}, ExitUsage, "given twice"},
		{"tls cert alone", []string{"witness", "--data-dir", dir, log, "--tls-cert", "c.pem"}, ExitUsage, "go together"},
		{"argument", []string{"witness", "--data-dir", dir, log, "extra"}, ExitUsage, "unknown command"},
		{"bad name", []string{"witness", "--data-dir", filepath.Join(dir, "n"), log, "--name", "a b"}, ExitError, "--name"},
		{"bad log key", []string{"witness", "--data-dir", filepath.Join(dir, "k"), "--log", "example.com/log=nope", "--listen", "127.0.0.1:0"}, ExitError, "verifier key"},
		{"bad listen", []string{"witness", "--data-dir", filepath.Join(dir, "l"), log, "--listen", "127.0.0.1:99999"}, ExitError, "--listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, env{}, "", c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}
}

func TestWitnessKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	skey, created, err := witnessKey(dir, "w.example/1")
	if err != nil || !created {
		t.Fatalf("first: %v, created %v", err, created)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, witnessKeyFile): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Fatalf("%s: %v %v, want %v", path, fi.Mode(), err, mode)
		}
	}
	again, created, err := witnessKey(dir, "")
	if err != nil || created || again != skey {
		t.Fatalf("second start: %v, created %v, same %v", err, created, again == skey)
	}
	if _, _, err := witnessKey(dir, "w.example/2"); err == nil || !strings.Contains(err.Error(), `named "w.example/1"`) {
		t.Fatalf("another --name: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, witnessKeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := witnessKey(dir, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key others may read: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), strings.SplitN(skey, "+", 5)[4]) {
		t.Fatal("the error quotes the key")
	}
}

// procLog is a real log for the process test: an audit tree and its key.
type procLog struct {
	t      *testing.T
	origin string
	skey   audit.SignerKey
	vkey   string
	st     audit.TreeState
	nodes  procNodes
	leaf   string
}

type procNodes map[[2]uint64][]byte

func (m procNodes) GetNode(level uint, index uint64) ([]byte, error) {
	h, ok := m[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, fmt.Errorf("no node (%d, %d)", level, index)
	}
	return h, nil
}

func (l *procLog) grow(n int) {
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = audit.LeafHash(fmt.Appendf(nil, "%s %d", l.leaf, l.st.Size+uint64(i)))
	}
	st, nodes, err := audit.Append(l.st, hs)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, nd := range nodes {
		l.nodes[[2]uint64{uint64(nd.Level), nd.Index}] = nd.Hash
	}
	l.st = st
}

func (l *procLog) checkpoint() []byte {
	root, err := l.st.Root()
	if err != nil {
		l.t.Fatal(err)
	}
	cp, err := audit.Sign(l.skey, l.st.Size, root)
	if err != nil {
		l.t.Fatal(err)
	}
	return cp
}

func (l *procLog) proofs(_ context.Context, from uint64) ([][]byte, error) {
	return audit.ConsistencyProof(l.nodes, from, l.st.Size)
}

// witnessProc is `warden witness` running as its own process.
type witnessProc struct {
	cmd    *exec.Cmd
	url    string
	vkey   string
	out    []string
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startWitness starts the binary and reads its standard output up to the
// line with the address it listens on.
func startWitness(t *testing.T, bin string, args ...string) *witnessProc {
	t.Helper()
	p := &witnessProc{cmd: exec.Command(bin, append([]string{"witness", "--listen", "127.0.0.1:0"}, args...)...), stderr: &lockedBuffer{}}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	for lines.Scan() { // ends when the process exits: no wait on a timer
		l := lines.Text()
		p.out = append(p.out, l)
		if v, ok := strings.CutPrefix(l, "Verifier key: "); ok {
			p.vkey = v
		}
		if u, ok := strings.CutPrefix(l, "Listening on "); ok {
			p.url = u
			go io.Copy(io.Discard, stdout)
			return p
		}
	}
	p.cmd.Wait()
	t.Fatalf("warden witness exited before listening:\n%s\n%s", strings.Join(p.out, "\n"), p.stderr)
	return nil
}

// stop signals the process and checks that it exits 0.
func (p *witnessProc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("after %v: %v\n%s", sig, err, p.stderr)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1, and returns a
// pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "witness"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestWitnessProcess runs `warden witness` as its own process and submits
// real checkpoints of a real Merkle tree with witness.Client: cosigned over
// several growths, a fork refused, the key and the state kept across a
// restart (the second over TLS), a clean exit on SIGTERM and SIGINT.
func TestWitnessProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	log := &procLog{t: t, origin: "warden.test/audit/1", nodes: procNodes{}, leaf: "entry"}
	var err error
	if log.skey, log.vkey, err = audit.GenerateSigner(log.origin, nil); err != nil {
		t.Fatal(err)
	}
	other := &procLog{t: t, origin: "example.com/other", nodes: procNodes{}, leaf: "x"}
	if other.skey, other.vkey, err = audit.GenerateSigner(other.origin, nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "witness")
	logs := []string{"--log", log.origin + "=" + log.vkey, "--log", other.origin + "=" + other.vkey}

	p := startWitness(t, bin, append([]string{"--data-dir", dir, "--name", "witness.test/w1"}, logs...)...)
	if !strings.HasPrefix(p.out[0], "Created the witness key ") || !strings.HasPrefix(p.vkey, "witness.test/w1+") || !strings.HasPrefix(p.url, "http://127.0.0.1:") {
		t.Fatalf("output:\n%s", strings.Join(p.out, "\n"))
	}
	if fi, err := os.Stat(filepath.Join(dir, "witness.key")); err != nil || fi.Mode() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	c := &witness.Client{URL: p.url, VerifierKey: p.vkey}
	var last []byte
	known := uint64(0)
	for _, n := range []int{1, 4, 11, 100} {
		log.grow(n)
		cp := log.checkpoint()
		cosig, _, err := c.Submit(ctx, cp, known, log.proofs)
		if err != nil {
			t.Fatalf("size %d: %v\n%s", log.st.Size, err, p.stderr)
		}
		last = witness.Combine(cp, cosig)
		v, err := witness.VerifyCosigned(last, log.vkey, []string{p.vkey}, 1)
		if err != nil || v.Size != log.st.Size || v.Cosigners[0] != "witness.test/w1" {
			t.Fatalf("size %d: %+v %v", log.st.Size, v, err)
		}
		known = log.st.Size
	}
	// A fork: the same key, the history rewritten from leaf 50 on.
	fork := &procLog{t: t, origin: log.origin, skey: log.skey, vkey: log.vkey, nodes: procNodes{}, leaf: "entry"}
	fork.grow(50)
	fork.leaf = "rewritten"
	fork.grow(int(log.st.Size) - 50 + 5)
	if _, _, err := c.Submit(ctx, fork.checkpoint(), known, fork.proofs); !errors.Is(err, witness.ErrBadProof) {
		t.Fatalf("a forked checkpoint: %v, want ErrBadProof (422)", err)
	}
	// An unknown log, a checkpoint not signed by the log's key.
	stranger := &procLog{t: t, origin: "example.com/stranger", nodes: procNodes{}, leaf: "s"}
	stranger.skey, _, _ = audit.GenerateSigner(stranger.origin, nil)
	stranger.grow(1)
	if _, err := c.AddCheckpoint(ctx, 0, nil, stranger.checkpoint()); !errors.Is(err, witness.ErrUnknownLog) {
		t.Fatalf("an unknown log: %v", err)
	}
	impostor := &procLog{t: t, origin: other.origin, nodes: procNodes{}, leaf: "i"}
	impostor.skey, _, _ = audit.GenerateSigner(other.origin, nil)
	impostor.grow(1)
	if _, err := c.AddCheckpoint(ctx, 0, nil, impostor.checkpoint()); !errors.Is(err, witness.ErrBadSignature) {
		t.Fatalf("a checkpoint by another key: %v", err)
	}
	// The monitoring GET serves the last cosigned checkpoint.
	resp, err := http.Get(p.url + "/" + sha256Hex(log.origin) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, last) {
		t.Fatalf("monitoring: %d\n%s", resp.StatusCode, body)
	}
	p.stop(t, syscall.SIGTERM) // after Wait, all of stderr has been read
	if !strings.Contains(p.stderr.String(), "refused a checkpoint not consistent with the one cosigned before") {
		t.Fatalf("the fork is not logged with its evidence:\n%s", p.stderr)
	}

	// Restarted over TLS, without --name: the same key, the same state.
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	p = startWitness(t, bin, append([]string{"--data-dir", dir, "--tls-cert", certFile, "--tls-key", keyFile}, logs...)...)
	if strings.HasPrefix(p.out[0], "Created") || p.vkey != c.VerifierKey || !strings.HasPrefix(p.url, "https://127.0.0.1:") {
		t.Fatalf("after the restart:\n%s", strings.Join(p.out, "\n"))
	}
	c = &witness.Client{URL: p.url, VerifierKey: p.vkey, HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	var conflict *witness.ConflictError
	if _, err := c.AddCheckpoint(ctx, 0, nil, log.checkpoint()); !errors.As(err, &conflict) || conflict.Size != known {
		t.Fatalf("old size 0 after the restart: %v, want a conflict at %d", err, known)
	}
	if _, _, err := c.Submit(ctx, fork.checkpoint(), 0, fork.proofs); !errors.Is(err, witness.ErrBadProof) {
		t.Fatalf("the fork after the restart: %v", err)
	}
	log.grow(7)
	cosig, prev, err := c.Submit(ctx, log.checkpoint(), 0, log.proofs)
	if err != nil || prev != known {
		t.Fatalf("growing after the restart: %v (previous size %d, want %d)", err, prev, known)
	}
	if _, err := witness.VerifyCosigned(witness.Combine(log.checkpoint(), cosig), log.vkey, []string{p.vkey}, 1); err != nil {
		t.Fatal(err)
	}
	other.grow(3)
	if _, _, err := c.Submit(ctx, other.checkpoint(), 0, other.proofs); err != nil {
		t.Fatalf("the second log: %v", err)
	}
	p.stop(t, os.Interrupt)
	if !strings.Contains(p.stderr.String(), "shutting down") {
		t.Fatalf("stderr:\n%s", p.stderr)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
