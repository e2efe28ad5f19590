package assess

import _ "embed"

//go:embed linux-baseline.yaml
var builtinPolicy []byte

// Builtin returns the YAML of the built-in linux-baseline policy (a copy:
// the caller may keep or change it).
func Builtin() []byte { return append([]byte(nil), builtinPolicy...) }
