// account.js: the logged-in user's own account: who the session is, and
// registering a passkey (WebAuthn) as a second factor.
//
// Registration is the user's own action (users.self): the server's options
// (POST /v1/users/{name}/mfa/webauthn/begin), the authenticator
// (navigator.credentials.create), then POST .../webauthn/finish with
// {name, state, credential}. A new factor ends the user's sessions opened
// before it (docs/people.md), this one too: the page then says so and shows
// the login page, where the password and the passkey open a new one.
import { el, errorBox } from "../dom.js";
import { supported, createPasskey, explain } from "../webauthn.js";

export async function render(main, api, args, shell) {
  main.append(el("h1", {}, "Account"));
  const me = await api("/v1/auth/whoami");
  const user = shell.user || (/^User::"(.*)"$/.exec(me.principal ?? "") ?? [])[1] || "";
  main.append(el("article", { class: "card", "aria-labelledby": "acct-who-h" },
    el("h2", { id: "acct-who-h" }, "This session"),
    el("dl", { id: "acct-who" },
      el("dt", {}, "Principal"), el("dd", {}, me.principal ?? "—"),
      el("dt", {}, "Authenticated by"), el("dd", {}, me.auth_method ?? "—"))));

  const status = el("p", { id: "passkey-status", role: "status" });
  const nameInput = el("input", { id: "passkey-name", name: "passkey-name", required: true, maxlength: "64",
    autocomplete: "off", value: "passkey" });
  const button = el("button", { type: "submit" }, "Register a passkey");
  const form = el("form", { id: "passkey-form", class: "card", "aria-labelledby": "passkey-h" },
    el("h2", { id: "passkey-h" }, "Passkeys"),
    el("p", {}, "A passkey on this device or a security key, as the second factor after your password. Registering one ends your current sessions: you then log in again with your password and the passkey."),
    el("p", { class: "field" }, el("label", { for: "passkey-name" }, "Name of the new passkey"), nameInput),
    button, status);
  main.append(form);
  if (!user) {
    button.disabled = true;
    status.textContent = "This session is not a user's (a token): passkeys belong to users.";
    return;
  }
  if (!supported()) {
    button.disabled = true;
    status.textContent = "This browser cannot use passkeys on this page (they need https, or http on localhost).";
    return;
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    status.className = "";
    status.textContent = "Asking the server…";
    const u = encodeURIComponent(user);
    try {
      const c = await api(`/v1/users/${u}/mfa/webauthn/begin`, { method: "POST" });
      status.textContent = "Waiting for your authenticator…";
      let credential;
      try {
        credential = await createPasskey(c.options);
      } catch (err) {
        throw explain(err);
      }
      const name = nameInput.value.trim();
      await api(`/v1/users/${u}/mfa/webauthn/finish`, { method: "POST", body: { name, state: c.state, credential } });
      shell.endSession(`Passkey “${name}” registered. A new factor ends your sessions: log in again with your password and the passkey.`, false);
    } catch (err) {
      status.replaceChildren(errorBox(err));
      button.disabled = false;
    }
  });
}
