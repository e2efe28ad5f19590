package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "c76c452abcdef0123456789abcdef0123456789a"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "v0.1.0-devel"},
		{"go run or go test", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/warden-sec/warden", Version: "(devel)"}}, true, "v0.1.0-devel"},
		{"empty main module", &debug.BuildInfo{GoVersion: "go1.26.8"}, true, "v0.1.0-devel"},
		{"devel with revision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true, "v0.1.0-devel (c76c452abcde, modified)"},
		{"go build in a checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202101434-c76c452abcde+dirty"}, Settings: vcs}, true,
			"v0.0.0-20261202101434-c76c452abcde+dirty (c76c452abcde, modified)"},
		{"go install of a tag", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true, "v1.2.3"},
		{"clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, true, "v1.2.3 (abc)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromBuildInfo(tt.bi, tt.ok).String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGoVersion(t *testing.T) {
	got := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.99"}, true)
	if got.GoVersion != "go1.99" {
		t.Errorf("GoVersion = %q", got.GoVersion)
	}
	if fromBuildInfo(nil, false).GoVersion == "" {
		t.Error("GoVersion empty without build info")
	}
}
