// Command diskuse measures the bytes each audited operation leaves in a
// Warden data directory (issue 11).
//
// Load mode starts a real `warden server` (one node, loopback, a fresh data
// dir), initializes and unseals it, makes a non-root token for
// User::"bench" in Group::"bench" under a policy like bench/setup.sh's, and
// runs four phases of N operations each: KV writes of 1 KiB, audited KV
// reads of those keys, token creations, node enrollments (a join token and
// a P-256 CSR each). After each phase it merges the read journal (a
// checkpoint request merges this node's journal first), records the data
// dir ("after load"), waits until Raft has compacted its log as far as its
// settings let it (the entries since the newest snapshot are below the
// snapshot threshold), stops the server and records the data dir again
// ("compacted"), with the logical content of both bbolt databases, which
// only a stopped server lets another process open.
//
//	go run ./bench/diskuse -n 20000            # all four phases
//	go run ./bench/diskuse -n 5000 -ops write  # one phase
//
// Report mode breaks down any data dir; the file-level part works on a
// running server's dir (a copy of it, or the live one), the logical part
// only on a stopped server's (it is skipped, with a note, when the
// databases are locked):
//
//	go run ./bench/diskuse -report /var/lib/warden
//
// Only loopback addresses are used; the data dir is temporary unless -keep.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/warden-sec/warden/pkg/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "diskuse:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 20000, "operations per phase")
	conc := flag.Int("c", 16, "concurrent clients")
	opsFlag := flag.String("ops", "write,read,token,enroll", "phases, in order (write, read, update, token, enroll); read reads the keys write wrote, update overwrites 100 keys again and again")
	bin := flag.String("bin", "", "warden binary (default: built from this checkout)")
	keep := flag.String("keep", "", "use this (new) data dir and keep it, instead of a temporary one")
	report := flag.String("report", "", "only break down this existing data dir and exit")
	snapInterval := flag.Duration("snapshot-interval", 5*time.Second, "the server's --snapshot-interval (how often Raft checks its threshold; 2m in production)")
	extra := flag.String("server-args", "", "extra arguments for `warden server`, space separated")
	flag.Parse()
	if *report != "" {
		b, err := breakdown(*report)
		if err != nil {
			return err
		}
		b.print(os.Stdout)
		return nil
	}
	if *n < 1 || *conc < 1 || *conc > 256 {
		return errors.New("-n must be positive and -c 1..256")
	}
	tmp, err := os.MkdirTemp("", "warden-diskuse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		*bin = filepath.Join(tmp, "warden")
		b := exec.Command("go", "build", "-o", *bin, "./cmd/warden")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	dir := filepath.Join(tmp, "data")
	if *keep != "" {
		dir = *keep
	}
	srv := &server{bin: *bin, dir: dir, api: freePort(), args: append([]string{"--snapshot-interval", snapInterval.String()}, strings.Fields(*extra)...)}
	l := &load{srv: srv, n: *n, conc: *conc}
	defer srv.stop()
	if err := l.setup(); err != nil {
		return err
	}
	fmt.Printf("diskuse: N=%d per phase, %d clients, data dir %s, server args %q\n\n", *n, *conc, dir, srv.args)
	var rows []phaseResult
	for _, op := range strings.Split(*opsFlag, ",") {
		r, err := l.phase(op)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		rows = append(rows, r)
		r.print(os.Stdout, *n)
	}
	printSummary(os.Stdout, rows, *n)
	final, err := breakdown(dir)
	if err != nil {
		return err
	}
	fmt.Println("\nfinal data dir:")
	final.print(os.Stdout)
	return nil
}

// ---- the server process ----

type server struct {
	bin, dir, api string
	args          []string
	cmd           *exec.Cmd
	keys          []string
	root          string
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *server) start(ctx context.Context) error {
	args := append([]string{"server", "--data-dir", s.dir, "--listen", s.api, "--log-level", "error", "--rate-limit", "-1"}, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	log, err := os.OpenFile(s.dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	// Wait until it answers at all.
	for {
		if _, err := os.Stat(filepath.Join(s.dir, "tls", "ca.pem")); err == nil {
			if _, err := s.client("").SealStatus(ctx); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server did not come up (log: %s.log)", s.dir)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if s.keys == nil {
		res, err := s.client("").Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		s.keys, s.root = res.UnsealKeys, res.RootToken
	}
	for _, k := range s.keys {
		st, err := s.client("").Unseal(ctx, k)
		if err != nil {
			return fmt.Errorf("unseal: %w", err)
		}
		if !st.Sealed {
			break
		}
	}
	// Ready when it serves an authenticated read as leader.
	for {
		if h, err := s.client("").Health(ctx); err == nil && h.Role == "leader" && !h.Sealed {
			if _, err := s.client(s.root).TokenLookupSelf(ctx); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("the server did not become a ready leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop stops the server with SIGTERM (a clean shutdown) and waits for it.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *server) client(token string) *client.Client {
	c, err := client.New(client.Config{Address: "https://" + s.api, CACertFile: filepath.Join(s.dir, "tls", "ca.pem"), Token: token, Timeout: 60 * time.Second})
	if err != nil {
		panic(err)
	}
	return c
}

// ---- the load ----

type load struct {
	srv     *server
	n, conc int
	bench   string // the non-root token
}

const benchPolicy = `permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write", Action::"token.create", Action::"node.create"], resource);`

func (l *load) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := os.MkdirAll(filepath.Dir(l.srv.dir), 0o700); err != nil {
		return err
	}
	if err := l.srv.start(ctx); err != nil {
		return err
	}
	root := l.srv.client(l.srv.root)
	if _, err := root.PolicyWrite(ctx, "warden", "bench", benchPolicy); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	tok, err := root.TokenCreate(ctx, client.TokenCreateRequest{TTL: "24h", User: "bench", Groups: []string{"bench"}})
	if err != nil {
		return fmt.Errorf("bench token: %w", err)
	}
	l.bench = tok.Token
	l.srv.stop()
	return nil
}

type phaseResult struct {
	op                      string
	elapsed                 time.Duration
	retried                 int64 // operations repeated after a 409
	before, loaded, settled *dirBreakdown
}

// phase measures the data dir with the server stopped, starts it, runs n
// operations, merges the journal, measures, waits for compaction, stops
// the server and measures again.
func (l *load) phase(op string) (phaseResult, error) {
	r := phaseResult{op: op}
	var err error
	if r.before, err = breakdown(l.srv.dir); err != nil {
		return r, err
	}
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = l.srv.start(sctx)
	cancel()
	if err != nil {
		return r, err
	}
	defer l.srv.stop()
	do, err := l.operation(op)
	if err != nil {
		return r, err
	}
	start := time.Now()
	var next, failed, retried atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := 0; w < l.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.srv.client(l.bench)
			for {
				i := next.Add(1) - 1
				if i >= int64(l.n) {
					return
				}
				// A 409 is a lost race on a shared record (token
				// creations update the parent's): try again, as a
				// client would.
				err := do(ctx, c, int(i))
				for try := 0; err != nil && strings.Contains(err.Error(), "409") && try < 20; try++ {
					retried.Add(1)
					err = do(ctx, c, int(i))
				}
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.retried = retried.Load()
	if f := failed.Load(); f > 0 {
		return r, fmt.Errorf("%d of %d operations failed, the first: %v", f, l.n, *first.Load())
	}
	root := l.srv.client(l.srv.root)
	// A checkpoint merges this node's journal before it signs.
	if _, err := root.AuditCheckpoint(ctx); err != nil {
		return r, fmt.Errorf("checkpoint: %w", err)
	}
	if r.loaded, err = breakdown(l.srv.dir); err != nil {
		return r, err
	}
	if err := l.waitCompacted(ctx); err != nil {
		return r, err
	}
	l.srv.stop()
	r.settled, err = breakdown(l.srv.dir)
	return r, err
}

// waitCompacted waits until the entries since Raft's newest snapshot are
// fewer than its snapshot threshold: Raft takes no further snapshot then,
// so the log is as short as its settings make it.
func (l *load) waitCompacted(ctx context.Context) error {
	threshold := uint64(8192)
	for i, a := range l.srv.args {
		if a == "--snapshot-threshold" && i+1 < len(l.srv.args) {
			threshold, _ = strconv.ParseUint(l.srv.args[i+1], 10, 64)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for {
		h, err := l.srv.client("").Health(ctx)
		if err != nil {
			return err
		}
		if h.AppliedIndex < newestSnapshot(l.srv.dir)+threshold {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("no snapshot brought the log under the threshold within 10 minutes")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// newestSnapshot returns the index of the newest snapshot in dir (raft's
// FileSnapshotStore names them term-index-milliseconds), 0 if none.
func newestSnapshot(dir string) uint64 {
	des, _ := os.ReadDir(filepath.Join(dir, "store", "raft", "snapshots"))
	var best uint64
	for _, de := range des {
		parts := strings.Split(de.Name(), "-")
		if len(parts) != 3 || strings.HasSuffix(de.Name(), ".tmp") {
			continue
		}
		if idx, err := strconv.ParseUint(parts[1], 10, 64); err == nil && idx > best {
			best = idx
		}
	}
	return best
}

type opFunc func(ctx context.Context, c *client.Client, i int) error

func (l *load) operation(op string) (opFunc, error) {
	value := strings.Repeat("x", 1024)
	switch op {
	case "write":
		return func(ctx context.Context, c *client.Client, i int) error {
			_, err := c.KVPut(ctx, fmt.Sprintf("bench/k%06d", i), map[string]any{"v": value}, nil)
			return err
		}, nil
	case "update":
		return func(ctx context.Context, c *client.Client, i int) error {
			_, err := c.KVPut(ctx, fmt.Sprintf("bench/u%03d", i%100), map[string]any{"v": value}, nil)
			return err
		}, nil
	case "read":
		return func(ctx context.Context, c *client.Client, i int) error {
			_, err := c.KVGet(ctx, fmt.Sprintf("bench/k%06d", i), 0)
			return err
		}, nil
	case "token":
		return func(ctx context.Context, c *client.Client, i int) error {
			_, err := c.TokenCreate(ctx, client.TokenCreateRequest{TTL: "24h"})
			return err
		}, nil
	case "enroll":
		prefix := fmt.Sprintf("du%d", time.Now().Unix())
		return func(ctx context.Context, c *client.Client, i int) error {
			name := fmt.Sprintf("%s-%06d", prefix, i)
			jt, err := c.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: name, CertTTL: "24h"})
			if err != nil {
				return fmt.Errorf("join token: %w", err)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				return err
			}
			csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
			if _, err := c.Enroll(ctx, name, jt.Token, csr); err != nil {
				return fmt.Errorf("enroll: %w", err)
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown phase %q (want write, read, update, token or enroll)", op)
}

// ---- the breakdown of a data dir ----

// Parts of a data dir, as `warden server` lays it out.
var parts = []struct{ name, rel string }{
	{"raft log (store/raft/raft.db)", "store/raft/raft.db"},
	{"state (store/fsm.db)", "store/fsm.db"},
	{"snapshots (store/raft/snapshots)", "store/raft/snapshots"},
	{"audit journal (audit-journal)", "audit-journal"},
}

type dirBreakdown struct {
	dir   string
	files map[string]int64 // part name → bytes on disk (allocated blocks)
	total int64
	// From the databases, when they could be opened (server stopped).
	state, raftLog *boltStats
	note           string
}

type boltStats struct {
	fileBytes, freeBytes int64
	buckets              map[string]bucketStats
}

type bucketStats struct {
	keys                 int
	keyBytes, valueBytes int64 // the sums of the lengths of keys and values
	inuse                int64 // bytes of the bucket's pages in use (bbolt's Stats)
}

// breakdown measures dir: the bytes on disk of each part (what du counts),
// and, if the databases are not locked by a running server, what they hold.
func breakdown(dir string) (*dirBreakdown, error) {
	b := &dirBreakdown{dir: dir, files: map[string]int64{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		size := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			size = st.Blocks * 512
		}
		rel, _ := filepath.Rel(dir, path)
		part := "other"
		for _, p := range parts {
			if rel == p.rel || strings.HasPrefix(rel, p.rel+string(filepath.Separator)) {
				part = p.name
			}
		}
		b.files[part] += size
		b.total += size
		return nil
	})
	if err != nil {
		return nil, err
	}
	var errs []string
	if b.state, err = dbStats(filepath.Join(dir, "store", "fsm.db")); err != nil {
		errs = append(errs, err.Error())
	}
	if b.raftLog, err = dbStats(filepath.Join(dir, "store", "raft", "raft.db")); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		b.note = "database contents not read (is the server running?): " + strings.Join(errs, "; ")
	}
	return b, nil
}

func dbStats(path string) (*boltStats, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	defer db.Close()
	s := &boltStats{fileBytes: info.Size(), buckets: map[string]bucketStats{}}
	ps := int64(db.Info().PageSize)
	pages := int64(4) // two meta pages, the freelist, the root bucket (about)
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			var bs bucketStats
			st := bk.Stats()
			bs.inuse = int64(st.BranchInuse + st.LeafInuse + st.InlineBucketInuse)
			pages += int64(st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN)
			err := bk.ForEach(func(k, v []byte) error {
				bs.keys++
				bs.keyBytes += int64(len(k))
				bs.valueBytes += int64(len(v))
				return nil
			})
			s.buckets[string(name)] = bs
			return err
		})
	})
	// A read-only open does not load the free list: what the buckets'
	// pages do not cover is free (or the free list itself).
	s.freeBytes = s.fileBytes - pages*ps
	return s, err
}

func (b *dirBreakdown) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "part\tbytes on disk\t\n")
	for _, p := range parts {
		fmt.Fprintf(tw, "%s\t%d\t\n", p.name, b.files[p.name])
	}
	fmt.Fprintf(tw, "other\t%d\t\n", b.files["other"])
	fmt.Fprintf(tw, "total\t%d\t\n", b.total)
	tw.Flush()
	if b.note != "" {
		fmt.Fprintln(w, b.note)
		return
	}
	for _, db := range []struct {
		name string
		s    *boltStats
	}{{"store/fsm.db", b.state}, {"store/raft/raft.db", b.raftLog}} {
		fmt.Fprintf(w, "%s: file %d bytes, pages not in use %d bytes\n", db.name, db.s.fileBytes, db.s.freeBytes)
		names := make([]string, 0, len(db.s.buckets))
		for n := range db.s.buckets {
			names = append(names, n)
		}
		sort.Strings(names)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  bucket\tkeys\tkey bytes\tvalue bytes\tpages in use\t\n")
		for _, n := range names {
			bs := db.s.buckets[n]
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t\n", n, bs.keys, bs.keyBytes, bs.valueBytes, bs.inuse)
		}
		tw.Flush()
	}
}

func (r phaseResult) print(w io.Writer, n int) {
	fmt.Fprintf(w, "== %s: %d operations in %s (%.0f/s; %d retried after a 409)\n", r.op, n, r.elapsed.Round(time.Millisecond), float64(n)/r.elapsed.Seconds(), r.retried)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "part\tbefore\tafter load\tcompacted\tbytes/op after load\tbytes/op compacted\t\n")
	names := []string{}
	for _, p := range parts {
		names = append(names, p.name)
	}
	names = append(names, "other")
	for _, name := range names {
		b, l, s := r.before.files[name], r.loaded.files[name], r.settled.files[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t\n", name, b, l, s, float64(l-b)/float64(n), float64(s-b)/float64(n))
	}
	b, l, s := r.before.total, r.loaded.total, r.settled.total
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%.0f\t%.0f\t\n", b, l, s, float64(l-b)/float64(n), float64(s-b)/float64(n))
	tw.Flush()
	if r.before.state != nil && r.settled.state != nil {
		fmt.Fprintf(w, "logical, per operation (compacted, server stopped):\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  db/bucket\tkeys/op\tkey+value bytes/op\tpages in use/op\t\n")
		for _, db := range []struct {
			name          string
			before, after *boltStats
		}{{"fsm", r.before.state, r.settled.state}, {"raft", r.before.raftLog, r.settled.raftLog}} {
			names := []string{}
			for k := range db.after.buckets {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				a, bb := db.after.buckets[k], db.before.buckets[k]
				fmt.Fprintf(tw, "  %s/%s\t%.2f\t%.0f\t%.0f\t\n", db.name, k, float64(a.keys-bb.keys)/float64(n),
					float64(a.keyBytes+a.valueBytes-bb.keyBytes-bb.valueBytes)/float64(n), float64(a.inuse-bb.inuse)/float64(n))
			}
			fmt.Fprintf(tw, "  %s pages not in use\t\t%.0f\t\t\n", db.name, float64(db.after.freeBytes-db.before.freeBytes)/float64(n))
		}
		tw.Flush()
		if lv := r.settled.state.buckets["audit_leaves"]; lv.keys > r.before.state.buckets["audit_leaves"].keys {
			bl := r.before.state.buckets["audit_leaves"]
			fmt.Fprintf(w, "  audit leaves: %d new, %.0f bytes of stored value each (8 Raft index + encrypted entry)\n",
				lv.keys-bl.keys, float64(lv.valueBytes-bl.valueBytes)/float64(lv.keys-bl.keys))
		}
	}
	fmt.Fprintln(w)
}

func printSummary(w io.Writer, rows []phaseResult, n int) {
	fmt.Fprintf(w, "summary, bytes on disk per operation (data dir growth / N, N=%d):\n", n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "op\traft log\tstate\tsnapshots\tjournal\tother\ttotal after load\ttotal compacted\t\n")
	for _, r := range rows {
		d := func(name string) string {
			return strconv.FormatFloat(float64(r.settled.files[name]-r.before.files[name])/float64(n), 'f', 0, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t\n", r.op, d(parts[0].name), d(parts[1].name), d(parts[2].name), d(parts[3].name), d("other"),
			float64(r.loaded.total-r.before.total)/float64(n), float64(r.settled.total-r.before.total)/float64(n))
	}
	tw.Flush()
}
