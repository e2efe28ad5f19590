// overview.js: the fleet at a glance. Each card loads on its own, so a
// card the user may not read (a 403) or a slow one does not hold the rest.
import { el, table, errorBox, countBy } from "../dom.js";

const levels = ["critical", "high", "medium", "low", "informational"];
const frameworks = [["iso27001", "ISO/IEC 27001"], ["iec62443-3-3", "IEC 62443-3-3"]];
const alertPage = 1000; // the API's largest page: counts above it show as "1000+"

export async function render(main, api) {
  main.append(el("h1", {}, "Overview"));
  const grid = el("div", { class: "grid" });
  main.append(grid);
  const card = (id, title) => {
    const c = el("article", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, title));
    grid.append(c);
    return c;
  };
  const jobs = [
    [card("ov-health", "Cluster"), health],
    [card("ov-nodes", "Nodes"), nodes],
    [card("ov-alerts", "Open alerts"), alerts],
    [card("ov-incidents", "Open incidents"), incidents],
    [card("ov-audit", "Audit log"), audit],
    [card("ov-compliance", "Compliance"), compliance],
  ];
  await Promise.all(jobs.map(async ([c, f]) => {
    try {
      await f(c, api);
    } catch (err) {
      c.append(errorBox(err));
    }
  }));
}

function dl(pairs) {
  return el("dl", {}, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function health(c, api) {
  let h;
  try {
    h = await api("/v1/sys/health");
  } catch (err) {
    // 503 (sealed) and 501 (not initialized) are answers, not failures.
    if (err.status === 503) h = { sealed: true, initialized: true };
    else if (err.status === 501) h = { initialized: false };
    else throw err;
  }
  const state = !h.initialized ? "not initialized" : h.sealed ? "sealed" : "unsealed";
  c.append(dl([
    ["Seal", el("span", { class: h.sealed || !h.initialized ? "bad" : "good" }, state)],
    ["Role", h.role ?? "—"],
    ["Version", h.version ?? "—"],
    ["Applied / commit index", h.applied_index !== undefined ? `${h.applied_index} / ${h.commit_index}` : "—"],
  ]));
}

// nodes counts the fleet by state and zone, 1,000 nodes a request
// (the server pages GET /v1/nodes).
async function nodes(c, api) {
  const ns = [];
  for (let cursor = ""; ; ) {
    const r = await api("/v1/nodes", { query: { limit: 1000, cursor } });
    ns.push(...(r.nodes ?? []));
    if (!r.next) break;
    cursor = r.next;
  }
  c.append(el("p", { class: "big" }, String(ns.length), el("span", {}, " nodes")));
  c.append(table("By state", ["State", "Nodes"], countBy(ns, (n) => n.state)));
  c.append(table("By zone", ["Zone", "Nodes"], countBy(ns, (n) => n.zone)));
}

async function alerts(c, api) {
  const counts = await Promise.all(levels.map(async (level) => {
    const r = await api("/v1/alerts", { query: { status: "open", level, limit: alertPage } });
    const n = (r.alerts ?? []).length;
    return [level, r.next ? `${n}+` : String(n)];
  }));
  c.append(table("Open alerts by level", ["Level", "Alerts"],
    counts.map(([l, n]) => [el("span", { class: `level level-${l}` }, l), n])));
  c.append(el("p", {}, el("a", { href: "#/alerts" }, "All alerts")));
}

async function incidents(c, api) {
  const r = await api("/v1/incidents");
  const open = (r.incidents ?? []).filter((i) => i.status !== "closed" && i.status !== "resolved");
  c.append(el("p", { class: "big" }, String(open.length), el("span", {}, " open")));
  if (open.length > 0) {
    c.append(table("Latest open incidents", ["Severity", "Title", "Status"],
      open.slice(0, 10).map((i) => [el("span", { class: `level level-${i.severity}` }, i.severity), i.title, i.status])));
  }
}

async function audit(c, api) {
  const text = await api("/v1/audit/checkpoint", { text: true });
  // A signed note: origin, tree size, root hash, blank line, signatures.
  const lines = text.split("\n");
  const size = /^[0-9]+$/.test(lines[1] ?? "") ? lines[1] : "?";
  c.append(el("p", { class: "big" }, size, el("span", {}, " records")));
  c.append(dl([["Log", lines[0] ?? "—"], ["Root hash", el("code", {}, lines[2] ?? "—")]]));
  c.append(el("p", {}, el("a", { href: "#/audit" }, "Audit log")));
}

async function compliance(c, api) {
  const rows = await Promise.all(frameworks.map(async ([id, label]) => {
    try {
      const r = await api("/v1/compliance/status", { query: { framework: id } });
      const s = r.summary ?? {};
      return [label, `${s.pass ?? 0} / ${s.controls ?? 0}`, String(s.fail ?? 0)];
    } catch (err) {
      return [label, errorBox(err), ""];
    }
  }));
  c.append(table("Controls passing per framework", ["Framework", "Pass / controls", "Fail"], rows));
}
