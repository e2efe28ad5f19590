package parse

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/events"
)

var testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{Location: time.UTC, Now: func() time.Time { return testNow }}
}

type parseCase struct {
	name string
	line string
	want events.Event // fields beyond message (always the line); nil: an error is wanted
}

// runCases parses each case's line and compares the whole event.
func runCases(t *testing.T, p Parser, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := events.Event{}
			err := p.Parse([]byte(c.line), ev)
			if c.want == nil {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", c.line, js(ev))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.line, err)
			}
			want := events.Event{events.FieldMessage: c.line}
			for k, v := range c.want {
				want[k] = v
			}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("Parse(%q)\n got %s\nwant %s", c.line, js(ev), js(want))
			}
		})
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func mustNew(t testing.TB, name string, opts Options) Parser {
	t.Helper()
	p, err := New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewUnknown(t *testing.T) {
	_, err := New("cisco", Options{})
	if err == nil || !strings.Contains(err.Error(), `"cisco"`) || !strings.Contains(err.Error(), "sshd") {
		t.Fatalf("New(cisco) = %v, want an error naming it and the known parsers", err)
	}
	for _, n := range Names() {
		if _, err := New(n, Options{}); err != nil {
			t.Errorf("New(%q): %v", n, err)
		}
	}
}

func TestRaw(t *testing.T) {
	ev := events.Event{}
	Raw([]byte("garbage"), lineError("sshd", "bad"), ev)
	if !SetReadTime(ev, testNow) {
		t.Fatal("SetReadTime did not stamp a raw event")
	}
	want := events.Event{"event.module": "raw", "event.dataset": "raw", "message": "garbage",
		"error.message": "sshd: bad", "@timestamp": "2026-12-02T12:00:00Z"}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %s want %s", js(ev), js(want))
	}
	if SetReadTime(ev, testNow.Add(time.Hour)) || ev["@timestamp"] != "2026-12-02T12:00:00Z" {
		t.Fatal("SetReadTime replaced the line's own timestamp")
	}
	runCases(t, mustNew(t, "raw", testOptions()), []parseCase{
		{"raw", "anything at all", events.Event{"event.module": "raw", "event.dataset": "raw", "@timestamp": "2026-12-02T12:00:00Z"}},
	})
}

func TestDatasetOverride(t *testing.T) {
	opts := testOptions()
	opts.Dataset = "bastion"
	runCases(t, mustNew(t, "sshd", opts), []parseCase{
		{"sshd", "Invalid user x from 192.0.2.1", events.Event{"event.module": "sshd", "event.dataset": "bastion", "@timestamp": "2026-12-02T12:00:00Z",
			"event.category": "authentication", "event.action": "ssh_invalid_user", "event.outcome": "failure",
			"user.name": "x", "source.ip": "192.0.2.1", "system.auth.ssh.invalid_user": true}},
		{"refused", "nonsense", nil},
	})
}
