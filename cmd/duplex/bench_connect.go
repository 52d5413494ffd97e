package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// connectLoad is the state of the connect scenario.
type connectLoad struct {
	url  string
	opts *ws.DialOptions
	w    *window
	pace *pacer

	open, close histogram
	handshakes  atomic.Int64 // measured open + close cycles
	failures    reasons
}

// connect runs the connect scenario: workers open and close connections
// in a loop.
func (r *benchRun) connect(ctx context.Context) error {
	cfg := r.cfg
	l := &connectLoad{
		url:  cfg.url,
		opts: cfg.dialOptions(0),
		w:    newWindow(cfg.count),
		pace: newPacer(cfg.rate),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for range cfg.conns {
		wg.Go(func() { l.worker(runCtx) })
	}
	var rm rateMeter
	r.prog.start(func() (string, float64) {
		if !l.w.measuring.Load() {
			return "connect: warming up", progressOpen
		}
		n := l.handshakes.Load()
		return fmt.Sprintf("connect %.1fs/%v: %s handshakes, %s/s, %s failed", l.w.elapsed().Seconds(), cfg.duration, commas(n), commas(int64(rm.rate(n))), commas(l.failures.count())),
			timeShare(l.w.elapsed(), cfg.duration)
	})
	l.w.run(ctx, cfg.warmup, cfg.duration, func() {
		r.server.begin()
		r.client.begin()
	})
	r.prog.end()
	n := l.handshakes.Load()
	r.sum.Server = r.server.finish(n, "handshake", 0)
	r.sum.Client = r.client.finish()
	stop()
	wg.Wait()

	secs := l.w.seconds()
	r.sum.Seconds, r.sum.StoppedBy = round3(secs), l.w.stoppedBy
	cs := &connectSummary{
		Handshakes:     n,
		Handshake:      l.open.summary(),
		Close:          l.close.summary(),
		Failures:       l.failures.count(),
		FailureReasons: l.failures.snapshot(),
	}
	if secs > 0 {
		cs.HandshakesPerSec = round1(float64(n) / secs)
	}
	r.sum.Connect = cs
	if n == 0 && cs.Failures > 0 {
		r.failed = fmt.Sprintf("no handshake succeeded (%s)", formatReasons(cs.FailureReasons))
	}
	return nil
}

// worker opens and closes connections until ctx is done or the count is
// reached.
func (l *connectLoad) worker(ctx context.Context) {
	t := newStoppedTimer()
	for {
		if l.pace.wait(ctx, t) != nil {
			return
		}
		measured, ok := l.w.claim()
		if !ok {
			return
		}
		t0 := nanotime()
		c, _, err := ws.Dial(ctx, l.url, l.opts)
		t1 := nanotime()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if measured {
				l.failures.add(failureReason(err))
				l.w.done()
			}
			continue
		}
		err = c.Close(ws.StatusNormalClosure, "")
		t2 := nanotime()
		_ = c.CloseNow()
		if !measured {
			continue
		}
		if err != nil {
			l.failures.add("close: " + failureReason(err))
		} else if l.w.inWindow() {
			l.open.record(time.Duration(t1 - t0))
			l.close.record(time.Duration(t2 - t1))
			l.handshakes.Add(1)
		}
		l.w.done()
	}
}
