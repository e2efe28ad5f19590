package console_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// axe-core, from the npm registry, fetched by the test only (the console
// never loads it). Its tarball is checked against the registry's
// dist.integrity (SHA-512) before axe.min.js is taken out of it.
const (
	axeVersion  = "4.14.1"
	axeTarball  = "https://registry.npmjs.org/axe-core/-/axe-core-" + axeVersion + ".tgz"
	axeMetadata = "https://registry.npmjs.org/axe-core/" + axeVersion
)

// axeScript downloads axe-core, checks its integrity and returns the text
// of axe.min.js (also written into t.TempDir()).
func axeScript(t *testing.T) string {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	get := func(url string) []byte {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatalf("axe-core from the npm registry: %v", err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
		}
		return b
	}
	var meta struct {
		Dist struct {
			Integrity string `json:"integrity"`
		} `json:"dist"`
	}
	if err := json.Unmarshal(get(axeMetadata), &meta); err != nil {
		t.Fatal(err)
	}
	want, ok := strings.CutPrefix(meta.Dist.Integrity, "sha512-")
	if !ok {
		t.Fatalf("the registry's integrity of axe-core %s is %q, not a SHA-512", axeVersion, meta.Dist.Integrity)
	}
	tgz := get(axeTarball)
	sum := sha512.Sum512(tgz)
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("axe-core %s tarball: SHA-512 %s, the registry says %s", axeVersion, got, want)
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no package/axe.min.js in %s", axeTarball)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "package/axe.min.js" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(t.TempDir(), "axe.min.js"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// axeViolation is what the test reports of one of axe's violations.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeRun runs axe on the whole document and keeps the serious and critical
// violations, with up to five of the elements of each.
const axeRun = `(async () => {
  const r = await axe.run(document, { resultTypes: ["violations"] });
  return r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " — " + (n.failureSummary || "").replace(/\s+/g, " ")) }));
})()`

// TestAccessibilityInChromium runs axe-core on every page of the console
// (the login, and every module in static/pages: a page added without being
// listed here fails the test) against a real server with seeded data, in
// the light and the dark theme, and fails on any serious or critical
// violation, printing them. With -screenshot it writes each page, light
// theme, 1280×800, to docs/img/console-<page>.png.
func TestAccessibilityInChromium(t *testing.T) {
	axe := axeScript(t)
	cs := startConsoleServer(t)
	secret := cs.seed(t)
	// More for the pages to show: a ban, secrets, a transit key, a store.
	cs.call(t, "POST", "/v1/decisions", cs.root, map[string]any{"type": "ban",
		"target": map[string]string{"ip": "203.0.113.7"}, "duration": "4h", "reason": "ssh brute force"}, 200)
	cs.call(t, "PUT", "/v1/kv/data/app/db", cs.root, map[string]any{"data": map[string]string{"password": "s3cr3t"}}, 200)
	cs.call(t, "POST", "/v1/transit/keys/orders", cs.root, map[string]string{"type": "aes256-gcm96"}, 200)
	// A second zone and a conduit, so the zone map has an arrow.
	cs.call(t, "POST", "/v1/zones", cs.root, map[string]any{"name": "plant", "level": 3}, 200)
	cs.call(t, "POST", "/v1/conduits", cs.root, map[string]any{"from": "dmz", "to": "plant", "port": 443, "mtls": true}, 200)

	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	b := newWindow(t, ctx, 1280, 800)

	theme := func(scheme string) {
		t.Helper()
		if _, err := chromedp.Call(b.Ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		// The theme applies: the page's background is the theme's.
		want := map[string]string{"light": "rgb(246, 247, 249)", "dark": "rgb(15, 19, 24)"}[scheme]
		b.Poll(`getComputedStyle(document.body).backgroundColor === "` + want + `"`)
	}
	checked := 0
	check := func(page string) {
		t.Helper()
		for _, scheme := range []string{"light", "dark"} {
			theme(scheme)
			vs, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("axe on %s: %v", page, err)
			}
			for _, v := range vs {
				t.Errorf("%s (%s theme): %s %s: %s\n\t%s", page, scheme, v.Impact, v.ID, v.Help, strings.Join(v.Nodes, "\n\t"))
			}
			checked++
			if *screenshot && scheme == "light" {
				png, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot())
				if err != nil {
					t.Fatal(err)
				}
				name := strings.Split(page, "/")[0]
				if name == "policies" && strings.Contains(page, "/") {
					name = "policy-store"
				}
				if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "console-"+name+".png"), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	inject := func() {
		t.Helper()
		if _, err := chromedp.Run(b.Ctx, chromedp.Evaluate[any](axe+"\n;true")); err != nil {
			t.Fatalf("injecting axe-core: %v", err)
		}
		if v := b.Eval(`typeof axe.run`); v != "function" {
			t.Fatalf("axe-core did not load: typeof axe.run is %v", v)
		}
	}

	b.Do(chromedp.Navigate(cs.ts.URL+"/ui/"), chromedp.WaitReady(readySel("login")))
	inject()
	check("login")

	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Do(chromedp.SendKeys("#login-user", userName), chromedp.SendKeys("#login-password", userPass),
		chromedp.SendKeys("#login-totp", code), chromedp.Click(`#login-password-form button[type="submit"]`),
		chromedp.WaitReady(readySel("overview")))
	check("overview")
	alerts := cs.call(t, "GET", "/v1/alerts?level=high&limit=1", cs.root, nil, 200)["alerts"].([]any)
	incs := cs.call(t, "GET", "/v1/incidents", cs.root, nil, 200)["incidents"].([]any)
	if len(alerts) != 1 || len(incs) != 1 {
		t.Fatalf("seeded %d high alerts and %d incidents, want 1 and 1", len(alerts), len(incs))
	}
	pages := []string{"fleet", "zones", "node/web-1", "alerts", "alert/" + alerts[0].(map[string]any)["id"].(string),
		"incidents", "incident/" + incs[0].(map[string]any)["id"].(string), "decisions", "playbooks",
		"policies", "policies/warden", "compliance", "secrets", "audit", "account"}
	// Every page module is visited.
	mods, err := os.ReadDir(filepath.Join("static", "pages"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		name := strings.TrimSuffix(m.Name(), ".js")
		if name != "overview" && !slices.ContainsFunc(pages, func(p string) bool { return strings.Split(p, "/")[0] == name }) {
			t.Errorf("the page %s is not checked (add it to this test)", name)
		}
	}
	for _, page := range pages {
		b.Eval(`location.hash = "#/` + page + `"`)
		b.Poll(`document.querySelector('` + readySel(strings.Split(page, "/")[0]) + `') !== null`)
		if page == "audit" {
			// The entries and a verification's steps: the page at its fullest.
			b.Poll(`document.querySelector("#audit-entries tbody tr button.verify") !== null`)
			b.Do(chromedp.Click(`#audit-entries tbody tr button.verify`))
			b.Poll(`document.querySelector("#audit-verify .verdict")?.dataset.ok !== undefined`)
		}
		check(page)
	}
	if want := 2 * (2 + len(pages)); checked != want {
		t.Fatalf("%d checks run, want %d", checked, want)
	}
}
