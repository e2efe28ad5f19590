package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/netnstest"
)

// routed is the network the end-to-end tests run on, in namespaces the
// test creates: a host that routes between two clients and a service, and
// runs a warden server (dev mode) on its loopback.
//
//	c1 10.213.1.2 ── 10.213.1.1 ┐
//	                            host (server) 10.213.3.1 ── 10.213.3.2 svc (TCP)
//	c2 10.213.2.2 ── 10.213.2.1 ┘
type routed struct {
	t                 *testing.T
	host, svc, c1, c2 *netnstest.NS
	service           string // svc's TCP listener (ServeOK)
	bin, addr         string // the warden binary; the server's address
	root, caFile      string // the dev server's root token and CA file
	server            *proc
}

// newRouted builds the warden binary, the namespaces and their routes, the
// service, and starts the server; ctx bounds the wait for it.
func newRouted(t *testing.T, ctx context.Context) *routed {
	t.Helper()
	netnstest.Require(t, "nft")
	r := &routed{t: t, bin: filepath.Join(t.TempDir(), "warden"), addr: "127.0.0.1:8200"} // the namespace is the test's own
	if out, err := exec.Command("go", "build", "-o", r.bin, "../../cmd/warden").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	r.host, r.svc, r.c1, r.c2 = netnstest.New(t, "host"), netnstest.New(t, "svc"), netnstest.New(t, "c1"), netnstest.New(t, "c2")
	netnstest.Link(t, r.host, "to-c1", "10.213.1.1/24", r.c1, "eth0", "10.213.1.2/24")
	netnstest.Link(t, r.host, "to-c2", "10.213.2.1/24", r.c2, "eth0", "10.213.2.2/24")
	netnstest.Link(t, r.host, "to-svc", "10.213.3.1/24", r.svc, "eth0", "10.213.3.2/24")
	r.c1.IP(t, "route", "add", "default", "via", "10.213.1.1")
	r.c2.IP(t, "route", "add", "default", "via", "10.213.2.1")
	r.svc.IP(t, "route", "add", "default", "via", "10.213.3.1")
	if out, err := r.host.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	r.service = r.svc.ServeOK(t, "10.213.3.2:0")
	if !r.c1.Served(r.service) || !r.c2.Served(r.service) {
		t.Fatal("the clients do not reach the service before anything is enforced")
	}
	// The server, on the host's loopback (its bootstrap certificate names
	// 127.0.0.1); the test reaches it from inside the namespace.
	r.server = startProc(t, r.host, r.bin, "server", "server", "--dev", "--listen", r.addr, "--rate-limit", "-1")
	r.root = waitFor(t, ctx, r.server, "Root Token: ")
	r.caFile, _, _ = strings.Cut(waitFor(t, ctx, r.server, "WARDEN_CACERT='"), "'")
	return r
}

// cli runs the warden CLI inside the host namespace, as root.
func (r *routed) cli(args ...string) (string, error) {
	cmd := r.host.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "WARDEN_ADDR=https://"+r.addr, "WARDEN_CACERT="+r.caFile, "WARDEN_TOKEN="+r.root)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cliJSON runs the CLI with --format json and decodes what it prints.
func (r *routed) cliJSON(v any, args ...string) {
	r.t.Helper()
	out, err := r.cli(append(args, "--format", "json")...)
	if err != nil {
		r.t.Fatalf("warden %s: %v: %s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("warden %s printed %q: %v", strings.Join(args, " "), out, err)
	}
}
