// incidents.js: the incidents, filtered by the server by status and
// severity (GET /v1/incidents?status=&severity=), most recently updated
// first. #/incidents.
import { el, errorBox, when } from "../dom.js";

const statuses = ["", "new,triaged,contained", "new", "triaged", "contained", "resolved", "closed"];
const severities = ["", "critical", "high", "medium", "low", "informational"];

export async function render(main, api) {
  main.append(el("h1", {}, "Incidents"));
  const select = (id, label, values, names) => {
    const s = el("select", { id, name: id }, values.map((v, i) => el("option", { value: v }, names?.[i] ?? (v || "any"))));
    return [s, el("p", { class: "field" }, el("label", { for: id }, label), s)];
  };
  const [status, statusField] = select("incidents-status", "Status", statuses,
    ["any", "open (new, triaged, contained)", "new", "triaged", "contained", "resolved", "closed"]);
  const [severity, severityField] = select("incidents-severity", "Severity", severities);
  const form = el("form", { id: "incidents-filter", class: "filters" }, statusField, severityField,
    el("button", { type: "submit" }, "Apply"));
  const body = el("tbody");
  const info = el("p", { role: "status", id: "incidents-info" });
  const err = el("div");
  main.append(form, el("div", { class: "table-wrap" }, el("table", { id: "incidents-table" },
    el("caption", {}, "Incidents, most recently updated first"),
    el("thead", {}, el("tr", {}, ["Title", "Status", "Severity", "Assignee", "Hosts", "Alerts", "Decisions", "Updated"]
      .map((h) => el("th", { scope: "col" }, h)))),
    body)), info, err);

  const load = async () => {
    err.replaceChildren();
    main.setAttribute("aria-busy", "true");
    try {
      const r = await api("/v1/incidents", { query: { status: status.value, severity: severity.value } });
      const is = (r.incidents ?? []).slice().sort((x, y) => (x.updated_time < y.updated_time ? 1 : x.updated_time > y.updated_time ? -1 : 0));
      body.replaceChildren(...is.map((i) => el("tr", { "data-id": i.id },
        el("th", { scope: "row" }, el("a", { href: `#/incident/${encodeURIComponent(i.id)}` }, i.title)),
        el("td", {}, i.status), el("td", {}, el("span", { class: `level level-${i.severity}` }, i.severity)),
        el("td", {}, i.assignee || "—"), el("td", {}, (i.hosts ?? []).join(", ")),
        el("td", { class: "num" }, String((i.alerts ?? []).length)), el("td", { class: "num" }, String((i.decisions ?? []).length)),
        el("td", {}, when(i.updated_time)))));
      info.textContent = is.length === 0 ? "No incidents." : `${is.length} incidents`;
    } catch (e) {
      body.replaceChildren();
      err.replaceChildren(errorBox(e));
    } finally {
      main.removeAttribute("aria-busy");
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  await load();
}
