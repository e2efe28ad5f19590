// node.js: one node: its record, certificate, inventory and assessment
// results. #/node/<name>.
import { el, table, errorBox, when } from "../dom.js";

export async function render(main, api, args) {
  const name = args[0];
  if (!name) throw new Error("no node named: use #/node/<name>");
  const path = `/v1/nodes/${encodeURIComponent(name)}`;
  main.append(el("p", {}, el("a", { href: "#/fleet" }, "Fleet")), el("h1", {}, `Node ${name}`));
  const n = await api(path);
  main.append(el("article", { class: "card", id: "node-record" }, el("h2", {}, "Record"),
    el("dl", {}, [
      ["Zone", n.zone || "—"], ["State", n.state], ["SPIFFE ID", n.spiffe_id],
      ["Certificate serial", n.serial || "—"], ["Certificate expires", when(n.not_after)],
      ["Certificate lifetime", n.cert_ttl || "—"], ["Addresses", (n.addresses ?? []).join(", ") || "—"],
      ["Created", when(n.created_time)], ["Updated", when(n.updated_time)],
    ].map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))));

  const inv = el("article", { class: "card", id: "node-inventory" }, el("h2", {}, "Inventory"));
  const res = el("article", { class: "card", id: "node-assessment" }, el("h2", {}, "Assessment results"));
  main.append(inv, res);
  if (n.state === "pending") {
    // Not enrolled: no certificate, so no inventory or results to ask for.
    inv.append(el("p", {}, "The node has not enrolled yet: it has sent no inventory."));
    res.append(el("p", {}, "No assessment results yet."));
    return;
  }
  await Promise.all([inventory(inv, api, path), assessment(res, api, path)]);
}

async function inventory(c, api, path) {
  let r;
  try {
    r = await api(`${path}/inventory`);
  } catch (err) {
    c.append(err.status === 404 ? el("p", {}, "The node has sent no inventory.") : errorBox(err));
    return;
  }
  const i = r.inventory ?? {};
  const os = i.os ?? {};
  c.append(el("dl", {}, [
    ["Host name", i.hostname || "—"], ["System", [os.name, os.version].filter(Boolean).join(" ") || "—"],
    ["Kernel", i.kernel || "—"], ["Architecture", i.arch || "—"], ["Agent", i.agent_version || "—"],
    ["Packages", String((i.packages ?? []).length)],
    ["Pending updates", i.pending_known ? String((i.pending_updates ?? []).length) : "unknown"],
    ["Enforcement", i.enforcement || "—"], ["Collected", when(i.collected_at)], ["Received", when(r.received_time)],
  ].map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  const socks = i.listening ?? [];
  if (socks.length > 0) {
    c.append(table("Listening sockets", ["Protocol", "Address", "Port", "Process"],
      socks.slice(0, 200).map((s) => [s.proto ?? s.protocol ?? "", s.address ?? "", String(s.port ?? ""), s.process ?? ""])));
  }
}

async function assessment(c, api, path) {
  const r = await api(`${path}/assessment`);
  const rs = r.results ?? [];
  if (rs.length === 0) {
    c.append(el("p", {}, "No assessment results yet."));
    return;
  }
  for (const p of rs) {
    const checks = Array.isArray(p.results) ? p.results : (p.results?.checks ?? p.results?.results ?? []);
    c.append(table(`Policy ${p.policy}, run ${when(p.ran_at)}`, ["Check", "Status", "Message"],
      checks.map((k) => [k.id ?? k.name ?? "", el("span", { class: `status status-${k.status}` }, k.status ?? ""), k.message ?? ""])));
  }
}
