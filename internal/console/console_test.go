package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityHeaders checks, with a plain HTTP client, that the page, a
// script, a client route and a refused method all carry the security
// headers, with the content types and caching the contract asks for.
func TestSecurityHeaders(t *testing.T) {
	ts := httptest.NewServer(Handler())
	defer ts.Close()
	want := map[string]string{
		"Content-Security-Policy":   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"Strict-Transport-Security": "max-age=63072000",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"X-Frame-Options":           "DENY",
	}
	cases := []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8", `<script type="module" src="/ui/app.js">`},
		{"GET", "/ui/fleet/web-1", 200, "text/html; charset=utf-8", `<main id="main"`},
		{"GET", "/ui/pages/", 200, "text/html; charset=utf-8", `<main id="main"`}, // no directory listing
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8", "export async function api("},
		{"GET", "/ui/pages/overview.js", 200, "text/javascript; charset=utf-8", "export async function render("},
		{"GET", "/ui/console.css", 200, "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"GET", "/ui/pages/nope.js", 404, "", ""},
		{"GET", "/ui/../go.mod", 200, "text/html; charset=utf-8", `<main id="main"`},
		{"POST", "/ui/", 405, "", ""},
		{"HEAD", "/ui/app.js", 200, "text/javascript; charset=utf-8", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, err := http.NewRequest(c.method, ts.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Path = c.path // keep "..": the client would clean it
			res, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, b)
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if c.ctype != "" {
				if got := res.Header.Get("Content-Type"); got != c.ctype {
					t.Errorf("Content-Type %q, want %q", got, c.ctype)
				}
				if got := res.Header.Get("Cache-Control"); got != "no-cache" {
					t.Errorf("Cache-Control %q, want no-cache", got)
				}
			}
			if !strings.Contains(string(b), c.body) {
				t.Errorf("body does not contain %q:\n%.300s", c.body, b)
			}
		})
	}
	// /ui without the slash goes to /ui/.
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(ts.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("/ui: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestStaticSources holds the files to the rules the CSP and the escaping
// rest on: no inline script, style or event handler in the HTML, no
// innerHTML, outerHTML, insertAdjacentHTML, document.write, eval or
// Function in the scripts, and nothing loaded from another origin.
func TestStaticSources(t *testing.T) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`)
	forbiddenHTML := []*regexp.Regexp{inlineScript, regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`(?:src|href)="(?:https?:)?//`)}
	forbiddenJS := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\bFunction\(|https?://|setAttribute\(\s*["']on|\.style\b`)
	n := 0
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		n++
		switch {
		case strings.HasSuffix(p, ".html"):
			for _, re := range forbiddenHTML {
				if m := re.Find(b); m != nil {
					t.Errorf("%s: %q", p, m)
				}
			}
		case strings.HasSuffix(p, ".js"):
			for i, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "//") {
					continue
				}
				// The SVG namespace is a name that createElementNS needs,
				// not an address anything is loaded from.
				line = strings.ReplaceAll(line, `"http://www.w3.org/2000/svg"`, `"svg-namespace"`)
				if m := forbiddenJS.FindString(line); m != "" {
					t.Errorf("%s:%d: %q", p, i+1, m)
				}
			}
		case strings.HasSuffix(p, ".css"):
			if strings.Contains(string(b), "@import") || strings.Contains(string(b), "url(") {
				t.Errorf("%s: loads another resource", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 {
		t.Fatalf("%d files in static/", n)
	}
}
