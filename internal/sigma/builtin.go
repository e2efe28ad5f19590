package sigma

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed builtin/*.yml
var builtinFS embed.FS

// Builtin returns the built-in pack (builtin/*.yml, embedded), parsed
// afresh on every call, in file-name order. Its rule ids are fixed.
func Builtin() ([]*Rule, error) {
	names, err := fs.Glob(builtinFS, "builtin/*.yml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Rule
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		rules, err := Parse(n, data)
		if err != nil {
			return nil, err
		}
		out = append(out, rules...)
	}
	return out, nil
}
