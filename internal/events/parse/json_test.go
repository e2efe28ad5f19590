package parse

import (
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

func TestJSON(t *testing.T) {
	opts := testOptions()
	opts.Dataset = "myapp"
	opts.JSON.Mapping = map[string]string{"req.remote": "source.ip", "usr": "user.name", "message": "myapp.message"}
	runCases(t, mustNew(t, "json", opts), []parseCase{
		{"nested and mapped", `{"@timestamp":"2026-12-02T11:00:00+01:00","req":{"remote":"203.0.113.7","path":"/x","tags":["a","b",1,true,null]},"usr":"bob","ok":true,"n":3,"nil":null,"message":"hi"}`,
			events.Event{"event.module": "json", "event.dataset": "myapp", "@timestamp": "2026-12-02T10:00:00Z",
				"source.ip": "203.0.113.7", "req.path": "/x", "req.tags": []any{"a", "b", 1.0, true}, "user.name": "bob",
				"ok": true, "n": 3.0, "myapp.message": "hi"}},
		{"array of objects kept as text, no time", `{"a":[{"b":1}],"e":[] , "o":{}}`,
			events.Event{"event.module": "json", "event.dataset": "myapp", "@timestamp": "2026-12-02T12:00:00Z",
				"a": `[{"b":1}]`, "e": []any{}}},
		{"not an object", `[1,2]`, nil},
		{"truncated", `{"a":`, nil},
		{"trailing", `{"a":1} x`, nil},
		{"duplicate", `{"a":1,"a":2}`, nil},
		{"bad time", `{"time":"yesterday"}`, nil},
		{"empty", ``, nil},
	})

	opts = testOptions()
	opts.JSON = JSONOptions{TimestampField: "ts", TimestampLayout: "unix_ms"}
	runCases(t, mustNew(t, "json", opts), []parseCase{
		{"unix_ms", `{"ts":1796205600123}`, events.Event{"event.module": "json", "event.dataset": "json",
			"@timestamp": "2026-12-02T10:00:00.123Z", "ts": 1796205600123.0}},
		{"unix_ms string", `{"ts":"1796205600000"}`, events.Event{"event.module": "json", "event.dataset": "json",
			"@timestamp": "2026-12-02T10:00:00Z", "ts": "1796205600000"}},
		{"unix_ms bool", `{"ts":true}`, nil},
	})
	opts.JSON = JSONOptions{TimestampField: "when.t", TimestampLayout: "02/01/2006 15:04:05"}
	runCases(t, mustNew(t, "json", opts), []parseCase{
		{"layout nested", `{"when":{"t":"02/12/2026 10:00:00"}}`, events.Event{"event.module": "json", "event.dataset": "json",
			"@timestamp": "2026-12-02T10:00:00Z", "when.t": "02/12/2026 10:00:00"}},
		{"layout mismatch", `{"when":{"t":"2026-12-02"}}`, nil},
	})
	opts.JSON = JSONOptions{TimestampLayout: "unix"}
	runCases(t, mustNew(t, "json", opts), []parseCase{
		{"unix fractional", `{"time":1796205600.5}`, events.Event{"event.module": "json", "event.dataset": "json",
			"@timestamp": "2026-12-02T10:00:00.5Z", "time": 1796205600.5}},
		{"unix out of range", `{"time":1e300}`, nil},
	})
	for _, bad := range []JSONOptions{{TimestampLayout: "epoch"}, {Mapping: map[string]string{"a": ""}}} {
		if _, err := New("json", Options{JSON: bad}); err == nil {
			t.Errorf("New(json, %+v) accepted bad options", bad)
		}
	}
}
