// Package sigma is Warden's detection engine for Sigma rules (the SigmaHQ
// format, specification v2): it parses detection and correlation rules,
// compiles them once against a mapping of log sources to datasets and of
// Sigma field names to ECS names, matches flat ECS events against the
// compiled set through an index, and correlates matches over event time.
//
// The package is pure: it does no I/O, reads no clock and starts no
// goroutine. Time is the events' own @timestamp. What it does not
// support it refuses with an *Error naming the feature; nothing in a rule
// is ignored silently. The built-in pack is embedded (Builtin).
package sigma
