// audit-verify.js checks the audit log in the browser, with the Web Crypto
// API (Ed25519 and SHA-256 in crypto.subtle) and nothing from the server
// but data: the checkpoint's signed-note signature, the witnesses'
// cosignatures and an entry's RFC 6962 inclusion proof against the
// checkpoint's root. Every check is reported as a step {step, ok, detail}.
//
// Formats (see internal/audit/checkpoint.go, internal/witness/note.go and
// golang.org/x/mod/sumdb/note):
//   - a verifier key is "<name>+<hex key ID>+<base64 of type || public key>",
//     the key ID being the first 4 bytes of SHA-256(name || "\n" || type ||
//     public key); type 0x01 is an Ed25519 note key (the log), 0x04 an
//     Ed25519 cosignature/v1 key (a witness);
//   - a signed note is its text (ending in a newline), an empty line, then
//     signature lines "— <name> <base64 of key ID || signature>";
//   - the log signs the text itself; a witness signs
//     "cosignature/v1\ntime <t>\n" + text, its signature being a big-endian
//     64-bit time then the Ed25519 signature;
//   - a checkpoint's text is the origin, the size in decimal and the root
//     hash in standard base64, one per line;
//   - leaf hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || l || r).

/** The step names, in the order verifyEntry reports them. */
export const STEPS = Object.freeze({
  logKey: "log-key",
  checkpointFormat: "checkpoint-format",
  checkpointSignature: "checkpoint-signature",
  witnessCosignature: "witness-cosignature",
  witnessQuorum: "witness-quorum",
  leafHash: "leaf-hash",
  inclusionProof: "inclusion-proof",
});

const ALG_ED25519 = 0x01;
const ALG_COSIGNATURE_V1 = 0x04;
const HASH_SIZE = 32;
const MAX_SIGNATURES = 100;
const SIG_PREFIX = "— ";
const encoder = new TextEncoder();

/** VerifyError is a check that failed; its message says why. */
export class VerifyError extends Error {}

function fail(msg) {
  throw new VerifyError(msg);
}

/** Standard padded base64 to bytes; throws VerifyError naming what on error. */
export function fromBase64(s, what) {
  if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    fail(`${what} is not standard base64`);
  }
  let bin;
  try {
    bin = atob(s);
  } catch {
    fail(`${what} is not standard base64`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bytes to standard padded base64. */
export function toBase64(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Bytes to lower-case hex. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** SHA-256 of bytes. */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** The RFC 6962 leaf hash: SHA-256(0x00 || leaf). */
export async function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

/** The RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// A valid note key name: not empty, no Unicode space, no "+", and (as
// Warden's keys) no control character.
function validName(name) {
  return name !== "" && !/[\s+\p{Cc}]/u.test(name);
}

/**
 * parseVerifierKey parses "<name>+<hex key ID>+<base64 key>" and checks
 * its key ID. It returns {name, keyId (Uint8Array(4)), alg, publicKey}.
 * wantAlg, if given, is the key type required (0x01 log, 0x04 witness).
 */
export async function parseVerifierKey(vkey, wantAlg) {
  if (typeof vkey !== "string") fail("the verifier key is not a string");
  // The key's base64 may hold "+": only the first two separate.
  const s = vkey.trim();
  const a = s.indexOf("+");
  const b = a < 0 ? -1 : s.indexOf("+", a + 1);
  if (b < 0) fail("the verifier key is not <name>+<key ID>+<key>");
  const name = s.slice(0, a);
  const idHex = s.slice(a + 1, b);
  const b64 = s.slice(b + 1);
  if (!validName(name)) fail(`the verifier key's name ${JSON.stringify(name)} is not a valid key name`);
  if (!/^[0-9a-f]{8}$/i.test(idHex)) fail("the verifier key's ID is not 8 hex digits");
  const key = fromBase64(b64, "the verifier key");
  if (key.length !== 33) fail(`the verifier key is ${key.length} bytes, want a type byte and a 32-byte Ed25519 key`);
  const alg = key[0];
  if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) {
    fail(`the verifier key's type is 0x${alg.toString(16).padStart(2, "0")}, want 0x01 (Ed25519) or 0x04 (Ed25519 cosignature/v1)`);
  }
  if (wantAlg !== undefined && alg !== wantAlg) {
    fail(`the key's type is 0x0${alg}, want 0x0${wantAlg} (${wantAlg === ALG_ED25519 ? "a log key" : "a witness cosignature key"})`);
  }
  const id = (await sha256(concat(encoder.encode(name + "\n"), key))).slice(0, 4);
  if (toHex(id) !== idHex.toLowerCase()) {
    fail(`the verifier key's ID ${idHex} is not the one of its name and key (${toHex(id)})`);
  }
  return { name, keyId: id, alg, publicKey: key.slice(1) };
}

/**
 * parseNote splits a signed note into its text (ending in a newline) and
 * its signatures [{name, keyId, sig, line}], checking the framing of
 * c2sp.org/signed-note. It does not verify signatures.
 */
export function parseNote(msg) {
  if (typeof msg !== "string") fail("the checkpoint is not text");
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) {
    fail("the checkpoint has a control character other than a newline");
  }
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) fail("the checkpoint has no empty line before its signatures");
  const text = msg.slice(0, split + 1);
  const rest = msg.slice(split + 2);
  if (rest === "" || !rest.endsWith("\n")) fail("the checkpoint has no signature lines, or its last line does not end in a newline");
  const sigs = [];
  for (const line of rest.slice(0, -1).split("\n")) {
    if (!line.startsWith(SIG_PREFIX)) fail(`signature line ${JSON.stringify(line.slice(0, 80))} does not start with "— "`);
    const body = line.slice(SIG_PREFIX.length);
    const sp = body.indexOf(" ");
    const name = sp < 0 ? body : body.slice(0, sp);
    const b64 = sp < 0 ? "" : body.slice(sp + 1);
    if (!validName(name) || b64 === "") fail(`signature line ${JSON.stringify(line.slice(0, 80))} is malformed`);
    const raw = fromBase64(b64, `the signature of ${name}`);
    if (raw.length < 5) fail(`the signature of ${name} is too short`);
    sigs.push({ name, keyId: raw.slice(0, 4), sig: raw.slice(4), line });
  }
  if (sigs.length > MAX_SIGNATURES) fail(`the checkpoint has ${sigs.length} signatures, more than ${MAX_SIGNATURES}`);
  return { text, sigs };
}

/**
 * parseCheckpoint parses a checkpoint's note text strictly (as
 * internal/audit parseCheckpoint): {origin, size (BigInt), root
 * (Uint8Array), extensions}.
 */
export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) fail("the checkpoint text does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) fail(`the checkpoint text has ${lines.length} lines, want origin, size and root`);
  lines.forEach((l, i) => {
    if (l === "") fail(`checkpoint line ${i + 1} is empty`);
  });
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1]) || BigInt(lines[1]) >= 1n << 64n) {
    fail(`checkpoint line 2: size ${JSON.stringify(lines[1].slice(0, 40))} is not a decimal without leading zeros`);
  }
  const root = fromBase64(lines[2], "checkpoint line 3 (the root)");
  if (root.length !== HASH_SIZE || toBase64(root) !== lines[2]) fail(`checkpoint line 3: the root is not the canonical base64 of a ${HASH_SIZE}-byte hash`);
  return { origin: lines[0], size: BigInt(lines[1]), root, extensions: lines.slice(3) };
}

async function ed25519Verify(publicKey, sig, msg) {
  if (sig.length !== 64) return false;
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
}

/**
 * rootFromInclusionProof computes the root a proof leads to, as
 * transparency-dev/merkle proof.RootFromInclusionProof: index and size
 * are BigInt, hash and proof Uint8Arrays. Throws VerifyError with the
 * reason when the proof cannot be for (index, size).
 */
export async function rootFromInclusionProof(index, size, hash, proof) {
  if (index >= size) fail(`index ${index} is beyond the tree of size ${size}`);
  const bitLen = (x) => x.toString(2).replace(/^0+/, "").length;
  const ones = (x) => x.toString(2).split("").filter((c) => c === "1").length;
  const inner = bitLen(index ^ (size - 1n));
  const border = ones(index >> BigInt(inner));
  if (proof.length !== inner + border) {
    fail(`the proof has ${proof.length} hashes, a proof of leaf ${index} in a tree of ${size} has ${inner + border}`);
  }
  proof.forEach((h, i) => {
    if (h.length !== HASH_SIZE) fail(`proof hash ${i} is ${h.length} bytes, want ${HASH_SIZE}`);
  });
  let seed = hash;
  for (let i = 0; i < inner; i++) {
    seed = ((index >> BigInt(i)) & 1n) === 0n ? await nodeHash(seed, proof[i]) : await nodeHash(proof[i], seed);
  }
  for (let i = inner; i < proof.length; i++) seed = await nodeHash(proof[i], seed);
  return seed;
}

// step runs fn, reports its {step, ok, detail} to onStep and the list,
// and returns fn's value (undefined when it failed).
async function runStep(steps, onStep, name, fn) {
  let rec;
  let value;
  try {
    const r = await fn();
    value = r.value;
    rec = { step: name, ok: r.ok !== false, detail: r.detail };
  } catch (e) {
    rec = { step: name, ok: false, detail: e instanceof VerifyError ? e.message : `error: ${e && e.message ? e.message : e}` };
  }
  steps.push(rec);
  if (onStep) onStep(rec);
  return rec.ok ? value : undefined;
}

/**
 * verifyCheckpoint checks a signed checkpoint against the log's verifier
 * key and the witnesses' keys. input: {checkpoint (the note text),
 * verifierKey, witnessKeys ([] of verifier keys), minWitnesses (how many
 * valid cosignatures are required, default 0)}. Returns {steps,
 * checkpoint (parsed, or undefined if a step failed)}.
 */
export async function verifyCheckpoint(input, onStep) {
  const steps = [];
  const res = await checkCheckpoint(input, steps, onStep);
  return { steps, checkpoint: res };
}

async function checkCheckpoint(input, steps, onStep) {
  const key = await runStep(steps, onStep, STEPS.logKey, async () => {
    const k = await parseVerifierKey(input.verifierKey, ALG_ED25519);
    return { value: k, detail: `Ed25519 log key ${k.name}, key ID ${toHex(k.keyId)}` };
  });
  if (!key) return undefined;
  const parsed = await runStep(steps, onStep, STEPS.checkpointFormat, async () => {
    const n = parseNote(input.checkpoint);
    const cp = parseCheckpoint(n.text);
    if (cp.origin !== key.name) fail(`the checkpoint's origin ${JSON.stringify(cp.origin)} is not the log key's name ${JSON.stringify(key.name)}`);
    return { value: { note: n, cp }, detail: `origin ${cp.origin}, size ${cp.size}, root ${toHex(cp.root)}, ${n.sigs.length} signature line(s)` };
  });
  if (!parsed) return undefined;
  const { note, cp } = parsed;
  const text = encoder.encode(note.text);
  const signed = await runStep(steps, onStep, STEPS.checkpointSignature, async () => {
    const mine = note.sigs.filter((s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
    if (mine.length === 0) fail(`no signature line by the log key ${key.name} (key ID ${toHex(key.keyId)})`);
    for (const s of mine) {
      if (!(await ed25519Verify(key.publicKey, s.sig, text))) {
        fail(`the Ed25519 signature by ${key.name} does not verify over the checkpoint text: the text or the signature was altered, or it was signed by another key`);
      }
    }
    return { value: true, detail: `Ed25519 signature by ${key.name} (key ID ${toHex(key.keyId)}) verifies over the checkpoint text` };
  });
  let good = 0;
  const known = [];
  for (const vk of input.witnessKeys || []) {
    const w = await runStep(steps, onStep, STEPS.witnessCosignature, async () => {
      const k = await parseVerifierKey(vk, ALG_COSIGNATURE_V1);
      known.push(k);
      const sigs = note.sigs.filter((s) => s.name === k.name && equalBytes(s.keyId, k.keyId));
      if (sigs.length === 0) return { ok: true, value: false, detail: `witness ${k.name} (key ID ${toHex(k.keyId)}) did not cosign this checkpoint` };
      for (const s of sigs) {
        if (s.sig.length !== 8 + 64) fail(`the cosignature by ${k.name} is ${s.sig.length} bytes, want a time and an Ed25519 signature (72)`);
        const t = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
        const msg = concat(encoder.encode(`cosignature/v1\ntime ${t}\n`), text);
        if (!(await ed25519Verify(k.publicKey, s.sig.slice(8), msg))) {
          fail(`the cosignature/v1 by witness ${k.name} does not verify over the checkpoint text: the text or the cosignature was altered`);
        }
        const when = t < 8640000000000n ? new Date(Number(t) * 1000).toISOString() : `${t}`;
        return { value: true, detail: `witness ${k.name} (key ID ${toHex(k.keyId)}) cosigned this checkpoint at ${when}` };
      }
      return { value: false, detail: "" };
    });
    if (w === true) good++;
  }
  const unknown = note.sigs.filter(
    (s) => !(s.name === key.name && equalBytes(s.keyId, key.keyId)) && !known.some((k) => s.name === k.name && equalBytes(s.keyId, k.keyId)),
  );
  const want = input.minWitnesses || 0;
  await runStep(steps, onStep, STEPS.witnessQuorum, async () => {
    let detail = `${good} of ${(input.witnessKeys || []).length} known witness(es) cosigned, ${want} required`;
    if (unknown.length > 0) detail += `; ignored ${unknown.length} signature(s) by unknown keys (${unknown.map((s) => s.name).join(", ")})`;
    if (good < want) fail(detail);
    return { value: true, detail };
  });
  return signed ? cp : undefined;
}

/**
 * verifyEntry checks an audit entry's place in the log. input:
 *   checkpoint   the signed checkpoint text (GET /v1/audit/checkpoint)
 *   verifierKey  the log's key (GET /v1/audit/verifier verifier_key, or
 *                one the user pinned)
 *   witnessKeys  witnesses' verifier keys (GET /v1/audit/witnesses)
 *   minWitnesses how many must have cosigned (default 0)
 *   index        the entry's index (number, string or BigInt)
 *   leaf         the entry's leaf bytes in base64 (GET /v1/audit/entries
 *                "leaf"), or
 *   leafHash     its leaf hash in base64 (an archived entry's "leaf_hash")
 *   proof        the inclusion proof's hashes in base64
 *                (GET /v1/audit/proof/inclusion?index=&tree_size=<the
 *                checkpoint's size> "hashes")
 * onStep(step) is called as each step ends. Returns {ok, steps}: ok when
 * every step passed.
 */
export async function verifyEntry(input, onStep) {
  const steps = [];
  const cp = await checkCheckpoint(input, steps, onStep);
  const lh = await runStep(steps, onStep, STEPS.leafHash, async () => {
    if (input.leaf !== undefined && input.leaf !== null && input.leaf !== "") {
      const leaf = fromBase64(input.leaf, "the entry's leaf");
      const h = await leafHash(leaf);
      return { value: h, detail: `SHA-256(0x00 || ${leaf.length}-byte leaf) = ${toHex(h)}` };
    }
    if (input.leafHash) {
      const h = fromBase64(input.leafHash, "the entry's leaf hash");
      if (h.length !== HASH_SIZE) fail(`the leaf hash is ${h.length} bytes, want ${HASH_SIZE}`);
      return { value: h, detail: `the leaf hash given (the entry's body is not available): ${toHex(h)}` };
    }
    fail("the entry has neither a leaf nor a leaf hash (an altered entry?)");
  });
  await runStep(steps, onStep, STEPS.inclusionProof, async () => {
    if (!cp) fail("not checked: the checkpoint was not verified, so there is no trusted root");
    if (!lh) fail("not checked: no leaf hash");
    let index;
    try {
      index = BigInt(input.index);
    } catch {
      fail(`the entry index ${JSON.stringify(String(input.index))} is not an integer`);
    }
    if (index < 0n) fail("the entry index is negative");
    if (!Array.isArray(input.proof)) fail("the proof is not a list of hashes");
    const proof = input.proof.map((h, i) => fromBase64(h, `proof hash ${i}`));
    const root = await rootFromInclusionProof(index, cp.size, lh, proof);
    if (!equalBytes(root, cp.root)) {
      fail(`the proof leads to root ${toHex(root)}, but the checkpoint's signed root is ${toHex(cp.root)}: the proof or the entry was altered, or the entry is not in this log`);
    }
    return { value: true, detail: `entry ${index} with ${proof.length} proof hash(es) leads to the checkpoint's root ${toHex(cp.root)} (tree size ${cp.size})` };
  });
  return { ok: steps.every((s) => s.ok), steps };
}
