package archtest

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGitignoreCoversWalkthrough: the data directories that README.md tells
// a new user to create inside the checkout (--data-dir ./DIR) are ignored by
// Git, so that its keys, certificates and store are never committed.
func TestGitignoreCoversWalkthrough(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := regexp.MustCompile(`--data-dir[ =]\./([^\s/]+)`).FindAllStringSubmatch(string(readme), -1)
	if len(dirs) == 0 {
		t.Fatal("README.md has no --data-dir ./DIR: update this test with the walkthrough")
	}
	for _, d := range dirs {
		if !ignored(string(ignore), d[1]) {
			t.Errorf(".gitignore does not ignore the walkthrough's data directory %q (add /%s/)", d[1], d[1])
		}
	}
}

// ignored reports whether a line of a .gitignore, read simply (a pattern
// with or without a leading or trailing '/', no negation), matches the
// directory dir at the top of the repository.
func ignored(gitignore, dir string) bool {
	for _, line := range strings.Split(gitignore, "\n") {
		pat := strings.Trim(strings.TrimSpace(line), "/")
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		if ok, _ := path.Match(pat, dir); ok {
			return true
		}
	}
	return false
}
