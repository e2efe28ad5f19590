// overview.js: the fleet at a glance. Each card loads on its own, so a
// card the user may not read (a 403) or a slow one does not hold the rest.
import { el, table, errorBox, when } from "../dom.js";

const levels = ["critical", "high", "medium", "low", "informational"];
const frameworks = [["iso27001", "ISO/IEC 27001"], ["iec62443-3-3", "IEC 62443-3-3"]];

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
  // Replication lag of the answering server: what it has committed but not
  // applied yet, and (on a follower) how long since it heard the leader.
  let lag = "—";
  if (h.applied_index !== undefined) {
    lag = `${h.commit_index - h.applied_index} entries behind its commit index`;
    if (h.last_contact) lag += `, leader heard ${h.last_contact} ago`;
  }
  const pairs = [
    ["Seal", el("span", { class: h.sealed || !h.initialized ? "bad" : "good" }, state)],
    ["This server", h.role ?? "—"],
    ["Replication lag", lag],
    ["Version", h.version ?? "—"],
  ];
  try {
    const r = await api("/v1/sys/raft/peers");
    const peers = r.peers ?? [];
    const leader = peers.find((p) => p.leader);
    pairs.splice(1, 0, ["Leader", leader ? `${leader.id} (${leader.address})` : el("span", { class: "bad" }, "none")],
      ["Servers", `${peers.length} (${peers.filter((p) => p.voter).length} voting)`]);
  } catch (err) {
    if (err.status !== 403) throw err;
    pairs.splice(1, 0, ["Leader", "not shown: this token may not read the cluster's members"]);
  }
  c.append(dl(pairs));
}

// nodes shows the fleet's counts by state and zone: one request, whatever
// the fleet's size.
async function nodes(c, api) {
  const r = await api("/v1/fleet/counts");
  const rows = (m) => Object.entries(m ?? {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => [k, String(n)]);
  c.append(el("p", { class: "big" }, String(r.total), el("span", {}, " nodes")));
  c.append(table("By state", ["State", "Nodes"], rows(r.by_state)));
  const zones = rows(r.by_zone);
  if (r.no_zone > 0) zones.push([el("em", {}, "no zone"), String(r.no_zone)]);
  c.append(table("By zone", ["Zone", "Nodes"], zones));
}

async function alerts(c, api) {
  const r = await api("/v1/alerts/counts");
  const open = r.counts?.open ?? {};
  const acked = r.counts?.acknowledged ?? {};
  c.append(table("Open and acknowledged alerts by level", ["Level", "Open", "Acknowledged"],
    levels.map((l) => [el("span", { class: `level level-${l}` }, l), String(open[l] ?? 0), String(acked[l] ?? 0)])));
  c.append(el("p", {}, el("a", { href: "#/alerts" }, "All alerts"), ` (${r.total} stored)`));
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
  const pairs = [["Log", lines[0] ?? "—"], ["Root hash", el("code", {}, lines[2] ?? "—")]];
  // The last checkpoint a witness cosigned, as this server heard.
  let w = {};
  try {
    w = await api("/v1/audit/witnesses");
  } catch (err) {
    if (err.status !== 403) throw err;
  }
  let last = null;
  for (const v of [...(w.servers ?? []), ...(w.external ?? [])]) {
    const st = v.status;
    if (st?.size && (!last || st.size > last.size)) last = { size: st.size, at: st.cosigned, name: v.name ?? v.node ?? "" };
  }
  pairs.push(["Last witnessed", last ? `size ${last.size}, ${when(last.at)}${last.name ? ` (${last.name})` : ""}` : el("span", { class: "bad" }, "no cosignature yet")]);
  c.append(dl(pairs));
  c.append(el("p", {}, el("a", { href: "#/audit" }, "Audit log")));
}

// compliance shows each framework's controls as the leader's last
// evaluation left them (GET /v1/compliance/summary): the live evaluation
// is the compliance page's.
async function compliance(c, api) {
  const r = await api("/v1/compliance/summary");
  const names = Object.fromEntries(frameworks);
  c.append(table("Controls per framework, at the last evaluation", ["Framework", "Pass / controls", "Fail", "Status unchanged since"],
    (r.frameworks ?? []).map((f) => {
      const s = f.summary ?? {};
      return f.changed_at
        ? [names[f.framework] ?? f.framework, `${s.pass} / ${s.controls}`, String(s.fail), when(f.changed_at)]
        : [names[f.framework] ?? f.framework, "not evaluated yet", "—", "—"];
    })));
  c.append(el("p", {}, el("a", { href: "#/compliance" }, "Evaluate the live state")));
}
