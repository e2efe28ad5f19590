// compliance.js: a framework's report, evaluated now
// (GET /v1/compliance/status?framework=F[&zone=Z], unsigned): the summary,
// for IEC 62443-3-3 each zone's SL-A against its SL-T, risk per zone and the
// riskiest nodes, and the controls with their status and what fails.
//
//   #/compliance                 ISO/IEC 27001
//   #/compliance/<framework>     that framework
//   #/compliance/<framework>/<zone>  one zone's report
//
// Export: "Signed report (JSON|HTML)" asks the server for the signed
// document (POST /v1/compliance/reports, an audited request) and offers it
// as a download: the exact bytes the server returned (the signature covers
// them) in a Blob, behind an <a download> with a blob: URL, which the CSP
// allows (a download is not a fetch or a script).
import { el, errorBox, table, when, evaluated } from "../dom.js";

const frameworks = [["iso27001", "ISO/IEC 27001"], ["iec62443-3-3", "IEC 62443-3-3"]];
const maxNodes = 20; // the riskiest nodes shown

export async function render(main, api, args) {
  const framework = args[0] ?? "iso27001";
  const zone = args[1] ?? "";
  const label = frameworks.find(([id]) => id === framework)?.[1] ?? framework;
  main.append(el("h1", {}, `Compliance: ${label}${zone ? `, zone ${zone}` : ""}`));

  // Framework and zone choice: links, so each report has its address.
  const fw = el("select", { id: "compliance-framework", name: "compliance-framework" },
    frameworks.map(([id, l]) => el("option", { value: id, selected: id === framework }, l)));
  const zoneIn = el("input", { id: "compliance-zone", name: "compliance-zone", value: zone, autocomplete: "off", spellcheck: "false" });
  const choose = el("form", { id: "compliance-choose", class: "filters" },
    el("p", { class: "field" }, el("label", { for: "compliance-framework" }, "Framework"), fw),
    el("p", { class: "field" }, el("label", { for: "compliance-zone" }, "Zone (empty: the whole cluster)"), zoneIn),
    el("button", { type: "submit" }, "Show"));
  choose.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const z = zoneIn.value.trim();
    location.hash = `#/compliance/${encodeURIComponent(fw.value)}${z ? `/${encodeURIComponent(z)}` : ""}`;
  });
  main.append(choose, exports(api, framework, zone));

  // The cluster's report is the leader's last evaluation when there is one
  // (GET /v1/compliance/evaluations/F: no live evaluation of a large fleet
  // on every view); "Evaluate now" asks for the live state. A zone's report
  // is always evaluated live.
  const source = el("p", { id: "compliance-source", role: "status" });
  const out = el("div", { id: "compliance-report" });
  main.append(source, out);
  const live = async () => {
    const r = await api("/v1/compliance/status", { query: { framework, zone } });
    source.replaceChildren(`Evaluated now, ${when(r.generated_at)}.`);
    out.replaceChildren();
    report(out, r, framework);
  };
  if (zone) {
    await live();
    return;
  }
  if (!(await evaluated(api, framework))) {
    await live();
    return;
  }
  const r = await api(`/v1/compliance/evaluations/${encodeURIComponent(framework)}`);
  const now = el("button", { type: "button", id: "compliance-evaluate" }, "Evaluate now");
  now.addEventListener("click", async () => {
    now.disabled = true;
    out.setAttribute("aria-busy", "true");
    try {
      await live();
    } catch (err) {
      out.replaceChildren(errorBox(err));
    } finally {
      out.removeAttribute("aria-busy");
    }
  });
  source.replaceChildren(`The leader's last evaluation, ${when(r.generated_at)} (the 20 riskiest nodes, the first evidence of each check). `, now);
  report(out, r, framework);
}

// report renders a report object into main: summary, zones' levels, risk,
// controls.
function report(main, r, framework) {
  const s = r.summary ?? {};
  main.append(el("section", { class: "card", id: "compliance-summary", "aria-labelledby": "cs-h" },
    el("h2", { id: "cs-h" }, "Summary"),
    el("p", { class: "big" }, `${s.pass ?? 0} / ${s.controls ?? 0}`, el("span", {}, " controls pass")),
    el("dl", {},
      ["fail", "manual", "attested", "not_applicable"].flatMap((k) =>
        [el("dt", {}, k.replace("_", " ")), el("dd", {}, String(s[k] ?? 0))]),
      el("dt", {}, "Generated"), el("dd", {}, when(r.generated_at)),
      el("dt", {}, "Audit checkpoint size"), el("dd", {}, String(r.checkpoint?.size ?? "—")))));

  if ((r.zones ?? []).length > 0) {
    const t = table("Security levels per zone: SL-A per foundational requirement against the target SL-T",
      ["Zone", "SL-T", "FR 1", "FR 2", "FR 3", "FR 4", "FR 5", "FR 6", "FR 7", "Below target"],
      r.zones.map((z) => [
        el("a", { href: `#/compliance/${encodeURIComponent(framework)}/${encodeURIComponent(z.name)}` }, z.name),
        String(z.sl_t),
        ...(z.sl_a ?? []).map((a) => el("span", { class: a >= z.sl_t ? "status-pass" : "status-fail" }, String(a))),
        String((z.below_target ?? []).length)]));
    t.querySelector("table").id = "compliance-zones";
    main.append(t);
  }

  const risk = r.risk ?? {};
  const top = (list) => (list ?? []).slice().sort((a, b) => b.score - a.score);
  const why = (x) => (x.items ?? []).length > 0 ? x.items[0].why : "—";
  const zt = table("Risk per zone (0 to 100)", ["Zone", "Score", "Largest contribution"],
    top(risk.zones).map((z) => [z.ref, el("span", { class: "num" }, String(z.score)), why(z)]));
  zt.querySelector("table").id = "compliance-risk-zones";
  const nodes = top(risk.nodes);
  const nt = table(`Riskiest nodes (${Math.min(nodes.length, maxNodes)} of ${nodes.length})`, ["Node", "Score", "Largest contribution"],
    nodes.slice(0, maxNodes).map((n) => [el("a", { href: `#/node/${encodeURIComponent(n.ref)}` }, n.ref),
      el("span", { class: "num" }, String(n.score)), why(n)]));
  nt.querySelector("table").id = "compliance-risk-nodes";
  main.append(el("div", { class: "grid" }, el("div", {}, zt), el("div", {}, nt)));

  const failing = (c) => (c.checks ?? []).filter((k) => k.status === "fail").map((k) => `${k.id}: ${k.message}`).join("; ");
  const ct = table("Controls", ["Control", "Title", "Family", "Status", "What fails"],
    (r.controls ?? []).map((c) => [c.id, c.title, c.family,
      el("span", { class: `status-${c.status}` }, c.status.replace("_", " ")), failing(c) || null]));
  ct.querySelector("table").id = "compliance-controls";
  main.append(ct);
}

// exports is the card with the two export buttons; each fetches the signed
// report and shows a download link for it.
function exports(api, framework, zone) {
  const out = el("div", { id: "compliance-export-out", role: "status" });
  const urls = [];
  const button = (format, label) => {
    const b = el("button", { type: "button", id: `compliance-export-${format}` }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      out.replaceChildren(`Signing the ${format.toUpperCase()} report…`);
      try {
        const text = await api("/v1/compliance/reports", { method: "POST", text: true,
          body: { framework, zone, format } });
        const type = format === "html" ? "text/html" : "application/json";
        while (urls.length > 0) URL.revokeObjectURL(urls.pop());
        const blob = new Blob([text], { type });
        const url = URL.createObjectURL(blob);
        urls.push(url);
        const file = `warden-${framework}${zone ? `-${zone}` : ""}-${new Date().toISOString().slice(0, 10)}.${format}`;
        out.replaceChildren(el("p", {}, "Ready: ",
          el("a", { href: url, download: file, id: `compliance-download-${format}` }, `Download ${file}`),
          ` (${blob.size} bytes; check it with warden compliance verify)`));
      } catch (err) {
        out.replaceChildren(errorBox(err));
      } finally {
        b.disabled = false;
      }
    });
    return b;
  };
  return el("section", { class: "card", "aria-labelledby": "ce-h" },
    el("h2", { id: "ce-h" }, "Export a signed report"),
    el("p", { class: "pager" }, button("json", "Signed report (JSON)"), button("html", "Signed report (HTML)")), out);
}
