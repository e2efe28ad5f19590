// alerts.js: the alerts list, filtered and paged by the server
// (GET /v1/alerts: status, level, limit and cursor).
import { el, errorBox, when } from "../dom.js";

const pageSize = 50;
const statuses = ["", "open", "acknowledged", "closed"];
const levels = ["", "critical", "high", "medium", "low", "informational"];

export async function render(main, api) {
  main.append(el("h1", {}, "Alerts"));
  const select = (id, label, values) => {
    const s = el("select", { id, name: id }, values.map((v) => el("option", { value: v }, v || "any")));
    return [s, el("p", { class: "field" }, el("label", { for: id }, label), s)];
  };
  const [status, statusField] = select("alerts-status", "Status", statuses);
  const [level, levelField] = select("alerts-level", "Level", levels);
  status.value = "open";
  const form = el("form", { id: "alerts-filter", class: "filters" }, statusField, levelField,
    el("button", { type: "submit" }, "Apply"));
  const body = el("tbody");
  const info = el("p", { role: "status", id: "alerts-info" });
  const prev = el("button", { type: "button", id: "alerts-prev" }, "Previous");
  const next = el("button", { type: "button", id: "alerts-next" }, "Next");
  const err = el("div");
  main.append(form, el("div", { class: "table-wrap" }, el("table", { id: "alerts-table" },
    el("caption", {}, "Alerts, most recent first"),
    el("thead", {}, el("tr", {}, ["Level", "Rule", "Status", "Hosts", "Events", "Last seen"]
      .map((h) => el("th", { scope: "col" }, h)))),
    body)), el("p", { class: "pager" }, prev, " ", next), info, err);

  // cursors[i] is the cursor of page i (page 0 has none).
  let cursors = [""];
  let page = 0;
  let nextCursor = "";
  const load = async () => {
    err.replaceChildren();
    main.setAttribute("aria-busy", "true");
    try {
      const r = await api("/v1/alerts", { query: { status: status.value, level: level.value, limit: pageSize, cursor: cursors[page] } });
      const as = r.alerts ?? [];
      nextCursor = r.next ?? "";
      body.replaceChildren(...as.map(row));
      info.textContent = as.length === 0 ? "No alerts." : `Page ${page + 1}: ${as.length} alerts${nextCursor ? ", more on the next page" : ""}`;
    } catch (e) {
      body.replaceChildren();
      err.replaceChildren(errorBox(e));
    } finally {
      main.removeAttribute("aria-busy");
      prev.disabled = page === 0;
      next.disabled = nextCursor === "";
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    cursors = [""];
    page = 0;
    load();
  });
  prev.addEventListener("click", () => { page--; load(); });
  next.addEventListener("click", () => {
    cursors[page + 1] = nextCursor;
    page++;
    load();
  });
  await load();
}

function row(a) {
  return el("tr", {},
    el("td", {}, el("span", { class: `level level-${a.level}` }, a.level)),
    el("th", { scope: "row" }, a.rule_title || a.rule_id),
    el("td", {}, a.status),
    el("td", {}, (a.hosts ?? []).join(", ")),
    el("td", { class: "num" }, String(a.count ?? 0)),
    el("td", {}, when(a.last_seen)));
}
