package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsTerminal(t *testing.T) {
	regular, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	devNull, err := os.Open(os.DevNull) // a character device, like a terminal
	if err != nil {
		t.Skip(err)
	}
	defer devNull.Close()
	for _, tc := range []struct {
		name string
		r    io.Reader
		want bool
	}{
		{"reader", strings.NewReader("k"), false},
		{"regular file", regular, false},
		{"character device", devNull, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isTerminal(tc.r); got != tc.want {
				t.Fatalf("isTerminal = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"key\n", "key", true},
		{"key\r\nmore\n", "key", true},
		{"key", "key", true},
		{"", "", false},
		{strings.Repeat("k", maxKeyLine+1), "", false},
	} {
		got, err := readLine(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("readLine(%.20q) = %q, %v", tc.in, got, err)
		}
	}
}
