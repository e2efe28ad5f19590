package parse

import (
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

func web(module string, kv ...any) events.Event {
	ev := events.Event{"event.module": module, "event.dataset": module + ".access", "event.category": "web"}
	return with(ev, kv...)
}

func TestAccess(t *testing.T) {
	cases := []parseCase{
		{"combined", `203.0.113.7 - - [02/Dec/2026:10:00:00 +0000] "GET /index.php?id=1%27%20OR%201=1 HTTP/1.1" 200 1234 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "success", "source.ip", "203.0.113.7",
				"http.request.method", "GET", "url.original", "/index.php?id=1%27%20OR%201=1", "url.path", "/index.php", "url.query", "id=1%27%20OR%201=1",
				"http.version", "1.1", "http.response.status_code", int64(200), "http.response.body.bytes", int64(1234),
				"http.request.referrer", "https://example.com/", "user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")},
		{"v6 user zone 404", `2001:db8::5 - alice [02/Dec/2026:11:30:00 +0130] "POST /login HTTP/2.0" 404 0 "-" "curl/8.5.0"`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "failure", "source.ip", "2001:db8::5", "user.name", "alice",
				"http.request.method", "POST", "url.original", "/login", "url.path", "/login",
				"http.version", "2.0", "http.response.status_code", int64(404), "http.response.body.bytes", int64(0),
				"user_agent.original", "curl/8.5.0")},
		{"negative zone, extra fields", `198.51.100.1 - - [01/Dec/2026:22:00:00 -0500] "GET / HTTP/1.0" 301 169 "-" "-" "10.0.0.1" 0.003`,
			web("nginx", "@timestamp", "2026-12-02T03:00:00Z", "event.outcome", "success", "source.ip", "198.51.100.1",
				"http.request.method", "GET", "url.original", "/", "url.path", "/",
				"http.version", "1.0", "http.response.status_code", int64(301), "http.response.body.bytes", int64(169))},
		{"garbage request", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "\x16\x03\x01\x00\xCA\x01" 400 157 "-" "-"`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "failure", "source.ip", "198.51.100.1",
				"http.response.status_code", int64(400), "http.response.body.bytes", int64(157))},
		{"empty request", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "" 400 0 "-" "-"`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "failure", "source.ip", "198.51.100.1",
				"http.response.status_code", int64(400), "http.response.body.bytes", int64(0))},
		{"escaped quote in agent", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "x\"y"`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "success", "source.ip", "198.51.100.1",
				"http.request.method", "GET", "url.original", "/a", "url.path", "/a", "http.version", "1.1",
				"http.response.status_code", int64(200), "http.response.body.bytes", int64(5), "user_agent.original", `x\"y`)},
		{"http/0.9", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET /" 200 5`,
			web("nginx", "@timestamp", "2026-12-02T10:00:00Z", "event.outcome", "success", "source.ip", "198.51.100.1",
				"http.request.method", "GET", "url.original", "/", "url.path", "/",
				"http.response.status_code", int64(200), "http.response.body.bytes", int64(5))},
		{"no time", `198.51.100.1 - - "GET / HTTP/1.1" 200 5`, nil},
		{"bad time", `198.51.100.1 - - [02/Foo/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5`, nil},
		{"unclosed request", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1 200 5`, nil},
		{"bad status", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" OK 5`, nil},
		{"bad bytes", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 five`, nil},
		{"unclosed agent", `198.51.100.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl`, nil},
		{"empty", ``, nil},
		{"one token", `198.51.100.1`, nil},
	}
	runCases(t, mustNew(t, "nginx", testOptions()), cases)
	runCases(t, mustNew(t, "apache", testOptions()), []parseCase{
		{"common log format, dash bytes, hostname", `client.example.org - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 304 -`,
			web("apache", "@timestamp", "2026-10-10T20:55:36Z", "event.outcome", "success", "source.domain", "client.example.org", "user.name", "frank",
				"http.request.method", "GET", "url.original", "/apache_pb.gif", "url.path", "/apache_pb.gif", "http.version", "1.0",
				"http.response.status_code", int64(304), "http.response.body.bytes", int64(0))},
	})
}
