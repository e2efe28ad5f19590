package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/testnet"
	"github.com/warden-sec/warden/pkg/client"
)

// freeAddr returns a loopback address that was free a moment ago, outside
// the ephemeral port range, so that a server killed and restarted on it
// finds it free (see testnet).
func freeAddr(t *testing.T) string { return testnet.RestartableAddr(t) }

// connectProc returns a client of the server process listening on addr
// with its data in dir, once it answers.
func connectProc(ctx context.Context, t *testing.T, addr, dir string) *client.Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := client.New(client.Config{Address: "https://" + addr, CACertFile: filepath.Join(dir, "tls", "ca.pem"), Timeout: 5 * time.Second})
		if err == nil {
			if _, err = c.SealStatus(ctx); err == nil {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for a separate process to listen; bounded by the deadline
	}
}

// TestKillDuringWrites kills the server process (SIGKILL) in the middle of
// concurrent writes, restarts it, and checks that every acknowledged write is
// there and that the audit log and the state are consistent: the signed root
// covers every stored entry.
func TestKillDuringWrites(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin, "server", "--data-dir", dir, "--listen", addr, "--rate-limit", "-1")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func() *client.Client { return connectProc(ctx, t, addr, dir) }
	proc := startProc()
	c := connect()
	in, err := c.Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, in.UnsealKeys[0]); err != nil {
		t.Fatal(err)
	}
	c.SetToken(in.RootToken)

	var acked sync.Map
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("crash/%d-%d", g, i)
				if _, err := c.KVPut(ctx, key, map[string]any{"v": key}, nil); err != nil {
					return // the server is gone
				}
				acked.Store(key, true)
				n.Add(1)
			}
		}(g)
	}
	for n.Load() < 300 {
		time.Sleep(5 * time.Millisecond) // let writes accumulate; the count is the condition
	}
	proc.Process.Kill() // SIGKILL mid-flight
	proc.Wait()
	close(stop)
	wg.Wait()

	startProc()
	c = connect()
	if _, err := c.Unseal(ctx, in.UnsealKeys[0]); err != nil {
		t.Fatal(err)
	}
	c.SetToken(in.RootToken)
	missing := 0
	acked.Range(func(k, _ any) bool {
		if s, err := c.KVGet(ctx, k.(string), 0); err != nil || s.Data["v"] != k {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, n.Load())
	}
	cp, _ := verifiedLog(ctx, t, c)
	if cp.Size < uint64(n.Load()) {
		t.Fatalf("audit log has %d entries for %d acknowledged writes", cp.Size, n.Load())
	}
	t.Logf("%d acknowledged writes survived SIGKILL; audit log of %d entries verifies", n.Load(), cp.Size)
}

// verifiedLog reads the signed checkpoint and every entry it covers, and
// checks that the RFC 6962 root over the entries is the checkpoint's (what
// warden audit verify does).
func verifiedLog(ctx context.Context, t *testing.T, c *client.Client) (audit.Checkpoint, []client.AuditEntry) {
	t.Helper()
	v, err := c.AuditVerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp := signedCheckpoint(ctx, t, c, v.VerifierKey)
	var leaves [][]byte
	var entries []client.AuditEntry
	for start := uint64(0); start < cp.Size; {
		es, err := c.AuditEntries(ctx, start, int(min(cp.Size-start, 1000)))
		if err != nil || len(es) == 0 {
			t.Fatalf("entries at %d: %v", start, err)
		}
		for _, e := range es {
			b, _ := e.LeafBytes()
			leaves = append(leaves, b)
		}
		entries = append(entries, es...)
		start += uint64(len(es))
	}
	if !bytes.Equal(audit.RootOf(leaves), cp.Root) {
		t.Fatal("after the crash the audit root does not cover the stored entries")
	}
	return cp, entries
}
