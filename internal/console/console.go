// Package console is Warden's web console: the static files of a browser
// application, embedded in the binary, and the handler that serves them
// under /ui/ with the security headers (docs/console.md).
//
// The console has no privileges of its own. It holds no key, reads no
// store and calls no service: every page is plain JavaScript that calls the
// same HTTP API as the CLI, with the token of the user who logged in, so
// every action goes through the same authentication, the same Cedar
// policies and the same audit log. The production wiring of /ui/ is in the
// API's route table (a public route whose successes are not recorded).
//
// Sessions. The token lives in a JavaScript module variable only (a reload
// asks to log in again) and is sent as "Authorization: Bearer". The console
// sets no cookie and the API reads none, so a request another site makes
// the browser send carries no credential: there is no CSRF surface. Idle
// sessions end by the server's own session idle timeout; the console shows
// the login page on a 401.
//
// What it does not do: it serves no API route and proxies nothing; it
// renders nothing on the server (no templates, so no server-side injection);
// and its pages put data in the DOM only as text (textContent,
// createElement), never as HTML, under a Content-Security-Policy that
// allows only the console's own scripts and styles.
package console

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// static is the console's files; an embed.FS is read-only (the one
// package-level variable, as go:embed requires).
//
//go:embed static
var static embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// CSP is the Content-Security-Policy of every response: only the console's
// own scripts, styles, fonts and API; no inline script or style, no eval,
// no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes are the types of the files the console ships; a file of
// another kind is not served (http.FileServer's guessing and sniffing are
// not wanted: nosniff is set).
func contentTypes() map[string]string {
	return map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
		".svg":  "image/svg+xml",
		".png":  "image/png",
	}
}

// Handler serves the console under Prefix: a file of static/ by its path,
// and index.html for Prefix itself and for any other path under it (the
// console routes in the browser, by the URL's fragment). Only GET and HEAD
// are answered. Every response carries the security headers (CSP, HSTS,
// nosniff, no referrer, no framing). It is safe for concurrent use.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic("console: " + err.Error()) // the embed pattern guarantees the directory
	}
	// The files are embedded, hence immutable: read once, not per request.
	files := map[string][]byte{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[name], err = fs.ReadFile(root, name)
		return err
	})
	if err != nil || files["index.html"] == nil {
		panic(fmt.Sprintf("console: reading the embedded files: %v", err)) // the embed pattern guarantees them
	}
	return &handler{files: files, types: contentTypes()}
}

type handler struct {
	files map[string][]byte // static/'s files by path
	types map[string]string
}

// SetSecurityHeaders sets the console's security headers on h.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("Strict-Transport-Security", "max-age=63072000")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p+"/" == Prefix {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(p, Prefix) {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(path.Clean(p), strings.TrimSuffix(Prefix, "/"))
	name = strings.TrimPrefix(name, "/")
	if ct, ok := h.types[path.Ext(name)]; ok && name != "index.html" {
		if b, ok := h.files[name]; ok {
			serve(w, r, ct, b)
			return
		}
		// A missing script or style is a 404, not the page: a module
		// import of it fails plainly.
		if path.Ext(name) != ".html" {
			http.NotFound(w, r)
			return
		}
	}
	// The application's one page, for every route of the browser's.
	serve(w, r, h.types[".html"], h.files["index.html"])
}

func serve(w http.ResponseWriter, r *http.Request, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}
