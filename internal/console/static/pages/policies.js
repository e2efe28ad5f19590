// policies.js: policy stores and their Cedar policies.
//
//   #/policies                the stores (GET /v1/authz/stores)
//   #/policies/<store>        its policies (GET .../policies), a form for a
//                             new one, and the "try a request" box
//   #/policies/<store>/<name> one policy in an editor; saving it
//                             (PUT .../policies/<name>) shows a syntax
//                             error at its line: the API's 400 names
//                             NAME:LINE:COL, and the editor selects that line
//
// The "try a request" box asks the decision API
// (POST /v1/authz/stores/<store>/check) and shows allow or deny with the
// policies that decided it and any evaluation errors. Everything goes
// through the API with the user's token: what the user may not read or
// write, the API refuses, and the page shows the refusal.
import { el, errorBox, table, when } from "../dom.js";

const storePath = (store) => `/v1/authz/stores/${encodeURIComponent(store)}`;

export async function render(main, api, args) {
  const [store, name] = args;
  if (store === undefined) return stores(main, api);
  if (name === undefined) return policies(main, api, store);
  return policy(main, api, store, name);
}

async function stores(main, api) {
  main.append(el("h1", {}, "Policy stores"));
  const r = await api("/v1/authz/stores");
  const ss = r.stores ?? [];
  const t = table("Policy stores", ["Store"], ss.map((s) =>
    [el("a", { href: `#/policies/${encodeURIComponent(s)}` }, s)]));
  t.querySelector("table").id = "policy-stores";
  main.append(t);
  if (ss.length === 0) main.append(el("p", {}, "No policy stores."));
}

async function policies(main, api, store) {
  main.append(el("p", {}, el("a", { href: "#/policies" }, "Policy stores")),
    el("h1", {}, `Policies of the store ${store}`));
  const r = await api(`${storePath(store)}/policies`);
  const ps = r.policies ?? [];
  const t = table(`Policies of ${store}`, ["Policy"], ps.map((p) =>
    [el("a", { href: `#/policies/${encodeURIComponent(store)}/${encodeURIComponent(p)}` }, p)]));
  t.querySelector("table").id = "policy-list";
  main.append(t);
  if (ps.length === 0) main.append(el("p", {}, "No policies in this store."));

  const nameIn = el("input", { id: "policy-new-name", name: "policy-new-name", required: true, autocomplete: "off", spellcheck: "false" });
  const form = el("form", { id: "policy-new", class: "filters" },
    el("p", { class: "field" }, el("label", { for: "policy-new-name" }, "New policy's name"), nameIn),
    el("button", { type: "submit" }, "Write a new policy"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = nameIn.value.trim();
    if (n !== "") location.hash = `#/policies/${encodeURIComponent(store)}/${encodeURIComponent(n)}`;
  });
  main.append(el("section", { class: "card", "aria-labelledby": "policy-new-h" },
    el("h2", { id: "policy-new-h" }, "New policy"), form));
  main.append(tryBox(api, store));
}

async function policy(main, api, store, name) {
  main.append(el("p", {}, el("a", { href: "#/policies" }, "Policy stores"), " / ",
    el("a", { href: `#/policies/${encodeURIComponent(store)}` }, store)),
  el("h1", {}, `Policy ${name}`));
  const path = `${storePath(store)}/policies/${encodeURIComponent(name)}`;
  let p = null;
  try {
    p = await api(path);
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  const meta = el("dl", { id: "policy-meta" });
  const showMeta = (p) => {
    meta.replaceChildren(
      el("dt", {}, "Store"), el("dd", {}, store),
      el("dt", {}, "Version"), el("dd", {}, p ? String(p.version) : "not written yet"),
      el("dt", {}, "Created"), el("dd", {}, when(p?.created_time)),
      el("dt", {}, "Updated"), el("dd", {}, when(p?.updated_time)));
  };
  showMeta(p);

  const editor = el("textarea", { id: "policy-text", name: "policy-text", rows: "16", cols: "80",
    spellcheck: "false", autocomplete: "off", class: "code", "aria-describedby": "policy-status" });
  editor.value = p?.policy ?? "";
  const status = el("p", { id: "policy-status", role: "status" });
  const save = el("button", { type: "submit", id: "policy-save" }, "Save");
  const form = el("form", { id: "policy-form" },
    el("p", { class: "field" }, el("label", { for: "policy-text" }, "Cedar text"), editor),
    el("p", {}, save), status);
  editor.addEventListener("input", () => editor.removeAttribute("aria-invalid"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    status.className = "";
    status.textContent = "Saving…";
    editor.removeAttribute("aria-invalid");
    try {
      const w = await api(path, { method: "PUT", body: { policy: editor.value } });
      showMeta(w);
      status.textContent = `Saved: version ${w.version}.`;
    } catch (err) {
      status.className = "error";
      const at = errorLine(err.message);
      if (err.status === 400 && at !== null) {
        status.textContent = `Line ${at.line}, column ${at.col}: ${err.message}`;
        editor.setAttribute("aria-invalid", "true");
        selectLine(editor, at.line);
      } else {
        status.textContent = err.message;
      }
    } finally {
      save.disabled = false;
    }
  });
  main.append(el("section", { class: "card", "aria-labelledby": "policy-edit-h" },
    el("h2", { id: "policy-edit-h" }, p ? "Edit" : "Write"), meta, form));
  main.append(tryBox(api, store));
}

// errorLine finds LINE and COL in an API error "400: NAME:LINE:COL: ...".
// The name may itself hold ":" (it does not in Warden's names, which are
// [A-Za-z0-9._-]), so the first ":<digits>:<digits>:" is taken.
export function errorLine(message) {
  const m = /:(\d+):(\d+):/.exec(message);
  if (!m) return null;
  return { line: Number(m[1]), col: Number(m[2]) };
}

// selectLine selects line n (1-based) of a textarea and scrolls it into
// view, so the user sees where the error is.
function selectLine(ta, n) {
  const lines = ta.value.split("\n");
  const ln = Math.min(Math.max(n, 1), lines.length);
  let start = 0;
  for (let i = 0; i < ln - 1; i++) start += lines[i].length + 1;
  const end = start + lines[ln - 1].length;
  ta.focus();
  ta.setSelectionRange(start, end);
  // Scroll the line near the top: the line height of the textarea times
  // the lines above it.
  const lh = parseFloat(getComputedStyle(ta).lineHeight) || 18;
  ta.scrollTop = Math.max(0, (ln - 3) * lh);
}

// tryBox is the "try a request" form: a decision API call on store.
function tryBox(api, store) {
  const field = (id, label, attrs, tag = "input") => {
    const f = el(tag, { id, name: id, autocomplete: "off", spellcheck: "false", ...attrs });
    return [f, el("p", { class: "field" }, el("label", { for: id }, label), f)];
  };
  const [principal, pf] = field("try-principal", "Principal (Type::\"id\")", { required: true, placeholder: "User::\"alice\"" });
  const [action, af] = field("try-action", "Action", { required: true, placeholder: "Action::\"read\"" });
  const [resource, rf] = field("try-resource", "Resource", { required: true, placeholder: "Document::\"42\"" });
  const [context, cf] = field("try-context", "Context (a JSON object, optional)", { rows: "3", class: "code" }, "textarea");
  const [entities, ef] = field("try-entities", "Entities (a Cedar JSON entity array, optional)", { rows: "3", class: "code" }, "textarea");
  const out = el("div", { id: "try-result", role: "status" });
  const form = el("form", { id: "try-form" }, pf, af, rf, cf, ef, el("button", { type: "submit" }, "Ask"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.replaceChildren("Asking…");
    const body = { principal: principal.value.trim(), action: action.value.trim(), resource: resource.value.trim() };
    try {
      for (const [k, ta] of [["context", context], ["entities", entities]]) {
        const v = ta.value.trim();
        if (v === "") continue;
        try {
          body[k] = JSON.parse(v);
        } catch (e) {
          throw new Error(`${k}: not JSON: ${e.message}`);
        }
      }
      const r = await api(`${storePath(store)}/check`, { method: "POST", body });
      const allow = r.decision === "allow";
      out.replaceChildren(
        el("p", {}, "Decision: ", el("strong", { id: "try-decision", class: allow ? "good" : "bad" }, r.decision)),
        el("p", {}, (r.reasons ?? []).length > 0 ? "Decided by:" : (allow ? "" : "No policy permits it (deny by default).")),
        el("ul", { id: "try-reasons" }, (r.reasons ?? []).map((x) => el("li", {}, el("code", {}, x)))),
        (r.errors ?? []).length > 0 ? el("div", {}, el("p", { class: "error" }, "Evaluation errors (they deny):"),
          el("ul", { id: "try-errors" }, r.errors.map((x) => el("li", {}, x)))) : null);
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  });
  return el("section", { class: "card", "aria-labelledby": "try-h" },
    el("h2", { id: "try-h" }, `Try a request on ${store}`), form);
}
