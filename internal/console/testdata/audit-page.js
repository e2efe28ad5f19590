// The test page of verify_browser_test.go for pages/audit.js: it renders
// the page with an api helper like the console's (same origin, the token
// the test serves at /test/token as a Bearer token) and marks <body> with
// data-rendered when render returned.
import { render } from "/static/pages/audit.js";

const token = await (await fetch("/test/token")).text();

async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  headers.set("Authorization", `Bearer ${token}`);
  const res = await fetch(path, { ...opts, headers });
  const type = res.headers.get("Content-Type") || "";
  const body = type.includes("application/json") ? await res.json() : await res.text();
  if (!res.ok) {
    const msg = body && typeof body === "object" && body.errors ? body.errors.join("; ") : String(body);
    throw new Error(`${res.status}: ${msg}`);
  }
  return body;
}

try {
  await render(document.getElementById("main"), api);
  document.body.setAttribute("data-rendered", "ok");
} catch (err) {
  document.body.setAttribute("data-rendered", `error: ${err}`);
}
