package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestProgressRender(t *testing.T) {
	t.Parallel()
	const status = "echo 4.5s/10s: 1,234 messages, 2,468/s, 0 errors"
	for _, tc := range []struct {
		name   string
		status string
		frac   float64
		width  int
		spin   int
		want   string
	}{
		{"45% on 81 columns: a 20-column bar", status, 0.45, 81, 0,
			"[=========>          ]  45% " + status},
		{"0%", "echo: connecting 0/100, 0 failed", 0, 81, 0,
			"[>                   ]   0% echo: connecting 0/100, 0 failed"},
		{"100%", "idle: closing, 100/100 closed", 1, 81, 0,
			"[====================] 100% idle: closing, 100/100 closed"},
		{"past the end is 100%", "x", 1.2, 81, 0,
			"[====================] 100% x"},
		{"30 columns at most", "x", 0.5, 200, 0,
			"[===============>              ]  50% x"},
		{"no fraction: a marker at the start", "soak 3s [warming up]", -1, 81, 0,
			"[<=>                 ]      soak 3s [warming up]"},
		{"no fraction: the marker moves", "soak 3s [warming up]", -1, 81, 5,
			"[     <=>            ]      soak 3s [warming up]"},
		{"no fraction: and comes back", "soak 3s [warming up]", -1, 81, 17 + 3,
			"[              <=>   ]      soak 3s [warming up]"},
		{"the first rate is a dash", "echo 0.5s/10s: 10 messages, -1/s, 0 errors", 0.05, 81, 0,
			"[=>                  ]   5% echo 0.5s/10s: 10 messages, —/s, 0 errors"},
		{"cut to fit, short of the last column", status, 0.45, 60, 0,
			"[======>       ]  45% echo 4.5s/10s: 1,234 messages, 2,468…"},
		{"narrow: no bar, the percentage", status, 0.45, 40, 0,
			"45% echo 4.5s/10s: 1,234 messages, 2,4…"},
		{"narrow, no fraction: the status alone", "soak 3s [warming up]", -1, 20, 0,
			"soak 3s [warming u…"},
		{"very narrow", status, 0.45, 5, 0, "45%…"},
		{"two columns", status, 0.45, 2, 0, "4"},
		{"one column", status, 0.45, 1, 0, ""},
		{"no width", status, 0.45, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderProgress(tc.status, tc.frac, tc.width, tc.spin)
			if got != tc.want {
				t.Errorf("renderProgress(%q, %v, %d, %d)\n got %q\nwant %q", tc.status, tc.frac, tc.width, tc.spin, got, tc.want)
			}
		})
	}
	// Whatever the width, the line stays short of the last column.
	for width := range 200 {
		for _, frac := range []float64{-1, 0, 0.333, 1} {
			got := renderProgress(status, frac, width, width)
			if n := utf8.RuneCountInString(got); n > max(width-1, 0) {
				t.Errorf("width %d, frac %v: %d columns: %q", width, frac, n, got)
			}
		}
	}
}

func TestProgressShares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want float64
	}{
		{timeShare(4500*time.Millisecond, 10*time.Second), 0.45},
		{timeShare(0, 10*time.Second), 0},
		{timeShare(12*time.Second, 10*time.Second), 1},
		{timeShare(time.Second, 0), progressOpen},
		{countShare(250, 1000), 0.25},
		{countShare(1000, 1000), 1},
		{countShare(1, 0), progressOpen},
		{countShare(-1, 10), 0},
	} {
		if tc.got < tc.want-1e-9 || tc.got > tc.want+1e-9 {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
}

func TestProgressRateMeter(t *testing.T) {
	t.Parallel()
	var rm rateMeter
	if got := rm.rate(100); got != rateUnknown {
		t.Errorf("first rate = %v, want rateUnknown: no interval yet", got)
	}
	time.Sleep(50 * time.Millisecond)
	if got := rm.rate(200); got <= 0 || got > 100/0.05 {
		t.Errorf("second rate = %v, want (0, 2000]: 100 in 50 ms or more", got)
	}
	if got := rm.rate(200); got != 0 {
		t.Errorf("rate with no growth = %v, want 0", got)
	}
}

// TestProgressNotTerminal checks that nothing is drawn where standard error
// is not a terminal: a pipe, a file or a buffer.
func TestProgressNotTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{f, &strings.Builder{}} {
		p := newProgress(w)
		if p.w != nil {
			t.Errorf("newProgress(%T) draws", w)
		}
		p.start(func() (string, float64) {
			t.Error("line() called on a progress that does not draw")
			return "", 0
		})
		p.end()
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("%d bytes written to a file", fi.Size())
	}
}

// TestProgressTerminal runs duplex bench on a tmux pane (a terminal) and
// reads the bar off the screen while it runs, then the summary once the bar
// is erased.
func TestProgressTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is missing (Debian package tmux); the progress bar of duplex bench is tested on a tmux pane")
		}
		t.Skip("tmux is missing (apt-get install tmux): skipping the progress bar of duplex bench")
	}
	bin := filepath.Join(t.TempDir(), "duplex")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	url, _ := startBenchServer(t)
	pane := startPane(t, tmux, bin, "bench", "echo", "--conns", "2", "--rate", "200", "--duration", "4s", url+"/ws/echo")
	bar := regexp.MustCompile(`(?m)^\[=*>? *\] +\d+% echo \d+\.\ds/4s: [\d,]+ messages, (—|[\d,]+)/s, 0 errors`)
	pane.waitFor("the progress bar", func(s string) bool { return bar.MatchString(s) })
	// Drawn in place: one line, never a second bar below the first.
	if s := pane.screen(); strings.Count(s, "% echo ") != 1 {
		t.Errorf("the bar is not redrawn in place:\n%s", s)
	}
	rated := regexp.MustCompile(`(?m)^\[=*>? *\] +\d+% echo \d+\.\ds/4s: [\d,]+ messages, [1-9][\d,]*/s, 0 errors`)
	pane.waitFor("a rate on the bar", func(s string) bool { return rated.MatchString(s) })
	pane.waitFor("the summary and a clean exit", func(s string) bool {
		return strings.Contains(s, "[exit 0, terminal restored]")
	})
	if s := pane.screen(); strings.Contains(s, "% echo ") || strings.Contains(s, " 0/s") {
		t.Errorf("the bar was left on the screen, or a rate of 0/s:\n%s", s)
	}
}
