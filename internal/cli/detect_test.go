package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
	"github.com/warden-sec/warden/internal/server"
	"github.com/warden-sec/warden/internal/sigma"
)

// detectServer starts a real server, initializes and unseals it, and
// returns it with the environment of its root token.
func detectServer(t *testing.T) (*server.Server, env) {
	t.Helper()
	srv := startServer(t)
	e := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile()}
	in := mustJSON(t, runCLI(t, e, "", "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"),
		"unseal_keys", "root_token")
	if r := runCLI(t, e, "", "operator", "unseal", in["unseal_keys"].([]any)[0].(string)); r.code != 0 {
		t.Fatalf("unseal: %+v", r)
	}
	e["WARDEN_TOKEN"] = in["root_token"].(string)
	return srv, e
}

const cliRules = `title: Failed SSH login
id: cli-failed-login
logsource:
  product: linux
  service: sshd
detection:
  selection:
    event.outcome: failure
  condition: selection
level: low
---
title: SSH brute force (cli)
id: cli-brute
correlation:
  type: event_count
  rules:
    - cli-failed-login
  group-by:
    - source.ip
  timespan: 1m
  condition:
    gte: 10
level: high
`

func TestRulesCLI(t *testing.T) {
	_, e := detectServer(t)
	dir := t.TempDir()
	// The correlation comes first in the file: put orders it after the rule it names.
	docs := strings.SplitN(cliRules, "---\n", 2)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "pack.yml"), []byte(docs[1]+"---\n"+docs[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a rule"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustJSON(t, runCLI(t, e, "", "rules", "put", dir, "--format", "json"), "rules")
	if rs := out["rules"].([]any); len(rs) != 2 || rs[0].(map[string]any)["id"] != "cli-failed-login" {
		t.Fatalf("put: %v", out)
	}
	if r := runCLI(t, e, "", "rules", "put", "--builtin"); r.code != 0 || !strings.Contains(r.stdout, "put ") {
		t.Fatalf("put --builtin: %+v", r)
	}
	builtin, err := sigma.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	list := mustJSON(t, runCLI(t, e, "", "rules", "list", "--format", "json"), "rules", "version")
	if n := len(list["rules"].([]any)); n != 2+len(builtin) {
		t.Fatalf("list: %d rules, want %d", n, 2+len(builtin))
	}
	if r := runCLI(t, e, "", "rules", "list"); r.code != 0 || !strings.Contains(r.stdout, "cli-brute") || !strings.Contains(r.stdout, "correlation") {
		t.Fatalf("list table: %+v", r)
	}
	if r := runCLI(t, e, "", "rules", "show", "cli-brute"); r.code != 0 || !strings.Contains(r.stdout, "timespan: 1m") {
		t.Fatalf("show: %+v", r)
	}
	// A bad rule: exit 1, one line naming the file, the line and the feature.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte(strings.Replace(docs[0], "event.outcome:", "event.outcome|windows-foo:", 1)), 0o600)
	r := runCLI(t, e, "", "rules", "put", bad)
	if r.code != 1 || !strings.Contains(r.stderr, "bad.yml:") || !strings.Contains(r.stderr, "windows-foo") {
		t.Fatalf("bad rule: %+v", r)
	}
	if r := runCLI(t, e, "", "rules", "delete", "cli-failed-login"); r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Fatalf("delete of a referenced rule: %+v", r)
	}
	for _, id := range []string{"cli-brute", "cli-failed-login"} {
		if r := runCLI(t, e, "", "rules", "delete", id); r.code != 0 {
			t.Fatalf("delete %s: %+v", id, r)
		}
	}
	if r := runCLI(t, e, "", "rules", "show", "cli-brute"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("show deleted: %+v", r)
	}
	if r := runCLI(t, e, "", "rules", "put"); r.code != 2 {
		t.Fatalf("put without arguments: %+v", r)
	}
}

func TestAlertsAndNotifyCLI(t *testing.T) {
	srv, e := detectServer(t)
	now := time.Now().UTC()
	rule := &sigma.Rule{ID: "ssh-brute", Title: "SSH brute force", Level: "high"}
	a, err := srv.Alerts().Record(context.Background(), sigma.Hit{Key: "k1", Rule: rule, Group: map[string]string{"source.ip": "203.0.113.7"},
		Count: 10, First: now, Last: now, Hosts: []string{"web-1"}, Events: []events.Event{{"message": "Failed password"}}})
	if err != nil {
		t.Fatal(err)
	}
	list := mustJSON(t, runCLI(t, e, "", "alerts", "list", "--status", "open", "--since", "1h", "--format", "json"), "alerts", "next")
	if as := list["alerts"].([]any); len(as) != 1 || as[0].(map[string]any)["id"] != a.ID {
		t.Fatalf("list: %v", list)
	}
	if r := runCLI(t, e, "", "alerts", "list", "--level", "low"); r.code != 0 || strings.Contains(r.stdout, a.ID) {
		t.Fatalf("list --level low: %+v", r)
	}
	if r := runCLI(t, e, "", "alerts", "show", a.ID); r.code != 0 || !strings.Contains(r.stdout, "source.ip=203.0.113.7") {
		t.Fatalf("show: %+v", r)
	}
	if r := runCLI(t, e, "", "alerts", "ack", a.ID, "--comment", "on it"); r.code != 0 || !strings.Contains(r.stdout, "acknowledged") {
		t.Fatalf("ack: %+v", r)
	}
	closed := mustJSON(t, runCLI(t, e, "", "alerts", "close", a.ID, "--comment", "done", "--format", "json"), "id", "status", "notes",
		"rule_id", "rule_title", "level", "tags", "first_seen", "last_seen", "count", "group", "hosts", "events", "event_refs",
		"created_time", "updated_time")
	if closed["status"] != "closed" || len(closed["notes"].([]any)) != 2 {
		t.Fatalf("close: %v", closed)
	}

	// watch prints an alert created after it started.
	pr, pw := io.Pipe()
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(wctx, []string{"alerts", "watch", "--format", "json"}, strings.NewReader(""), pw, io.Discard, e.get)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	created := make(chan string, 1)
	go func() {
		for lines.Scan() {
			created <- lines.Text()
		}
		close(created)
	}()
	b := sigma.Hit{Key: "k2", Rule: rule, Count: 1, First: now, Last: now}
	deadline := time.After(15 * time.Second)
	recorded := false
	for got := ""; got == ""; {
		if !recorded {
			// The stream starts from the server's index when it opens; record
			// until one is seen (a record before the stream opened is not).
			if _, err := srv.Alerts().Record(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b.Count++
		}
		select {
		case l := <-created:
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["rule_id"] != "ssh-brute" {
				t.Fatalf("watch line %q", l)
			}
			got, recorded = l, true
		case <-time.After(300 * time.Millisecond):
		case <-deadline:
			t.Fatal("watch printed nothing")
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch exit %d", code)
	}

	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600)
	if r := runCLI(t, e, "", "notify", "create", "webhook", "soc", "--url", "https://soc.example.com/hook", "--secret-file", secret, "--min-level", "critical"); r.code != 0 {
		t.Fatalf("notify create: %+v", r)
	}
	if r := runCLI(t, e, "", "notify", "create", "webhook", "x", "--url", "http://soc.example.com/hook", "--secret-file", secret); r.code != 1 || !strings.Contains(r.stderr, "https") {
		t.Fatalf("notify create http: %+v", r)
	}
	ns := mustJSON(t, runCLI(t, e, "", "notify", "list", "--format", "json"), "notifiers")
	if n := ns["notifiers"].([]any); len(n) != 1 || n[0].(map[string]any)["min_level"] != "critical" {
		t.Fatalf("notify list: %v", ns)
	}
	if r := runCLI(t, e, "", "notify", "list"); strings.Contains(r.stdout, "0123456789abcdef") {
		t.Fatal("the secret is shown")
	}
	if r := runCLI(t, e, "", "notify", "delete", "soc"); r.code != 0 {
		t.Fatalf("notify delete: %+v", r)
	}
}
