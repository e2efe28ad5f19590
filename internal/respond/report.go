package respond

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/warden-sec/warden/internal/audit"
	"github.com/warden-sec/warden/internal/auditlog"
	"github.com/warden-sec/warden/internal/errs"
)

// ReportFormat names the report format (docs/response.md, "Incidents and
// reports").
const ReportFormat = "warden-incident-report/1"

// MaxReportSize bounds a report that ParseReport and VerifyReport read.
const MaxReportSize = 64 << 20

// Report is an incident with the evidence that its timeline is in the
// audit log: for each item, the leaf of the audit record of the change
// that added it, its index, and its inclusion proof in the tree one
// signed checkpoint covers. The incident's Version and its items'
// RaftIndex are 0 (omitted): a report holds only what it proves.
type Report struct {
	Format     string     `json:"format"`
	Incident   Incident   `json:"incident"`
	Checkpoint string     `json:"checkpoint"` // the signed note
	Evidence   []Evidence `json:"evidence"`
}

// Evidence proves one timeline item (Seq).
type Evidence struct {
	Seq       uint64   `json:"seq"`
	LeafIndex uint64   `json:"leaf_index"`
	Leaf      string   `json:"leaf"`  // the audit entry's canonical JSON
	Proof     []string `json:"proof"` // standard base64 hashes
}

// ErrReport: a report does not verify; the error says where and why.
var ErrReport = errors.New("incident report does not verify")

// AuditLog is what a report needs of the audit log (auditlog.Service).
type AuditLog interface {
	EntriesAt(ctx context.Context, raftIndex uint64) ([]auditlog.StoredEntry, error)
	Checkpoint(ctx context.Context) ([]byte, error)
	InclusionProof(index, size uint64) ([][]byte, error)
	Verifier() (origin, vkey string, err error)
}

var _ AuditLog = (*auditlog.Service)(nil)

// Report builds the report of incident id: it finds each item's audit
// record by the item's Raft index and hash, signs a checkpoint of the log
// as it is now (which covers every item, all committed before), and
// proves each record's inclusion in it.
func (s *Incidents) Report(ctx context.Context, log AuditLog, id string) (Report, error) {
	inc, err := s.Get(ctx, id)
	if err != nil {
		return Report{}, err
	}
	leafOf := map[uint64][]auditlog.StoredEntry{}
	type found struct {
		index uint64
		leaf  []byte
	}
	ev := make([]found, len(inc.Timeline))
	for i, it := range inc.Timeline {
		es, ok := leafOf[it.RaftIndex]
		if !ok {
			if es, err = log.EntriesAt(ctx, it.RaftIndex); err != nil {
				return Report{}, err
			}
			leafOf[it.RaftIndex] = es
		}
		want := ItemHash(it)
		hit := slices.IndexFunc(es, func(e auditlog.StoredEntry) bool {
			return e.Altered == nil && itemHashIn(e.Entry, it.Seq) == want
		})
		if hit < 0 {
			return Report{}, errs.E(errs.Unavailable, "the audit record of incident %s item %d (Raft index %d) was not found in this server's log", id, it.Seq, it.RaftIndex)
		}
		ev[i] = found{es[hit].Index, es[hit].Leaf}
	}
	note, err := log.Checkpoint(ctx)
	if err != nil {
		return Report{}, err
	}
	_, vkey, err := log.Verifier()
	if err != nil {
		return Report{}, err
	}
	cp, err := audit.Open(note, vkey)
	if err != nil {
		return Report{}, err
	}
	r := Report{Format: ReportFormat, Incident: inc, Checkpoint: string(note), Evidence: make([]Evidence, len(ev))}
	r.Incident.Version = 0
	r.Incident.Timeline = slices.Clone(inc.Timeline)
	proofs := map[uint64][]string{}
	for i, f := range ev {
		r.Incident.Timeline[i].RaftIndex = 0
		p, ok := proofs[f.index]
		if !ok {
			hs, err := log.InclusionProof(f.index, cp.Size)
			if err != nil {
				return Report{}, err
			}
			p = make([]string, len(hs))
			for j, h := range hs {
				p[j] = base64.StdEncoding.EncodeToString(h)
			}
			proofs[f.index] = p
		}
		r.Evidence[i] = Evidence{Seq: inc.Timeline[i].Seq, LeafIndex: f.index, Leaf: string(f.leaf), Proof: p}
	}
	return r, nil
}

// itemHashIn returns the hash an entry carries for item seq: under
// "incident-item.<seq>", else "incident-item".
func itemHashIn(e audit.Entry, seq uint64) string {
	if h, ok := e.Hashes[ItemHashName+"."+strconv.FormatUint(seq, 10)]; ok {
		return h
	}
	return e.Hashes[ItemHashName]
}

// JSON returns the report's canonical encoding: encoding/json with two
// spaces of indentation, HTML characters unescaped, members in the order
// of the types' fields, and a final newline. ParseReport accepts these
// bytes and no others.
func (r Report) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseReport decodes a report in its canonical JSON encoding: unknown
// members, trailing data and any other encoding of the same report (white
// space, order, escapes) are errors wrapping ErrReport with the offset of
// the first difference.
func ParseReport(b []byte) (Report, error) {
	if len(b) > MaxReportSize {
		return Report{}, fmt.Errorf("%w: %d bytes, more than %d", ErrReport, len(b), MaxReportSize)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: not a report: %v", ErrReport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Report{}, fmt.Errorf("%w: data after the report", ErrReport)
	}
	again, err := r.JSON()
	if err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrReport, err)
	}
	if !bytes.Equal(again, b) {
		return Report{}, fmt.Errorf("%w: not in canonical form: %s", ErrReport, firstDiff(b, again))
	}
	return r, nil
}

// firstDiff describes where got first differs from want.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	line := bytes.Count(got[:i], []byte("\n")) + 1
	return fmt.Sprintf("differs from its canonical form at byte %d (line %d)", i, line)
}

// Markdown renders the report for people: a summary, the timeline as a
// table, and the report's canonical JSON in a fenced block (the evidence
// that verify checks). It is a function of the report alone, so verify
// re-renders it and compares bytes.
func (r Report) Markdown() ([]byte, error) {
	js, err := r.JSON()
	if err != nil {
		return nil, err
	}
	inc := r.Incident
	var b strings.Builder
	fmt.Fprintf(&b, "# Incident %s: %s\n\n", inc.ID, mdEscape(inc.Title))
	row := func(k, v string) { fmt.Fprintf(&b, "- **%s:** %s\n", k, v) }
	row("Status", mdEscape(inc.Status))
	row("Severity", mdEscape(inc.Severity))
	row("Assignee", mdEscape(orNone(inc.Assignee)))
	row("Created", mdEscape(inc.CreatedTime)+" by "+mdEscape(inc.CreatedBy))
	row("Updated", mdEscape(inc.UpdatedTime))
	row("Alerts", mdEscape(orNone(strings.Join(inc.Alerts, ", "))))
	row("Decisions", mdEscape(orNone(strings.Join(inc.Decisions, ", "))))
	row("Hosts", mdEscape(orNone(strings.Join(inc.Hosts, ", "))))
	row("Rules", mdEscape(orNone(strings.Join(inc.Rules, ", "))))
	origin, size := "?", "?"
	if lines := strings.SplitN(r.Checkpoint, "\n", 3); len(lines) == 3 {
		origin, size = lines[0], lines[1]
	}
	row("Audit checkpoint", mdEscape(origin)+", tree size "+mdEscape(size))
	b.WriteString("\n## Timeline\n\n")
	b.WriteString("| seq | time | actor | kind | ref | status | text | audit entry |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for i, it := range inc.Timeline {
		leaf := "?"
		if i < len(r.Evidence) {
			leaf = strconv.FormatUint(r.Evidence[i].LeafIndex, 10)
		}
		ref := it.Ref
		if it.Host != "" || it.Rule != "" {
			ref += " (" + strings.Join(nonEmpty(it.Rule, "on", it.Host), " ") + ")"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", it.Seq, mdEscape(it.Time), mdEscape(it.Actor),
			mdEscape(it.Kind), mdEscape(ref), mdEscape(it.Status), mdEscape(it.Text), leaf)
	}
	b.WriteString("\n## Evidence\n\n")
	b.WriteString("Each timeline item's SHA-256 is in the audit record of the change that added it; the\n")
	b.WriteString("block below holds those records, their inclusion proofs and the signed checkpoint.\n")
	b.WriteString("Check it offline with `warden incident verify FILE --verifier-key KEY`.\n\n")
	fence := strings.Repeat("`", max(3, longestRun(js, '`')+1))
	b.WriteString(fence + "json\n")
	b.Write(js)
	b.WriteString(fence + "\n")
	return []byte(b.String()), nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func longestRun(b []byte, c byte) int {
	best, n := 0, 0
	for _, x := range b {
		if x == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// mdEscape makes s one line of inert Markdown text: punctuation that
// Markdown or HTML would read is backslash-escaped, line breaks become
// <br>.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("<br>")
		case r == '\r':
		case strings.ContainsRune("\\`*_{}[]<>()#+-.!|~&", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ParseMarkdown extracts the report from its Markdown rendering and
// checks that the rendering is exactly Markdown's of that report.
func ParseMarkdown(b []byte) (Report, error) {
	if len(b) > MaxReportSize {
		return Report{}, fmt.Errorf("%w: %d bytes, more than %d", ErrReport, len(b), MaxReportSize)
	}
	text := string(b)
	start := strings.Index(text, "\n```")
	if start < 0 {
		return Report{}, fmt.Errorf("%w: no fenced evidence block", ErrReport)
	}
	rest := text[start+1:]
	n := 0
	for n < len(rest) && rest[n] == '`' {
		n++
	}
	fence := rest[:n]
	open := fence + "json\n"
	if !strings.HasPrefix(rest, open) {
		return Report{}, fmt.Errorf("%w: the evidence block does not start with %q", ErrReport, open)
	}
	body := rest[len(open):]
	end := strings.Index(body, "\n"+fence+"\n")
	if end < 0 {
		return Report{}, fmt.Errorf("%w: the evidence block does not end", ErrReport)
	}
	r, err := ParseReport([]byte(body[:end+1]))
	if err != nil {
		return Report{}, err
	}
	again, err := r.Markdown()
	if err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrReport, err)
	}
	if !bytes.Equal(again, b) {
		return Report{}, fmt.Errorf("%w: the Markdown is not the rendering of its evidence: it %s", ErrReport, firstDiff(b, again))
	}
	return r, nil
}

// Verified says what VerifyReport checked.
type Verified struct {
	Incident string `json:"incident"`
	Items    int    `json:"items"`
	Origin   string `json:"origin"`
	TreeSize uint64 `json:"tree_size"`
	Format   string `json:"format"` // "json" or "markdown"
}

// VerifyReport checks a report (its JSON, or its Markdown rendering)
// offline against the audit log's note verifier key: that it is in
// canonical form; that the checkpoint is signed by the key; that the
// incident's header is what its timeline says (Derive); that every item
// has evidence whose leaf is a canonical audit entry of a successful
// change, included in the checkpoint's tree by its proof, and carrying
// the item's SHA-256. Any failure wraps ErrReport and names what failed.
func VerifyReport(b []byte, verifierKey string) (Verified, error) {
	var r Report
	var err error
	v := Verified{Format: "json"}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		r, err = ParseReport(b)
	} else {
		v.Format = "markdown"
		r, err = ParseMarkdown(b)
	}
	if err != nil {
		return Verified{}, err
	}
	if err := r.verify(verifierKey, &v); err != nil {
		return Verified{}, err
	}
	return v, nil
}

func (r Report) verify(verifierKey string, v *Verified) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrReport, fmt.Sprintf(format, args...))
	}
	if r.Format != ReportFormat {
		return fail("format %q, want %q", r.Format, ReportFormat)
	}
	cp, err := audit.Open([]byte(r.Checkpoint), verifierKey)
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	inc := r.Incident
	if inc.Version != 0 {
		return fail("incident: a report carries no version")
	}
	d, err := Derive(inc.Timeline)
	if err != nil {
		return fail("incident %s: %v", inc.ID, err)
	}
	if err := sameHeader(inc, d); err != nil {
		return fail("incident %s: %v", inc.ID, err)
	}
	if len(r.Evidence) != len(inc.Timeline) {
		return fail("%d evidence entries for %d timeline items", len(r.Evidence), len(inc.Timeline))
	}
	for i, ev := range r.Evidence {
		it := inc.Timeline[i]
		if it.RaftIndex != 0 {
			return fail("timeline item %d: a report carries no raft_index", it.Seq)
		}
		if ev.Seq != it.Seq {
			return fail("evidence %d: seq %d, want %d", i+1, ev.Seq, it.Seq)
		}
		if i > 0 && ev.LeafIndex < r.Evidence[i-1].LeafIndex {
			return fail("evidence %d: leaf index %d before the previous item's %d", ev.Seq, ev.LeafIndex, r.Evidence[i-1].LeafIndex)
		}
		leaf := []byte(ev.Leaf)
		e, err := audit.DecodeEntry(leaf)
		if err != nil {
			return fail("evidence %d: the leaf is not a canonical audit entry: %v", ev.Seq, err)
		}
		proof := make([][]byte, len(ev.Proof))
		for j, h := range ev.Proof {
			p, err := base64.StdEncoding.Strict().DecodeString(h)
			if err != nil || len(p) != audit.HashSize || base64.StdEncoding.EncodeToString(p) != h {
				return fail("evidence %d: proof hash %d is not %d bytes in canonical standard base64", ev.Seq, j, audit.HashSize)
			}
			proof[j] = p
		}
		if err := cp.VerifyInclusion(leaf, ev.LeafIndex, proof); err != nil {
			return fail("evidence %d: entry %d is not in the log the checkpoint signed (size %d): %v", ev.Seq, ev.LeafIndex, cp.Size, err)
		}
		if e.Outcome < 200 || e.Outcome > 299 {
			return fail("evidence %d: entry %d records a failed request (outcome %d)", ev.Seq, ev.LeafIndex, e.Outcome)
		}
		if got, want := itemHashIn(e, it.Seq), ItemHash(it); got != want {
			return fail("evidence %d: entry %d does not carry the item's hash %s (it has %q)", ev.Seq, ev.LeafIndex, want, got)
		}
	}
	v.Incident, v.Items, v.Origin, v.TreeSize = inc.ID, len(inc.Timeline), cp.Origin, cp.Size
	return nil
}

// sameHeader compares an incident's header with the one derived from its
// timeline, naming the first field that differs.
func sameHeader(got, want Incident) error {
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"id", got.ID, want.ID}, {"title", got.Title, want.Title}, {"status", got.Status, want.Status},
		{"severity", got.Severity, want.Severity}, {"assignee", got.Assignee, want.Assignee},
		{"alerts", got.Alerts, want.Alerts}, {"decisions", got.Decisions, want.Decisions},
		{"hosts", got.Hosts, want.Hosts}, {"rules", got.Rules, want.Rules},
		{"created_by", got.CreatedBy, want.CreatedBy}, {"created_time", got.CreatedTime, want.CreatedTime},
		{"updated_time", got.UpdatedTime, want.UpdatedTime},
	} {
		g, _ := json.Marshal(f.got)
		w, _ := json.Marshal(f.want)
		if !bytes.Equal(g, w) {
			return fmt.Errorf("%s is %s, but its timeline says %s", f.name, g, w)
		}
	}
	return nil
}
