// Package netnstest gives tests network namespaces of their own, linked
// by veth pairs, and runs code or commands inside them. Tests only; it
// never changes the namespace the test runs in (every link is made inside
// the test's namespaces, and each is deleted in t.Cleanup).
//
// It needs CAP_NET_ADMIN and CAP_SYS_ADMIN (ip netns mounts the namespace)
// and the ip command; Require skips the test, saying so, where they are
// missing.
package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Capability bits of /proc/self/status CapEff.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// Require skips t unless the process may create network namespaces and
// configure them (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the ip command exists.
// Each of the tools listed in also must be on PATH.
func Require(t testing.TB, also ...string) {
	t.Helper()
	eff, err := capEff()
	if err != nil {
		t.Skipf("netns: cannot read the process's capabilities (%v): skipping the network namespace test", err)
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capSysAdmin, "CAP_SYS_ADMIN"}} {
		if eff&(1<<c.bit) == 0 {
			t.Skipf("netns: the test needs %s to create network namespaces; it has not got it: skipping", c.name)
		}
	}
	for _, tool := range append([]string{"ip"}, also...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netns: the test needs the %s command (%v): skipping", tool, err)
		}
	}
}

func capEff() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

var seq atomic.Uint64

// NS is a network namespace made by New.
type NS struct {
	Name string
	fd   int
}

// New makes a network namespace named after the test process and label,
// with its loopback up, and deletes it in t.Cleanup.
func New(t testing.TB, label string) *NS {
	t.Helper()
	name := fmt.Sprintf("wdt%d-%d-%s", os.Getpid(), seq.Add(1), label)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	n := &NS{Name: name, fd: fd}
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// FD is an open file descriptor of the namespace (closed in t.Cleanup).
func (n *NS) FD() int { return n.fd }

// IP runs "ip -n NAME args..." and fails the test if it fails.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a command inside the namespace (ip netns exec) and returns
// its combined output and error.
func (n *NS) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...).CombinedOutput()
	return string(out), err
}

// Command is an exec.Cmd that runs name inside the namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Link joins a and b with a veth pair, made inside a and moved to b: aIf
// and bIf name its ends (at most 15 bytes; names are per namespace), aAddr
// and bAddr are the addresses (with prefix length, IPv4 or IPv6; several
// separated by commas) given to each end. IPv6 addresses skip duplicate
// address detection, so that they can be used at once.
func Link(t testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	t.Helper()
	a.IP(t, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, end := range []struct {
		ns    *NS
		iface string
		addrs string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		for _, addr := range strings.Split(end.addrs, ",") {
			args := []string{"addr", "add", addr, "dev", end.iface}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad") // usable at once
			}
			end.ns.IP(t, args...)
		}
		end.ns.IP(t, "link", "set", end.iface, "up")
	}
}

// Do runs f on a goroutine locked to a thread that has entered the
// namespace; sockets f opens belong to the namespace (and stay in it when
// used elsewhere). The thread is never returned to the Go scheduler: it
// exits with the goroutine, so nothing else ever runs in the namespace.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (n *NS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects from inside the namespace, giving up after timeout.
func (n *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) { c, err = net.DialTimeout(network, addr, timeout); return err })
	return c, err
}

// DialContext connects from inside the namespace: an http.Transport's
// DialContext for a client of a server listening there.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
	return c, err
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ServeOK answers "ok" to every connection on addr (host:port) inside n,
// until the test ends; it returns the address listened on.
func (n *NS) ServeOK(t testing.TB, addr string) string {
	t.Helper()
	ln := n.Listen(t, "tcp", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// ProbeTimeout bounds Served's connection attempt: a dropped SYN shows
// as a timeout, and the test's links answer far sooner.
const ProbeTimeout = 300 * time.Millisecond

// Served reports whether a new TCP connection from n to addr (a ServeOK
// listener) is answered "ok".
func (n *NS) Served(addr string) bool {
	c, err := n.Dial("tcp", addr, ProbeTimeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return err == nil && string(b) == "ok"
}

// Ruleset is `nft list ruleset` inside n.
func (n *NS) Ruleset(t testing.TB) string {
	t.Helper()
	out, err := n.Exec("nft", "list", "ruleset")
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	return out
}

// NFT loads a ruleset file (nft -f) inside n.
func (n *NS) NFT(t testing.TB, rules string) {
	t.Helper()
	cmd := n.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
}
