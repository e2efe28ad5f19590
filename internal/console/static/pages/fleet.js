// fleet.js: the nodes table, a page at a time as the server pages it
// (GET /v1/nodes with limit and cursor, by name): the console never loads
// the whole fleet. A row's agent version and pending updates are read from
// its inventory when the row is opened, not for the whole page at once.
import { el, errorBox, when } from "../dom.js";

const pageSize = 100;

export async function render(main, api) {
  main.append(el("h1", {}, "Fleet"));
  const info = el("p", { role: "status", id: "fleet-info" });
  const body = el("tbody");
  const prev = el("button", { type: "button", id: "fleet-prev" }, "Previous");
  const next = el("button", { type: "button", id: "fleet-next" }, "Next");
  const err = el("div");
  main.append(
    el("div", { class: "table-wrap" }, el("table", { id: "fleet-table" },
      el("caption", {}, "Nodes, by name"),
      el("thead", {}, el("tr", {}, ["Name", "Zone", "State", "Certificate expires", "Agent", "Pending updates"]
        .map((h) => el("th", { scope: "col" }, h)))),
      body)),
    el("p", { class: "pager" }, prev, " ", next), info, err);

  // cursors[i] is the cursor of page i (page 0 has none).
  const cursors = [""];
  let page = 0;
  let nextCursor = "";
  const load = async () => {
    err.replaceChildren();
    main.setAttribute("aria-busy", "true");
    prev.disabled = true;
    next.disabled = true;
    try {
      const r = await api("/v1/nodes", { query: { limit: pageSize, cursor: cursors[page] } });
      const ns = r.nodes ?? [];
      nextCursor = r.next ?? "";
      body.replaceChildren(...ns.map((n) => row(n, api)));
      const first = page * pageSize + 1;
      info.textContent = ns.length === 0 ? "No nodes." :
        `Page ${page + 1}: nodes ${first} to ${first + ns.length - 1}${nextCursor ? ", more on the next page" : ""}`;
    } catch (e) {
      body.replaceChildren();
      err.replaceChildren(errorBox(e));
    } finally {
      main.removeAttribute("aria-busy");
      prev.disabled = page === 0;
      next.disabled = nextCursor === "";
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
