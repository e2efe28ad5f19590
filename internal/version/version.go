// Package version says which build of Warden is running: the module version
// and VCS revision that the Go toolchain recorded in the binary. The CLI's
// --version and the server's status both print String, so an operator can
// match a server to the binary it runs. It holds no state and does no I/O.
package version

import (
	"runtime"
	"runtime/debug"
)

// Release is the version of this source tree, reported when the toolchain
// recorded no module version: "go run", "go test" and "go build" outside a
// version-control checkout give the main module the version "(devel)".
const Release = "v0.1.0"

// devel is the module version the toolchain gives an unversioned build.
const devel = "(devel)"

// Info describes one build of the warden binary.
type Info struct {
	// Version is the module version ("v1.2.3", or a pseudo-version such as
	// "v0.0.0-20261202101434-c76c452abcde+dirty" for "go build" in a Git
	// checkout), or Release+"-devel" when the toolchain recorded none.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from; empty when the
	// toolchain did not stamp it ("go run", "go test", -buildvcs=false).
	Revision string `json:"revision,omitempty"`
	// Modified reports that the checkout had uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// Get reads the build information of the running binary.
func Get() Info { return fromBuildInfo(debug.ReadBuildInfo()) }

// String is Get().String().
func String() string { return Get().String() }

// fromBuildInfo is Get with the build information passed in.
func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	v := Info{Version: Release + "-devel", GoVersion: runtime.Version()}
	if !ok || bi == nil {
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	if m := bi.Main.Version; m != "" && m != devel {
		v.Version = m
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the version followed by the short revision, for example
// "v0.1.0-devel" or "v0.0.0-20261202101434-c76c452abcde+dirty (c76c452abcde, modified)".
func (i Info) String() string {
	if i.Revision == "" {
		return i.Version
	}
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if i.Modified {
		rev += ", modified"
	}
	return i.Version + " (" + rev + ")"
}
