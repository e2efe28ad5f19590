// Package audit is the pure core of Warden's tamper-evident audit log: the
// entry format and its canonical encoding, the HMACs that stand in an entry
// for sensitive values, an RFC 6962 Merkle tree kept as a compact range plus
// the perfect-subtree nodes that serve proofs, C2SP tlog-checkpoints signed
// as notes, and the checks a client or a third party runs against them.
//
// It follows RFC 6962 section 2.1 for hashing (through
// github.com/transparency-dev/merkle: leaf hash = SHA-256(0x00 || leaf),
// interior node = SHA-256(0x01 || left || right)), c2sp.org/tlog-checkpoint
// for checkpoints and c2sp.org/signed-note (golang.org/x/mod/sumdb/note)
// for their Ed25519 signatures, so existing transparency-log tools can verify
// the log.
//
// # What it must not do
//
// audit does no I/O: no network (no net/http), no files, no Raft, no storage
// engine, no clock and no global randomness. It takes inputs and returns what
// the caller must persist: [Append] returns the tree nodes to store, and
// proofs read stored nodes through the one-method [NodeStore]. That keeps
// the replicated state machine deterministic, and every behaviour here
// testable without a server.
//
// An entry never holds a secret. Secret data, tokens, keys and unseal shares
// appear only as HMACs under the cluster's audit key ([Hasher]), so a holder
// of the key can confirm a guessed value while the log reveals nothing.
//
// # Entry encoding
//
// The leaf bytes of an entry are its canonical JSON, produced by
// [Entry.Canonical] and nothing else. The same entry always has the same
// bytes, and [DecodeEntry] accepts exactly the bytes Canonical produces:
//
//   - One JSON object, with no white space outside strings. Members appear
//     in this order, which is ascending byte order of their names: accessor,
//     action, auth_method, count, error, hashes, key_version, note,
//     outcome, principal, raft_index, request_id, resource, source_addr,
//     time.
//   - "accessor", "error" and "note" are omitted when empty, "count" and
//     "key_version" when 0 and "hashes" when it has no members; every other
//     member is always present, even when empty or zero.
//   - Strings must be valid UTF-8 (anything else is an error, never silently
//     replaced). They are escaped as RFC 8785 section 3.2.2.2 says: `"` and
//     `\` as \" and \\; U+0008, U+0009, U+000A, U+000C, U+000D as \b, \t,
//     \n, \f, \r; every other character below U+0020 as \u00xx with
//     lower-case hex digits; every other character as itself (including
//     "/", "<", ">", "&", U+007F, U+2028 and U+2029).
//   - "outcome" (an HTTP status, 100 to 599), "raft_index", "count" and
//     "key_version" (unsigned 64-bit) are decimal integers with no sign, leading zero, fraction or
//     exponent.
//   - "hashes" is an object whose member names match [a-z0-9_.-]{1,64} and
//     appear in ascending byte order; each value is "hmac-sha256:" followed
//     by 64 lower-case hex digits ([Hasher.Sum]), or "sha256:" followed by
//     64 lower-case hex digits (the plain SHA-256 of a document the log
//     vouches for without holding it, such as an incident's timeline item).
//   - "time" is RFC 3339 in UTC with a "Z", seconds and up to nine digits of
//     fraction with trailing zeros removed ([FormatTime], Go's
//     time.RFC3339Nano), for example "2026-11-22T12:00:00.000000005Z".
//   - "action" is not empty.
//   - The whole encoding is at most [MaxEntrySize] bytes.
//
// For entries whose raft_index, count and key_version are below 2^53 these bytes are also the
// RFC 8785 (JSON Canonicalization Scheme) form of the object, so a third
// party can re-derive them with any JCS implementation.
//
// # Tree and persistence
//
// The writer (the replicated state machine) keeps a [TreeState]: the tree
// size and the hashes of its compact range, at most 64 hashes. [Append]
// takes leaf hashes and returns the next state and every [Node] (perfect
// subtree, level 0 being the leaves) that the append completed. Storing
// each node under its (level, index), together with the new state and in
// the same transaction as the leaves, is all that [InclusionProof],
// [ConsistencyProof] and [RootAt] need, for the current tree size and for
// every earlier one. Nodes never change once written and no node is
// returned twice.
package audit
