// The audit page: the log's entries, paged by the server (start/count),
// and a "Verify" button per entry that checks in the browser, with the
// Web Crypto API, the checkpoint's signature, the witnesses'
// cosignatures and the entry's inclusion proof (audit-verify.js), showing
// each step.
//
// What an entry shows is decoded from its leaf, the bytes the proof
// covers, not from the server's parsed copy. The server has no filter on
// /v1/audit/entries: the filter box narrows the page loaded.

import { fromBase64, parseCheckpoint, parseNote, verifyEntry } from "../audit-verify.js";

const PAGE_SIZES = [25, 50, 100, 250];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// decodeLeaf returns the entry a leaf holds, or undefined.
function decodeLeaf(b64) {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64(b64, "leaf")));
  } catch {
    return undefined;
  }
}

// logSize reads the size line of a checkpoint (unverified: only to page).
function logSize(cp) {
  try {
    return parseCheckpoint(parseNote(cp).text).size;
  } catch {
    return undefined;
  }
}

/** render draws the audit page into main; api(path, opts) fetches. */
export async function render(main, api) {
  main.replaceChildren();
  const heading = el("h1", { text: "Audit log", tabindex: "-1" });
  const status = el("p", { id: "audit-status", role: "status" });

  const startIn = el("input", { id: "audit-start", type: "number", min: "0", step: "1", inputmode: "numeric" });
  const countIn = el("select", { id: "audit-count" });
  for (const n of PAGE_SIZES) countIn.append(el("option", { value: String(n), text: String(n) }));
  const filterIn = el("input", { id: "audit-filter", type: "search", autocomplete: "off" });
  const newest = el("button", { type: "button", id: "audit-newest", text: "Newest" });
  const older = el("button", { type: "button", id: "audit-older", text: "Older" });
  const newer = el("button", { type: "button", id: "audit-newer", text: "Newer" });
  const go = el("button", { type: "submit", id: "audit-go", text: "Show" });
  const form = el(
    "form",
    { class: "toolbar", "aria-label": "Audit entries" },
    el("label", { for: "audit-start", text: "First entry" }),
    startIn,
    el("label", { for: "audit-count", text: "Per page" }),
    countIn,
    go,
    newer,
    older,
    newest,
    el("label", { for: "audit-filter", text: "Filter this page" }),
    filterIn,
  );

  const keyIn = el("input", { id: "audit-pinned-key", type: "text", autocomplete: "off", spellcheck: "false", size: "60" });
  const quorumIn = el("input", { id: "audit-min-witnesses", type: "number", min: "0", max: "100", step: "1", value: "0", inputmode: "numeric" });
  const settings = el(
    "details",
    { class: "verify-settings" },
    el("summary", { text: "Verification keys" }),
    el("p", {
      text:
        "By default the log key is the one the server names (GET /v1/audit/verifier). " +
        "Paste the key you pinned when the cluster was set up to check against it instead.",
    }),
    el("label", { for: "audit-pinned-key", text: "Pinned log key" }),
    keyIn,
    el("label", { for: "audit-min-witnesses", text: "Witness cosignatures required" }),
    quorumIn,
  );

  const table = el("table", { id: "audit-entries", class: "data" });
  const caption = el("caption", { text: "Entries" });
  const thead = el("thead");
  const hr = el("tr");
  for (const h of ["Index", "Time", "Principal", "Action", "Resource", "Outcome", "Proof"]) hr.append(el("th", { scope: "col", text: h }));
  thead.append(hr);
  const tbody = el("tbody");
  table.append(caption, thead, tbody);

  const result = el("section", { id: "audit-verify", "aria-live": "polite", "aria-label": "Verification" });

  main.append(heading, status, form, settings, el("div", { class: "table-wrap" }, table), result);

  let size = 0n;
  let rows = [];

  async function refreshSize() {
    const cp = await api("/v1/audit/checkpoint");
    const s = logSize(String(cp));
    if (s === undefined) throw new Error("the server's checkpoint is malformed");
    size = s;
    status.textContent = `The log holds ${size} entries.`;
  }

  function count() {
    return BigInt(countIn.value);
  }

  function showRows() {
    const q = filterIn.value.trim().toLowerCase();
    tbody.replaceChildren();
    for (const r of rows) {
      const e = r.shown;
      const hay = [e.principal, e.action, e.resource, e.time, String(e.outcome ?? ""), r.view.error ?? ""].join(" ").toLowerCase();
      if (q && !hay.includes(q)) continue;
      const tr = el("tr", { "data-index": String(r.view.index) });
      tr.append(el("td", { text: String(r.view.index) }));
      if (r.view.altered || r.view.archived) {
        tr.append(el("td", { colspan: "5", class: r.view.altered ? "fail" : "", text: r.view.error || "" }));
      } else {
        for (const v of [e.time, e.principal, e.action, e.resource, e.outcome]) tr.append(el("td", { text: v === undefined ? "" : String(v) }));
      }
      const btn = el("button", { type: "button", class: "verify", text: "Verify", "aria-label": `Verify entry ${r.view.index}` });
      btn.addEventListener("click", () => verify(r.view, btn));
      tr.append(el("td", {}, btn));
      tbody.append(tr);
    }
    caption.textContent = rows.length === 0 ? "No entries" : `Entries ${rows[0].view.index} to ${rows[rows.length - 1].view.index}`;
  }

  async function load(start) {
    if (start < 0n) start = 0n;
    startIn.value = String(start);
    status.textContent = "Loading…";
    try {
      const res = await api(`/v1/audit/entries?start=${start}&count=${count()}`);
      rows = (res.entries || []).map((view) => ({ view, shown: (view.leaf && decodeLeaf(view.leaf)) || {} }));
      // The log grows while it is read (reading it is audited too).
      if (rows.length > 0 && BigInt(rows[rows.length - 1].view.index) >= size) size = BigInt(rows[rows.length - 1].view.index) + 1n;
      status.textContent = `The log holds ${size} entries.`;
    } catch (err) {
      rows = [];
      status.textContent = `Could not load entries: ${err.message}`;
    }
    showRows();
  }

  async function verify(view, btn) {
    btn.disabled = true;
    const list = el("ol", { class: "steps" });
    const title = el("h2", { text: `Verification of entry ${view.index}` });
    const verdict = el("p", { class: "verdict", text: "Checking…" });
    result.replaceChildren(title, list, verdict);
    const addStep = (s) => {
      const li = el("li", { class: s.ok ? "ok" : "fail", "data-step": s.step, "data-ok": String(s.ok) });
      li.append(el("strong", { text: `${s.ok ? "Pass" : "Fail"} — ${s.step}` }), el("span", { text: `: ${s.detail || ""}` }));
      list.append(li);
    };
    try {
      const want = Math.max(0, Math.trunc(Number(quorumIn.value) || 0));
      const cp = String(await api(want > 0 ? `/v1/audit/checkpoint?witnesses=${want}` : "/v1/audit/checkpoint"));
      let verifierKey = keyIn.value.trim();
      if (verifierKey === "") verifierKey = (await api("/v1/audit/verifier")).verifier_key;
      let witnessKeys = [];
      try {
        const ws = await api("/v1/audit/witnesses");
        witnessKeys = [...(ws.servers || []), ...(ws.external || [])].map((w) => w.verifier_key).filter(Boolean);
      } catch (err) {
        addStep({ step: "witness-list", ok: want === 0, detail: `the witnesses could not be listed: ${err.message}` });
      }
      const treeSize = logSize(cp);
      let proof = [];
      if (treeSize !== undefined && BigInt(view.index) < treeSize) {
        proof = (await api(`/v1/audit/proof/inclusion?index=${view.index}&tree_size=${treeSize}`)).hashes;
      }
      const res = await verifyEntry(
        { checkpoint: cp, verifierKey, witnessKeys, minWitnesses: want, index: view.index, leaf: view.leaf, leafHash: view.leaf_hash, proof },
        addStep,
      );
      const ok = res.ok && list.querySelector('li[data-ok="false"]') === null;
      verdict.textContent = ok
        ? `Entry ${view.index} is in the log the checkpoint signs.`
        : `Entry ${view.index} could not be verified: see the failed step.`;
      verdict.className = ok ? "verdict ok" : "verdict fail";
      verdict.setAttribute("data-ok", String(ok));
    } catch (err) {
      verdict.textContent = `Verification stopped: ${err.message}`;
      verdict.className = "verdict fail";
      verdict.setAttribute("data-ok", "false");
    } finally {
      btn.disabled = false;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    let s;
    try {
      s = BigInt(startIn.value || "0");
    } catch {
      s = 0n;
    }
    load(s);
  });
  newest.addEventListener("click", async () => {
    await refreshSize().catch((err) => (status.textContent = err.message));
    load(size > count() ? size - count() : 0n);
  });
  older.addEventListener("click", () => load(BigInt(startIn.value || "0") - count()));
  newer.addEventListener("click", () => {
    const next = BigInt(startIn.value || "0") + count();
    const last = size > count() ? size - count() : 0n;
    load(next > last ? last : next);
  });
  filterIn.addEventListener("input", showRows);
  countIn.addEventListener("change", () => load(BigInt(startIn.value || "0")));

  try {
    await refreshSize();
  } catch (err) {
    status.textContent = `Could not read the checkpoint: ${err.message}`;
    return;
  }
  await load(size > count() ? size - count() : 0n);
}
