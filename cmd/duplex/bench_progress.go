package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressInterval is how often the progress line is redrawn.
const progressInterval = 500 * time.Millisecond

// progress redraws one status line on a terminal with carriage returns.
// Its zero value, and a progress on a writer that is not a terminal, draws
// nothing: piped and redirected output gets only the summary.
type progress struct {
	w    io.Writer // nil: no progress
	stop chan struct{}
	done sync.WaitGroup
	last int // width of the last line drawn
}

// newProgress returns a progress that draws on w if w is a terminal.
func newProgress(w io.Writer) *progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &progress{w: w}
	}
	return &progress{}
}

// start redraws line() every progressInterval until end is called.
func (p *progress) start(line func() string) {
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

func (p *progress) draw(s string) {
	pad := max(p.last-len(s), 0)
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.last = len(s)
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

// rateMeter turns a growing counter into a rate over the last interval, for
// progress lines.
type rateMeter struct {
	last  int64
	lastT time.Time
}

func (r *rateMeter) rate(n int64) float64 {
	now := time.Now()
	var v float64
	if !r.lastT.IsZero() {
		if dt := now.Sub(r.lastT).Seconds(); dt > 0 {
			v = float64(n-r.last) / dt
		}
	}
	r.last, r.lastT = n, now
	return v
}
