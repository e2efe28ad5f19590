package witness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/warden-sec/warden/internal/fsutil"
)

// LoadKey reads a witness's signer key from the file path, or, if there is
// none, makes one named name (see GenerateKey) and writes it there (0600,
// fsynced, never over an existing file). It refuses a key file that others
// may read and one that is not a witness key. vkey is derived from the key;
// created says it was made now.
func LoadKey(path, name string) (skey, vkey string, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", "", false, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", "", false, fmt.Errorf("%s: mode %v: the key must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
		}
		skey = strings.TrimSpace(string(b))
		clear(b)
		s, err := parseSigner(skey)
		if err != nil {
			return "", "", false, fmt.Errorf("%s: %w", path, err)
		}
		return skey, s.vkey, false, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return "", "", false, err
	}
	skey, vkey, err = GenerateKey(name)
	if err != nil {
		return "", "", false, err
	}
	if err := fsutil.WriteFileNew(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("write the witness key: %w", err)
	}
	return skey, vkey, true, nil
}

// KeyName is the name of a note verifier key ("<name>+<id>+<key>").
func KeyName(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}

// CheckKeyName checks that name can name a witness key (see GenerateKey).
func CheckKeyName(name string) error { return checkKeyName(name) }
