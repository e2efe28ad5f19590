// dom.js: building the page from data without ever parsing data as HTML.
// Every string given here becomes a text node (textContent); attributes are
// set with setAttribute. Nothing in the console uses innerHTML.

// el makes an element: el("td", {class: "num"}, "text", childNode, ...).
// Attribute values and children are strings or nodes; null and undefined
// children are skipped, arrays are flattened.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === null || c === undefined) continue;
    if (Array.isArray(c)) append(e, c);
    else if (c instanceof Node) e.append(c);
    else e.append(document.createTextNode(String(c)));
  }
}

// table makes a table with a caption, column headers and rows of cells
// (each a string, a node, or null for an empty cell). Its wrapper scrolls
// sideways on a narrow screen, so it takes the keyboard's focus (a region
// named by the caption) to be scrolled without a pointer.
export function table(caption, headers, rows) {
  return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    el("table", {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c ?? ""))))),
    ));
}

// errorBox shows an error's message as text, announced to screen readers.
export function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

// when formats an RFC 3339 time for people, or "—" when there is none.
export function when(t) {
  if (!t || t.startsWith("0001-")) return "—";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}


// evaluated reports whether the leader has evaluated framework yet
// (GET /v1/compliance/summary), so that a page asks for the stored
// evaluation only when there is one.
export async function evaluated(api, framework) {
  const r = await api("/v1/compliance/summary");
  return Boolean((r.frameworks ?? []).find((f) => f.framework === framework)?.changed_at);
}
