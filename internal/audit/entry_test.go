package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testHMAC = "hmac-sha256:8629d712da366318588317f3f98c728c71d4819f843d95db8803c019c561c1e7"

// testSHA256 is SHA-256("abc") (FIPS 180-2 appendix B.1) in the plain form.
const testSHA256 = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

// TestEntryVectors freezes the canonical bytes of a few entries: a change
// to them breaks every log written before it, so it must be deliberate.
// Reference: the "Entry encoding" rules of the package documentation.
func TestEntryVectors(t *testing.T) {
	tests := []struct {
		name  string
		entry Entry
		want  string
	}{{
		name: "write with hashes",
		entry: Entry{
			Action: "kv.write", AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`, RaftIndex: 12,
			RequestID: "r-1", Resource: `Secret::"app/db"`, SourceAddr: "127.0.0.1",
			Time:   FormatTime(time.Date(2026, 11, 22, 13, 0, 0, 5, time.FixedZone("CET", 3600))),
			Hashes: map[string]string{"token": testHMAC, "data": testHMAC},
		},
		want: `{"action":"kv.write","auth_method":"token","hashes":{"data":"` + testHMAC + `","token":"` + testHMAC + `"},"outcome":200,"principal":"User::\"alice\"","raft_index":12,"request_id":"r-1","resource":"Secret::\"app/db\"","source_addr":"127.0.0.1","time":"2026-11-22T12:00:00.000000005Z"}`,
	}, {
		name: "plain sha256 beside hmac",
		entry: Entry{
			Action: "incidents.write", AuthMethod: "token", Outcome: 200, Principal: `Root::"root"`, RaftIndex: 40,
			Resource: `System::"warden"`, Time: "2026-12-02T18:00:00Z",
			Hashes: map[string]string{"incident-item": testSHA256, "data": testHMAC},
		},
		want: `{"action":"incidents.write","auth_method":"token","hashes":{"data":"` + testHMAC + `","incident-item":"` + testSHA256 + `"},"outcome":200,"principal":"Root::\"root\"","raft_index":40,"request_id":"","resource":"System::\"warden\"","source_addr":"","time":"2026-12-02T18:00:00Z"}`,
	}, {
		name: "accessor and count",
		entry: Entry{Accessor: "acc-1", Action: "auth.failed", AuthMethod: "token", Count: 37, Outcome: 401,
			Resource: "authenticate", SourceAddr: "192.0.2.7", Time: "2026-01-02T03:04:05Z"},
		want: `{"accessor":"acc-1","action":"auth.failed","auth_method":"token","count":37,"outcome":401,"principal":"","raft_index":0,"request_id":"","resource":"authenticate","source_addr":"192.0.2.7","time":"2026-01-02T03:04:05Z"}`,
	}, {
		name: "transit operation with key version",
		entry: Entry{Action: "transit.encrypt", AuthMethod: "token", Outcome: 200, Principal: `Service::"app"`,
			Resource: `Key::"orders"`, Time: "2026-12-02T23:00:00Z", KeyVersion: 3,
			Hashes: map[string]string{"plaintext": testHMAC}},
		want: `{"action":"transit.encrypt","auth_method":"token","hashes":{"plaintext":"` + testHMAC + `"},"key_version":3,"outcome":200,"principal":"Service::\"app\"","raft_index":0,"request_id":"","resource":"Key::\"orders\"","source_addr":"","time":"2026-12-02T23:00:00Z"}`,
	}, {
		name: "held for approval, with a note",
		entry: Entry{Accessor: "acc-2", Action: "raft.snapshot.restore", AuthMethod: "token", Outcome: 202,
			Note: "approval requested: request req-0a1b", Principal: `Root::"root"`, RequestID: "r-9",
			Resource: `System::"warden"`, SourceAddr: "127.0.0.1", Time: "2026-03-04T05:06:07Z",
			Hashes: map[string]string{"body": testHMAC}},
		want: `{"accessor":"acc-2","action":"raft.snapshot.restore","auth_method":"token","hashes":{"body":"` + testHMAC + `"},"note":"approval requested: request req-0a1b","outcome":202,"principal":"Root::\"root\"","raft_index":0,"request_id":"r-9","resource":"System::\"warden\"","source_addr":"127.0.0.1","time":"2026-03-04T05:06:07Z"}`,
	}, {
		name:  "minimal deny",
		entry: Entry{Action: "kv.read", Outcome: 403, Error: "permission denied", Hashes: map[string]string{}, Time: "2026-01-02T03:04:05Z"},
		want:  `{"action":"kv.read","auth_method":"","error":"permission denied","outcome":403,"principal":"","raft_index":0,"request_id":"","resource":"","source_addr":"","time":"2026-01-02T03:04:05Z"}`,
	}, {
		name: "escaping",
		entry: Entry{Action: "a\"b\\c/d<e>&f", Outcome: 599, RaftIndex: 1<<64 - 1,
			Resource: "\x00\x01\b\t\n\v\f\r\x1f\x7f é \u2028\u2029 \U0001F600", Time: "2026-01-02T03:04:05.5Z"},
		want: `{"action":"a\"b\\c/d<e>&f","auth_method":"","outcome":599,"principal":"","raft_index":18446744073709551615,"request_id":"","resource":"\u0000\u0001\b\t\n\u000b\f\r\u001f` + "\x7f é \u2028\u2029 \U0001F600" + `","source_addr":"","time":"2026-01-02T03:04:05.5Z"}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.entry.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonical:\n got %s\nwant %s", got, tt.want)
			}
			back, err := DecodeEntry(got)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if len(tt.entry.Hashes) == 0 {
				tt.entry.Hashes = nil // an empty map is not encoded
			}
			if !reflect.DeepEqual(back, tt.entry) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", back, tt.entry)
			}
			// Any JSON decoder reads the same entry.
			var std Entry
			if err := json.Unmarshal(got, &std); err != nil || !reflect.DeepEqual(std, tt.entry) {
				t.Fatalf("encoding/json reads %#v, %v", std, err)
			}
		})
	}
}

// TestEntryDeterministic: map iteration order does not leak into the bytes.
func TestEntryDeterministic(t *testing.T) {
	e := Entry{Action: "x", Outcome: 200, Time: "2026-01-02T03:04:05Z", Hashes: map[string]string{}}
	for i := range 40 {
		e.Hashes[fmt.Sprintf("k%02d", i)] = testHMAC
	}
	first, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if again, _ := e.Canonical(); !bytes.Equal(again, first) {
			t.Fatal("two encodings of one entry differ")
		}
	}
}

// TestEntryRoundTripRandom: random entries (fixed seed) with arbitrary
// valid strings encode, decode to themselves, and re-encode identically.
func TestEntryRoundTripRandom(t *testing.T) {
	r := mrand.New(mrand.NewPCG(4, 4))
	alphabet := []rune("aZ09 \"\\/\x00\x01\b\t\n\f\r\x1f\x7f<>&é\u2028\u2029\uFFFD\U0001F600")
	str := func() string {
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(rs)
	}
	for i := range 2000 {
		e := Entry{Accessor: str(), Action: "a" + str(), AuthMethod: str(), Count: r.Uint64() >> r.IntN(65), Error: str(), Outcome: 100 + r.IntN(500),
			Principal: str(), RaftIndex: r.Uint64() >> r.IntN(64), KeyVersion: r.Uint64() >> r.IntN(65), RequestID: str(), Resource: str(),
			Note: str(), SourceAddr: str(), Time: FormatTime(time.Unix(r.Int64N(1<<35), r.Int64N(1e9)))}
		if r.IntN(2) == 0 {
			e.Hashes = map[string]string{"data": testHMAC, "k_" + fmt.Sprint(r.IntN(9)): testHMAC}
		}
		b, err := e.Canonical()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		back, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("entry %d: %v\n%s", i, err, b)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("entry %d: round trip:\n got %#v\nwant %#v", i, back, e)
		}
	}
}

func TestEntryInvalid(t *testing.T) {
	ok := Entry{Action: "kv.read", Outcome: 200, Time: "2026-01-02T03:04:05Z"}
	tests := []struct {
		name string
		mod  func(*Entry)
	}{
		{"empty action", func(e *Entry) { e.Action = "" }},
		{"outcome 0", func(e *Entry) { e.Outcome = 0 }},
		{"outcome 99", func(e *Entry) { e.Outcome = 99 }},
		{"outcome 600", func(e *Entry) { e.Outcome = 600 }},
		{"empty time", func(e *Entry) { e.Time = "" }},
		{"time not RFC 3339", func(e *Entry) { e.Time = "2026-01-02 03:04:05Z" }},
		{"time not UTC", func(e *Entry) { e.Time = "2026-01-02T04:04:05+01:00" }},
		{"time +00:00", func(e *Entry) { e.Time = "2026-01-02T03:04:05+00:00" }},
		{"time trailing zero", func(e *Entry) { e.Time = "2026-01-02T03:04:05.50Z" }},
		{"time lower-case z", func(e *Entry) { e.Time = "2026-01-02t03:04:05z" }},
		{"invalid UTF-8", func(e *Entry) { e.Principal = "al\xffice" }},
		{"invalid UTF-8 in error", func(e *Entry) { e.Error = "\xc3" }},
		{"invalid UTF-8 in accessor", func(e *Entry) { e.Accessor = "\xc3" }},
		{"hash name upper case", func(e *Entry) { e.Hashes = map[string]string{"Data": testHMAC} }},
		{"hash name empty", func(e *Entry) { e.Hashes = map[string]string{"": testHMAC} }},
		{"hash name too long", func(e *Entry) { e.Hashes = map[string]string{strings.Repeat("a", 65): testHMAC} }},
		{"hash value is a secret", func(e *Entry) { e.Hashes = map[string]string{"data": "hunter2"} }},
		{"hash value upper-case hex", func(e *Entry) { e.Hashes = map[string]string{"data": strings.ToUpper(testHMAC)} }},
		{"hash value short", func(e *Entry) { e.Hashes = map[string]string{"data": testHMAC[:70]} }},
		{"sha256 value short", func(e *Entry) { e.Hashes = map[string]string{"data": testSHA256[:70]} }},
		{"sha256 value upper-case hex", func(e *Entry) { e.Hashes = map[string]string{"data": strings.ToUpper(testSHA256)} }},
		{"sha256 prefix upper-case", func(e *Entry) { e.Hashes = map[string]string{"data": "SHA256:" + testSHA256[7:]} }},
		{"unknown hash prefix", func(e *Entry) { e.Hashes = map[string]string{"data": "sha512:" + testSHA256[7:]} }},
		{"too large", func(e *Entry) { e.Error = strings.Repeat("x", MaxEntrySize) }},
	}
	if _, err := ok.Canonical(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mod(&e)
			if b, err := e.Canonical(); !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("Canonical = %q, %v; want ErrInvalidEntry", b, err)
			}
		})
	}
}

func TestDecodeEntryStrict(t *testing.T) {
	good := `{"action":"a","auth_method":"token","outcome":200,"principal":"p","raft_index":7,"request_id":"r","resource":"x","source_addr":"s","time":"2026-11-22T12:00:00Z"}`
	if _, err := DecodeEntry([]byte(good)); err != nil {
		t.Fatal(err)
	}
	rep := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the vector", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name string
		in   string
		want error // nil: any error
	}{
		{"space after colon", rep(`"outcome":200`, `"outcome": 200`), ErrNonCanonical},
		{"newline at the end", good + "\n", ErrNonCanonical},
		{"trailing object", good + "{}", ErrNonCanonical},
		{"members out of order", rep(`"action":"a","auth_method":"token"`, `"auth_method":"token","action":"a"`), ErrNonCanonical},
		{"duplicate member", rep(`"action":"a"`, `"action":"b","action":"a"`), ErrNonCanonical},
		{"member name in upper case", rep(`"action"`, `"Action"`), ErrNonCanonical},
		{"unneeded escape", rep(`"action":"a"`, `"action":"\u0061"`), ErrNonCanonical},
		{"escaped slash", rep(`"resource":"x"`, `"resource":"x\/"`), ErrNonCanonical},
		{"upper-case hex escape", rep(`"resource":"x"`, `"resource":"\u001F"`), ErrNonCanonical},
		{"escaped line separator", rep(`"resource":"x"`, `"resource":"\u2028"`), ErrNonCanonical},
		{"long form of newline", rep(`"resource":"x"`, `"resource":"\u000a"`), ErrNonCanonical},
		{"invalid UTF-8", rep(`"resource":"x"`, "\"resource\":\"\xff\""), ErrNonCanonical},
		{"empty error present", rep(`"auth_method":"token"`, `"auth_method":"token","error":""`), ErrNonCanonical},
		{"empty hashes present", rep(`"auth_method":"token"`, `"auth_method":"token","hashes":{}`), ErrNonCanonical},
		{"empty accessor present", rep(`{"action"`, `{"accessor":"","action"`), ErrNonCanonical},
		{"accessor after action", rep(`"auth_method":"token"`, `"accessor":"x","auth_method":"token"`), ErrNonCanonical},
		{"zero count present", rep(`"auth_method":"token"`, `"auth_method":"token","count":0`), ErrNonCanonical},
		{"count with leading zero", rep(`"auth_method":"token"`, `"auth_method":"token","count":07`), nil},
		{"count after error", rep(`"auth_method":"token"`, `"auth_method":"token","error":"e","count":3`), ErrNonCanonical},
		{"negative count", rep(`"auth_method":"token"`, `"auth_method":"token","count":-3`), nil},
		{"null string", rep(`"principal":"p"`, `"principal":null`), ErrNonCanonical},
		{"missing member", rep(`"principal":"p",`, ``), ErrNonCanonical},
		{"outcome with exponent", rep(`"outcome":200`, `"outcome":2e2`), nil},
		{"outcome as float", rep(`"outcome":200`, `"outcome":200.0`), nil},
		{"negative raft index", rep(`"raft_index":7`, `"raft_index":-7`), nil},
		{"unknown member", rep(`{"action"`, `{"extra":1,"action"`), nil},
		{"not an object", `[]`, nil},
		{"empty", ``, nil},
		{"invalid entry", rep(`"outcome":200`, `"outcome":0`), ErrInvalidEntry},
		{"oversized", good[:len(good)-1] + strings.Repeat(" ", MaxEntrySize) + "}", ErrInvalidEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEntry([]byte(tt.in))
			if err == nil {
				t.Fatalf("accepted %q as %#v", tt.in, e)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecodeEntry: whatever DecodeEntry accepts is exactly the canonical
// encoding of what it returns.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"action":"a","auth_method":"token","outcome":200,"principal":"p","raft_index":0,"request_id":"r","resource":"x","source_addr":"s","time":"2026-11-22T12:00:00Z"}`))
	f.Add([]byte(`{"action":"x","auth_method":"","hashes":{"incident-item":"` + testSHA256 + `"},"outcome":200,"principal":"","raft_index":3,"request_id":"","resource":"","source_addr":"","time":"2026-11-22T12:00:00Z"}`))
	f.Add([]byte(`{"action":"a\"\\\u0000","auth_method":"","error":"e","hashes":{"data":"` + testHMAC + `"},"outcome":599,"principal":"","raft_index":18446744073709551615,"request_id":"","resource":"` + "\u2028" + `","source_addr":"","time":"2026-11-22T12:00:00.123Z"}`))
	f.Add([]byte(`{"action":"a", "outcome":200}`))
	f.Add([]byte(`{"accessor":"acc","action":"a","auth_method":"token","count":12,"outcome":401,"principal":"","raft_index":0,"request_id":"","resource":"","source_addr":"s","time":"2026-11-22T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Canonical()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded entry does not re-encode to its bytes: %q, %v", again, err)
		}
	})
}

func benchEntry() Entry {
	return Entry{Action: "kv.write", AuthMethod: "token", Outcome: 200, Principal: `User::"alice"`,
		RequestID: "3f2a9c1e-7", Resource: `Secret::"app/db"`, SourceAddr: "127.0.0.1",
		Time: "2026-11-22T12:00:00.000000005Z", Hashes: map[string]string{"data": testHMAC}}
}

// BenchmarkCanonical is the encoding cost of every audited request.
func BenchmarkCanonical(b *testing.B) {
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEntry is the cost per entry of serving and verifying.
func BenchmarkDecodeEntry(b *testing.B) {
	leaf, _ := benchEntry().Canonical()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(leaf); err != nil {
			b.Fatal(err)
		}
	}
}
