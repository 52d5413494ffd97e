package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestVersionChoose(t *testing.T) {
	t.Parallel()
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "d5ad5b1b316e0123456789abcdef0123456789ab"},
		{Key: "vcs.time", Value: "2026-10-06T02:55:40Z"},
		{Key: "vcs.modified", Value: "false"},
	}
	dirty := append(vcs[:3:3], debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		name   string
		ldflag string
		bi     *debug.BuildInfo
		want   string
	}{
		{"-X main.version wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: vcs}, "v1.2.3"},
		{"go install …@v0.9.0", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: vcs}, "v0.9.0"},
		{"a pseudo-version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261006025540-d5ad5b1b316e"}}, "v0.0.0-20261006025540-d5ad5b1b316e"},
		{"vcs settings", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "(devel) d5ad5b1b316e 2026-10-06T02:55:40Z"},
		{"vcs settings, modified", "", &debug.BuildInfo{Settings: dirty}, "(devel) d5ad5b1b316e+dirty 2026-10-06T02:55:40Z"},
		{"a short revision, no time", "", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, "(devel) abc"},
		{"-buildvcs=false", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build info", "", nil, "(devel)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := chooseVersion(tc.ldflag, tc.bi); got != tc.want {
				t.Errorf("chooseVersion(%q, …) = %q, want %q", tc.ldflag, got, tc.want)
			}
		})
	}
}

// TestVersionCommand checks what duplex version prints in this test
// binary (no -X, so the build information's answer) and in a binary built
// with -ldflags "-X main.version=…".
func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("duplex version: exit %d, stderr %q", code, errOut.String())
	}
	goVer := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if s := out.String(); !strings.HasPrefix(s, "duplex ") || !strings.HasSuffix(s, goVer) {
		t.Errorf("duplex version printed %q, want duplex VERSION%s", s, goVer)
	}

	bin := filepath.Join(t.TempDir(), "duplex")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version=v1.2.3-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^duplex v1\.2\.3-test go1\.\S+ \S+/\S+\n$`).Match(b) {
		t.Errorf("duplex version printed %q, want duplex v1.2.3-test GOVERSION OS/ARCH", b)
	}
}
