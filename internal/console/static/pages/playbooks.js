// playbooks.js: the playbooks (GET /v1/playbooks), each one's YAML
// (GET /v1/playbooks/{name}), and their switches. The API has no "enable"
// or "simulate" call: a playbook's `enabled` and `mode` are keys of its
// YAML, so switching one puts the playbook again (POST /v1/playbooks,
// {"yaml": ...}) with that top-level key changed, as a new version owned by
// the caller, after showing the YAML it will send. "Install the built-in
// playbook" puts ssh-brute-force (POST /v1/playbooks?builtin=true). In
// `mode: simulate` a playbook's decisions are stored and streamed as
// simulated and enforced by no one (docs/response.md). #/playbooks, or
// #/playbooks/<name> to show one playbook's YAML.
import { el, errorBox, when } from "../dom.js";
import { confirmAction } from "./alert.js";

// setKey returns yaml with its top-level key set to value: the key's line
// replaced, or a line added after "name:" (or first).
export function setKey(yaml, key, value) {
  const re = new RegExp(`^${key}:[^\\n]*$`, "m");
  if (re.test(yaml)) return yaml.replace(re, `${key}: ${value}`);
  const name = /^name:[^\n]*$/m;
  const m = name.exec(yaml);
  if (m) return yaml.slice(0, m.index + m[0].length) + `\n${key}: ${value}` + yaml.slice(m.index + m[0].length);
  return `${key}: ${value}\n${yaml}`;
}

export async function render(main, api, args) {
  main.append(el("h1", {}, "Playbooks"));
  const body = el("tbody");
  const info = el("p", { role: "status", id: "playbooks-info" });
  const err = el("div", { id: "playbooks-error" });
  const view = el("article", { class: "card", id: "playbook-view", hidden: true });
  const builtin = el("button", { type: "button", id: "playbooks-builtin" }, "Install the built-in playbook (ssh-brute-force)");
  builtin.addEventListener("click", async () => {
    const r = await confirmAction({
      id: "confirm-playbook", title: "Install the built-in playbook",
      describe: () => ({ method: "POST", path: "/v1/playbooks?builtin=true" }),
      run: () => api("/v1/playbooks", { method: "POST", query: { builtin: "true" } }),
    });
    if (r) {
      info.textContent = `Stored ${r.name}, version ${r.version}.`;
      await load();
    }
  });

  const show = async (name) => {
    err.replaceChildren();
    try {
      const p = await api(`/v1/playbooks/${encodeURIComponent(name)}`);
      view.hidden = false;
      view.replaceChildren(el("h2", {}, `Playbook ${p.name}, version ${p.version}`),
        el("p", {}, `${p.enabled ? "enabled" : "disabled"}, ${p.mode}, owned by ${p.owner}, updated ${when(p.updated_time)}`),
        el("pre", { id: "playbook-yaml", class: "yaml" }, p.yaml ?? ""));
      return p;
    } catch (e) {
      err.replaceChildren(errorBox(e));
      return null;
    }
  };
  // change puts name again with key set to value, after confirmation.
  const change = async (name, key, value, what) => {
    const p = await show(name);
    if (!p) return;
    const yaml = setKey(p.yaml ?? "", key, value);
    const r = await confirmAction({
      id: "confirm-playbook", title: `${what} playbook ${name}`,
      describe: () => ({ method: "POST", path: "/v1/playbooks", body: { yaml } }),
      run: () => api("/v1/playbooks", { method: "POST", body: { yaml } }),
    });
    if (r) {
      info.textContent = `Stored ${r.name}, version ${r.version}: ${r.enabled ? "enabled" : "disabled"}, ${r.mode}.`;
      await load();
      await show(name);
    }
  };

  const load = async () => {
    try {
      const r = await api("/v1/playbooks");
      const ps = r.playbooks ?? [];
      body.replaceChildren(...ps.map((p) => {
        const b = (cls, label, fn) => {
          const x = el("button", { type: "button", class: cls, "data-name": p.name }, label);
          x.addEventListener("click", fn);
          return x;
        };
        return el("tr", { "data-name": p.name },
          el("th", { scope: "row" }, p.name), el("td", {}, p.description || "—"),
          el("td", {}, p.mode), el("td", {}, p.enabled ? "yes" : "no"), el("td", {}, p.owner),
          el("td", { class: "num" }, String(p.version)), el("td", {}, when(p.updated_time)),
          el("td", {}, b("playbook-show", "View", () => show(p.name)), " ",
            p.mode === "simulate" ? b("playbook-enforce", "Enforce", () => change(p.name, "mode", "enforce", "Enforce"))
              : b("playbook-simulate", "Simulate", () => change(p.name, "mode", "simulate", "Simulate")), " ",
            p.enabled ? b("playbook-disable", "Disable", () => change(p.name, "enabled", "false", "Disable"))
              : b("playbook-enable", "Enable", () => change(p.name, "enabled", "true", "Enable")), " ",
            b("playbook-delete", "Delete", async () => {
              const ok = await confirmAction({
                id: "confirm-playbook", title: `Delete playbook ${p.name}`,
                describe: () => ({ method: "DELETE", path: `/v1/playbooks/${p.name}` }),
                run: () => api(`/v1/playbooks/${encodeURIComponent(p.name)}`, { method: "DELETE" }).then(() => true),
              });
              if (ok) {
                view.hidden = true;
                await load();
              }
            })));
      }));
      info.textContent = ps.length === 0 ? "No playbooks." : `${ps.length} playbooks`;
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  };
  main.append(el("p", {}, builtin), el("div", { class: "table-wrap" }, el("table", { id: "playbooks-table" },
    el("caption", {}, "Playbooks"),
    el("thead", {}, el("tr", {}, ["Name", "Description", "Mode", "Enabled", "Owner", "Version", "Updated", ""].map((h) => el("th", { scope: "col" }, h)))),
    body)), info, err, view);
  await load();
  if (args[0]) await show(args[0]);
}
