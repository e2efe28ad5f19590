// Package assess runs configuration checks on a host: it parses check
// policies (a small YAML format, see docs/compliance.md), and evaluates them
// against a file-system root, returning one Result per check.
//
// Every file it reads is <Root>/<path>. Symbolic links are resolved as a
// chroot would (an absolute target starts again at Root) and a link that
// would lead above Root is an error, never followed. Commands run only
// when Root is "/" (the real host) or the caller supplies Env.Run; they
// run without a shell.
//
// The package never reports a check it could not evaluate as passing: a
// rule that fails to run yields status "error" with the reason. It does
// not fetch, verify or store policies (the agent does, with package
// signed), writes nothing, and keeps no state between runs.
package assess
