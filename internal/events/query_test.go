package events

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestQueryMatch(t *testing.T) {
	ev := Event{"source.ip": "203.0.113.7", "event.outcome": "failure", "user.name": "J Doe",
		"http.response.status_code": float64(404), "message": "Failed password for root from 203.0.113.7",
		"url.original": "/wp-login.php?x=1", "tags": []any{"a", "b"}, "source.port": float64(52211)}
	cases := []struct {
		q    string
		want bool
	}{
		{"", true},
		{"source.ip:203.0.113.7", true},
		{"source.ip:203.0.113.8", false},
		{"source.ip:203.0.113.7 AND event.outcome:failure", true},
		{"source.ip:203.0.113.7 event.outcome:success", false},
		{"source.ip:203.0.113.8 OR event.outcome:failure", true},
		{"NOT event.outcome:failure", false},
		{"NOT (event.outcome:success OR user.name:x)", true},
		{`user.name:"J Doe"`, true},
		{`user.name:"J *"`, false}, // quoted: no wildcard
		{"user.name:J*", true},
		{"url.original:*wp-login*", true},
		{"url.original:/wp-*", true},
		{"user.name:*", true},
		{"host.name:*", false},
		{"http.response.status_code:>=400", true},
		{"http.response.status_code:>404", false},
		{"http.response.status_code:<500 AND http.response.status_code:>=404", true},
		{"http.response.status_code:404", true},
		{"source.port:52211", true},
		{"tags:b", true},
		{"tags:c", false},
		{"password", true},
		{"PASSWORD root", true},
		{`"password for root"`, true},
		{`"for password"`, false},
		{"fail*root", true},
		{"zz OR qq AND password", false}, // AND binds tighter: zz OR (qq AND password)
		{"password AND qq OR zz", false},
		{"qq AND zz OR password", true},
		{"(password OR x) AND (NOT y)", true},
	}
	for _, tc := range cases {
		t.Run(tc.q, func(t *testing.T) {
			q, err := ParseQuery(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Match(ev); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	cases := []struct{ q, says string }{
		{"a:(", "no value"},
		{"(a", "not closed"},
		{"a)", `unexpected ")"`},
		{"a AND", "missing at the end"},
		{"OR a", "unexpected OR"},
		{`a:"x`, "unterminated"},
		{`"a\q"`, "escapes"},
		{":x", "field name is missing"},
		{"n:>=x", "needs a number"},
		{strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40), "deeper"},
		{strings.Repeat("a ", MaxQueryBytes), "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.q[:min(len(tc.q), 20)], func(t *testing.T) {
			_, err := ParseQuery(tc.q)
			var qe *QueryError
			if !errors.As(err, &qe) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err = %v, want a QueryError saying %q", err, tc.says)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "a:b", `a:"b c" OR NOT (d:e* AND f:>=4)`, "x y z", `"p\"q"`, "((a))", "a:*", "NOT NOT a"} {
		f.Add(s)
	}
	ev := Event{"a": "b", "message": "x y", "f": float64(5)}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) || qe.Pos < 0 || qe.Pos > len(s) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		q.Match(ev) // must not panic
	})
}

func TestReadBatch(t *testing.T) {
	st := Stamp{Host: "web-1", AgentID: "spiffe://x/node/web-1", Ingested: time.Unix(1700000000, 0)}
	lines, stats, err := ReadBatch(strings.NewReader("{\"message\":\"a\",\"host.name\":\"evil\"}\n\n{\"message\":\"b\",\"error.message\":\"bad\",\"log.file.path\":\"/x\"}"), false, 0, st)
	if err != nil || len(lines) != 2 || stats.Events != 2 || stats.ParseErrors["/x"] != 1 {
		t.Fatalf("%q %+v %v", lines, stats, err)
	}
	if !bytes.Contains(lines[0], []byte(`"host.name":"web-1"`)) || !bytes.Contains(lines[0], []byte(`"event.ingested":"2023-11-14T22:13:20Z"`)) {
		t.Errorf("not stamped: %s", lines[0])
	}
	// A gzip bomb stops at the limit.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	line := []byte(`{"message":"` + strings.Repeat("z", 1000) + "\"}\n")
	for range 10_000 {
		zw.Write(line)
	}
	zw.Close()
	if _, _, err := ReadBatch(&buf, true, 1<<20, st); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("bomb: %v", err)
	}
}

func FuzzReadBatch(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"b\":[1,\"x\"]}\n"), false)
	f.Add([]byte("{\"a\":{}}"), false)
	f.Add([]byte("not json\n"), false)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("{\"message\":\"x\"}\n"))
	zw.Close()
	f.Add(buf.Bytes(), true)
	st := Stamp{Host: "h", AgentID: "a", Ingested: time.Unix(0, 0)}
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		lines, stats, err := ReadBatch(bytes.NewReader(body), gz, 64<<10, st)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) || lines != nil {
				t.Fatalf("error %v with %d lines", err, len(lines))
			}
			return
		}
		if stats.Events != len(lines) || len(lines) == 0 {
			t.Fatalf("%d events, %d lines", stats.Events, len(lines))
		}
		for _, l := range lines {
			b, err := DecodeBatch(1, "h", time.Time{}, l)
			if err != nil || len(b.Events) != 1 || b.Events[0].String(FieldHostName) != "h" || len(l) > MaxEventBytes {
				t.Fatalf("line %q: %v", l, err)
			}
		}
	})
}
