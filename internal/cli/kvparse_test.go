package cli

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

func TestParseKV(t *testing.T) {
	for _, tc := range []struct {
		in, k, v string
		ok       bool
	}{
		{"a=b", "a", "b", true},
		{"a=", "a", "", true},
		{"a=b=c", "a", "b=c", true},
		{"a==", "a", "=", true},
		{"k=@file", "k", "@file", true},
		{"k=-", "k", "-", true},
		{"noeq", "", "", false},
		{"", "", "", false},
		{"=v", "", "", false},
	} {
		k, v, err := ParseKV(tc.in)
		if (err == nil) != tc.ok || k != tc.k || v != tc.v {
			t.Errorf("ParseKV(%q) = %q, %q, %v", tc.in, k, v, err)
		}
	}
}

func TestParseKVArgs(t *testing.T) {
	files := map[string]string{"f.txt": "file\ncontent\n", "bin": "\xff\xfe"}
	src := func(stdin string) *kvSources {
		return &kvSources{stdin: strings.NewReader(stdin), readFile: func(name string) ([]byte, error) {
			if s, ok := files[name]; ok {
				return []byte(s), nil
			}
			return nil, fs.ErrNotExist
		}}
	}
	got, err := parseKVArgs([]string{"a=1", "b=@f.txt", "c=-", "d="}, src("in\n"))
	want := map[string]any{"a": "1", "b": "file\ncontent\n", "c": "in\n", "d": ""}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseKVArgs = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"x"}, {"a=@missing"}, {"a=@"}, {"a=@bin"}, {"a=1", "a=2"}, {"a=-", "b=-"}} {
		_, err := parseKVArgs(bad, src(""))
		if err == nil {
			t.Errorf("parseKVArgs(%q) succeeded", bad)
		}
		if bad[0] == "a=@missing" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing file error %v does not wrap fs.ErrNotExist", err)
		}
	}
}

func FuzzParseKV(f *testing.F) {
	for _, s := range []string{"a=b", "=", "a", "a==b", "k=@f", "k=-", "", "ü=ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := ParseKV(s)
		if err != nil {
			if k != "" || v != "" {
				t.Fatalf("error with results %q %q", k, v)
			}
			if strings.Contains(s, "=") && !strings.HasPrefix(s, "=") {
				t.Fatalf("ParseKV(%q) refused a valid argument: %v", s, err)
			}
			return
		}
		if k == "" || strings.Contains(k, "=") || k+"="+v != s {
			t.Fatalf("ParseKV(%q) = %q, %q", s, k, v)
		}
	})
}
