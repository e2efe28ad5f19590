package parse

import (
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

// fuzzParser checks what every parser promises for any input: no panic,
// and on success the original line in message, event.module,
// event.dataset and an RFC 3339 @timestamp.
func fuzzParser(f *testing.F, name string, opts Options, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p := mustNew(f, name, opts)
	f.Fuzz(func(t *testing.T, line []byte) {
		ev := events.Event{}
		if err := p.Parse(line, ev); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if ev[events.FieldMessage] != string(line) {
			t.Fatalf("message %q, want the line %q", ev[events.FieldMessage], line)
		}
		if ev.String(events.FieldDataset) == "" || ev.String(events.FieldModule) == "" {
			t.Fatalf("no event.dataset or event.module: %s", js(ev))
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.String(events.FieldTimestamp)); err != nil {
			t.Fatalf("@timestamp %q: %v", ev[events.FieldTimestamp], err)
		}
	})
}

func FuzzSyslog(f *testing.F) {
	fuzzParser(f, "syslog", testOptions(),
		"Dec  2 10:00:00 web1 sudo: alice : TTY=pts/0",
		"<38>Dec 12 10:00:00.250 web1 CRON[1234]: (root) CMD (run-parts)",
		"2026-12-02T10:00:00.123456+01:00 web1 systemd-logind[512]: New session",
		`<165>1 2026-12-02T10:00:00.003Z host app - ID47 [a@1 b="c\]"] msg`,
		"<14>1 - - app worker-3 - -")
}

func FuzzSSHD(f *testing.F) {
	fuzzParser(f, "sshd", testOptions(),
		"Dec  2 10:00:00 web1 sshd[4242]: Failed password for invalid user admin from 198.51.100.9 port 4444 ssh2",
		"Accepted publickey for deploy from 2001:db8::1 port 40022 ssh2: ED25519 SHA256:abc",
		"Connection closed by authenticating user root 203.0.113.7 port 52211 [preauth]",
		"Disconnected from user alice 203.0.113.7 port 52211",
		"Received disconnect from 203.0.113.7 port 52211:11: Bye Bye [preauth]",
		"error: maximum authentication attempts exceeded for root from 203.0.113.7 port 52211 ssh2 [preauth]",
		"message repeated 3 times: [ Failed password for root from 203.0.113.7 port 52211 ssh2]",
		"Invalid user  from 1.2.3.4",
		"Dec  2 10:00:00 web1 CRON[1]: x")
}

func FuzzAccess(f *testing.F) {
	fuzzParser(f, "nginx", testOptions(),
		`203.0.113.7 - - [02/Dec/2026:10:00:00 +0000] "GET /index.php?id=1 HTTP/1.1" 200 1234 "https://example.com/" "Mozilla/5.0"`,
		`2001:db8::5 - alice [02/Dec/2026:11:30:00 +0130] "POST /login HTTP/2.0" 404 0 "-" "curl/8.5.0"`,
		`client.example.org - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 304 -`,
		`198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "\x16\x03" 400 157 "-" "x\"y"`)
}

func FuzzJSON(f *testing.F) {
	opts := testOptions()
	opts.JSON.Mapping = map[string]string{"req.remote": "source.ip", "message": "app.message"}
	fuzzParser(f, "json", opts,
		`{"@timestamp":"2026-12-02T11:00:00+01:00","req":{"remote":"203.0.113.7","tags":["a",1,true,null]},"message":"hi"}`,
		`{"a":[{"b":1}],"e":[],"o":{}}`,
		`{"time":"2026-12-02T10:00:00Z","n":-1.5e3}`)
}
