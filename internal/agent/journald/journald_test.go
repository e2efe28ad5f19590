package journald

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// fakeJournalctl writes a script that behaves like `journalctl -o json
// --follow` over the entries in a file: it records its arguments, prints
// the entries after --after-cursor (all of them without one), then
// follows forever (sleeps).
func fakeJournalctl(t *testing.T, entries []string) (script, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "entries.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(entries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	argsFile = filepath.Join(dir, "args")
	script = filepath.Join(dir, "journalctl")
	body := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]q
cursor=
for a in "$@"; do
  case "$a" in --after-cursor=*) cursor="${a#--after-cursor=}";; esac
done
if [ -z "$cursor" ]; then
  cat %[2]q
else
  awk -v c="\"__CURSOR\":\"$cursor\"" 'found {print} index($0, c) {found=1}' %[2]q
fi
exec sleep 3600
`, argsFile, data)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, argsFile
}

func jentry(cursor, unit, msg string, us int64) string {
	return fmt.Sprintf(`{"__CURSOR":%q,"__REALTIME_TIMESTAMP":"%d","_HOSTNAME":"web1","_PID":"4242","_SYSTEMD_UNIT":%q,"SYSLOG_IDENTIFIER":"sshd","PRIORITY":"6","MESSAGE":%q,"_BOOT_ID":"x"}`, cursor, us, unit, msg)
}

type got struct {
	ev    events.Event
	state string
}

// run runs the source from state until n events came, then stops it.
func run(t *testing.T, j *Journald, state []byte, n int) []got {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan got, 100)
	done := make(chan error, 1)
	go func() {
		done <- j.Run(ctx, state, func(ev events.Event, st []byte) error {
			ch <- got{ev, string(st)}
			return nil
		})
	}()
	var out []got
	for len(out) < n {
		select {
		case g := <-ch:
			out = append(out, g)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d events within 10s, want %d", len(out), n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case g := <-ch:
		t.Fatalf("unexpected extra event %v", g.ev)
	default:
	}
	return out
}

func TestFollowAndResume(t *testing.T) {
	const t0 = 1796205600000000 // 2026-12-02T10:00:00Z
	script, argsFile := fakeJournalctl(t, []string{
		jentry("s=1", "sshd.service", "Failed password for root from 203.0.113.7 port 52211 ssh2", t0),
		jentry("s=2", "sshd.service", "Server listening on 0.0.0.0 port 22.", t0+1),
		jentry("s=3", "cron.service", "(root) CMD (run-parts)", t0+2),
		`{"__CURSOR":"s=4","__REALTIME_TIMESTAMP":"1796205600000003","MESSAGE":[104,105,255],"_PID":"1"}`,
	})
	j, err := New(Config{Journalctl: script, Units: []string{"sshd.service", "cron.service"},
		Parsers: map[string]string{"sshd.service": "sshd"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := run(t, j, nil, 4)
	want := []got{
		{events.Event{"@timestamp": "2026-12-02T10:00:00Z", "event.module": "sshd", "event.dataset": "sshd",
			"event.category": "authentication", "event.action": "ssh_login", "event.outcome": "failure",
			"system.auth.ssh.method": "password", "user.name": "root", "source.ip": "203.0.113.7", "source.port": int64(52211),
			"message": "Failed password for root from 203.0.113.7 port 52211 ssh2", "host.hostname": "web1", "process.pid": int64(4242),
			"process.name": "sshd", "syslog.identifier": "sshd", "systemd.unit": "sshd.service",
			"log.syslog.severity.code": int64(6), "log.syslog.severity.name": "informational"}, "s=1"},
		{events.Event{"@timestamp": "2026-12-02T10:00:00.000001Z", "event.module": "journald", "event.dataset": "journald",
			"message": "Server listening on 0.0.0.0 port 22.", "host.hostname": "web1", "process.pid": int64(4242),
			"process.name": "sshd", "syslog.identifier": "sshd", "systemd.unit": "sshd.service",
			"log.syslog.severity.code": int64(6), "log.syslog.severity.name": "informational"}, "s=2"},
		{events.Event{"@timestamp": "2026-12-02T10:00:00.000002Z", "event.module": "journald", "event.dataset": "journald",
			"message": "(root) CMD (run-parts)", "host.hostname": "web1", "process.pid": int64(4242),
			"process.name": "sshd", "syslog.identifier": "sshd", "systemd.unit": "cron.service",
			"log.syslog.severity.code": int64(6), "log.syslog.severity.name": "informational"}, "s=3"},
		{events.Event{"@timestamp": "2026-12-02T10:00:00.000003Z", "event.module": "journald", "event.dataset": "journald",
			"message": "hi\ufffd", "process.pid": int64(1)}, "s=4"},
	}
	if !reflect.DeepEqual(evs, want) {
		for i := range evs {
			if i < len(want) && !reflect.DeepEqual(evs[i], want[i]) {
				t.Errorf("event %d:\n got %v %q\nwant %v %q", i, evs[i].ev, evs[i].state, want[i].ev, want[i].state)
			}
		}
	}

	// Resume after the second entry's cursor: the third and fourth come.
	evs = run(t, j, []byte("s=2"), 2)
	if evs[0].state != "s=3" || evs[1].state != "s=4" {
		t.Fatalf("resumed at %q, %q; want s=3, s=4", evs[0].state, evs[1].state)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(args)), "\n")
	wantArgs := []string{
		"-o json --follow --no-pager --lines=0 -u sshd.service -u cron.service",
		"-o json --follow --no-pager --after-cursor=s=2 -u sshd.service -u cron.service",
	}
	if !reflect.DeepEqual(lines, wantArgs) {
		t.Errorf("journalctl ran with\n%q\nwant\n%q", lines, wantArgs)
	}
}

// journalctl exiting is not the end: it is started again from the last
// cursor.
func TestRestartFromCursor(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	script := filepath.Join(dir, "journalctl")
	// Each run prints one entry numbered by how many runs there were, and exits.
	body := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]q
n=$(wc -l < %[1]q | tr -d ' ')
echo '{"__CURSOR":"c'$n'","__REALTIME_TIMESTAMP":"1","MESSAGE":"m'$n'"}'
`, count)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	j, err := New(Config{Journalctl: script, Restart: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	evs := run(t, j, nil, 3)
	for i, g := range evs {
		if w := fmt.Sprintf("c%d", i+1); g.state != w {
			t.Errorf("event %d state %q, want %q", i, g.state, w)
		}
	}
	args, _ := os.ReadFile(count)
	if !strings.Contains(string(args), "--after-cursor=c2") {
		t.Errorf("not restarted from the last cursor:\n%s", args)
	}
}

func TestNotAvailable(t *testing.T) {
	j, err := New(Config{Journalctl: filepath.Join(t.TempDir(), "no-journalctl")})
	if err != nil {
		t.Fatal(err)
	}
	err = j.Run(context.Background(), nil, nil)
	if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "journald is not available") {
		t.Fatalf("Run without journalctl: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Parsers: map[string]string{"x.service": "nope"}}); err == nil || !strings.Contains(err.Error(), "x.service") {
		t.Errorf("unknown parser: %v", err)
	}
	if _, err := New(Config{Units: []string{"--all"}}); err == nil {
		t.Error("a unit that is an option was accepted")
	}
}

func TestEntryErrors(t *testing.T) {
	j, _ := New(Config{})
	for _, l := range []string{`not json`, `{"MESSAGE":"x"}`, `{"__CURSOR":"c","MESSAGE":{"a":1}}`} {
		if _, _, err := j.Entry([]byte(l)); err == nil {
			t.Errorf("Entry(%s) accepted", l)
		}
	}
}

func FuzzEntry(f *testing.F) {
	f.Add([]byte(jentry("s=1", "sshd.service", "Failed password for root from 203.0.113.7 port 1 ssh2", 1)))
	f.Add([]byte(`{"__CURSOR":"s=4","MESSAGE":[104,105,255],"_PID":["1","2"]}`))
	j, _ := New(Config{Parsers: map[string]string{"sshd.service": "sshd"}})
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, cur, err := j.Entry(line)
		if err != nil {
			return
		}
		if cur == "" || ev.String("event.dataset") == "" || ev.String("@timestamp") == "" {
			t.Fatalf("entry %q: cursor %q event %v", line, cur, ev)
		}
	})
}
