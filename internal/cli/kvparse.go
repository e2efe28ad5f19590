package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// maxValueBytes bounds one value read from a file or stdin; the server's
// default request limit is 1 MiB anyway.
const maxValueBytes = 1 << 20

// ParseKV splits a "key=value" argument at its first "=". The key must be
// non-empty; the value may be empty and may contain "=". An argument without
// "=" is an error. ParseKV does not interpret "@file" or "-" values.
func ParseKV(arg string) (key, value string, err error) {
	key, value, ok := strings.Cut(arg, "=")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: expected key=value", arg)
	case key == "":
		return "", "", fmt.Errorf("%q: empty key", arg)
	}
	return key, value, nil
}

// kvSources resolves the "@file" and "-" forms of values.
type kvSources struct {
	stdin     io.Reader
	readFile  func(string) ([]byte, error)
	usedStdin bool
}

// parseKVArgs turns "k=v", "k=@file" and "k=-" arguments into a data map.
// Values are strings, taken exactly (a file's or stdin's trailing newline is
// kept). Duplicate keys, a second "-", and non-UTF-8 content are errors.
func parseKVArgs(argv []string, src *kvSources) (map[string]any, error) {
	data := make(map[string]any, len(argv))
	for _, arg := range argv {
		k, v, err := ParseKV(arg)
		if err != nil {
			return nil, &usageError{err}
		}
		if _, dup := data[k]; dup {
			return nil, usagef("key %q given twice", k)
		}
		switch {
		case v == "-":
			if src.usedStdin {
				return nil, usagef("%s=-: stdin can be read only once", k)
			}
			src.usedStdin = true
			b, err := io.ReadAll(io.LimitReader(src.stdin, maxValueBytes+1))
			if err != nil {
				return nil, fmt.Errorf("%s: read stdin: %w", k, err)
			}
			if v, err = checkValue(k, "stdin", b); err != nil {
				return nil, err
			}
		case strings.HasPrefix(v, "@"):
			name := v[1:]
			if name == "" {
				return nil, usagef("%s=@: missing file name", k)
			}
			b, err := src.readFile(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if v, err = checkValue(k, name, b); err != nil {
				return nil, err
			}
		}
		data[k] = v
	}
	return data, nil
}

func checkValue(key, from string, b []byte) (string, error) {
	if len(b) > maxValueBytes {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", key, from, maxValueBytes)
	}
	if !utf8.Valid(b) {
		return "", errors.New(key + ": " + from + " is not valid UTF-8 text; encode binary data (e.g. base64) first")
	}
	return string(b), nil
}

// readFileLimited reads a file of at most maxValueBytes (+1 to detect more).
func readFileLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxValueBytes+1))
}
