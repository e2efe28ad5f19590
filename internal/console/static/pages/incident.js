// incident.js: one incident (#/incident/<id>): its header, its timeline,
// and its handling: a comment, a status change (with a comment), closing,
// and the report (GET /v1/incidents/{id}/report, JSON or Markdown) saved
// as a file: fetched with the session's token, then offered as a link to
// an object URL with the download attribute (a download is a navigation,
// not a fetch: the CSP's connect-src and default-src do not apply to it).
import { el, errorBox, when } from "../dom.js";
import { facts } from "./alert.js";

const statuses = ["new", "triaged", "contained", "resolved"];

export async function render(main, api, args) {
  const id = args[0];
  if (!id) throw new Error("no incident named: use #/incident/<id>");
  const path = `/v1/incidents/${encodeURIComponent(id)}`;
  main.append(el("p", {}, el("a", { href: "#/incidents" }, "Incidents")));
  const head = el("div");
  const timeline = el("article", { class: "card", id: "incident-timeline" });
  const actErr = el("div", { id: "incident-error" });
  let inc = await api(path);

  const link = (kind, ref) => {
    if (kind === "alert") return el("a", { href: `#/alert/${encodeURIComponent(ref)}` }, ref);
    if (kind === "decision") return el("a", { href: `#/decisions/${encodeURIComponent(ref)}` }, ref);
    return ref || "";
  };
  const list = (kind, ids) => (ids ?? []).length === 0 ? "—" : el("span", {}, ids.flatMap((r, i) => [i > 0 ? ", " : null, link(kind, r)]));

  // Handling: comment, status, close.
  const comment = el("textarea", { id: "incident-comment", name: "incident-comment", rows: "2" });
  const status = el("select", { id: "incident-new-status", name: "incident-new-status" }, statuses.map((s) => el("option", { value: s }, s)));
  const commentBtn = el("button", { type: "button", id: "incident-add-comment" }, "Add the comment");
  const statusBtn = el("button", { type: "button", id: "incident-set-status" }, "Change the status");
  const closeBtn = el("button", { type: "button", id: "incident-close" }, "Close the incident");
  const act = async (fn) => {
    actErr.replaceChildren();
    for (const b of [commentBtn, statusBtn, closeBtn]) b.disabled = true;
    try {
      inc = await fn();
      comment.value = "";
    } catch (e) {
      actErr.replaceChildren(errorBox(e));
    } finally {
      draw();
    }
  };
  commentBtn.addEventListener("click", () => act(() => api(`${path}/comments`, { method: "POST", body: { comment: comment.value } })));
  statusBtn.addEventListener("click", () => act(() => api(path, { method: "POST", body: { status: status.value, comment: comment.value } })));
  closeBtn.addEventListener("click", () => act(() => api(`${path}/close`, { method: "POST", body: { comment: comment.value } })));
  const handle = el("article", { class: "card", id: "incident-handle" }, el("h2", {}, "Handle"),
    el("p", { class: "field" }, el("label", { for: "incident-comment" }, "Comment"), comment),
    el("p", {}, commentBtn),
    el("p", { class: "field" }, el("label", { for: "incident-new-status" }, "New status"), status),
    el("p", {}, statusBtn, " ", closeBtn), actErr);

  // The report.
  const reportBox = el("div", { id: "incident-report", role: "status" });
  const reportBtn = (format, label) => {
    const b = el("button", { type: "button", id: `incident-report-${format}` }, label);
    b.addEventListener("click", async () => {
      reportBox.replaceChildren("Preparing the report…");
      try {
        const text = await api(`${path}/report`, { query: { format }, text: true });
        const type = format === "md" ? "text/markdown" : "application/json";
        const old = reportBox.querySelector("a[href^='blob:']");
        if (old) URL.revokeObjectURL(old.href);
        const url = URL.createObjectURL(new Blob([text], { type }));
        const name = `${inc.id}-report.${format}`;
        reportBox.replaceChildren(el("a", { href: url, download: name, id: "incident-report-link" }, `Save ${name}`),
          ` (${new Blob([text]).size} bytes; verify it with warden incident verify)`);
      } catch (e) {
        reportBox.replaceChildren(errorBox(e));
      }
    });
    return b;
  };
  const report = el("article", { class: "card" }, el("h2", {}, "Report"),
    el("p", {}, reportBtn("json", "Report (JSON)"), " ", reportBtn("md", "Report (Markdown)")), reportBox);

  const draw = () => {
    head.replaceChildren(el("h1", {}, `Incident: ${inc.title}`),
      el("article", { class: "card", id: "incident-record" }, facts([
        ["Id", inc.id], ["Status", el("span", { id: "incident-status" }, inc.status)],
        ["Severity", el("span", { class: `level level-${inc.severity}` }, inc.severity)],
        ["Assignee", inc.assignee || "—"], ["Hosts", (inc.hosts ?? []).join(", ") || "—"],
        ["Rules", (inc.rules ?? []).join(", ") || "—"], ["Alerts", list("alert", inc.alerts)],
        ["Decisions", list("decision", inc.decisions)], ["Created by", inc.created_by],
        ["Created", when(inc.created_time)], ["Updated", when(inc.updated_time)],
      ])));
    const items = inc.timeline ?? [];
    timeline.replaceChildren(el("div", { class: "table-wrap" }, el("table", { id: "incident-timeline-table" },
      el("caption", {}, `Timeline (${items.length} items)`),
      el("thead", {}, el("tr", {}, ["#", "Time", "Actor", "Kind", "Subject", "Text", "Status"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, items.map((it) => el("tr", { "data-kind": it.kind },
        el("td", { class: "num" }, String(it.seq)), el("td", {}, when(it.time)), el("td", {}, it.actor),
        el("th", { scope: "row" }, it.kind), el("td", {}, link(it.kind, it.ref)),
        el("td", {}, [it.text, it.host ? `host ${it.host}` : null, it.rule ? `rule ${it.rule}` : null].filter(Boolean).join("; ")),
        el("td", {}, it.status)))))));
    const closed = inc.status === "closed";
    commentBtn.disabled = false;
    statusBtn.disabled = closed;
    closeBtn.disabled = closed;
    status.disabled = closed;
  };
  main.append(head, el("div", { class: "grid" }, handle, report), timeline);
  draw();
}
