package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// progressInterval is how often the progress bar is redrawn.
const progressInterval = 500 * time.Millisecond

// progress redraws one status line with a progress bar on a terminal, in
// place, with carriage returns. Its zero value, and a progress on a writer
// that is not a terminal, draws nothing: piped and redirected output gets
// only the summary.
//
// The line comes with how far its phase is, from 0 to 1 (a share of
// --duration measured, or of the connections opened), or progressOpen for
// a phase with no end in view, which gets a moving marker instead of a
// bar.
type progress struct {
	w    io.Writer // nil: no progress
	fd   int       // the terminal, for its width
	stop chan struct{}
	done sync.WaitGroup
	last int // columns of the last line drawn
	spin int // draws so far, to move the marker of an open-ended phase
}

// newProgress returns a progress that draws on w if w is a terminal.
func newProgress(w io.Writer) *progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &progress{w: w, fd: int(f.Fd())}
	}
	return &progress{}
}

// progressOpen is the share of a phase with no end in view.
const progressOpen = -1.0

// timeShare is the share of total that elapsed is, for a progress line.
func timeShare(elapsed, total time.Duration) float64 {
	if total <= 0 {
		return progressOpen
	}
	return min(max(elapsed.Seconds()/total.Seconds(), 0), 1)
}

// countShare is the share of total that n is, for a progress line.
func countShare(n, total int64) float64 {
	if total <= 0 {
		return progressOpen
	}
	return min(max(float64(n)/float64(total), 0), 1)
}

// start redraws line() every progressInterval until end is called: its
// status text, and how far the phase is (0 to 1, or progressOpen).
func (p *progress) start(line func() (status string, done float64)) {
	if p.w == nil {
		return
	}
	p.stop = make(chan struct{})
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(line())
			case <-p.stop:
				return
			}
		}
	}()
}

// width is the terminal's width in columns, read at each draw so that a
// resized window is followed; 80 if it cannot be read.
func (p *progress) width() int {
	if w, _, err := term.GetSize(p.fd); err == nil && w > 0 {
		return w
	}
	return 80
}

func (p *progress) draw(status string, frac float64) {
	width := p.width()
	s := renderProgress(status, frac, width, p.spin)
	p.spin++
	n := utf8.RuneCountInString(s)
	// Blank what is left of a longer previous line, but never into the
	// last column: the terminal would wrap, and the next \r would redraw
	// on a new line.
	pad := max(min(p.last, width-1)-n, 0)
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.last = n
}

// end stops the redraws and erases the line.
func (p *progress) end() {
	if p.w == nil || p.stop == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	p.stop = nil
	if p.last > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.last))
		p.last = 0
	}
}

const (
	// progressBarMax is the widest bar, in columns between its brackets.
	progressBarMax = 30
	// progressBarMin is the narrowest: below it the bar is left out and
	// only the percentage is shown.
	progressBarMin = 10
	// progressTextMin is the room a bar must leave for the status text.
	progressTextMin = 20
)

// renderProgress lays out a progress line for a terminal width columns
// wide: a bar filled to frac (0 to 1) with the percentage, or with frac < 0
// a marker that moves with spin, then status, cut to fit. The result never
// reaches the last column, where the terminal would wrap. The bar takes a
// quarter of the width, 10 to 30 columns; on a narrower terminal the
// percentage stands alone before the status.
func renderProgress(status string, frac float64, width, spin int) string {
	status = strings.ReplaceAll(status, " "+strconv.Itoa(rateUnknown)+"/s", " —/s")
	room := width - 1
	if room <= 0 {
		return ""
	}
	known := frac >= 0
	frac = min(frac, 1)
	pct := int(frac * 100)
	var b strings.Builder
	if inner := min(room/4, progressBarMax); inner >= progressBarMin && room-inner-8 >= progressTextMin {
		b.WriteByte('[')
		if known {
			fill := int(frac * float64(inner))
			b.WriteString(strings.Repeat("=", fill))
			if fill < inner {
				b.WriteByte('>')
				b.WriteString(strings.Repeat(" ", inner-fill-1))
			}
			fmt.Fprintf(&b, "] %3d%% ", pct)
		} else {
			// A three-column marker going to and fro.
			span := inner - 3
			pos := spin % (2 * span)
			if pos > span {
				pos = 2*span - pos
			}
			b.WriteString(strings.Repeat(" ", pos))
			b.WriteString("<=>")
			b.WriteString(strings.Repeat(" ", span-pos))
			b.WriteString("]      ")
		}
	} else if known {
		fmt.Fprintf(&b, "%d%% ", pct)
	}
	b.WriteString(status)
	return truncateColumns(b.String(), room)
}

// truncateColumns cuts s to at most n columns (a rune a column: what the
// status lines hold), ending with "…" when it cuts.
func truncateColumns(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return string([]rune(s)[:n])
	}
	return string([]rune(s)[:n-1]) + "…"
}

// rateUnknown is what rateMeter.rate returns before it has an interval to
// measure over; a progress line shows it as "—/s" rather than a false 0/s.
const rateUnknown = -1

// rateMeter turns a growing counter into a rate over the last interval, for
// progress lines.
type rateMeter struct {
	last  int64
	lastT time.Time
}

// rate returns the counter's growth per second since the previous call,
// or rateUnknown on the first call.
func (r *rateMeter) rate(n int64) float64 {
	now := time.Now()
	v := float64(rateUnknown)
	if !r.lastT.IsZero() {
		v = 0
		if dt := now.Sub(r.lastT).Seconds(); dt > 0 {
			v = float64(n-r.last) / dt
		}
	}
	r.last, r.lastT = n, now
	return v
}
