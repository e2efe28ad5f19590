// secrets.js: KV secrets and transit keys, metadata only.
//
//   #/secrets                    the top level of the KV store and the
//                                transit keys
//   #/secrets/kv/<a>/<b>         the KV names under the folder a/b/
//   #/secrets/secret/<a>/<b>     the secret a/b: its versions and times
//
// A secret's value is never read unless the user asks for one version
// ("Reveal", then a confirmation): that is a GET /v1/kv/data/<path>?version=N,
// recorded in the audit log like any read, and refused if the user's
// policies do not allow it. Listing uses GET /v1/kv/metadata/<prefix>?list=true
// and GET /v1/kv/metadata/<path>, which carry no values.
//
// Transit keys: GET /v1/transit/keys?list=true, then each key's
// GET /v1/transit/keys/<name>: type, versions, rotation settings. The page
// shows no key material (no public key either).
import { el, errorBox, table, when } from "../dom.js";

const maxKeys = 100; // transit keys read for the table
const kvPath = (segs) => segs.map(encodeURIComponent).join("/");

export async function render(main, api, args) {
  const [mode, ...segs] = args;
  if (mode === "secret" && segs.length > 0) return secret(main, api, segs);
  if (mode === "kv" || mode === undefined) {
    main.append(el("h1", {}, "Secrets"));
    await folder(main, api, segs);
    if (mode === undefined) await transitKeys(main, api);
    return;
  }
  throw new Error(`no such secrets page: ${mode}`);
}

function crumbs(segs, last) {
  const out = [el("a", { href: "#/secrets" }, "KV")];
  segs.forEach((s, i) => {
    out.push(" / ");
    out.push(i === segs.length - 1 && last ? s : el("a", { href: `#/secrets/kv/${kvPath(segs.slice(0, i + 1))}` }, s));
  });
  return el("p", { id: "kv-crumbs" }, out);
}

async function folder(main, api, segs) {
  const prefix = segs.length > 0 ? `${kvPath(segs)}/` : "";
  main.append(el("h2", {}, segs.length > 0 ? `KV: ${segs.join("/")}/` : "KV secrets"), crumbs(segs, false));
  let keys = [];
  try {
    const r = await api(`/v1/kv/metadata/${prefix}`, { query: { list: "true" } });
    keys = r.keys ?? [];
  } catch (err) {
    if (err.status !== 404) throw err;
  }
  if (keys.length === 0) {
    main.append(el("p", { id: "kv-empty" }, "Nothing stored here."));
    return;
  }
  const t = table("Names, folders ending in /", ["Name", "Kind"], keys.map((k) => {
    const isFolder = k.endsWith("/");
    const name = isFolder ? k.slice(0, -1) : k;
    const href = `#/secrets/${isFolder ? "kv" : "secret"}/${kvPath([...segs, name])}`;
    return [el("a", { href }, k), isFolder ? "folder" : "secret"];
  }));
  t.querySelector("table").id = "kv-list";
  main.append(t);
}

async function secret(main, api, segs) {
  const path = kvPath(segs);
  main.append(el("h1", {}, `Secret ${segs.join("/")}`), crumbs(segs, true));
  const m = await api(`/v1/kv/metadata/${path}`);
  main.append(el("section", { class: "card", "aria-labelledby": "kv-meta-h" },
    el("h2", { id: "kv-meta-h" }, "Metadata"),
    el("dl", { id: "kv-meta" },
      el("dt", {}, "Current version"), el("dd", {}, String(m.current_version)),
      el("dt", {}, "Oldest version kept"), el("dd", {}, String(m.oldest_version)),
      el("dt", {}, "Versions kept at most"), el("dd", {}, String(m.max_versions)),
      el("dt", {}, "Created"), el("dd", {}, when(m.created_time)),
      el("dt", {}, "Updated"), el("dd", {}, when(m.updated_time)))));

  const shown = el("div", { id: "kv-value", "aria-live": "polite" });
  const versions = Object.entries(m.versions ?? {}).map(([n, v]) => [Number(n), v]).sort((a, b) => b[0] - a[0]);
  const rows = versions.map(([n, v]) => {
    const gone = v.destroyed || (v.deletion_time ?? "") !== "";
    const reveal = el("button", { type: "button", class: "link", id: `kv-reveal-${n}`,
      "aria-label": `Reveal version ${n}` }, "Reveal");
    reveal.addEventListener("click", () => confirmReveal(api, path, segs.join("/"), n, shown));
    return [String(n), when(v.created_time), when(v.deletion_time), v.destroyed ? "yes" : "no",
      gone ? "not readable" : reveal];
  });
  const t = table("Versions, newest first", ["Version", "Created", "Deleted", "Destroyed", "Value"], rows);
  t.querySelector("table").id = "kv-versions";
  main.append(t, shown);
}

// confirmReveal asks before reading a value: the read is audited.
function confirmReveal(api, path, name, n, shown) {
  const yes = el("button", { type: "button", id: "kv-reveal-confirm" }, `Reveal version ${n}`);
  const no = el("button", { type: "button", id: "kv-reveal-cancel" }, "Cancel");
  const box = el("section", { class: "card", role: "alertdialog", "aria-labelledby": "kv-confirm-h", "aria-describedby": "kv-confirm-p" },
    el("h2", { id: "kv-confirm-h" }, "Reveal a secret's value?"),
    el("p", { id: "kv-confirm-p" }, `Reading version ${n} of ${name} is recorded in the audit log under your name, and your policies must allow it.`),
    el("p", { class: "pager" }, yes, no));
  no.addEventListener("click", () => shown.replaceChildren());
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      const r = await api(`/v1/kv/data/${path}`, { query: { version: n } });
      const hide = el("button", { type: "button", id: "kv-hide" }, "Hide");
      hide.addEventListener("click", () => shown.replaceChildren());
      const entries = Object.entries(r.data ?? {});
      shown.replaceChildren(el("section", { class: "card", "aria-labelledby": "kv-value-h" },
        el("h2", { id: "kv-value-h" }, `Version ${r.version} of ${name}`),
        el("dl", { id: "kv-data" }, entries.flatMap(([k, v]) =>
          [el("dt", {}, k), el("dd", {}, el("code", {}, typeof v === "string" ? v : JSON.stringify(v)))])),
        entries.length === 0 ? el("p", {}, "No fields.") : null,
        el("p", {}, hide)));
      hide.focus();
    } catch (err) {
      shown.replaceChildren(errorBox(err));
    }
  });
  shown.replaceChildren(box);
  yes.focus();
}

function duration(seconds) {
  if (!seconds) return "off";
  const h = seconds / 3600;
  return h >= 24 && h % 24 === 0 ? `${h / 24} days` : h >= 1 ? `${h} h` : `${seconds} s`;
}

function created(v) {
  if (typeof v === "number") return when(new Date(v * 1000).toISOString());
  return when(v?.creation_time);
}

async function transitKeys(main, api) {
  main.append(el("h2", {}, "Transit keys"));
  let names = [];
  try {
    const r = await api("/v1/transit/keys", { query: { list: "true" } });
    names = r.data?.keys ?? [];
  } catch (err) {
    if (err.status !== 404) {
      main.append(errorBox(err));
      return;
    }
  }
  if (names.length === 0) {
    main.append(el("p", { id: "transit-empty" }, "No transit keys."));
    return;
  }
  const read = names.slice(0, maxKeys);
  const keys = await Promise.all(read.map(async (name) => {
    try {
      return (await api(`/v1/transit/keys/${encodeURIComponent(name)}`)).data;
    } catch (err) {
      return { name, error: err };
    }
  }));
  const t = table(`Transit keys (${read.length} of ${names.length}), no key material`,
    ["Name", "Type", "Latest version", "Latest created", "Decrypts from version", "Auto-rotate", "Exportable"],
    keys.map((k) => k.error ? [k.name, errorBox(k.error), null, null, null, null, null] : [
      k.name, k.type, String(k.latest_version), created(k.keys?.[String(k.latest_version)]),
      String(k.min_decryption_version), duration(k.auto_rotate_period), k.exportable ? "yes" : "no"]));
  t.querySelector("table").id = "transit-keys";
  main.append(t);
}
