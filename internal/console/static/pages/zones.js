// zones.js: the zone and conduit map. #/zones.
//
// Zones are boxes in a grid, conduits arrows between them labelled with
// their protocol and port ("tcp/443 mTLS"), and each box is coloured by its
// zone's achieved security level (SL-A, IEC 62443-3-3) against its target
// (SL-T): meets the target (the lowest SL-A of the seven foundational
// requirements is at least SL-T), below the target, or no target. Every box
// also says which in words, and a legend explains the colours: colour is
// never the only sign.
//
// Data: GET /v1/zones, GET /v1/conduits, the leader's last evaluation of
// iec62443-3-3 (its zones' sl_t and sl_a; the live status before the first
// one), and GET /v1/fleet/counts for the
// nodes per zone. Only the zones are required: a refusal of any other shows
// a note and the map without what it would have given (a 403 on the
// compliance status draws the boxes uncoloured).
//
// The map is an inline SVG built with createElementNS (text as
// textContent, never markup), role="img" with a summary in aria-label; the
// two tables below it, of the zones and of the conduits, are what screen
// readers read. No style attribute is set (the CSP has no
// 'unsafe-inline'): colours are classes of console.css, for both themes.
import { el, errorBox, table, evaluated } from "../dom.js";

// The SVG namespace is a name, not an address: nothing is loaded from it.
const svgNS = "http://www.w3.org/2000/svg";
const framework = "iec62443-3-3";

// The geometry of the map, in SVG user units.
const boxW = 224;
const boxH = 78;
const gapX = 130; // room for an arrow's label between two columns
const gapY = 110;
const margin = 56; // room above the first row for a zone's conduit to itself
const maxNameChars = 22;
const maxLabelLines = 3;

// The states a zone's box can be in, with their words for the legend and
// the boxes.
const states = {
  meets: "meets its target",
  below: "below its target",
  none: "no target",
  unknown: "level not assessed",
};

// s makes an SVG element, like dom.js's el.
function s(tag, attrs, ...children) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export async function render(main, api) {
  main.append(el("h1", {}, "Zones and conduits"));
  const [zr, cr, lr, nr] = await Promise.allSettled([
    api("/v1/zones"),
    api("/v1/conduits"),
    zoneLevels(api),
    nodeCounts(api),
  ]);
  if (zr.status === "rejected") throw zr.reason;
  const zones = (zr.value.zones ?? []).slice().sort((a, b) => cmp(a.name, b.name));
  const conduits = cr.status === "fulfilled" ? cr.value.conduits ?? [] : [];
  const levels = new Map();
  if (lr.status === "fulfilled") {
    for (const z of lr.value.zones ?? []) levels.set(z.name, z);
  }
  const counts = nr.status === "fulfilled" ? nr.value : null;

  const notes = el("div", { id: "zones-notes" });
  if (cr.status === "rejected") {
    notes.append(errorBox(`The conduits are not shown: ${cr.reason.message}`));
  }
  if (lr.status === "rejected") {
    notes.append(errorBox(`The security levels are not shown, so the zones are not coloured: ${lr.reason.message}`));
  }
  if (nr.status === "rejected") {
    notes.append(errorBox(`The nodes per zone are not shown: ${nr.reason.message}`));
  }
  main.append(notes);

  if (zones.length === 0) {
    main.append(el("p", { id: "zones-empty" }, "No zones yet: create one with warden zone create NAME --level 1..4."));
    return;
  }

  const info = zones.map((z) => {
    const l = levels.get(z.name);
    const target = l?.sl_t ?? z.level ?? 0;
    let state = "unknown";
    let slA = null;
    if (lr.status === "fulfilled") {
      slA = l ? l.sl_a ?? [] : null;
      if (!target) state = "none";
      else if (slA && slA.length > 0) state = Math.min(...slA) >= target ? "meets" : "below";
    }
    const n = counts?.byZone.get(z.name);
    const nodes = counts === null ? null : String(n ?? 0);
    return { name: z.name, target, slA, state, nodes };
  });

  // On a narrow screen the map keeps its size and scrolls sideways in its
  // own region (focusable, so a keyboard scrolls it too).
  main.append(el("figure", { class: "zone-map card", id: "zone-map-figure" },
    el("div", { class: "zm-scroll", tabindex: "0", role: "region", "aria-label": "Zone map" }, map(info, conduits)),
    el("figcaption", {}, legend())));

  const zt = table("Zones: target security level (SL-T) and achieved levels (SL-A, FR 1 to FR 7)",
    ["Zone", "SL-T", "SL-A (FR 1 to 7)", "State", "Nodes"],
    info.map((z) => [
      el("a", { href: `#/compliance/${framework}/${encodeURIComponent(z.name)}` }, z.name),
      z.target ? String(z.target) : "—",
      z.slA && z.slA.length > 0 ? z.slA.join(" ") : "—",
      el("span", { class: `zm-state zm-state-${z.state}` }, states[z.state]),
      z.nodes ?? "—",
    ]));
  zt.querySelector("table").id = "zones-table";
  main.append(el("h2", {}, "Zones"), zt);

  main.append(el("h2", {}, "Conduits"));
  if (cr.status === "fulfilled") {
    if (conduits.length === 0) {
      main.append(el("p", { id: "conduits-empty" }, "No conduits: no traffic between zones is allowed (create one with warden conduit create)."));
    }
    const ct = table("Conduits: allowed flows between zones, by policy name",
      ["From", "To", "Protocol and port", "Mutual TLS", "Policy"],
      conduits.map((c) => [c.from, c.to, `${c.protocol}/${c.port}`, c.mtls ? "required" : "no",
        el("a", { href: `#/policies/warden/${encodeURIComponent(c.policy)}` }, c.policy)]));
    ct.querySelector("table").id = "conduits-table";
    main.append(ct);
  } else {
    main.append(el("p", {}, "Not shown (see above)."));
  }
}

// zoneLevels reads the zones' levels from the leader's last evaluation
// (GET /v1/compliance/evaluations/iec62443-3-3), or evaluates the live
// state when there is none yet.
async function zoneLevels(api) {
  if (await evaluated(api, framework)) return api(`/v1/compliance/evaluations/${framework}`);
  return api("/v1/compliance/status", { query: { framework } });
}

// nodeCounts counts the nodes per zone with one request
// (GET /v1/fleet/counts), whatever the fleet's size.
async function nodeCounts(api) {
  const r = await api("/v1/fleet/counts");
  return { byZone: new Map(Object.entries(r.by_zone ?? {})) };
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

// legend explains the boxes' colours, in words beside a sample of each.
function legend() {
  return el("ul", { class: "zm-legend", id: "zone-map-legend" },
    Object.entries(states).map(([k, text]) => el("li", {},
      el("span", { class: `zm-swatch zm-${k}` }), " ", text)),
    el("li", {}, el("span", { class: "zm-swatch-arrow" }, "→"), " conduit: allowed flow, labelled protocol/port (mTLS: mutually authenticated)"));
}

// map draws the zones in a grid, row by row in name order, and one arrow
// per ordered pair of zones that has conduits, labelled with each of them.
function map(zones, conduits) {
  const cols = Math.max(1, Math.ceil(Math.sqrt(zones.length)));
  const rows = Math.ceil(zones.length / cols);
  const width = margin * 2 + cols * boxW + (cols - 1) * gapX;
  const height = margin * 2 + rows * boxH + (rows - 1) * gapY;
  const at = new Map(); // zone name → its box {x, y, cx, cy}
  zones.forEach((z, i) => {
    const x = margin + (i % cols) * (boxW + gapX);
    const y = margin + Math.floor(i / cols) * (boxH + gapY);
    at.set(z.name, { x, y, cx: x + boxW / 2, cy: y + boxH / 2 });
  });

  // Conduits grouped by ordered pair of zones; a conduit to a zone not on
  // the map (deleted since) is left out of the drawing (the table lists it).
  const pairs = new Map();
  for (const c of conduits) {
    if (!at.has(c.from) || !at.has(c.to)) continue;
    const k = `${c.from}\n${c.to}`;
    if (!pairs.has(k)) pairs.set(k, { from: c.from, to: c.to, labels: [] });
    pairs.get(k).labels.push(`${c.protocol}/${c.port}${c.mtls ? " mTLS" : ""}`);
  }

  const counts = Object.keys(states).map((k) => [k, zones.filter((z) => z.state === k).length]).filter(([, n]) => n > 0);
  const summary = `Map of ${zones.length} ${zones.length === 1 ? "zone" : "zones"} and ${conduits.length} ` +
    `${conduits.length === 1 ? "conduit" : "conduits"}: ${counts.map(([k, n]) => `${n} ${states[k]}`).join(", ")}. ` +
    "The tables below list the zones and the conduits.";
  const svg = s("svg", { id: "zone-map", role: "img", "aria-label": summary,
    viewBox: `0 0 ${width} ${height}`, width, height, class: "zm" },
  s("defs", {}, s("marker", { id: "zm-arrowhead", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 12, markerHeight: 12, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
  s("path", { d: "M0,0 L10,5 L0,10 z", class: "zm-head" }))));

  // Each label goes at the first of its arrow's candidate places that
  // overlaps no box and no label placed before it (or at the first
  // candidate when none is free).
  const taken = [...at.values()].map((b) => ({ x1: b.x, y1: b.y, x2: b.x + boxW, y2: b.y + boxH }));
  const arrows = s("g", { class: "zm-conduits" });
  const labels = s("g", { class: "zm-labels" });
  for (const p of pairs.values()) {
    const reverse = p.from !== p.to && pairs.has(`${p.to}\n${p.from}`);
    const [line, places] = p.from === p.to ? loop(at.get(p.from), p) : arrow(at.get(p.from), at.get(p.to), p, reverse);
    const lines = labelLines(p);
    const boxed = places.map((pl) => [pl, labelBox(lines, pl)]);
    const [place, box] = boxed.find(([, b]) => !taken.some((t) => overlaps(b, t))) ?? boxed[0];
    taken.push(box);
    arrows.append(line);
    labels.append(label(p, lines, place));
  }

  const boxes = s("g", { class: "zm-zones" }, zones.map((z) => {
    const b = at.get(z.name);
    const name = z.name.length > maxNameChars ? `${z.name.slice(0, maxNameChars - 1)}…` : z.name;
    const level = z.state === "below" ? `${states.below}: SL-A ${Math.min(...z.slA)} < SL-T ${z.target}` :
      z.state === "meets" ? `${states.meets}: SL-T ${z.target}` :
        z.state === "none" ? states.none : `SL-T ${z.target}, ${states.unknown}`;
    return s("g", { class: `zm-zone zm-${z.state}`, "data-zone": z.name, "data-state": z.state },
      s("title", {}, `Zone ${z.name}: ${level}`),
      s("rect", { x: b.x, y: b.y, width: boxW, height: boxH, rx: 8 }),
      s("text", { x: b.cx, y: b.y + 24, class: "zm-name", "text-anchor": "middle" }, name),
      s("text", { x: b.cx, y: b.y + 45, class: "zm-level", "text-anchor": "middle" }, level),
      z.nodes === null ? null : s("text", { x: b.cx, y: b.y + 64, class: "zm-nodes", "text-anchor": "middle" },
        `${z.nodes} ${z.nodes === "1" ? "node" : "nodes"}`));
  }));
  // Arrows under the boxes, labels over everything.
  svg.append(arrows, boxes, labels);
  return svg;
}

// edge is where the line from box a's centre (shifted by off) toward
// point (tx, ty) leaves the box, plus pad.
function edge(b, off, tx, ty, pad) {
  const sx = b.cx + off.x;
  const sy = b.cy + off.y;
  const dx = tx - sx;
  const dy = ty - sy;
  const t = Math.min(dx === 0 ? Infinity : (boxW / 2 + pad) / Math.abs(dx), dy === 0 ? Infinity : (boxH / 2 + pad) / Math.abs(dy));
  return { x: sx + dx * t, y: sy + dy * t };
}

// arrow is the line of the conduits from box a to box b, and the places
// its label may go, best first: beside the line's middle, then nearer one
// end or the other. When conduits also go back from b to a, the two lines
// are drawn apart, each shifted to its right, with its label on that side.
function arrow(a, b, p, reverse) {
  const dx = b.cx - a.cx;
  const dy = b.cy - a.cy;
  const len = Math.hypot(dx, dy);
  const n = { x: -dy / len, y: dx / len }; // the right-hand normal (y grows downward)
  const off = reverse ? { x: n.x * 10, y: n.y * 10 } : { x: 0, y: 0 };
  const start = edge(a, off, b.cx + off.x, b.cy + off.y, 2);
  const end = edge(b, off, a.cx + off.x, a.cy + off.y, 3);
  const line = s("line", { x1: r(start.x), y1: r(start.y), x2: r(end.x), y2: r(end.y),
    class: "zm-arrow", "marker-end": "url(#zm-arrowhead)", "data-from": p.from, "data-to": p.to });
  const vertical = Math.abs(dy) > Math.abs(dx);
  const places = [0.5, 0.3, 0.7, 0.2, 0.8].map((t) => {
    const x = start.x + (end.x - start.x) * t;
    const y = start.y + (end.y - start.y) * t;
    if (vertical) {
      // Beside a vertical line, on its right (or its left when it is alone).
      const side = reverse ? Math.sign(n.x) || 1 : 1;
      return { x: x + side * (reverse ? 8 : 6), y, anchor: side > 0 ? "start" : "end", dir: 0 };
    }
    if (reverse) {
      const dir = n.y >= 0 ? 1 : -1;
      return { x, y: y + dir * 8, anchor: "middle", dir };
    }
    return { x, y, anchor: "middle", dir: 0 };
  });
  return [line, places];
}

// loop is a conduit from a zone to itself: a curve over its box.
function loop(b, p) {
  const x1 = b.cx + 24;
  const x2 = b.cx - 24;
  const top = b.y - 40;
  const path = s("path", { d: `M${x1},${b.y - 2} C${x1 + 10},${top} ${x2 - 10},${top} ${x2},${b.y - 3}`,
    class: "zm-arrow", "marker-end": "url(#zm-arrowhead)", "data-from": p.from, "data-to": p.to });
  return [path, [{ x: b.cx + 44, y: top + 8, anchor: "start", dir: 0 }, { x: b.cx - 44, y: top + 8, anchor: "end", dir: 0 }]];
}

const lineHeight = 15;
const charWidth = 7; // an estimate, at the labels' 12 px, for placing them

// labelLines are the texts of one arrow's conduits, a line each (at most
// maxLabelLines, then "+N more").
function labelLines(p) {
  return p.labels.length > maxLabelLines ?
    [...p.labels.slice(0, maxLabelLines - 1), `+${p.labels.length - maxLabelLines + 1} more`] : p.labels;
}

// firstBaseline is the y of a label's first line at place pl: the lines
// centred on pl.y (dir 0), below it (1) or above it (-1).
function firstBaseline(n, pl) {
  return pl.dir === 0 ? pl.y - ((n - 1) * lineHeight) / 2 + 4 : pl.dir > 0 ? pl.y + 10 : pl.y - (n - 1) * lineHeight - 2;
}

// labelBox is the rectangle a label's lines take at place pl, estimated.
function labelBox(lines, pl) {
  const w = Math.max(...lines.map((l) => l.length)) * charWidth;
  const x1 = pl.anchor === "start" ? pl.x : pl.anchor === "end" ? pl.x - w : pl.x - w / 2;
  const y1 = firstBaseline(lines.length, pl) - 11;
  return { x1, y1, x2: x1 + w, y2: y1 + lines.length * lineHeight };
}

function overlaps(a, b) {
  return a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
}

// label is the text of one arrow's conduits, a tspan per line, at place pl.
function label(p, lines, pl) {
  const first = firstBaseline(lines.length, pl);
  return s("text", { class: "zm-label", "text-anchor": pl.anchor, "data-from": p.from, "data-to": p.to },
    lines.map((t, i) => s("tspan", { x: r(pl.x), y: r(first + i * lineHeight) }, t)));
}

const r = (v) => Math.round(v * 10) / 10;
