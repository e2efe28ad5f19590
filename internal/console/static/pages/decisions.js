// decisions.js: the decisions in force (GET /v1/decisions?active=true, or
// every stored one), each deletable (lifted everywhere), and the
// never-block list with its entries added and deleted. #/decisions, or
// #/decisions/<id> to show one decision first.
import { el, errorBox, when } from "../dom.js";
import { facts, confirmAction } from "./alert.js";

const target = (t) => Object.entries(t ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");

export async function render(main, api, args) {
  main.append(el("h1", {}, "Decisions"));
  if (args[0]) {
    const d = await api(`/v1/decisions/${encodeURIComponent(args[0])}`);
    main.append(el("article", { class: "card", id: "decision-one" }, el("h2", {}, `Decision ${d.id}`), facts([
      ["Type", d.type], ["Target", target(d.target)], ["Zone", d.zone || "everywhere"], ["Reason", d.reason || "—"],
      ["Origin", d.origin], ["Alert", d.alert_id ? el("a", { href: `#/alert/${encodeURIComponent(d.alert_id)}` }, d.alert_id) : "—"],
      ["Created by", d.created_by], ["Created", when(d.created_time)], ["Expires", when(d.expires_at)],
      ["Duration", d.duration || "—"], ["Escalation", String(d.escalation ?? 0)], ["Simulated", d.simulated ? "yes" : "no"],
      ["Pending approval", d.pending_approval ? "yes" : "no"], ["Addresses", (d.addresses ?? []).join(", ") || "—"],
      ["Withheld addresses", (d.withheld_addresses ?? []).join(", ") || "—"],
    ])));
  }

  // Decisions.
  const all = el("input", { type: "checkbox", id: "decisions-all", name: "decisions-all" });
  const dBody = el("tbody");
  const dInfo = el("p", { role: "status", id: "decisions-info" });
  const dErr = el("div");
  const loadDecisions = async () => {
    dErr.replaceChildren();
    try {
      const r = await api("/v1/decisions", { query: { active: all.checked ? "" : "true" } });
      const ds = r.decisions ?? [];
      dBody.replaceChildren(...ds.map((d) => {
        const del = el("button", { type: "button", class: "decision-delete", "data-id": d.id }, "Delete");
        del.addEventListener("click", async () => {
          const ok = await confirmAction({
            id: "confirm-delete-decision", title: `Delete decision ${d.id} (${d.type} of ${target(d.target)})`,
            describe: () => ({ method: "DELETE", path: `/v1/decisions/${d.id}` }),
            run: () => api(`/v1/decisions/${encodeURIComponent(d.id)}`, { method: "DELETE" }).then(() => true),
          });
          if (ok) loadDecisions();
        });
        return el("tr", { "data-id": d.id },
          el("th", { scope: "row" }, el("a", { href: `#/decisions/${encodeURIComponent(d.id)}` }, d.id)),
          el("td", {}, d.type + (d.simulated ? " (simulated)" : "") + (d.pending_approval ? " (pending approval)" : "")),
          el("td", {}, target(d.target)), el("td", {}, d.zone || "all"), el("td", {}, d.reason),
          el("td", {}, d.origin), el("td", {}, when(d.expires_at)), el("td", {}, del));
      }));
      dInfo.textContent = ds.length === 0 ? "No decisions." : `${ds.length} decisions`;
    } catch (e) {
      dBody.replaceChildren();
      dErr.replaceChildren(errorBox(e));
    }
  };
  all.addEventListener("change", loadDecisions);
  main.append(el("section", { "aria-labelledby": "decisions-h" }, el("h2", { id: "decisions-h" }, "Decisions"),
    el("p", { class: "field" }, all, " ", el("label", { for: "decisions-all" }, "Include expired decisions")),
    el("div", { class: "table-wrap" }, el("table", { id: "decisions-table" },
      el("caption", {}, "Decisions, newest first"),
      el("thead", {}, el("tr", {}, ["Id", "Type", "Target", "Zone", "Reason", "Origin", "Expires", ""].map((h) => el("th", { scope: "col" }, h)))),
      dBody)), dInfo, dErr));

  // The never-block list.
  const aBody = el("tbody");
  const aErr = el("div");
  const kind = el("select", { id: "allow-kind", name: "allow-kind" }, el("option", { value: "cidr" }, "address or range"), el("option", { value: "node" }, "node"));
  const value = el("input", { id: "allow-value", name: "allow-value", required: true, autocapitalize: "none", spellcheck: "false" });
  const reason = el("input", { id: "allow-reason", name: "allow-reason" });
  const addForm = el("form", { id: "allow-add", class: "filters" },
    el("p", { class: "field" }, el("label", { for: "allow-kind" }, "Kind"), kind),
    el("p", { class: "field" }, el("label", { for: "allow-value" }, "Range, address or node"), value),
    el("p", { class: "field" }, el("label", { for: "allow-reason" }, "Reason"), reason),
    el("button", { type: "submit" }, "Add to the never-block list"));
  const loadAllow = async () => {
    try {
      const r = await api("/v1/decisions/allow");
      const es = r.entries ?? [];
      aBody.replaceChildren(...es.map((e) => {
        const del = el("button", { type: "button", class: "allow-delete", "data-id": e.id }, "Delete");
        del.addEventListener("click", async () => {
          aErr.replaceChildren();
          try {
            await api(`/v1/decisions/allow/${encodeURIComponent(e.id)}`, { method: "DELETE" });
          } catch (x) {
            aErr.replaceChildren(errorBox(x));
          }
          loadAllow();
        });
        return el("tr", { "data-id": e.id }, el("th", { scope: "row" }, e.cidr ? e.cidr : `node ${e.node}`),
          el("td", {}, e.reason || "—"), el("td", {}, e.created_by), el("td", {}, when(e.created_time)), el("td", {}, e.id), el("td", {}, del));
      }));
      if (es.length === 0) aBody.append(el("tr", {}, el("td", { colspan: "6" }, "The list is empty (the servers' own addresses are never blocked either way).")));
    } catch (e) {
      aErr.replaceChildren(errorBox(e));
    }
  };
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    aErr.replaceChildren();
    try {
      await api("/v1/decisions/allow", { method: "POST", body: { [kind.value]: value.value.trim(), reason: reason.value } });
      value.value = "";
      reason.value = "";
    } catch (e) {
      aErr.replaceChildren(errorBox(e));
    }
    loadAllow();
  });
  main.append(el("section", { "aria-labelledby": "allow-h" }, el("h2", { id: "allow-h" }, "Never-block list"),
    el("p", {}, "Nothing on this list, and no server, can be banned or quarantined."), addForm,
    el("div", { class: "table-wrap" }, el("table", { id: "allow-table" },
      el("caption", {}, "Never-block entries"),
      el("thead", {}, el("tr", {}, ["Entry", "Reason", "Added by", "Added", "Id", ""].map((h) => el("th", { scope: "col" }, h)))),
      aBody)), aErr));
  await Promise.all([loadDecisions(), loadAllow()]);
}
