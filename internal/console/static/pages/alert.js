// alert.js: one alert (#/alert/<id>): its record, its events as text, its
// notes; acknowledging and closing it with a comment; and the response
// from it: ban its source address, quarantine its host, open an incident
// with it attached. Each action shows, in a <dialog>, the exact request it
// will make and asks for confirmation; then it shows what the server made
// (the decision's or incident's id and expiry, with a link).
//
// The helpers exported here (facts, confirmAction, shown) are shared by
// the other response pages.
import { el, errorBox, when } from "../dom.js";

// facts makes a <dl> of [label, value] pairs (values are text or nodes).
export function facts(pairs, attrs) {
  return el("dl", attrs ?? {}, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]));
}

// confirmAction opens a modal <dialog> titled title that shows the
// request (method, path and the JSON body) given by describe() and the
// fields (label, input pairs; changing one updates the request shown);
// "Confirm" calls run() and resolves to its result, "Cancel" to null. An
// error of run() is shown in the dialog, which stays open.
export function confirmAction({ id, title, fields = [], describe, run }) {
  return new Promise((resolve) => {
    const pre = el("pre", { class: "request", id: `${id}-request` });
    const err = el("div", { id: `${id}-error` });
    const ok = el("button", { type: "submit", id: `${id}-confirm` }, "Confirm");
    const cancel = el("button", { type: "button", id: `${id}-cancel` }, "Cancel");
    const form = el("form", { method: "dialog" },
      el("h2", {}, title),
      fields.map(([label, input]) => el("p", { class: "field" }, el("label", { for: input.id }, label), input)),
      el("p", {}, "This request will be sent:"), pre, err, el("p", {}, ok, " ", cancel));
    const dlg = el("dialog", { id, "aria-labelledby": `${id}-title` }, form);
    form.firstChild.id = `${id}-title`;
    const show = () => {
      const { method, path, body } = describe();
      pre.textContent = `${method} ${path}${body === undefined ? "" : "\n" + JSON.stringify(body, null, 2)}`;
    };
    for (const [, input] of fields) input.addEventListener("input", show);
    show();
    let settled = false;
    const finish = (v) => {
      if (settled) return;
      settled = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancel.addEventListener("click", () => finish(null));
    dlg.addEventListener("cancel", () => finish(null));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      ok.disabled = true;
      err.replaceChildren();
      try {
        finish(await run());
      } catch (e) {
        err.replaceChildren(errorBox(e));
      } finally {
        ok.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// shown renders what the server made: a decision or an incident, with a
// link to it, into box (a live region).
export function shown(box, kind, r) {
  if (kind === "decision") {
    const target = Object.entries(r.target ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");
    box.replaceChildren(el("p", { class: "good" }, "The server made decision ",
      el("a", { href: `#/decisions/${encodeURIComponent(r.id)}`, class: "made-id" }, r.id),
      `: ${r.type} of ${target}${r.simulated ? " (simulated)" : ""}, until ${when(r.expires_at)}` +
      `${r.escalation ? ` (escalated ${r.escalation}×, ${r.duration})` : ""}${r.pending_approval ? ", pending approval" : ""}.`));
  } else {
    box.replaceChildren(el("p", { class: "good" }, "The server made incident ",
      el("a", { href: `#/incident/${encodeURIComponent(r.id)}`, class: "made-id" }, r.id),
      `: “${r.title}”, ${r.severity}, ${r.status}.`));
  }
}

const levelToSeverity = { critical: "critical", high: "high", medium: "medium", low: "low", informational: "informational" };

// sourceIP is the alert's source address: its group's, else its first
// event's that has one (as the playbooks' ban takes it).
function sourceIP(a) {
  if (a.group?.["source.ip"]) return a.group["source.ip"];
  for (const e of a.events ?? []) if (typeof e?.["source.ip"] === "string") return e["source.ip"];
  return "";
}

// hostOf is the alert's host: its group's host.name, else its only host.
function hostOf(a) {
  if (a.group?.["host.name"]) return a.group["host.name"];
  return (a.hosts ?? []).length === 1 ? a.hosts[0] : "";
}

export async function render(main, api, args) {
  const id = args[0];
  if (!id) throw new Error("no alert named: use #/alert/<id>");
  const path = `/v1/alerts/${encodeURIComponent(id)}`;
  main.append(el("p", {}, el("a", { href: "#/alerts" }, "Alerts")));
  const head = el("div");
  const events = el("article", { class: "card", id: "alert-events" });
  const notes = el("article", { class: "card", id: "alert-notes" });
  const made = el("div", { id: "alert-made", role: "status" });
  let a = await api(path);

  const draw = () => {
    head.replaceChildren(el("h1", {}, `Alert: ${a.rule_title || a.rule_id}`),
      el("article", { class: "card", id: "alert-record" }, facts([
        ["Id", a.id], ["Rule", `${a.rule_title} (${a.rule_id})`],
        ["Level", el("span", { class: `level level-${a.level}` }, a.level)],
        ["Status", el("span", { id: "alert-status" }, a.status)], ["Count", String(a.count ?? 0)],
        ["Group", Object.entries(a.group ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—"],
        ["Hosts", (a.hosts ?? []).join(", ") || "—"], ["Tags", (a.tags ?? []).join(", ") || "—"],
        ["First seen", when(a.first_seen)], ["Last seen", when(a.last_seen)],
        ["Created", when(a.created_time)], ["Updated", when(a.updated_time)],
      ])));
    events.replaceChildren(el("h2", {}, `Events (${(a.events ?? []).length} of ${a.count ?? 0} kept)`),
      ...(a.events ?? []).map((e) => el("pre", { class: "event" }, JSON.stringify(e, null, 2))));
    notes.replaceChildren(el("h2", {}, "Notes"), (a.notes ?? []).length === 0 ? el("p", {}, "No notes.") :
      el("ol", {}, a.notes.map((n) => el("li", {}, `${when(n.time)} ${n.by}${n.status ? ` (${n.status})` : ""}: ${n.comment}`))));
    ack.disabled = a.status !== "open";
    close.disabled = a.status === "closed";
  };

  // Acknowledge and close, with a comment.
  const comment = el("textarea", { id: "alert-comment", name: "alert-comment", rows: "2", maxlength: "4096" });
  const ack = el("button", { type: "button", id: "alert-ack" }, "Acknowledge");
  const close = el("button", { type: "button", id: "alert-close" }, "Close");
  const statusErr = el("div");
  const setStatus = async (verb) => {
    statusErr.replaceChildren();
    try {
      a = await api(`${path}/${verb}`, { method: "POST", body: { comment: comment.value } });
      comment.value = "";
      draw();
    } catch (e) {
      statusErr.replaceChildren(errorBox(e));
    }
  };
  ack.addEventListener("click", () => setStatus("ack"));
  close.addEventListener("click", () => setStatus("close"));
  const triage = el("article", { class: "card", id: "alert-triage" }, el("h2", {}, "Triage"),
    el("p", { class: "field" }, el("label", { for: "alert-comment" }, "Comment"), comment),
    el("p", {}, ack, " ", close), statusErr);

  // The response from the alert.
  const ip = sourceIP(a);
  const host = hostOf(a);
  const input = (id, value) => el("input", { id, name: id, value, required: true });
  const banBtn = el("button", { type: "button", id: "alert-ban", disabled: ip === "" }, ip ? `Ban ${ip}` : "Ban the source (no source address)");
  const quarBtn = el("button", { type: "button", id: "alert-quarantine", disabled: host === "" }, host ? `Quarantine ${host}` : "Quarantine the host (no single host)");
  const incBtn = el("button", { type: "button", id: "alert-incident" }, "Open an incident");
  const decide = (type, target, duration) => {
    const dur = input("decision-duration", duration);
    const reason = input("decision-reason", `${a.rule_title || a.rule_id} (alert ${a.id})`);
    const body = () => ({ type, target, duration: dur.value.trim(), reason: reason.value, alert_id: a.id });
    return confirmAction({
      id: "confirm-decision",
      title: type === "ban" ? `Ban ${target.ip}` : `Quarantine node ${target.node}`,
      fields: [["Duration", dur], ["Reason", reason]],
      describe: () => ({ method: "POST", path: "/v1/decisions", body: body() }),
      run: () => api("/v1/decisions", { method: "POST", body: body() }),
    }).then((r) => r && shown(made, "decision", r));
  };
  banBtn.addEventListener("click", () => decide("ban", { ip }, "1h"));
  quarBtn.addEventListener("click", () => decide("quarantine", { node: host }, "4h"));
  incBtn.addEventListener("click", () => {
    const title = input("incident-title", `${a.rule_title || a.rule_id}${host ? ` on ${host}` : ""}`);
    const sev = el("select", { id: "incident-severity", name: "incident-severity" },
      Object.values(levelToSeverity).map((s) => el("option", { value: s, selected: s === (levelToSeverity[a.level] ?? "medium") }, s)));
    const body = () => ({ title: title.value, severity: sev.value, alerts: [a.id] });
    sev.addEventListener("change", () => title.dispatchEvent(new Event("input")));
    confirmAction({
      id: "confirm-incident", title: "Open an incident with this alert",
      fields: [["Title", title], ["Severity", sev]],
      describe: () => ({ method: "POST", path: "/v1/incidents", body: body() }),
      run: () => api("/v1/incidents", { method: "POST", body: body() }),
    }).then((r) => r && shown(made, "incident", r));
  });
  const respond = el("article", { class: "card", id: "alert-respond" }, el("h2", {}, "Respond"),
    el("p", {}, banBtn, " ", quarBtn, " ", incBtn), made);

  main.append(head, el("div", { class: "grid" }, triage, respond), events, notes);
  draw();
}
