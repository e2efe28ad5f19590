package oidctest_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/oidcauth"
	"github.com/warden-sec/warden/internal/oidcauth/oidctest"
)

const importPath = "github.com/warden-sec/warden/internal/oidcauth/oidctest"

// TestOnlyTestsImport: no file of the module but a _test.go file (and this
// package's own) imports oidctest, so the example provider never ships.
func TestOnlyTestsImport(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == self || path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
				t.Errorf("%s imports oidctest, which is for tests only", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files found under %s", files, root)
	}
}

const redirectURI = "http://127.0.0.1:8250/callback"

func client(t *testing.T, p *oidctest.Provider) *oidcauth.Provider {
	t.Helper()
	c, err := oidcauth.NewProvider(t.Context(), oidcauth.Config{Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, CAPEM: p.CAPEM}, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrowser: the browser driver reports what a user would see go wrong,
// rather than a redirect that did not happen.
func TestBrowser(t *testing.T) {
	p := oidctest.Start(t, redirectURI)
	c := client(t, p)
	const nonce = "client-nonce-0123456789abcdef"

	authURL, state, err := c.AuthURL(redirectURI, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Login(authURL, "alice", "not-her-password"); err == nil || !strings.Contains(err.Error(), "did not redirect") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := p.Authorize(authURL); err == nil || !strings.Contains(err.Error(), "did not redirect") {
		t.Fatalf("authorize without prompt=none: %v", err)
	}
	u, err := p.Login(authURL, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != redirectURI || q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("redirect %s", u.Redacted())
	}
	if id, err := c.Exchange(t.Context(), state, q.Get("code"), nonce); err != nil || id.User != "alice@example.com" {
		t.Fatalf("exchange: %+v, %v", id, err)
	}

	da, err := c.DeviceStart(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApproveDevice(da.VerificationURI, da.UserCode, "carol", "not-her-password"); err == nil {
		t.Fatal("device login with a wrong password succeeded")
	}
	if err := p.ApproveDevice(da.VerificationURI, "WRONG-CODE", "carol", "carol-password"); err == nil {
		t.Fatal("device login with an unknown code succeeded")
	}
	// The plain verification URI: the user types the code. (carol: the
	// client's user claim is email, and bob's address is not verified.)
	if err := p.ApproveDevice(da.VerificationURI, da.UserCode, "carol", "carol-password"); err != nil {
		t.Fatal(err)
	}
	if id, err := c.DevicePoll(t.Context(), da.State); err != nil || id.Subject != "carol" {
		t.Fatalf("device poll: %+v, %v", id, err)
	}
}
