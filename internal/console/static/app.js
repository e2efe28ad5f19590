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
//     export async function render(main, api, args, shell)
//
//   main  an empty <section> element, already in the page, that the module
//         fills. It is detached when the user goes to another page, so a
//         module that finishes late writes into a section no one sees.
//   api   the API helper: api(path, {method, body, query, text}) fetches
//         path (e.g. "/v1/nodes") with the session's token as
//         "Authorization: Bearer", query an object of query parameters
//         (empty values are left out), body a value sent as JSON; it
//         resolves to the parsed JSON answer (or the text, with text: true
//         or when the answer is not JSON; null for 204), and rejects with an Error whose message is
//         "<status>: <the API's error>" (err.status holds the status). A 401
//         also ends the session and shows the login page.
//   args  the route's further segments, decoded: ["web-1"] for #/node/web-1.
//
//   shell an object with the session's user name (shell.user) and
//         shell.endSession(message), which forgets the token and shows the
//         login page with message (a page whose action ends the user's
//         sessions on the server, such as registering a factor, calls it).
//
// When render's promise settles, the shell marks main with
// data-state="ready" (or "error", and shows the error): tests wait on it.
// Modules put data in the DOM only as text (dom.js), never with innerHTML.

import { el, errorBox } from "./dom.js";
import { supported as passkeysSupported, getPasskey, explain as explainPasskey, toB64u } from "./webauthn.js";

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
  // A route that answers text (the audit checkpoint, a signed note) is
  // read as text whatever the caller asked.
  const json = (res.headers.get("Content-Type") ?? "").includes("json");
  return text || !json ? res.text() : res.json();
}

// endSession forgets the token and shows the login page with why (an
// error unless error is false).
function endSession(why, error = true) {
  session = null;
  showLogin(why, error);
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

// scrollRegions makes every table-wrap in s that a page built without
// dom.js's table() reachable by keyboard (a region that may scroll
// sideways must take the focus, so a keyboard can scroll it), named by its
// table's caption.
function scrollRegions(s) {
  for (const w of s.querySelectorAll(".table-wrap:not([tabindex])")) {
    w.tabIndex = 0;
    w.setAttribute("role", "region");
    const cap = w.querySelector("caption");
    w.setAttribute("aria-label", cap?.textContent || "Table");
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
    await mod.render(s, api, args, { user: session.user, endSession });
    scrollRegions(s);
    s.dataset.state = "ready";
  } catch (err) {
    s.append(errorBox(err));
    s.dataset.state = "error";
  } finally {
    s.removeAttribute("aria-busy");
  }
}

// showLogin shows the login page: a user name and password with a second
// factor (an authenticator code, or a passkey), a token, and single sign-on
// when the server has an OpenID provider configured for this console.
function showLogin(why, error = true) {
  const s = section("login");
  setNav("");
  document.title = "Warden: log in";
  const status = el("p", { id: "login-status", role: "status", class: why && error ? "error" : null }, why);
  const say = (text, error = false) => {
    status.textContent = text;
    status.className = error ? "error" : "";
  };
  const field = (id, label, attrs) => el("p", { class: "field" },
    el("label", { for: id }, label), el("input", { id, name: id, ...attrs }));

  const passkeyButton = el("button", { type: "button", id: "login-passkey", class: "secondary" }, "Log in with a passkey");
  const pw = el("form", { id: "login-password-form", class: "card", "aria-labelledby": "login-password-h" },
    el("h2", { id: "login-password-h" }, "User name and password"),
    field("login-user", "User name", { autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" }),
    field("login-password", "Password", { type: "password", autocomplete: "current-password", required: true }),
    field("login-totp", "Authenticator code (if you have one)", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "32" }),
    el("p", { class: "actions" }, el("button", { type: "submit" }, "Log in"), passkeyButton));
  const tk = el("form", { id: "login-token-form", class: "card", "aria-labelledby": "login-token-h" },
    el("h2", { id: "login-token-h" }, "Token"),
    field("login-token", "Token", { type: "password", autocomplete: "off", required: true }),
    el("button", { type: "submit" }, "Log in with the token"));
  // Shown always: no public route says whether a provider is configured
  // (and a probe that fails would be an error on the browser's console);
  // without one, the button says so.
  const sso = el("div", { id: "login-sso", class: "card", "aria-labelledby": "login-sso-h" },
    el("h2", { id: "login-sso-h" }, "Single sign-on"),
    el("p", {}, "Log in with your organization's identity provider."),
    el("button", { type: "button", id: "login-sso-button" }, "Single sign-on"));

  pw.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    say("Logging in…");
    try {
      const r = await api("/v1/auth/login", { method: "POST", auth: false, body: {
        user: pw.elements["login-user"].value,
        password: pw.elements["login-password"].value,
        totp: pw.elements["login-totp"].value.trim(),
      } });
      if (r.mfa_required) {
        const methods = r.methods ?? [];
        const ways = [];
        if (methods.includes("totp")) ways.push("enter your authenticator code");
        if (methods.includes("webauthn")) ways.push("use your passkey");
        say(`A second factor is required (${methods.join(", ")}): ${ways.join(", or ") || "enter your authenticator code"}.`);
        if (methods.includes("totp") || !methods.includes("webauthn")) pw.elements["login-totp"].focus();
        else passkeyButton.focus();
        return;
      }
      start(r.token, r.user);
    } catch (err) {
      say(err.message, true);
    }
  });
  // A passkey is the second factor after the password (docs/people.md):
  // the password opens the ceremony, the authenticator's assertion ends it.
  passkeyButton.addEventListener("click", async () => {
    if (!pw.reportValidity()) return;
    if (!passkeysSupported()) {
      say("This browser cannot use passkeys on this page (they need https, or http on localhost).", true);
      return;
    }
    const user = pw.elements["login-user"].value;
    say("Checking the password…");
    passkeyButton.disabled = true;
    try {
      const c = await api("/v1/auth/webauthn/login/begin", { method: "POST", auth: false,
        body: { user, password: pw.elements["login-password"].value } });
      say("Waiting for your passkey…");
      let credential;
      try {
        credential = await getPasskey(c.options);
      } catch (err) {
        throw explainPasskey(err);
      }
      const r = await api("/v1/auth/webauthn/login/finish", { method: "POST", auth: false,
        body: { user, state: c.state, credential } });
      start(r.token, r.user);
    } catch (err) {
      say(err.message, true);
    } finally {
      passkeyButton.disabled = false;
    }
  });
  tk.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = tk.elements["login-token"].value.trim();
    say("Checking the token…");
    try {
      session = { token, user: "" };
      const me = await api("/v1/auth/whoami");
      start(token, principalName(me.principal) || me.user || "");
    } catch (err) {
      session = null;
      setNav("");
      say(err.message, true);
    }
  });
  sso.querySelector("button").addEventListener("click", async () => {
    say("Going to the identity provider…");
    try {
      await oidcBegin();
    } catch (err) {
      if (err.status === 503) say("Single sign-on is not configured on this server (an administrator sets it up with warden auth oidc config).", true);
      else if (err.status === 400 && err.message.includes("redirect_uri")) say(`Single sign-on is not set up for this console's address: its redirect URIs must include ${oidcRedirect()}.`, true);
      else say(err.message, true);
    }
  });
  s.append(el("h1", {}, "Log in to Warden"), status, el("div", { class: "grid" }, pw, tk, sso));
  s.removeAttribute("aria-busy");
  s.dataset.state = "ready";
  pw.elements["login-user"].focus();
}

// principalName is the name in a principal such as User::"alice".
function principalName(p) {
  const m = /^User::"(.*)"$/.exec(p ?? "");
  return m ? m[1] : p ?? "";
}

// Single sign-on (OpenID Connect, authorization code with PKCE; the
// server keeps the client secret and the PKCE verifier sealed in the
// state). The console asks the server for the provider's URL with its
// redirect URI, <origin>/ui/oidc-callback, and a nonce of its own; it keeps
// the state and the nonce in sessionStorage (this tab only, for the round
// trip; never the token) and goes to the provider. The provider sends the
// browser back to /ui/oidc-callback?code=…&state=…, served index.html like
// every /ui/ path; oidcFinish checks the state is the one it kept and
// trades the code for a session. The redirect URI must be one of the
// configuration's redirect_uris.
const oidcKey = "warden-oidc";
const oidcRedirect = () => `${location.origin}/ui/oidc-callback`;

function nonce() {
  return toB64u(crypto.getRandomValues(new Uint8Array(32)));
}

async function oidcBegin() {
  const n = nonce();
  const r = await api("/v1/auth/oidc/auth_url", { method: "POST", auth: false,
    body: { redirect_uri: oidcRedirect(), client_nonce: n } });
  sessionStorage.setItem(oidcKey, JSON.stringify({ state: r.state, nonce: n }));
  location.assign(r.auth_url);
}

// oidcFinish ends a single sign-on round trip when the page is the
// callback; it returns false when it is not.
function oidcFinish() {
  if (location.pathname !== "/ui/oidc-callback") return false;
  const q = new URLSearchParams(location.search);
  let kept = null;
  try {
    kept = JSON.parse(sessionStorage.getItem(oidcKey) ?? "null");
  } catch {
    kept = null;
  }
  sessionStorage.removeItem(oidcKey);
  // The code leaves the address bar (and the history) at once.
  history.replaceState(null, "", "/ui/#/overview");
  (async () => {
    showLogin("Finishing single sign-on…", false);
    try {
      if (q.get("error")) throw new Error(`The identity provider refused: ${q.get("error")} ${q.get("error_description") ?? ""}`.trim());
      if (!kept || !q.get("state") || q.get("state") !== kept.state) {
        throw new Error("This single sign-on answer is not for a login this tab began: start again.");
      }
      const r = await api("/v1/auth/oidc/callback", { method: "POST", auth: false,
        body: { state: kept.state, code: q.get("code") ?? "", client_nonce: kept.nonce } });
      start(r.token, r.user);
    } catch (err) {
      showLogin(err.message);
    }
  })();
  return true;
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
  showLogin("Logged out.", false);
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", logout);
if (!oidcFinish()) route();
