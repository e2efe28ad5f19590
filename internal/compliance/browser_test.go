package compliance

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/warden-sec/warden/internal/browsertest"
)

var screenshot = flag.Bool("screenshot", false, "write the report's screenshot to docs/img/compliance-report.png")

// TestHTMLReportInChromium opens the signed HTML report of the seeded
// state in headless Chromium at 1280×800: it renders with no console
// error, no exception and no blocked resource, shows its title and its
// four charts, and its content is the report's (a zone's name, the risk
// table). With -screenshot it writes the picture docs/compliance.md shows.
func TestHTMLReportInChromium(t *testing.T) {
	st := seededState(t)
	r, err := Evaluate(st, IEC62443, "")
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "browser")
	doc, err := SignReport(r, ca.server, ca.chain)
	if err != nil {
		t.Fatal(err)
	}
	page, err := RenderHTML(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, page, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	br := browsertest.Start(t, ctx, 1280, 800)
	bctx := br.Ctx
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+file), chromedp.WaitReady("h1")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("svg").length`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	problems := browsertest.Problems(br.Messages(t))
	if len(problems) > 0 {
		t.Fatalf("the report rendered with problems: %q", problems)
	}
	if !strings.Contains(title, "IEC 62443") && !strings.Contains(title, string(IEC62443)) {
		t.Errorf("title %q", title)
	}
	if charts < 4 {
		t.Errorf("%d charts (SVG), want at least 4", charts)
	}
	for _, z := range st.Zones {
		if !strings.Contains(body, z.Name) {
			t.Errorf("zone %s is not on the page", z.Name)
		}
	}
	if len(png) == 0 {
		t.Fatal("no screenshot")
	}
	if *screenshot {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "compliance-report.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
