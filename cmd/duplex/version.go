package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the release this binary was built as, set by the linker:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/duplex
//
// Empty means unknown: versionString then asks the build information.
var version string

// versionString is what duplex version prints after "duplex ".
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return chooseVersion(version, bi) + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// chooseVersion names the build, from the first source that knows: the
// linker's -X main.version; the module version recorded by go install
// …@vX (or the pseudo-version go build stamps from a clean checkout); the
// version control settings (revision, commit time, and "+dirty" for
// uncommitted changes), which go build records unless -buildvcs=false;
// else "(devel)". bi may be nil.
func chooseVersion(ldflag string, bi *debug.BuildInfo) string {
	if ldflag != "" {
		return ldflag
	}
	if bi == nil {
		return "(devel)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	var b strings.Builder
	b.WriteString("(devel) ")
	b.WriteString(rev[:min(len(rev), 12)])
	if dirty {
		b.WriteString("+dirty")
	}
	if at != "" {
		b.WriteString(" " + at)
	}
	return b.String()
}
