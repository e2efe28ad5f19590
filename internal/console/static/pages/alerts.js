// alerts.js: the alerts list, filtered and paged by the server
// (GET /v1/alerts: status, level, limit and cursor), and kept live: the page
// follows GET /v1/alerts/stream (server-sent events) and puts each alert
// created or updated that matches the filters at the top of the first page
// (an updated one that no longer matches leaves it). EventSource cannot
// send the Authorization header, so the stream is read with fetch and a
// ReadableStream, and its frames are parsed here; a lost stream is opened
// again with backoff, from the last event id it saw (?after=).
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
  const live = el("p", { id: "alerts-live", "data-live": "connecting" }, "Live updates: connecting…");
  const prev = el("button", { type: "button", id: "alerts-prev" }, "Previous");
  const next = el("button", { type: "button", id: "alerts-next" }, "Next");
  const err = el("div");
  main.append(form, live, el("div", { class: "table-wrap" }, el("table", { id: "alerts-table" },
    el("caption", {}, "Alerts, most recent first"),
    el("thead", {}, el("tr", {}, ["Level", "Rule", "Status", "Hosts", "Events", "Last seen"]
      .map((h) => el("th", { scope: "col" }, h)))),
    body)), el("p", { class: "pager" }, prev, " ", next), info, err);

  // cursors[i] is the cursor of page i (page 0 has none).
  let cursors = [""];
  let page = 0;
  let nextCursor = "";
  // shown is the filter the rows were loaded with: live alerts are
  // matched against it, not against a changed but unapplied form.
  let shown = { status: status.value, level: level.value };
  const load = async () => {
    err.replaceChildren();
    main.setAttribute("aria-busy", "true");
    shown = { status: status.value, level: level.value };
    try {
      const r = await api("/v1/alerts", { query: { status: shown.status, level: shown.level, limit: pageSize, cursor: cursors[page] } });
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

  // A live alert replaces its row if shown; else, on the first page and
  // matching the filter, goes to the top (the list is newest first).
  const onAlert = (a) => {
    const old = [...body.rows].find((r) => r.dataset.id === a.id);
    const matches = (shown.status === "" || a.status === shown.status) && (shown.level === "" || a.level === shown.level);
    if (old) {
      if (matches) old.replaceWith(row(a, true));
      else old.remove();
      return;
    }
    if (!matches || page !== 0) return;
    body.prepend(row(a, true));
    while (body.rows.length > pageSize) body.lastElementChild.remove();
    if (info.textContent === "No alerts.") info.textContent = "Page 1: new alerts arrived";
  };
  await load();
  follow(main, api, onAlert, live);
}

// follow reads the alert stream until main leaves the page, opening it
// again after a failure with exponential backoff (1 s to 30 s) from the
// last event id seen.
async function follow(main, api, onAlert, live) {
  let after = "";
  let backoff = 1000;
  let reader = null;
  const stop = () => {
    if (reader) reader.cancel().catch(() => {});
  };
  window.addEventListener("hashchange", stop, { once: true });
  const setLive = (state, text) => {
    live.dataset.live = state;
    live.textContent = `Live updates: ${text}`;
  };
  while (main.isConnected) {
    try {
      const res = await openStream(api, "/v1/alerts/stream", { after });
      reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      if (!main.isConnected) break;
      setLive("on", "on");
      backoff = 1000;
      for await (const ev of sseEvents(reader)) {
        if (ev.id) after = ev.id;
        if (ev.event !== "alert") continue;
        let a;
        try {
          a = JSON.parse(ev.data);
        } catch {
          continue;
        }
        onAlert(a);
      }
    } catch (e) {
      if (!main.isConnected) break;
      if (e.status === 401 || e.status === 403) {
        setLive("off", `off (${e.message})`);
        return;
      }
    }
    if (!main.isConnected) break;
    setLive("retrying", `reconnecting in ${Math.round(backoff / 1000)} s`);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 30000);
  }
  stop();
}

// openStream resolves to the Response of a streaming GET made through the
// shell's api helper (so it carries the session's token, and a 401 ends
// the session as for any other call). The helper reads whole bodies, so
// for the one fetch it makes (synchronously, at the call) the response
// handed to it is an empty JSON "null" and the real, streaming one is
// kept here; an error response is handed over as is and api rejects.
export async function openStream(api, path, query) {
  if (typeof api.stream === "function") return api.stream(path, { query });
  const realFetch = globalThis.fetch;
  let res = null;
  globalThis.fetch = async (...a) => {
    const r = await realFetch(...a);
    if (!r.ok) return r;
    res = r;
    return new Response("null", { status: 200, headers: { "Content-Type": "application/json" } });
  };
  let p;
  try {
    p = api(path, { query });
  } finally {
    globalThis.fetch = realFetch;
  }
  await p;
  if (res === null || res.body === null) throw new Error(`${path}: no stream`);
  return res;
}

// sseEvents parses server-sent events (the text/event-stream format: fields
// "event", "data", "id"; comments and other fields ignored; a blank line
// ends an event) from a reader of text chunks.
export async function* sseEvents(reader) {
  let buf = "";
  let ev = { event: "message", data: [], id: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (ev.data.length > 0) yield { event: ev.event, data: ev.data.join("\n"), id: ev.id };
        ev = { event: "message", data: [], id: ev.id };
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let v = i < 0 ? "" : line.slice(i + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "event") ev.event = v;
      else if (field === "data") ev.data.push(v);
      else if (field === "id") ev.id = v;
    }
  }
}

function row(a, isLive = false) {
  return el("tr", { "data-id": a.id, "data-live": isLive ? "true" : null },
    el("td", {}, el("span", { class: `level level-${a.level}` }, a.level)),
    el("th", { scope: "row" }, el("a", { href: `#/alert/${encodeURIComponent(a.id)}` }, a.rule_title || a.rule_id)),
    el("td", {}, a.status),
    el("td", {}, (a.hosts ?? []).join(", ")),
    el("td", { class: "num" }, String(a.count ?? 0)),
    el("td", {}, when(a.last_seen)));
}
