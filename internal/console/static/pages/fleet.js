// fleet.js: the nodes table. GET /v1/nodes answers the whole list (the API
// has no paging for nodes yet), so the table shows it a page at a time; a
// row's agent version and pending updates are read from its inventory when
// the row is opened, not for the whole fleet at once.
import { el, errorBox, when } from "../dom.js";

const pageSize = 100;

export async function render(main, api) {
  main.append(el("h1", {}, "Fleet"));
  const r = await api("/v1/nodes");
  const all = (r.nodes ?? []).slice().sort((a, b) => (a.name < b.name ? -1 : 1));
  const filter = el("input", { id: "fleet-filter", type: "search", autocomplete: "off" });
  const info = el("p", { role: "status", id: "fleet-info" });
  const body = el("tbody");
  const prev = el("button", { type: "button", id: "fleet-prev" }, "Previous");
  const next = el("button", { type: "button", id: "fleet-next" }, "Next");
  let page = 0;

  const show = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = q ? all.filter((n) => n.name.includes(q) || (n.zone ?? "").includes(q)) : all;
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...rows.slice(page * pageSize, (page + 1) * pageSize).map((n) => row(n, api)));
    info.textContent = `${rows.length} nodes; page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  filter.addEventListener("input", () => { page = 0; show(); });
  prev.addEventListener("click", () => { page--; show(); });
  next.addEventListener("click", () => { page++; show(); });

  main.append(
    el("p", { class: "field" }, el("label", { for: "fleet-filter" }, "Filter by name or zone"), filter),
    el("div", { class: "table-wrap" }, el("table", { id: "fleet-table" },
      el("caption", {}, "Nodes"),
      el("thead", {}, el("tr", {}, ["Name", "Zone", "State", "Certificate expires", "Agent", "Pending updates"]
        .map((h) => el("th", { scope: "col" }, h)))),
      body)),
    el("p", { class: "pager" }, prev, " ", next), info);
  show();
}

function row(n, api) {
  const agent = el("td", {});
  const pending = el("td", {});
  const open = el("button", { type: "button", class: "link", "aria-label": `Load the inventory of ${n.name}` }, "Load");
  open.addEventListener("click", async () => {
    open.disabled = true;
    try {
      const r = await api(`/v1/nodes/${encodeURIComponent(n.name)}/inventory`);
      const inv = r.inventory ?? {};
      agent.replaceChildren(inv.agent_version || "—");
      pending.replaceChildren(inv.pending_known ? String((inv.pending_updates ?? []).length) : "unknown");
    } catch (err) {
      agent.replaceChildren(err.status === 404 ? "no inventory" : errorBox(err));
    }
  });
  if (n.state === "pending") agent.append("not enrolled");
  else agent.append(open);
  return el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `#/node/${encodeURIComponent(n.name)}` }, n.name)),
    el("td", {}, n.zone || "—"),
    el("td", {}, el("span", { class: `state state-${n.state}` }, n.state)),
    el("td", {}, when(n.not_after)),
    agent, pending);
}
