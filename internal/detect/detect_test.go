package detect

import (
	"testing"
	"time"
)

// TestCursorRoundTrip: a cursor names the position after an alert in
// List's order, and only cursors this package made parse.
func TestCursorRoundTrip(t *testing.T) {
	c := cursor{created: "2026-12-02T10:00:00.000000000Z", id: AlertID("k")}
	got, err := parseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	older := Alert{Created: "2026-12-02T09:00:00.000000000Z", ID: AlertID("a")}
	newer := Alert{Created: "2026-12-02T11:00:00.000000000Z", ID: AlertID("b")}
	if !c.before(older) || c.before(newer) {
		t.Fatal("cursor order")
	}
	for _, bad := range []string{"", "!!", "eA", cursor{created: "x", id: "nothex"}.String()} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("cursor %q parsed", bad)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://soc.example.com/hook": true, "http://127.0.0.1:9000/h": true, "http://[::1]/h": true, "http://localhost/h": true,
		"http://soc.example.com/h": false, "https://user:pw@soc.example.com/": false, "ftp://x/": false, "not a url": false, "https://": false,
	} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
}

// TestTimesSortAsText: the times Warden writes sort as text in time order.
func TestTimesSortAsText(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	prev := rfc3339(t0)
	for _, d := range []time.Duration{1, 10, 100 * time.Millisecond, time.Second, time.Hour} {
		cur := rfc3339(t0.Add(d))
		if cur <= prev {
			t.Fatalf("%s sorts before %s", cur, prev)
		}
		prev = cur
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(cursor{created: "2026-12-02T10:00:00.000000000Z", id: AlertID("k")}.String())
	f.Add("")
	f.Add("fA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			return
		}
		if again, err := parseCursor(c.String()); err != nil || again != c {
			t.Fatalf("%q: round trip %+v, %v", s, again, err)
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	f.Add("0")
	f.Add("18446744073709551615")
	f.Add("-1")
	f.Fuzz(func(t *testing.T, s string) {
		i, err := ParseIndex(s)
		if err != nil {
			return
		}
		if j, err := ParseIndex(FormatIndex(i)); err != nil || j != i {
			t.Fatalf("%q: %d does not round-trip (%d, %v)", s, i, j, err)
		}
	})
}
