package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/pkg/client"
)

// k9ReadsEnv, set to "<data dir>|<listen address>", makes
// TestKillDuringAuditedReads the server process of the test (a re-exec of
// the test binary) instead of the test.
const k9ReadsEnv = "WARDEN_TEST_K9_READS_CHILD"

// k9ReadsDuration (a Go duration) runs the kill loop longer than 20s.
const k9ReadsDuration = "WARDEN_KILL9_READS_DURATION"

// TestKillDuringAuditedReads kills the server process (SIGKILL) again and
// again at random moments while clients read and write, restarts it on the
// same data directory each time, and checks at the end that every read
// that was answered has its record in the Merkle log exactly once (the
// records of reads are acknowledged from the local journal and merged
// later: docs/audit.md, "The journal"), that the root over every entry is
// the signed checkpoint's, and that each such record's inclusion proof
// verifies.
func TestKillDuringAuditedReads(t *testing.T) {
	if cfg := os.Getenv(k9ReadsEnv); cfg != "" {
		runServerProcess(t, cfg)
		return
	}
	duration := 20 * time.Second
	if d, err := time.ParseDuration(os.Getenv(k9ReadsDuration)); err == nil {
		duration = d
	}
	dir, addr := t.TempDir(), freeAddr(t)
	logs, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	startProc := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringAuditedReads$", "-test.timeout=0")
		cmd.Env = append(os.Environ(), k9ReadsEnv+"="+dir+"|"+addr)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+3*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(11, 0)) // kill moments repeat from run to run

	// answered holds, for every read that was answered, its resource and
	// status: the record the log must hold.
	var answered sync.Map
	var unseal, root string
	deadline := time.Now().Add(duration)
	rounds, total := 0, 0
	for rounds == 0 || time.Now().Before(deadline) {
		proc := startProc()
		c := connectProc(ctx, t, addr, dir)
		if rounds == 0 {
			in, err := c.Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			unseal, root = in.UnsealKeys[0], in.RootToken
		}
		if _, err := c.Unseal(ctx, unseal); err != nil {
			t.Fatal(err)
		}
		c.SetToken(root)

		var acks atomic.Int64
		want := int64(20 + rng.IntN(300))
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					path := fmt.Sprintf("k9/%d-%d-%d", rounds, g, i)
					status := http.StatusOK
					if i%4 == 3 {
						path, status = "k9/absent/"+path[3:], http.StatusNotFound // a refused read: recorded too
					} else if _, err := c.KVPut(ctx, path, map[string]any{"v": i}, nil); err != nil {
						return // the server is gone
					}
					_, err := c.KVGet(ctx, path, 0)
					if err != nil && !client.IsStatus(err, http.StatusNotFound) {
						return
					}
					if (err == nil) != (status == http.StatusOK) {
						t.Errorf("read of %s: %v, want status %d", path, err, status)
						return
					}
					answered.Store(strconv.Quote(path), status)
					acks.Add(1)
				}
			}()
		}
		stopped := make(chan struct{})
		go func() { wg.Wait(); close(stopped) }()
	wait:
		for acks.Load() < want {
			select {
			case <-stopped:
				break wait // every client met an error: the kill below ends the round anyway
			case <-time.After(time.Millisecond): // let reads accumulate; the count is the condition
			}
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // a random moment: mid-batch, mid-merge or idle
		proc.Process.Kill()
		proc.Wait()
		<-stopped
		if t.Failed() {
			return
		}
		total += int(acks.Load())
		rounds++
	}

	startProc()
	c := connectProc(ctx, t, addr, dir)
	if _, err := c.Unseal(ctx, unseal); err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	// Reading the checkpoint merges what the journal holds (the merger
	// would within the merge delay).
	cp, entries := verifiedLog(ctx, t, c)
	seen := map[string]int{}
	index := map[string]uint64{}
	for _, e := range entries {
		if e.Altered {
			t.Fatalf("entry %d altered: %s", e.Index, e.Error)
		}
		res, _ := e.Entry["resource"].(string)
		if e.Entry["action"] != "kv.read" || !strings.HasPrefix(res, `Secret::"k9/`) {
			continue
		}
		key := strings.TrimPrefix(res, "Secret::") + " " + fmt.Sprint(e.Entry["outcome"])
		seen[key]++
		index[key] = e.Index
	}
	missing := 0
	answered.Range(func(k, v any) bool {
		key := k.(string) + " " + strconv.Itoa(v.(int))
		switch n := seen[key]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("the answered read %s has no record in the log", key)
			}
		case n > 1:
			t.Errorf("the read %s is in the log %d times", key, n)
		default:
			p, err := c.AuditInclusionProof(ctx, index[key], cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := entries[index[key]].LeafBytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyInclusion(leaf, index[key], cp.Size, cp.Root, p); err != nil {
				t.Errorf("inclusion proof of %s: %v", key, err)
			}
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d answered reads have no record after %d kills", missing, total, rounds)
	}
	t.Logf("%d rounds, %d answered reads, all in the log of %d entries, which verifies", rounds, total, cp.Size)
}

// runServerProcess is the child of TestKillDuringAuditedReads: a real
// server on cfg's data dir and address until it is killed.
func runServerProcess(t *testing.T, cfg string) {
	dir, addr, _ := strings.Cut(cfg, "|")
	srv, err := server.New(server.Config{DataDir: dir, Listen: addr, RateLimit: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	select {} // until SIGKILL
}
