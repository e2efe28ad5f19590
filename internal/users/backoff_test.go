package users

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// failN records n failures of user from addr, one a second from at, and
// returns the alerts raised and the time of the last.
func failN(b *backoff, user, addr string, at time.Time, n int) ([]alert, time.Time) {
	var out []alert
	for i := range n {
		at = at.Add(time.Duration(min(i, 1)) * time.Second)
		out = append(out, b.fail(user, addr, at)...)
	}
	return out, at
}

func TestBackoffUser(t *testing.T) {
	b := newBackoff(BackoffConfig{})
	_, last := failN(b, "alice", "", t0, 4)
	if u := b.check("alice", "", time.Time{}, last); !u.IsZero() {
		t.Fatalf("4 failures: wait until %v", u)
	}
	b.fail("alice", "", last)
	if u := b.check("alice", "", time.Time{}, last); !u.Equal(last.Add(time.Second)) {
		t.Fatalf("5 failures: until %v, want last+1s", u)
	}
	if u := b.check("alice", "", time.Time{}, last.Add(time.Second)); !u.IsZero() {
		t.Fatalf("5 failures, 1 s later: until %v", u)
	}
	if u := b.check("bob", "", time.Time{}, last); !u.IsZero() {
		t.Fatal("another name waits")
	}
	// Doubling: the 6th failure waits 2 s, the 7th 4 s, ...
	for n, want := 6, 2*time.Second; n <= 20; n, want = n+1, min(want*2, 15*time.Minute) {
		b.fail("alice", "", last)
		if u := b.check("alice", "", time.Time{}, last); !u.Equal(last.Add(want)) {
			t.Fatalf("%d failures: wait %v, want %v", n, u.Sub(last), want)
		}
	}
	// Capped at 15 minutes (the 15th failure's 1024 s is past it).
	if u := b.check("alice", "", time.Time{}, last); u.Sub(last) != 15*time.Minute {
		t.Fatalf("cap: %v", u.Sub(last))
	}
	// A success clears the name.
	b.success("alice")
	if u := b.check("alice", "", time.Time{}, last); !u.IsZero() {
		t.Fatal("still waiting after a success")
	}
}

func TestBackoffAddress(t *testing.T) {
	b := newBackoff(BackoffConfig{})
	at := t0
	for i := range 20 {
		b.fail(fmt.Sprintf("user%d", i), "192.0.2.1", at) // 20 names, 1 failure each
	}
	if u := b.check("someone", "192.0.2.1", time.Time{}, at); !u.Equal(at.Add(time.Second)) {
		t.Fatalf("20 failures from an address: until %v", u)
	}
	if u := b.check("someone", "192.0.2.2", time.Time{}, at); !u.IsZero() {
		t.Fatal("another address waits")
	}
	if u := b.check("someone", "", time.Time{}, at); !u.IsZero() {
		t.Fatal("no address waits")
	}
	// A success of one user does not clear the address.
	b.success("user3")
	if u := b.check("user3", "192.0.2.1", time.Time{}, at); u.IsZero() {
		t.Fatal("a success cleared the address")
	}
	// The later of the two waits applies.
	_, last := failN(b, "carol", "192.0.2.1", at, 8) // the address has 28, carol 8
	u := b.check("carol", "192.0.2.1", time.Time{}, last)
	if want := last.Add(min(time.Second<<8, 15*time.Minute)); !u.Equal(want) {
		t.Fatalf("until %v, want %v", u, want)
	}
}

func TestBackoffUnlock(t *testing.T) {
	b := newBackoff(BackoffConfig{})
	_, last := failN(b, "alice", "", t0, 10)
	if b.check("alice", "", time.Time{}, last).IsZero() {
		t.Fatal("10 failures do not wait")
	}
	// An unlock older than the failures changes nothing.
	if b.check("alice", "", t0.Add(-time.Hour), last).IsZero() {
		t.Fatal("an older unlock voided later failures")
	}
	// An unlock after them voids them all.
	u := last.Add(time.Second)
	if w := b.check("alice", "", u, u); !w.IsZero() {
		t.Fatalf("after an unlock: until %v", w)
	}
	// Failures after the unlock count, and reading the same unlock again
	// does not void them.
	_, last = failN(b, "alice", "", u.Add(time.Second), 5)
	if b.check("alice", "", u, last).IsZero() {
		t.Fatal("5 failures after the unlock do not wait")
	}
	// An unlock between failures keeps one (those after it are not
	// counted one by one).
	b2 := newBackoff(BackoffConfig{})
	_, last = failN(b2, "bob", "", t0, 10)
	mid := t0.Add(5 * time.Second)
	b2.check("bob", "", mid, last)
	if e := b2.users.get("bob", last, time.Hour); e == nil || e.n != 1 || !e.first.Equal(last) {
		t.Fatalf("entry after a mid unlock: %+v", e)
	}
	// unlock applies at once on the node that wrote it.
	b3 := newBackoff(BackoffConfig{})
	_, last = failN(b3, "carol", "", t0, 10)
	b3.unlock("carol", last)
	if w := b3.check("carol", "", time.Time{}, last); !w.IsZero() {
		t.Fatal("Unlock on this node did not apply")
	}
}

func TestBackoffForgetAndBound(t *testing.T) {
	b := newBackoff(BackoffConfig{Forget: time.Hour, MaxKeys: 3})
	_, last := failN(b, "alice", "", t0, 10)
	b.check("alice", "", time.Time{}, last.Add(59*time.Minute))
	if e := b.users.get("alice", last.Add(59*time.Minute), time.Hour); e == nil || e.n != 10 {
		t.Fatalf("forgotten too early: %+v", e)
	}
	b.check("alice", "", time.Time{}, last.Add(61*time.Minute))
	if _, ok := b.users.m["alice"]; ok {
		t.Fatal("not forgotten after Forget")
	}
	// At most 3 names: the least recently failed goes.
	for i, n := range []string{"a", "b", "c"} {
		b.fail(n, "", t0.Add(time.Duration(i)*time.Second))
	}
	b.fail("a", "", t0.Add(10*time.Second)) // a is now the most recent
	b.fail("d", "", t0.Add(11*time.Second))
	if len(b.users.m) != 3 || b.users.l.Len() != 3 {
		t.Fatalf("%d entries", len(b.users.m))
	}
	for n, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := b.users.m[n]; ok != want {
			t.Errorf("%s present: %v, want %v", n, ok, want)
		}
	}
	// Many names stay within the bound.
	big := newBackoff(BackoffConfig{MaxKeys: 1000})
	for i := range 5000 {
		big.fail(fmt.Sprint("n", i), fmt.Sprint("198.51.100.", i%300, ":1"), t0)
	}
	if len(big.users.m) != 1000 || big.users.l.Len() != 1000 || len(big.addrs.m) != 300 {
		t.Fatalf("users %d, addrs %d", len(big.users.m), len(big.addrs.m))
	}
}

func TestBackoffAlerts(t *testing.T) {
	b := newBackoff(BackoffConfig{})
	alerts, _ := failN(b, "alice", "203.0.113.9", t0, 12)
	want := []alert{{"alice", "203.0.113.9", 5}, {"", "203.0.113.9", 5}, {"alice", "203.0.113.9", 10}, {"", "203.0.113.9", 10}}
	if fmt.Sprint(alerts) != fmt.Sprint(want) {
		t.Fatalf("alerts %v, want %v", alerts, want)
	}
}

func TestBackoffKeys(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"192.0.2.1:443":             "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"[::ffff:192.0.2.1]:8200":   "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:80": "2001:db8:1:2::/64",
		"fe80::1%eth0":              "fe80::/64",
		"":                          "",
		"not an address":            "not an address",
		strings.Repeat("x", 300):    strings.Repeat("x", 256),
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"alice":                  "alice",
		"Alice":                  "alice",
		"ALICE.Example":          "alice.example",
		"Wеb":                    "wеb", // Cyrillic е: not canonical, lowered as given
		strings.Repeat("Z", 300): strings.Repeat("z", 256),
	} {
		if got := userKey(in); got != want {
			t.Errorf("userKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBackoffWave: attempts sent at once for one name are not all checked
// before any failure is counted: beside the ones in flight, only as many
// as could still fail before the threshold pass, and past it one at a
// time; releasing gives the place back.
func TestBackoffWave(t *testing.T) {
	b := newBackoff(BackoffConfig{})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var releases []func()
	for i := range 8 {
		u, release := b.reserve("alice", "", time.Time{}, at)
		if i < 5 && (!u.IsZero() || release == nil) {
			t.Fatalf("attempt %d refused: %v", i, u)
		}
		if i >= 5 {
			if u.IsZero() || release != nil {
				t.Fatalf("attempt %d of a wave past the threshold passed", i)
			}
			continue
		}
		releases = append(releases, release)
	}
	// The five fail: now the name waits, whatever is in flight.
	for _, r := range releases {
		b.fail("alice", "", at)
		r()
	}
	if u, _ := b.reserve("alice", "", time.Time{}, at); !u.Equal(at.Add(time.Second)) {
		t.Fatalf("after 5 failures: wait until %v", u)
	}
	// Its wait over, one attempt at a time.
	later := at.Add(2 * time.Second)
	u, release := b.reserve("alice", "", time.Time{}, later)
	if !u.IsZero() || release == nil {
		t.Fatalf("after the wait: %v", u)
	}
	if u, r := b.reserve("alice", "", time.Time{}, later); u.IsZero() || r != nil {
		t.Fatal("a second attempt ran beside the first past the threshold")
	}
	release()
	if u, r := b.reserve("alice", "", time.Time{}, later); !u.IsZero() || r == nil {
		t.Fatal("the place was not given back")
	}
	if len(b.inflightUsers) != 1 {
		t.Fatalf("in flight: %v", b.inflightUsers)
	}
}
