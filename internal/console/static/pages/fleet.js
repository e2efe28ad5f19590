// fleet.js: the nodes table, a page at a time as the server pages it
// (GET /v1/nodes with limit and cursor, by name): the console never loads
// the whole fleet. For the page's nodes (at most 100) it then asks, in
// parallel and by name, their inventory summaries (GET
// /v1/inventory/summaries: agent version, patch age) and their risk
// scores (GET /v1/compliance/risk, the leader's last evaluation). A column
// the user may not read (403) shows "—", with one note above the table;
// the page is ready once every column is filled or failed.
import { el, errorBox, when } from "../dom.js";

const pageSize = 100;

export async function render(main, api) {
  main.append(el("h1", {}, "Fleet"));
  const notes = el("div", { id: "fleet-notes" });
  const riskInfo = el("p", { id: "fleet-risk-info" });
  const info = el("p", { role: "status", id: "fleet-info" });
  const body = el("tbody");
  const prev = el("button", { type: "button", id: "fleet-prev" }, "Previous");
  const next = el("button", { type: "button", id: "fleet-next" }, "Next");
  const err = el("div");
  main.append(notes,
    el("div", { class: "table-wrap" }, el("table", { id: "fleet-table" },
      el("caption", {}, "Nodes, by name"),
      el("thead", {}, el("tr", {}, ["Name", "Zone", "State", "Certificate expires", "Agent", "Patch age", "Risk"]
        .map((h) => el("th", { scope: "col" }, h)))),
      body)),
    riskInfo, el("p", { class: "pager" }, prev, " ", next), info, err);

  // cursors[i] is the cursor of page i (page 0 has none).
  const cursors = [""];
  let page = 0;
  let nextCursor = "";
  let shown = 0; // which load the table shows: a slower, older one must not fill it
  const load = async () => {
    const seq = ++shown;
    err.replaceChildren();
    notes.replaceChildren();
    riskInfo.replaceChildren();
    main.setAttribute("aria-busy", "true");
    prev.disabled = true;
    next.disabled = true;
    try {
      const r = await api("/v1/nodes", { query: { limit: pageSize, cursor: cursors[page] } });
      const ns = r.nodes ?? [];
      nextCursor = r.next ?? "";
      const rows = ns.map(row);
      body.replaceChildren(...rows.map((x) => x.tr));
      const first = page * pageSize + 1;
      info.textContent = ns.length === 0 ? "No nodes." :
        `Page ${page + 1}: nodes ${first} to ${first + ns.length - 1}${nextCursor ? ", more on the next page" : ""}`;
      if (ns.length > 0) await fill(api, rows, notes, riskInfo, () => seq === shown);
    } catch (e) {
      body.replaceChildren();
      err.replaceChildren(errorBox(e));
    } finally {
      if (seq === shown) {
        main.removeAttribute("aria-busy");
        prev.disabled = page === 0;
        next.disabled = nextCursor === "";
      }
    }
  };
  prev.addEventListener("click", () => { page--; load(); });
  next.addEventListener("click", () => {
    cursors[page + 1] = nextCursor;
    page++;
    load();
  });
  await load();
}

// row makes a node's row; its last three cells are filled by fill.
function row(n) {
  const agent = el("td", {}, "…");
  const patch = el("td", {}, "…");
  const risk = el("td", {}, "…");
  const tr = el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `#/node/${encodeURIComponent(n.name)}` }, n.name)),
    el("td", {}, n.zone || "—"),
    el("td", {}, el("span", { class: `state state-${n.state}` }, n.state)),
    el("td", {}, when(n.not_after)),
    agent, patch, risk);
  return { n, tr, agent, patch, risk };
}

// fill asks for the rows' summaries and risk scores at once and fills
// their cells, unless current() says a newer page replaced them.
async function fill(api, rows, notes, riskInfo, current) {
  const names = rows.map((x) => x.n.name).join(",");
  const [sums, risk] = await Promise.allSettled([
    api("/v1/inventory/summaries", { query: { names } }),
    api("/v1/compliance/risk", { query: { names } }),
  ]);
  if (!current()) return;
  const denied = [];
  const failed = [];
  const refused = (reason, columns, action) => {
    if (reason.status === 403) denied.push(`${columns} (${action})`);
    else failed.push(`${columns}: ${reason.message}`);
  };

  if (sums.status === "fulfilled") {
    const m = sums.value.summaries ?? {};
    for (const x of rows) {
      const s = Object.hasOwn(m, x.n.name) ? m[x.n.name] : null;
      if (s === null) {
        x.agent.replaceChildren(x.n.state === "pending" ? "not enrolled" : "no inventory");
        x.patch.replaceChildren("—");
      } else {
        x.agent.replaceChildren(s.agent_version || "—");
        x.patch.replaceChildren(patchAge(s));
      }
    }
  } else {
    for (const x of rows) {
      x.agent.replaceChildren("—");
      x.patch.replaceChildren("—");
    }
    refused(sums.reason, "Agent and Patch age", "inventory.read");
  }

  if (risk.status === "fulfilled") {
    const v = risk.value;
    const scores = v.nodes ?? {};
    if (!v.evaluated_at) {
      riskInfo.textContent = "Risk: not evaluated yet (the leader evaluates within a minute of taking the lead, then every --compliance-interval).";
    } else {
      riskInfo.textContent = `Risk scores (0 to 100) of the evaluation at ${when(v.evaluated_at)}.`;
    }
    for (const x of rows) {
      if (!v.evaluated_at) x.risk.replaceChildren("not evaluated yet");
      else if (Object.hasOwn(scores, x.n.name)) x.risk.replaceChildren(riskCell(scores[x.n.name]));
      else x.risk.replaceChildren("not scored");
    }
  } else {
    for (const x of rows) x.risk.replaceChildren("—");
    refused(risk.reason, "Risk", "compliance.read");
  }

  if (denied.length > 0) {
    notes.append(el("p", { role: "note", id: "fleet-denied" },
      `Not shown: you may not read ${denied.join(" or ")}.`));
  }
  for (const f of failed) notes.append(errorBox(f));
}

// patchAge is "45 days (pending updates)", or "unknown".
function patchAge(s) {
  if (!s.patch_basis || s.patch_basis === "unknown") return "unknown";
  const days = s.patch_age_days === 1 ? "1 day" : `${s.patch_age_days} days`;
  return `${days} (${s.patch_basis.replaceAll("_", " ")})`;
}

// riskCell shows a score with its band in words (colour is never the only
// sign): low under 20, medium from 20, high from 40, critical from 70.
function riskCell(score) {
  const band = score >= 70 ? "critical" : score >= 40 ? "high" : score >= 20 ? "medium" : "low";
  return el("span", { class: `level level-${band}` }, `${score} ${band}`);
}
