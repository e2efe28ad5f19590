package ship

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/tail"
)

const helperEnv = "WARDEN_SHIP_HELPER"

// helperConfig is what the parent test hands the agent process.
type helperConfig struct {
	Servers                             []string
	CACert, Cert, Key, DataDir, LogPath string
}

// TestHelperAgent is the agent process of TestKill9: a tail and a shipper
// that run until killed. It does nothing in a normal test run.
func TestHelperAgent(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("only run as TestKill9's agent process")
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		t.Fatal(err)
	}
	tl, err := tail.New(tail.Config{Path: hc.LogPath, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Servers: hc.Servers, CACertFile: hc.CACert, CertFile: hc.Cert, KeyFile: hc.Key,
		DataDir: hc.DataDir, BatchEvents: 40, BatchInterval: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(tl); err != nil {
		t.Fatal(err)
	}
	s.Run(context.Background()) // until SIGKILL
}

// TestKill9: the agent process is killed with SIGKILL at arbitrary points
// (while reading, spooling, sending, writing its checkpoint) while lines
// are appended and the file rotated (rename, then copytruncate), and the
// server fails now and then: every line is stored exactly once, in order.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts agent processes")
	}
	p := newPKI(t)
	fs := newServer(t, p, func(n int, seq uint64) (int, bool) {
		switch n % 9 {
		case 2:
			return 503, true // stored, answer lost
		case 6:
			return 500, false
		}
		return 200, true
	})
	logPath := filepath.Join(t.TempDir(), "auth.log")
	env, err := json.Marshal(helperConfig{LogPath: logPath, Servers: []string{fs.URL}, CACert: p.serverCA,
		Cert: p.certFile, Key: p.keyFile, DataDir: p.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	add := func(from, to int) {
		writeLines(t, logPath, from, to)
		for i := from; i <= to; i++ {
			want = append(want, fmt.Sprintf("sshd line %d", i))
		}
	}
	startAgent := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(env))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
	}
	next := 1
	for round := range 6 {
		add(next, next+299)
		next += 300
		switch round {
		case 3: // rotation by rename
			os.Rename(logPath, logPath+".1")
			add(next, next+99)
			next += 100
		case 5: // rotation by copytruncate
			b, _ := os.ReadFile(logPath)
			os.WriteFile(logPath+"-20261202", b, 0o644)
			os.Truncate(logPath, 0)
			add(next, next+99)
			next += 100
		}
		target := len(want) - 200 + round*25 // somewhere in the middle of this round's lines
		cmd := startAgent()
		waitFor(t, fmt.Sprintf("round %d: %d lines stored", round, target), func() bool { return len(fs.messages("raw")) >= target })
		kill(cmd)
	}
	startAgent()
	waitFor(t, "every line", func() bool { return len(fs.messages("raw")) >= len(want) })
	got := fs.messages("raw")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored %d lines, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if fs.dups == 0 {
		t.Log("no duplicate answered in this run")
	}
}
