package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/sigma"
	"github.com/warden-sec/warden/pkg/client"
)

// TestDetectEndToEnd runs a real server process and a real agent process:
// the agent tails an sshd log that is appended to and rotated both ways
// (rename, copytruncate) while the server is killed and restarted and the
// agent is killed and restarted. Every line written arrives in the stream
// exactly once (compared by content), and the built-in SSH brute-force
// rule raises one alert with the attacker's address and the count of its
// failed logins.
func TestDetectEndToEnd(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "warden")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir, agentDir, logDir := t.TempDir(), t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	proc := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		out, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(out.Name())
				t.Logf("%s output:\n%s", name, b)
			}
		})
		return cmd
	}
	startServer := func() *exec.Cmd {
		return proc("server", "server", "--data-dir", dir, "--listen", addr, "--rate-limit", "-1")
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Kill()
		cmd.Wait()
	}

	srv := startServer()
	c := connectProc(ctx, t, addr, dir)
	in, err := c.Init(ctx, client.InitRequest{KeyShares: 1, KeyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	unseal := func() {
		t.Helper()
		if _, err := c.Unseal(ctx, in.UnsealKeys[0]); err != nil {
			t.Fatal(err)
		}
	}
	unseal()
	c.SetToken(in.RootToken)
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var bruteForce string
	for _, r := range builtin {
		if _, err := c.RulePut(ctx, r.ID, r.Source); err != nil {
			t.Fatalf("rule %s: %v", r.ID, err)
		}
		if r.Title == "SSH brute force" {
			bruteForce = r.ID
		}
	}
	if bruteForce == "" {
		t.Fatal("the built-in pack has no SSH brute force rule")
	}
	tok, err := c.NodeTokenCreate(ctx, client.NodeTokenRequest{Name: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	authLog := filepath.Join(logDir, "auth.log")
	if err := os.WriteFile(authLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(cfg, []byte("sources:\n  - {type: file, path: "+authLog+", parser: sshd}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentArgs := []string{"agent", "--server", "https://" + addr, "--ca-cert", filepath.Join(dir, "tls", "ca.pem"),
		"--data-dir", agentDir, "--config", cfg, "--enforce", "none"} // the test runs in the host's namespace: leave its firewall alone
	agent := proc("agent", append(agentArgs, "--join-token", tok.Token)...)

	// Lines: failed logins of an attacker within one minute of event time,
	// and accepted logins of others; each line is unique.
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	var written []string
	failures, n := 0, 0
	write := func(k int) {
		t.Helper()
		f, err := os.OpenFile(authLog, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for range k {
			n++
			ts := base.Add(time.Duration(n%50) * time.Second).Local().Format(time.Stamp)
			var line string
			if n%4 == 0 {
				line = fmt.Sprintf("%s web-1 sshd[%d]: Accepted publickey for deploy from 198.51.100.%d port %d ssh2", ts, 1000+n, n%250+1, 40000+n)
			} else {
				failures++
				line = fmt.Sprintf("%s web-1 sshd[%d]: Failed password for root from 203.0.113.7 port %d ssh2", ts, 1000+n, 40000+n)
			}
			if _, err := f.WriteString(line + "\n"); err != nil {
				t.Fatal(err)
			}
			written = append(written, line)
		}
	}
	stored := func() []string {
		t.Helper()
		res, err := c.EventsSearch(ctx, client.EventSearch{Query: "host.name:web-1 AND event.dataset:sshd", Since: "1h", Limit: 10000})
		if ae := (*client.APIError)(nil); errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable {
			return nil // a restarted server's event plane is still starting: waitStored asks again
		}
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, ev := range res.Events {
			msgs = append(msgs, fmt.Sprint(ev["message"]))
		}
		return msgs
	}
	waitStored := func(want int) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for got := len(stored()); got < want; got = len(stored()) {
			if time.Now().After(deadline) {
				t.Fatalf("the stream holds %d of the %d lines written", got, want)
			}
			time.Sleep(200 * time.Millisecond) // polling another process's progress, bounded by the deadline
		}
	}

	write(8)
	waitStored(len(written))

	// Rotation by rename while the agent runs.
	write(4)
	if err := os.Rename(authLog, authLog+".1"); err != nil {
		t.Fatal(err)
	}
	write(6)

	// The server is killed; the agent spools what is written meanwhile.
	kill(srv)
	write(6)
	srv = startServer()
	c = connectProc(ctx, t, addr, dir)
	c.SetToken(in.RootToken)
	unseal()
	waitStored(len(written))

	// The agent is killed; lines are written and the file is rotated by
	// copy and truncation while it is down; then it comes back.
	kill(agent)
	write(5)
	data, err := os.ReadFile(authLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authLog+".2", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(authLog, 0); err != nil {
		t.Fatal(err)
	}
	write(5)
	proc("agent", agentArgs...) // restarted; the test's cleanup stops it

	// Copytruncate while the agent runs, and the server killed again.
	write(3)
	waitStored(len(written))
	data, err = os.ReadFile(authLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authLog+".3", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(authLog, 0); err != nil {
		t.Fatal(err)
	}
	write(4)
	kill(srv)
	startServer() // the last restart: the test's cleanup stops it
	c = connectProc(ctx, t, addr, dir)
	c.SetToken(in.RootToken)
	unseal()
	write(3)
	waitStored(len(written))

	got := stored()
	slices.Sort(got)
	want := slices.Clone(written)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the stream does not hold each line exactly once:\n got %d lines: %s\nwant %d lines: %s",
			len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}

	// One brute-force alert, for the attacker, counting every failure.
	deadline := time.Now().Add(60 * time.Second)
	for {
		alerts, _, err := c.AlertList(ctx, client.AlertFilter{Rule: bruteForce})
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) > 1 {
			t.Fatalf("%d brute-force alerts, want one: %+v", len(alerts), alerts)
		}
		if len(alerts) == 1 && alerts[0].Count == int64(failures) {
			if ip := alerts[0].Group["source.ip"]; ip != "203.0.113.7" {
				t.Fatalf("alert group %v, want source.ip 203.0.113.7", alerts[0].Group)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no brute-force alert counting %d failures: %+v", failures, alerts)
		}
		time.Sleep(200 * time.Millisecond) // polling the server's detection, bounded by the deadline
	}
}
