package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warden-sec/warden/internal/oidcauth/oidctest"
)

// TestOIDCLoginE2E runs `warden auth oidc config` and `warden login
// --method oidc` (the browser flow on a local redirect listener, and the
// device flow) against a real server and the real test provider, the test
// playing the browser and the person at the device page.
func TestOIDCLoginE2E(t *testing.T) {
	// The provider registers redirect URIs exactly: give the CLI a port
	// known in advance.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	redirect := "http://localhost:" + strconv.Itoa(port) + "/oidc/callback"
	op := oidctest.Start(t, redirect)

	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One run of the CLI; tee, if not nil, sees its stdout and stderr as
	// they are written.
	cli := func(e env, stdin io.Reader, tee io.Writer, argv ...string) result {
		var out, errb bytes.Buffer
		w, ew := io.Writer(&out), io.Writer(&errb)
		if tee != nil {
			w, ew = io.MultiWriter(&out, tee), io.MultiWriter(&errb, tee)
		}
		code := run(ctx, argv, stdin, w, ew, e.get)
		return result{out.String(), errb.String(), code}
	}
	root := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile(), "HOME": t.TempDir()}
	in := mustJSON(t, cli(root, strings.NewReader(""), nil, "operator", "init", "--key-shares", "1", "--key-threshold", "1", "--format", "json"),
		"unseal_keys", "root_token")
	if r := cli(root, strings.NewReader(""), nil, "operator", "unseal", in["unseal_keys"].([]any)[0].(string)); r.code != 0 {
		t.Fatalf("unseal: %+v", r)
	}
	root["WARDEN_TOKEN"] = in["root_token"].(string)

	dir := t.TempDir()
	secretFile, caFile := filepath.Join(dir, "secret"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(secretFile, []byte(op.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, []byte(op.CAPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(root, strings.NewReader(""), nil, "auth", "oidc", "config", "--issuer", op.Issuer, "--client-id", op.ClientID,
		"--client-secret-file", secretFile, "--ca-cert-file", caFile, "--redirect-uri", "http://localhost/oidc/callback",
		"--user-claim", "preferred_username", "--groups-claim", "groups"); r.code != 0 {
		t.Fatalf("auth oidc config: %+v", r)
	}
	if r := cli(root, strings.NewReader(""), nil, "auth", "oidc", "show", "--format", "json"); r.code != 0 ||
		strings.Contains(r.stdout, op.ClientSecret) || !strings.Contains(r.stdout, `"client_secret_set": true`) {
		t.Fatalf("auth oidc show: %+v", r)
	}

	// The browser flow: the CLI prints the provider's URL and waits on
	// its redirect listener; the test signs in there as alice and brings
	// the redirect back to the CLI, as the browser would.
	alice := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile(), "HOME": t.TempDir()}
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		r := cli(alice, strings.NewReader(""), pw, "login", "--method", "oidc", "--no-browser", "--listen-port", strconv.Itoa(port))
		pw.Close()
		done <- r
	}()
	authURL := ""
	sc := bufio.NewScanner(pr)
	urlLine := regexp.MustCompile(`^\s+(https://\S+)$`)
	for authURL == "" && sc.Scan() {
		if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
			authURL = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if authURL == "" {
		t.Fatalf("no login URL printed: %+v", <-done)
	}
	back, err := op.Login(authURL, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(back.String()) // the browser follows the redirect to the CLI
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "Logged in as alice") || !strings.Contains(r.stdout, "oidc") {
		t.Fatalf("oidc login: %+v", r)
	}
	tokenFile := filepath.Join(alice["HOME"], ".warden", "token")
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v", err)
	}
	if r := cli(alice, strings.NewReader(""), nil, "token", "lookup", "--format", "json"); r.code != 0 ||
		!strings.Contains(r.stdout, `"user": "alice"`) {
		t.Fatalf("lookup with the saved session: %+v", r)
	}

	// The device flow: the CLI prints the page and the code; bob enters
	// it there and approves; the CLI's poll opens his session.
	bob := env{"WARDEN_ADDR": srv.Addr(), "WARDEN_CACERT": srv.CAFile(), "HOME": t.TempDir()}
	pr, pw = io.Pipe()
	go func() {
		r := cli(bob, strings.NewReader(""), pw, "login", "--method", "oidc", "--device")
		pw.Close()
		done <- r
	}()
	var page, code string
	deviceLine := regexp.MustCompile(`^Open (\S+) and enter (\S+)$`)
	sc = bufio.NewScanner(pr)
	for page == "" && sc.Scan() {
		if m := deviceLine.FindStringSubmatch(sc.Text()); m != nil {
			page, code = m[1], m[2]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if page == "" {
		t.Fatalf("no device code printed: %+v", <-done)
	}
	if err := op.ApproveDevice(page, code, "bob", "bob-password"); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, "Logged in as bob") {
		t.Fatalf("device login: %+v", r)
	}
}
