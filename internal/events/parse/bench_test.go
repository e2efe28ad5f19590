package parse

import (
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

func benchParser(b *testing.B, name string, opts Options, line string) {
	p := mustNew(b, name, opts)
	l := []byte(line)
	ev := events.Event{}
	b.ReportAllocs()
	b.SetBytes(int64(len(l)))
	for b.Loop() {
		clear(ev)
		if err := p.Parse(l, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSyslog3164(b *testing.B) {
	benchParser(b, "syslog", testOptions(), "Dec  2 10:00:00 web1 sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls")
}

func BenchmarkSyslog5424(b *testing.B) {
	benchParser(b, "syslog", testOptions(), `<165>1 2026-12-02T10:00:00.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`)
}

func BenchmarkSSHD(b *testing.B) {
	benchParser(b, "sshd", testOptions(), "Dec  2 10:00:00 web1 sshd[4242]: Failed password for invalid user admin from 198.51.100.9 port 4444 ssh2")
}

func BenchmarkSSHDBare(b *testing.B) {
	benchParser(b, "sshd", testOptions(), "Failed password for invalid user admin from 198.51.100.9 port 4444 ssh2")
}

func BenchmarkNginx(b *testing.B) {
	benchParser(b, "nginx", testOptions(), `203.0.113.7 - - [02/Dec/2026:10:00:00 +0000] "GET /index.php?id=1 HTTP/1.1" 200 1234 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"`)
}

func BenchmarkJSON(b *testing.B) {
	opts := testOptions()
	opts.JSON.Mapping = map[string]string{"req.remote": "source.ip"}
	benchParser(b, "json", opts, `{"@timestamp":"2026-12-02T11:00:00+01:00","level":"warn","req":{"remote":"203.0.113.7","method":"GET","path":"/x"},"user":"bob","latency_ms":12.5}`)
}

func BenchmarkRaw(b *testing.B) {
	benchParser(b, "raw", testOptions(), "anything at all, one line of it")
}
