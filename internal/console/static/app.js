// app.js: the console's shell. It keeps the session token, calls the API,
// shows the login page, and routes by the URL's fragment to page modules.
//
// Session: the token lives in the module variable `session` only: not in
// localStorage, sessionStorage or a cookie, so a reload asks to log in
// again and no other site can make the browser send it (no CSRF surface).
// A 401 from the API ends the session in the console and shows the login
// page; idle sessions end by the server's session idle timeout.
//
// Routing: "#/<name>/<arg>/..." loads the page module static/pages/<name>.js
// (names are lowercase letters, digits and "-"; anything else is "no such
// page"), each argument URI-decoded.
//
// The page-module interface. A page is an ES module in static/pages/ that
// exports
//
//     export async function render(main, api, args)
//
//   main  an empty <section> element, already in the page, that the module
//         fills. It is detached when the user goes to another page, so a
//         module that finishes late writes into a section no one sees.
//   api   the API helper: api(path, {method, body, query, text}) fetches
//         path (e.g. "/v1/nodes") with the session's token as
//         "Authorization: Bearer", query an object of query parameters
//         (empty values are left out), body a value sent as JSON; it
//         resolves to the parsed JSON answer (or the text, with text: true;
//         null for 204), and rejects with an Error whose message is
//         "<status>: <the API's error>" (err.status holds the status). A 401
//         also ends the session and shows the login page.
//   args  the route's further segments, decoded: ["web-1"] for #/node/web-1.
//
// When render's promise settles, the shell marks main with
// data-state="ready" (or "error", and shows the error): tests wait on it.
// Modules put data in the DOM only as text (dom.js), never with innerHTML.

import { el, errorBox } from "./dom.js";

let session = null; // {token, user}: memory only

// APIError is what api rejects with.
class APIError extends Error {
  constructor(status, message) {
    super(`${status}: ${message}`);
    this.status = status;
  }
}

// api is the page modules' only way to the server (see above).
export async function api(path, { method = "GET", body, query, text = false, auth = true } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { Accept: text ? "text/plain" : "application/json" };
  if (auth && session) headers.Authorization = `Bearer ${session.token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  if (!res.ok) {
    let msg = res.statusText || "request failed";
    try {
      const j = await res.json();
      if (Array.isArray(j.errors) && j.errors.length > 0) msg = j.errors.join("; ");
    } catch {
      // not JSON: keep the status text
    }
    if (res.status === 401 && auth && session) {
      endSession("Your session ended; log in again.");
    }
    throw new APIError(res.status, msg);
  }
  if (res.status === 204) return null;
  return text ? res.text() : res.json();
}

function endSession(why) {
  session = null;
  showLogin(why);
}

const main = () => document.getElementById("main");

// section replaces main's content with a fresh section for one page.
function section(page) {
  const s = el("section", { "data-page": page, "aria-busy": "true" });
  main().replaceChildren(s);
  return s;
}

function setNav(page) {
  const nav = document.getElementById("nav");
  nav.hidden = session === null;
  document.getElementById("whoami").textContent = session ? session.user : "";
  for (const a of nav.querySelectorAll("a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// route renders the page the fragment names.
async function route() {
  if (session === null) {
    showLogin("");
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "");
  if (parts.length === 0) {
    location.replace("#/overview");
    return;
  }
  let args;
  try {
    args = parts.slice(1).map(decodeURIComponent);
  } catch {
    args = null;
  }
  const name = parts[0];
  const s = section(name);
  setNav(name);
  document.title = `Warden: ${name}`;
  try {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name) || args === null) throw new Error(`no such page: ${name}`);
    let mod;
    try {
      mod = await import(`./pages/${name}.js`);
    } catch {
      throw new Error(`no such page: ${name}`);
    }
    await mod.render(s, api, args);
    s.dataset.state = "ready";
  } catch (err) {
    s.append(errorBox(err));
    s.dataset.state = "error";
  } finally {
    s.removeAttribute("aria-busy");
  }
}

// showLogin shows the login form: a token, or a user name, a password and
// (when the user has one) a TOTP code.
function showLogin(why) {
  const s = section("login");
  setNav("");
  document.title = "Warden: log in";
  const status = el("p", { id: "login-status", role: "status", class: why ? "error" : null }, why);
  const field = (id, label, attrs) => el("p", { class: "field" },
    el("label", { for: id }, label), el("input", { id, name: id, ...attrs }));

  const pw = el("form", { id: "login-password-form", class: "card" },
    el("h2", {}, "User name and password"),
    field("login-user", "User name", { autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" }),
    field("login-password", "Password", { type: "password", autocomplete: "current-password", required: true }),
    field("login-totp", "Authenticator code (if you have one)", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "32" }),
    el("button", { type: "submit" }, "Log in"));
  const tk = el("form", { id: "login-token-form", class: "card" },
    el("h2", {}, "Token"),
    field("login-token", "Token", { type: "password", autocomplete: "off", required: true }),
    el("button", { type: "submit" }, "Log in with the token"));

  pw.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.textContent = "Logging in…";
    status.className = "";
    try {
      const r = await api("/v1/auth/login", { method: "POST", auth: false, body: {
        user: pw.elements["login-user"].value,
        password: pw.elements["login-password"].value,
        totp: pw.elements["login-totp"].value.trim(),
      } });
      if (r.mfa_required) {
        status.textContent = `A second factor is required (${(r.methods ?? []).join(", ")}): enter your authenticator code.`;
        pw.elements["login-totp"].focus();
        return;
      }
      start(r.token, r.user);
    } catch (err) {
      status.textContent = err.message;
      status.className = "error";
    }
  });
  tk.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = tk.elements["login-token"].value.trim();
    status.textContent = "Checking the token…";
    status.className = "";
    try {
      session = { token, user: "" };
      const me = await api("/v1/auth/whoami");
      start(token, me.principal ?? me.user ?? "");
    } catch (err) {
      session = null;
      setNav("");
      status.textContent = err.message;
      status.className = "error";
    }
  });
  s.append(el("h1", {}, "Log in to Warden"), status, el("div", { class: "grid" }, pw, tk));
  s.removeAttribute("aria-busy");
  s.dataset.state = "ready";
  pw.elements["login-user"].focus();
}

function start(token, user) {
  session = { token, user: user || "" };
  if (location.hash === "" || location.hash === "#/" || location.hash === "#/login") location.hash = "#/overview";
  else route();
}

async function logout() {
  try {
    await api("/v1/auth/logout", { method: "POST" });
  } catch {
    // the session may be over already; forget it either way
  }
  session = null;
  location.hash = "#/overview";
  showLogin("Logged out.");
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", logout);
route();
