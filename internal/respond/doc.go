// Package respond is Warden's response: decisions (bans and quarantines)
// with the never-block list and the feed that streams them, playbooks that
// turn alerts into decisions, and incidents whose timelines are proven by
// the audit log (docs/response.md).
//
// Like detect, it returns what it intends to change and commits through
// the encrypted store with an audit record; it knows nothing of HTTP. It
// never bans a server's address or anything on the never-block list.
package respond
