package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/agent/config"
	"github.com/warden-sec/warden/internal/server"
)

// TestDaemonReload: the daemon renews against a real server and tails the
// configured files (its metrics show the lines read); SIGHUP's reload stops
// a removed source and starts an added one; a bad file on reload keeps the
// running configuration.
func TestDaemonReload(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.New(server.Config{DataDir: t.TempDir(), Listen: addr, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Store().WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	_, dir, _ := initAndEnroll(t, ctx, srv, "1h")
	logs := t.TempDir()
	a, b := filepath.Join(logs, "a.log"), filepath.Join(logs, "b.log")
	os.WriteFile(a, []byte("Dec  2 10:00:00 web-1 sshd[42]: Failed password for root from 203.0.113.7 port 52211 ssh2\n"+
		"not an sshd line\n"+
		"Dec  2 10:00:01 web-1 sshd[42]: Accepted publickey for deploy from 203.0.113.8 port 52212 ssh2: ED25519 SHA256:x\n"), 0o644)
	watched := t.TempDir()
	os.WriteFile(filepath.Join(watched, "passwd"), []byte("root:x:0:0\n"), 0o644)
	os.WriteFile(b, []byte("b1\nb2\n"), 0o644)
	cfgFile := filepath.Join(t.TempDir(), "agent.yml")
	writeCfg := func(body string) {
		t.Helper()
		head := fmt.Sprintf("server: %s\nca_cert: %s\ndata_dir: %s\nmetrics_listen: 127.0.0.1:0\nenforce: none\n", srv.Addr(), srv.CAFile(), dir)
		if err := os.WriteFile(cfgFile, []byte(head+body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("sources:\n  - {type: file, path: " + a + ", parser: sshd}\n  - {type: fim, paths: [" + watched + "]}\n")
	reload := make(chan struct{})
	metricsAddr := make(chan string, 1)
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Daemon(dctx, DaemonConfig{Load: func() (*config.Config, error) { return config.Load(cfgFile) },
			Reload: reload, MetricsReady: func(a string) { metricsAddr <- a }})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Daemon: %v", err)
		}
	}()
	var maddr string
	select {
	case maddr = <-metricsAddr:
	case err := <-done:
		t.Fatalf("Daemon: %v", err)
	}
	scrape := func() string {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	line := func(path string, n int) string {
		return fmt.Sprintf(`warden_agent_source_lines_total{source="file:%s"} %d`, path, n)
	}
	waitUntil := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for m := scrape(); !cond(m); m = scrape() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; metrics:\n%s", what, m)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("a's 3 lines, one not sshd; the FIM baseline", func(m string) bool {
		return strings.Contains(m, line(a, 3)) && strings.Contains(m, "warden_agent_spool_bytes") &&
			strings.Contains(m, fmt.Sprintf(`warden_agent_source_parse_errors_total{source="file:%s"} 1`, a)) &&
			strings.Contains(m, fmt.Sprintf(`warden_agent_fim_files{source="fim:%s"} 1`, watched))
	})
	writeCfg("sources:\n  - {type: file, path: " + b + "}\n")
	reload <- struct{}{}
	waitUntil("b's 2 lines, a stopped", func(m string) bool {
		return strings.Contains(m, line(b, 2)) && !strings.Contains(m, `warden_agent_source_lines_total{source="file:`+a)
	})
	// A changed source restarts where it was: b's lines are not read again.
	writeCfg("sources:\n  - {type: file, path: " + b + ", dataset: auth}\n")
	reload <- struct{}{}
	appendLine := func(s string) {
		fb, _ := os.OpenFile(b, os.O_WRONLY|os.O_APPEND, 0)
		fb.WriteString(s)
		fb.Close()
	}
	waitUntil("b restarted", func(m string) bool { return strings.Contains(m, line(b, 0)) })
	appendLine("b3\n")
	waitUntil("b3 only", func(m string) bool {
		return strings.Contains(m, line(b, 1)) && strings.Contains(m, fmt.Sprintf(`warden_agent_source_events_total{source="file:%s"} 3`, b))
	})
	writeCfg("sources:\n  - {type: file, path: relative.log}\n")
	reload <- struct{}{}
	appendLine("b4\n")
	waitUntil("b still tailed", func(m string) bool { return strings.Contains(m, line(b, 2)) })
}
