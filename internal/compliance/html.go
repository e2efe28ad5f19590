package compliance

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"time"
)

// RenderHTML renders a signed report document (as SignReport returns it)
// as one self-contained HTML page: inline CSS, inline SVG charts (pass and
// fail per control family, SL-A beside SL-T per zone, risk per zone, the
// patch-age histogram), no script to run and no external resource. Every
// value is escaped by html/template. The signed document itself is
// embedded, byte for byte, in
//
//	<script type="application/json" id="warden-report">…</script>
//
// so that VerifyDocument checks the HTML file as it checks the JSON. The
// document must not contain "<" (SignReport's never does: JSON strings
// escape it); RenderHTML does not verify the signature.
func RenderHTML(signedJSON []byte) ([]byte, error) {
	s, _, _, err := parseSigned(signedJSON)
	if err != nil {
		return nil, fmt.Errorf("compliance: render html: %w", err)
	}
	doc := bytes.TrimSpace(signedJSON)
	if len(doc) == 0 || doc[0] != '{' {
		return nil, errors.New("compliance: render html: want the signed JSON document")
	}
	if bytes.IndexByte(doc, '<') >= 0 {
		return nil, errors.New("compliance: render html: the signed document contains '<', which cannot be embedded unchanged")
	}
	var r Report
	if err := decodeStrict(s.Report, &r); err != nil {
		return nil, fmt.Errorf("compliance: render html: report: %w", err)
	}
	v := newView(&r)
	v.Signer = signerName(s.Signature)
	v.SignedAt = s.Signature.SignedAt.UTC().Format(time.RFC3339)
	var out bytes.Buffer
	if err := pageTemplate().Execute(&out, v); err != nil {
		return nil, fmt.Errorf("compliance: render html: %w", err)
	}
	// The signed document goes in unchanged, outside the template: it is
	// JSON without "<", so it cannot end the element early.
	page := out.Bytes()
	i := bytes.LastIndex(page, []byte("</body>"))
	if i < 0 {
		return nil, errors.New("compliance: render html: template has no body end")
	}
	var final bytes.Buffer
	final.Write(page[:i])
	final.WriteString(htmlMarker)
	final.Write(doc)
	final.WriteString("</script>\n")
	final.Write(page[i:])
	return final.Bytes(), nil
}

// view is what the page template shows.
type view struct {
	R         *Report
	Title     string
	Signer    string
	SignedAt  string
	Root      string
	Families  []familyView
	Charts    []chart
	Evidence  []evidenceView
	FRHeaders []string
}

type familyView struct {
	Name     string
	Controls []ControlResult
}

type evidenceView struct {
	Index uint64
	Entry string
	Proof int
	About string
}

type chart struct {
	Title  string
	W, H   int
	Bars   []bar
	Lines  []line
	Labels []label
}

type bar struct {
	X, Y, W, H int
	Class      string
	Tip        string
}

type line struct {
	X1, Y1, X2, Y2 int
	Class          string
}

type label struct {
	X, Y   int
	Text   string
	Anchor string
}

func frameworkTitle(fw Framework) string {
	switch fw {
	case ISO27001:
		return "ISO/IEC 27001:2022 Annex A"
	case IEC62443:
		return "IEC 62443-3-3"
	}
	return string(fw)
}

func newView(r *Report) *view {
	v := &view{R: r, Title: frameworkTitle(r.Framework), Root: fmt.Sprintf("%x", r.Checkpoint.Root)}
	for _, c := range r.Controls {
		if n := len(v.Families); n == 0 || v.Families[n-1].Name != c.Family {
			v.Families = append(v.Families, familyView{Name: c.Family})
		}
		f := &v.Families[len(v.Families)-1]
		f.Controls = append(f.Controls, c)
	}
	for _, e := range r.Evidence {
		about := ""
		for i, a := range e.About {
			if i > 0 {
				about += ", "
			}
			about += a
		}
		v.Evidence = append(v.Evidence, evidenceView{Index: e.Index, Entry: string(e.Entry), Proof: len(e.Proof), About: about})
	}
	for i := 1; i <= 7; i++ {
		v.FRHeaders = append(v.FRHeaders, "FR "+strconv.Itoa(i))
	}
	v.Charts = append(v.Charts, familyChart(v.Families))
	if len(r.Zones) > 0 {
		v.Charts = append(v.Charts, levelChart(r.Zones))
	}
	v.Charts = append(v.Charts, riskChart(r.Risk.Zones), patchChart(r.PatchAge))
	return v
}

// familyChart: one horizontal stacked bar per family, segments by status.
func familyChart(fams []familyView) chart {
	const left, width, rowH = 300, 420, 26
	c := chart{Title: "Controls per family by status", W: left + width + 20, H: rowH*len(fams) + 40}
	most := 1
	for _, f := range fams {
		most = max(most, len(f.Controls))
	}
	order := []string{StatusPass, StatusAttested, StatusNotApplicable, StatusManual, StatusFail}
	for i, f := range fams {
		y := 10 + i*rowH
		c.Labels = append(c.Labels, label{X: left - 8, Y: y + 15, Text: f.Name, Anchor: "end"})
		x := left
		for _, st := range order {
			n := 0
			for _, ctl := range f.Controls {
				if ctl.Status == st {
					n++
				}
			}
			if n == 0 {
				continue
			}
			w := n * width / most
			c.Bars = append(c.Bars, bar{X: x, Y: y, W: w, H: rowH - 6, Class: "s-" + st, Tip: fmt.Sprintf("%s: %d %s", f.Name, n, st)})
			x += w
		}
	}
	ly := 10 + len(fams)*rowH + 12
	for i, st := range order {
		c.Bars = append(c.Bars, bar{X: 20 + i*130, Y: ly - 9, W: 10, H: 10, Class: "s-" + st, Tip: st})
		c.Labels = append(c.Labels, label{X: 20 + i*130 + 14, Y: ly, Text: st, Anchor: "start"})
	}
	return c
}

// levelChart: per zone, seven bars (SL-A of FR 1..7) and a line at SL-T.
func levelChart(zones []ZoneLevel) chart {
	const top, unit, barW, groupW, left = 20, 30, 14, 150, 40
	c := chart{Title: "SL-A per FR beside SL-T, per zone", W: left + groupW*len(zones) + 20, H: top + 4*unit + 50}
	base := top + 4*unit
	for l := 0; l <= 4; l++ {
		y := base - l*unit
		c.Lines = append(c.Lines, line{X1: left, Y1: y, X2: c.W - 10, Y2: y, Class: "grid"})
		c.Labels = append(c.Labels, label{X: left - 6, Y: y + 4, Text: "SL" + strconv.Itoa(l), Anchor: "end"})
	}
	for i, z := range zones {
		gx := left + i*groupW + 10
		for fr, sl := range z.SLA {
			cls := "s-pass"
			if sl < z.SLT {
				cls = "s-fail"
			}
			h := max(sl*unit, 2) // a stub shows SL-A 0
			c.Bars = append(c.Bars, bar{X: gx + fr*(barW+4), Y: base - h, W: barW, H: h, Class: cls,
				Tip: fmt.Sprintf("%s FR %d: SL-A %d, SL-T %d", z.Name, fr+1, sl, z.SLT)})
		}
		ty := base - z.SLT*unit
		c.Lines = append(c.Lines, line{X1: gx - 4, Y1: ty, X2: gx + 7*(barW+4), Y2: ty, Class: "target"})
		c.Labels = append(c.Labels, label{X: gx + 7*(barW+4)/2, Y: base + 18, Text: z.Name + " (SL-T " + strconv.Itoa(z.SLT) + ")", Anchor: "middle"})
	}
	return c
}

// riskChart: one horizontal bar per zone, 0 to 100.
func riskChart(zones []RiskScore) chart {
	const left, width, rowH = 200, 400, 26
	c := chart{Title: "Risk per zone (0 to 100)", W: left + width + 60, H: rowH*max(1, len(zones)) + 20}
	for i, z := range zones {
		y := 10 + i*rowH
		cls := "s-pass"
		switch {
		case z.Score >= 60:
			cls = "s-fail"
		case z.Score >= 30:
			cls = "s-manual"
		}
		c.Labels = append(c.Labels, label{X: left - 8, Y: y + 15, Text: z.Ref, Anchor: "end"},
			label{X: left + z.Score*width/MaxRisk + 6, Y: y + 15, Text: strconv.Itoa(z.Score), Anchor: "start"})
		c.Bars = append(c.Bars, bar{X: left, Y: y, W: z.Score * width / MaxRisk, H: rowH - 6, Class: cls, Tip: fmt.Sprintf("%s: %d", z.Ref, z.Score)})
	}
	return c
}

// patchChart: a vertical bar per patch-age bucket.
func patchChart(bs []Bucket) chart {
	const top, height, barW, gap, left = 20, 140, 70, 20, 20
	c := chart{Title: "Nodes by patch age", W: left + len(bs)*(barW+gap) + 20, H: top + height + 40}
	most := 1
	for _, b := range bs {
		most = max(most, b.Nodes)
	}
	base := top + height
	c.Lines = append(c.Lines, line{X1: left, Y1: base, X2: c.W - 10, Y2: base, Class: "grid"})
	for i, b := range bs {
		x := left + i*(barW+gap)
		h := b.Nodes * height / most
		cls := "s-pass"
		if b.Min > MaxPatchAgeDays || b.Min < 0 {
			cls = "s-fail"
		}
		c.Bars = append(c.Bars, bar{X: x, Y: base - h, W: barW, H: h, Class: cls, Tip: fmt.Sprintf("%s: %d nodes", b.Label, b.Nodes)})
		c.Labels = append(c.Labels, label{X: x + barW/2, Y: base - h - 4, Text: strconv.Itoa(b.Nodes), Anchor: "middle"},
			label{X: x + barW/2, Y: base + 16, Text: b.Label, Anchor: "middle"})
	}
	return c
}

func pageTemplate() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"time": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}).Parse(pageHTML))
}

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Warden compliance report: {{.Title}}{{with .R.Zone}}, zone {{.}}{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#1d2330;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #dde;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f4f8}.meta td:first-child{width:14em;font-weight:600}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
.badge{display:inline-block;padding:0 .5em;border-radius:.6em;font-size:.85em;color:#fff}
.b-pass{background:#2e7d32}.b-fail,.b-error{background:#c62828}.b-not_applicable{background:#78909c}
.b-manual{background:#ef8f00}.b-attested{background:#1565c0}
svg text{font-size:12px;fill:#1d2330}
.s-pass{fill:#2e7d32}.s-fail{fill:#c62828}.s-not_applicable{fill:#90a4ae}.s-manual{fill:#ef8f00}.s-attested{fill:#1565c0}
.grid{stroke:#ccd;stroke-width:1}.target{stroke:#1d2330;stroke-width:2;stroke-dasharray:4 3}
figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
details{margin:.2em 0}summary{cursor:pointer}
.ev{margin:.2em 0 .2em 1em;padding:0;list-style:square}
</style>
</head>
<body>
<h1>Warden compliance report</h1>
<p>{{.Title}}{{with .R.Zone}}, zone <strong>{{.}}</strong>{{else}}, whole cluster{{end}}</p>
<table class="meta">
<tr><td>Format</td><td>{{.R.Format}}</td></tr>
<tr><td>Generated</td><td>{{time .R.GeneratedAt}}</td></tr>
<tr><td>Trust domain</td><td>{{.R.TrustDomain}}</td></tr>
<tr><td>Audit checkpoint</td><td>size {{.R.Checkpoint.Size}}, root <code>{{.Root}}</code>, {{.R.Checkpoint.Witnesses}} witness cosignatures</td></tr>
<tr><td>Log key</td><td><code>{{.R.Checkpoint.LogKey}}</code></td></tr>
<tr><td>Signed by</td><td><code>{{.Signer}}</code> at {{.SignedAt}}</td></tr>
</table>

<h2>Summary</h2>
<table>
<tr><th>Controls</th><th>Pass</th><th>Fail</th><th>Not applicable</th><th>Manual</th><th>Attested</th></tr>
<tr><td>{{.R.Summary.Controls}}</td><td>{{.R.Summary.Pass}}</td><td>{{.R.Summary.Fail}}</td><td>{{.R.Summary.NotApplicable}}</td><td>{{.R.Summary.Manual}}</td><td>{{.R.Summary.Attested}}</td></tr>
</table>
{{range .Charts}}
<figure><figcaption>{{.Title}}</figcaption>
<svg viewBox="0 0 {{.W}} {{.H}}" width="{{.W}}" height="{{.H}}" role="img" aria-label="{{.Title}}">
{{range .Lines}}<line x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}" class="{{.Class}}"></line>
{{end}}{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" class="{{.Class}}"><title>{{.Tip}}</title></rect>
{{end}}{{range .Labels}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}</svg>
</figure>
{{end}}
{{if .R.Zones}}
<h2>Security levels per zone</h2>
<p>SL-A of a foundational requirement is the highest level whose requirements, and all those below it, are satisfied for the zone. SL-T is the zone's target.</p>
<table>
<tr><th>Zone</th><th>SL-T</th>{{range .FRHeaders}}<th>{{.}}</th>{{end}}</tr>
{{range .R.Zones}}{{$t := .SLT}}<tr><td>{{.Name}}</td><td>{{.SLT}}</td>{{range .SLA}}<td>{{if lt . $t}}<span class="badge b-fail">{{.}}</span>{{else}}<span class="badge b-pass">{{.}}</span>{{end}}</td>{{end}}</tr>
{{end}}
</table>
{{range .R.Zones}}{{if .BelowTarget}}
<h3>Zone {{.Name}}: requirements below target</h3>
<table>
<tr><th>FR</th><th>Requirement</th><th>SL</th><th>Check</th><th>Why</th></tr>
{{range .BelowTarget}}<tr><td>{{.FR}}</td><td>{{.Requirement}}</td><td>{{.SL}}</td><td>{{.Check}}</td><td>{{.Why}}</td></tr>
{{end}}</table>
{{end}}{{end}}
{{end}}

<h2>Controls</h2>
{{range .Families}}
<h3>{{.Name}}</h3>
<table>
<tr><th>Control</th><th>Title</th><th>Status</th><th>Checks</th></tr>
{{range .Controls}}<tr><td>{{.ID}}{{if .SL}} <small>(SL{{.SL}})</small>{{end}}</td><td>{{.Title}}<br><small>{{.Description}}</small>{{with .Attestation}}<br><small>Attested by {{.Owner}} until {{time .Expires}} (audit record {{.AuditIndex}}, document sha256 <code>{{.SHA256}}</code>): {{.Text}}</small>{{end}}</td>
<td><span class="badge b-{{.Status}}">{{.Status}}</span></td>
<td>{{range .Checks}}<details><summary><span class="badge b-{{.Status}}">{{.Status}}</span> <code>{{.ID}}</code> ({{.Severity}}): {{.Message}}</summary>
<p>Tests: {{.Tests}}</p>
<ul class="ev">{{range .Evidence}}<li>{{.Kind}} <code>{{.Ref}}</code>{{with .Detail}}: {{.}}{{end}}{{with .AuditIndex}} (audit record {{.}}){{end}}</li>{{end}}</ul>
</details>{{else}}<small>no automated check</small>{{end}}</td></tr>
{{end}}</table>
{{end}}

<h2>Risk</h2>
<p>Node score: open alerts (critical 40, high 20, medium 8, low 2) + failed or erroring checks (critical 15, high 8, medium 4, low 1) + patch age min(30, days/3), or 10 when unknown; capped at 100. Zone score: the highest node score + exposure per conduit into the zone (3 per port, 6 for an administration port, 10 for any port, doubled without mutual TLS); capped at 100.</p>
<table>
<tr><th>Zone</th><th>Score</th><th>Contributions</th></tr>
{{range .R.Risk.Zones}}<tr><td>{{.Ref}}</td><td>{{.Score}}</td><td><ul class="ev">{{range .Items}}<li>{{.Points}}: {{.Kind}} <code>{{.Ref}}</code>, {{.Why}}</li>{{end}}</ul></td></tr>
{{end}}</table>
<table>
<tr><th>Node</th><th>Score</th><th>Contributions</th></tr>
{{range .R.Risk.Nodes}}<tr><td>{{.Ref}}</td><td>{{.Score}}</td><td><ul class="ev">{{range .Items}}<li>{{.Points}}: {{.Kind}} <code>{{.Ref}}</code>, {{.Why}}</li>{{end}}</ul></td></tr>
{{end}}</table>

<h2>Patch age</h2>
<table>
<tr><th>Patch age</th><th>Nodes</th></tr>
{{range .R.PatchAge}}<tr><td>{{.Label}}</td><td>{{.Nodes}}</td></tr>
{{end}}</table>

<h2>Audit evidence</h2>
<p>Each record is an entry of the audit log with its inclusion proof against the checkpoint above.</p>
<table>
<tr><th>Index</th><th>Entry</th><th>Proof hashes</th><th>Supports</th></tr>
{{range .Evidence}}<tr><td>{{.Index}}</td><td class="mono">{{.Entry}}</td><td>{{.Proof}}</td><td>{{.About}}</td></tr>
{{else}}<tr><td colspan="4">No audit record is cited.</td></tr>
{{end}}</table>

<h2>Verifying this report</h2>
<p>This file carries the signed report. Run <code>warden compliance verify</code> on it with the cluster's CA certificate: it checks the signature chain to the CA, the checkpoint's signature by the log key, every evidence record's inclusion proof against the checkpoint, and that every cited record is present.</p>
</body>
</html>
`
