// node.js: one node: its record, certificates, alerts, decisions,
// inventory and assessment results. #/node/<name>.
//
// Each card loads on its own: one the user may not read (a 403) shows the
// refusal in that card only.
//
//   Certificates  GET /v1/pki/certs?node=<name>, the newest first
//   Alerts        GET /v1/alerts?host=<name>&limit=50, newest first
//   Decisions     GET /v1/decisions?node=<name>&active=true: the server
//                 keeps the node's quarantine and the bans of one of its
//                 addresses (or of a range holding one)
import { el, table, errorBox, when } from "../dom.js";

const alertLimit = 50;
const maxCerts = 20;

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

  const card = (id, title) => el("article", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h` }, title));
  const certs = card("node-certs", "Certificates");
  const alerts = card("node-alerts", "Alerts");
  const decisions = card("node-decisions", "Decisions in force");
  const inv = card("node-inventory", "Inventory");
  const res = card("node-assessment", "Assessment results");
  main.append(certs, alerts, decisions, inv, res);
  const jobs = [
    [certs, () => certificates(certs, api, n)],
    [alerts, () => nodeAlerts(alerts, api, n.name)],
    [decisions, () => nodeDecisions(decisions, api, n)],
  ];
  if (n.state === "pending") {
    // Not enrolled: no certificate, so no inventory or results to ask for.
    inv.append(el("p", {}, "The node has not enrolled yet: it has sent no inventory."));
    res.append(el("p", {}, "No assessment results yet."));
  } else {
    jobs.push([inv, () => inventory(inv, api, path)], [res, () => assessment(res, api, path)]);
  }
  await Promise.all(jobs.map(async ([c, f]) => {
    try {
      await f();
    } catch (err) {
      c.append(errorBox(err));
    }
  }));
}

async function certificates(c, api, n) {
  const r = await api("/v1/pki/certs", { query: { node: n.name } });
  const mine = (r.certificates ?? []).sort((a, b) => (a.not_before < b.not_before ? 1 : a.not_before > b.not_before ? -1 : 0));
  if (mine.length === 0) {
    c.append(el("p", {}, "No certificate has been issued to this node."));
    return;
  }
  const t = table(mine.length > maxCerts ? `The ${maxCerts} newest of ${mine.length} certificates` : "Certificates, newest first",
    ["Serial", "Issued", "Expires", "State"],
    mine.slice(0, maxCerts).map((x) => [
      el("code", {}, x.serial), when(x.not_before), when(x.not_after),
      el("span", { class: `cert-state cert-${x.state}` },
        x.state + (x.state === "revoked" && x.revoked_at ? ` (${when(x.revoked_at)})` : "") + (x.serial === n.serial ? ", current" : "")),
    ]));
  t.querySelector("table").id = "node-certs-table";
  c.append(t);
}

async function nodeAlerts(c, api, name) {
  const r = await api("/v1/alerts", { query: { host: name, limit: alertLimit } });
  const as = r.alerts ?? [];
  if (as.length === 0) {
    c.append(el("p", {}, "No alerts name this node."));
    return;
  }
  const t = table("Alerts naming this node, newest first", ["Rule", "Level", "Status", "Last seen"],
    as.map((a) => [
      el("a", { href: `#/alert/${encodeURIComponent(a.id)}` }, a.rule_title || a.rule_id || a.id),
      el("span", { class: `level level-${a.level}` }, a.level),
      a.status, when(a.last_seen),
    ]));
  t.querySelector("table").id = "node-alerts-table";
  c.append(t);
  if (r.next) c.append(el("p", { id: "node-alerts-more" }, `Only the ${alertLimit} newest are shown; there are more.`));
}

const target = (t) => Object.entries(t ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");

async function nodeDecisions(c, api, n) {
  const r = await api("/v1/decisions", { query: { node: n.name, active: "true" } });
  const mine = r.decisions ?? [];
  if (mine.length === 0) {
    c.append(el("p", {}, "No decision in force quarantines this node or bans one of its addresses."));
    return;
  }
  const t = table("Decisions in force on this node", ["Decision", "Type", "Target", "Zone", "Reason", "Expires"],
    mine.map((d) => [
      el("a", { href: `#/decisions/${encodeURIComponent(d.id)}` }, d.id),
      d.type + (d.simulated ? " (simulated)" : "") + (d.pending_approval ? " (pending approval)" : ""),
      target(d.target), d.zone || "all", d.reason || "—", when(d.expires_at),
    ]));
  t.querySelector("table").id = "node-decisions-table";
  c.append(t);
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
