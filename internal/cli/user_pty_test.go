//go:build linux

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what the test writes to the returned
// writer is what a user types at the terminal tty.
func openPTY(t *testing.T) (tty *os.File, typed io.Writer) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	// Drain what the terminal echoes, so that it never fills up; ends when
	// the pseudo-terminal is closed.
	go io.Copy(io.Discard, m) //nolint:errcheck
	return tty, m
}

// runTTY runs the CLI with a terminal as stdin, the input already typed.
func runTTY(t *testing.T, e env, typed string, argv ...string) result {
	t.Helper()
	tty, w := openPTY(t)
	if _, err := io.WriteString(w, typed); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, tty, &out, &errb, e.get)
	return result{out.String(), errb.String(), code}
}

// TestUserCreateTerminal: at a terminal the password is asked for twice
// (without echo: the prompts are all that is written); two different
// answers are refused before anything is sent, equal ones are sent.
func TestUserCreateTerminal(t *testing.T) {
	s, e := userServer(t)
	r := runTTY(t, e, "correct horse battery\ncorrect horse batterz\n", "user", "create", "alice")
	checkLastErr(t, r, 1, "the two passwords differ; nothing was changed")
	if !strings.HasPrefix(r.stderr, "Password for alice: \nAgain, to confirm: \n") {
		t.Fatalf("prompts: %q", r.stderr)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}

	r = runTTY(t, e, "correct horse battery\ncorrect horse battery\n", "user", "create", "alice")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if c := s.requests(); len(c) != 1 || !reflect.DeepEqual(c[0].body, jsonBody(t, `{"name":"alice","groups":[],"password":"correct horse battery"}`)) {
		t.Fatalf("requests %+v", c)
	}
	if strings.Contains(r.stdout+r.stderr, "correct horse") {
		t.Fatal("the password was printed")
	}
}

// TestLoginTerminal: at a terminal login asks for the user name, the
// password (without echo) and, when the server asks for it, the code.
func TestLoginTerminal(t *testing.T) {
	s, e := loginServer(t)
	r := runTTY(t, e, "alice\ncorrect horse\n123456\n", "login")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stderr != "User: Password: \nTOTP or recovery code: " {
		t.Fatalf("prompts: %q", r.stderr)
	}
	if n := len(s.requests()); n != 2 {
		t.Fatalf("%d requests", n)
	}
	checkSaved(t, e, "wdn_newSessionToken")
}

// TestUserPasswdTerminal: changing one's own password at a terminal asks
// for the current one, then the new one twice.
func TestUserPasswdTerminal(t *testing.T) {
	s, e := userServer(t)
	r := runTTY(t, e, "old secret\nnew secret pw\nnew secret pw\n", "user", "passwd")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stderr != "Current password: \nNew password for alice: \nAgain, to confirm: \n" {
		t.Fatalf("prompts: %q", r.stderr)
	}
	c := s.requests()
	if len(c) != 2 || !reflect.DeepEqual(c[1].body, jsonBody(t, `{"password":"new secret pw","current_password":"old secret"}`)) {
		t.Fatalf("requests %+v", c)
	}
}
