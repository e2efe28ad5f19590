package parse

import (
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

func sys(extra events.Event) events.Event {
	ev := events.Event{"event.module": "syslog", "event.dataset": "syslog"}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

func TestSyslog(t *testing.T) {
	runCases(t, mustNew(t, "syslog", testOptions()), []parseCase{
		{"3164 file", "Dec  2 10:00:00 web1 sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls", sys(events.Event{
			"@timestamp": "2026-12-02T10:00:00Z", "host.hostname": "web1", "process.name": "sudo",
			"syslog.message": "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls"})},
		{"3164 pri and pid", "<38>Dec 12 10:00:00.250 web1 CRON[1234]: (root) CMD (run-parts)", sys(events.Event{
			"@timestamp": "2025-12-12T10:00:00.25Z", "host.hostname": "web1", "process.name": "CRON", "process.pid": int64(1234),
			"log.syslog.priority": int64(38), "log.syslog.facility.code": int64(4), "log.syslog.facility.name": "auth",
			"log.syslog.severity.code": int64(6), "log.syslog.severity.name": "informational",
			"syslog.message": "(root) CMD (run-parts)"})},
		{"3164 no hostname", "<13>Dec  2 10:00:00 myapp[7]: hello", sys(events.Event{
			"@timestamp": "2026-12-02T10:00:00Z", "process.name": "myapp", "process.pid": int64(7),
			"log.syslog.priority": int64(13), "log.syslog.facility.code": int64(1), "log.syslog.facility.name": "user",
			"log.syslog.severity.code": int64(5), "log.syslog.severity.name": "notice", "syslog.message": "hello"})},
		{"3164 no tag", "Dec  2 10:00:00 web1 -- MARK --", sys(events.Event{
			"@timestamp": "2026-12-02T10:00:00Z", "host.hostname": "web1", "syslog.message": "-- MARK --"})},
		{"3164 last year", "Dec 31 23:59:59 web1 kernel: x", func() events.Event {
			return sys(events.Event{"@timestamp": "2025-12-31T23:59:59Z", "host.hostname": "web1", "process.name": "kernel", "syslog.message": "x"})
		}()},
		{"rsyslog rfc3339", "2026-12-02T10:00:00.123456+01:00 web1 systemd-logind[512]: New session 4 of user alice.", sys(events.Event{
			"@timestamp": "2026-12-02T09:00:00.123456Z", "host.hostname": "web1", "process.name": "systemd-logind", "process.pid": int64(512),
			"syslog.message": "New session 4 of user alice."})},
		{"5424", `<165>1 2026-12-02T10:00:00.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][x@1 a="b\]c"] ` + "\ufeff" + `An application event`, sys(events.Event{
			"@timestamp": "2026-12-02T10:00:00.003Z", "host.hostname": "mymachine.example.com", "process.name": "evntslog",
			"log.syslog.priority": int64(165), "log.syslog.facility.code": int64(20), "log.syslog.facility.name": "local4",
			"log.syslog.severity.code": int64(5), "log.syslog.severity.name": "notice", "log.syslog.version": int64(1),
			"log.syslog.msgid": "ID47", "syslog.structured_data": `[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][x@1 a="b\]c"]`,
			"syslog.message": "An application event"})},
		{"5424 nil values", "<34>1 2026-12-02T10:00:00+00:00 host su 77 - - 'su root' failed", sys(events.Event{
			"@timestamp": "2026-12-02T10:00:00Z", "host.hostname": "host", "process.name": "su", "process.pid": int64(77),
			"log.syslog.priority": int64(34), "log.syslog.facility.code": int64(4), "log.syslog.facility.name": "auth",
			"log.syslog.severity.code": int64(2), "log.syslog.severity.name": "critical", "log.syslog.version": int64(1),
			"syslog.message": "'su root' failed"})},
		{"5424 no msg, procid text", "<14>1 - - app worker-3 - -", sys(events.Event{
			"@timestamp": "2026-12-02T12:00:00Z", "process.name": "app", "log.syslog.procid": "worker-3",
			"log.syslog.priority": int64(14), "log.syslog.facility.code": int64(1), "log.syslog.facility.name": "user",
			"log.syslog.severity.code": int64(6), "log.syslog.severity.name": "informational", "log.syslog.version": int64(1),
			"syslog.message": ""})},
		{"empty", "", nil},
		{"blank", "   ", nil},
		{"no timestamp", "hello world", nil},
		{"bad month", "Foo  2 10:00:00 web1 x: y", nil},
		{"bad time", "Dec  2 25:00:00 web1 x: y", nil},
		{"bad pri", "<999>Dec  2 10:00:00 web1 x: y", nil},
		{"unclosed pri", "<13 Dec", nil},
		{"5424 bad time", "<13>1 yesterday host app - - - msg", nil},
		{"5424 truncated", "<13>1 2026-12-02T10:00:00Z host", nil},
		{"5424 unclosed sd", `<13>1 2026-12-02T10:00:00Z host app - - [a b="c] msg`, nil},
		{"5424 bad sd", `<13>1 2026-12-02T10:00:00Z host app - - x msg`, nil},
	})
}

func TestSyslogYearInJanuary(t *testing.T) {
	opts := testOptions()
	opts.Now = func() time.Time { return time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC) }
	p := mustNew(t, "syslog", opts)
	for line, want := range map[string]string{
		"Dec 31 23:59:59 h k: m": "2026-12-31T23:59:59Z",
		"Jan  1 00:00:04 h k: m": "2027-01-01T00:00:04Z",
	} {
		ev := events.Event{}
		if err := p.Parse([]byte(line), ev); err != nil {
			t.Fatal(err)
		}
		if ev["@timestamp"] != want {
			t.Errorf("%q: @timestamp %v, want %s", line, ev["@timestamp"], want)
		}
	}
	// The zone of RFC 3164 lines is the configured location.
	opts.Location = time.FixedZone("X", 2*3600)
	p = mustNew(t, "syslog", opts)
	ev := events.Event{}
	if err := p.Parse([]byte("Jan  1 10:00:00 h k: m"), ev); err != nil {
		t.Fatal(err)
	}
	if ev["@timestamp"] != "2027-01-01T08:00:00Z" {
		t.Errorf("@timestamp %v, want 2027-01-01T08:00:00Z", ev["@timestamp"])
	}
}
