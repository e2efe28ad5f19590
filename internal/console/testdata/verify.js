// The test page of verify_browser_test.go: it runs verifyEntry on the
// data the test served at /test/case/<name> (?case=<name>) and writes the
// result as JSON into <pre id="result">, added last.
import { verifyEntry } from "/static/audit-verify.js";

const name = new URLSearchParams(location.search).get("case");
const out = document.getElementById("out");
let result;
try {
  const res = await fetch(`/test/case/${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error(`case ${name}: ${res.status}`);
  const input = await res.json();
  const reported = [];
  const r = await verifyEntry(input, (s) => reported.push(s));
  result = { ok: r.ok, steps: r.steps, reported, secure: window.isSecureContext };
} catch (err) {
  result = { error: String(err && err.stack ? err.stack : err) };
}
const pre = document.createElement("pre");
pre.id = "result";
pre.textContent = JSON.stringify(result);
out.append(pre);
