// webauthn.js: passkey ceremonies in the browser, between the API's JSON and
// navigator.credentials.
//
// The server (internal/passkey, over go-webauthn) hands out the options of a
// ceremony as JSON with its binary members in unpadded base64url:
// {"publicKey": {"challenge": "...", "user": {"id": "..."},
// "excludeCredentials"|"allowCredentials": [{"id": "..."}], ...}}. The
// browser wants those members as ArrayBuffers, and answers with a
// PublicKeyCredential whose binary members the server wants in base64url
// again: {id, rawId, type, authenticatorAttachment, clientExtensionResults,
// response: {clientDataJSON, attestationObject, transports} (a
// registration) or {clientDataJSON, authenticatorData, signature,
// userHandle} (an assertion)}. Both conversions are done here by hand (not
// with PublicKeyCredential.parse*FromJSON and toJSON, which not every
// browser has).

// fromB64u decodes unpadded base64url to an ArrayBuffer.
export function fromB64u(s) {
  const b64 = String(s).replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

// toB64u encodes an ArrayBuffer (or a view) as unpadded base64url.
export function toB64u(buf) {
  if (buf === null || buf === undefined) return undefined;
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list ?? []).map((d) => ({ ...d, id: fromB64u(d.id) }));
}

// options drops the members the server left null (a dictionary member may
// be absent, not null).
function clean(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

// creationOptions turns the registration options JSON into the argument of
// navigator.credentials.create's publicKey.
export function creationOptions(json) {
  const pk = clean(json.publicKey ?? json);
  pk.challenge = fromB64u(pk.challenge);
  pk.user = { ...pk.user, id: fromB64u(pk.user.id) };
  if (pk.excludeCredentials) pk.excludeCredentials = descriptors(pk.excludeCredentials);
  return pk;
}

// requestOptions turns the login options JSON into the argument of
// navigator.credentials.get's publicKey.
export function requestOptions(json) {
  const pk = clean(json.publicKey ?? json);
  pk.challenge = fromB64u(pk.challenge);
  if (pk.allowCredentials) pk.allowCredentials = descriptors(pk.allowCredentials);
  return pk;
}

// credentialJSON is the browser's PublicKeyCredential as the server reads it.
export function credentialJSON(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64u(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64u(r.attestationObject);
    if (typeof r.getTransports === "function") response.transports = r.getTransports();
  } else {
    response.authenticatorData = toB64u(r.authenticatorData);
    response.signature = toB64u(r.signature);
    if (r.userHandle) response.userHandle = toB64u(r.userHandle);
  }
  return {
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment ?? undefined,
    clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    response,
  };
}

// supported says whether this browser, on this page, can use passkeys
// (WebAuthn needs a secure context: https, or http on localhost).
export function supported() {
  return window.isSecureContext && typeof window.PublicKeyCredential === "function" &&
    typeof navigator.credentials?.get === "function";
}

// createPasskey runs a registration with the server's options; it resolves
// to the credential JSON to send back.
export async function createPasskey(options) {
  const cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
  if (cred === null) throw new Error("the authenticator made no passkey");
  return credentialJSON(cred);
}

// getPasskey runs a login assertion with the server's options; it resolves
// to the credential JSON to send back.
export async function getPasskey(options) {
  const cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
  if (cred === null) throw new Error("no passkey answered");
  return credentialJSON(cred);
}

// explain makes the browser's WebAuthn errors readable: a refusal or a
// timeout is a DOMException named NotAllowedError.
export function explain(err) {
  if (err?.name === "NotAllowedError") return new Error("The passkey request was cancelled or timed out, or this device has no passkey for this account.");
  if (err?.name === "InvalidStateError") return new Error("This authenticator holds a passkey of this account already.");
  if (err?.name === "SecurityError") return new Error("The browser refused the passkey request for this address (the server's WebAuthn relying party ID or origin does not match it).");
  return err instanceof Error ? err : new Error(String(err));
}
