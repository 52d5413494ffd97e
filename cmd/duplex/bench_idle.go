package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// idleBufSize is the read and write buffer of each idle connection: the
// smallest ws allows, so that the load generator holding tens of thousands
// of connections stays small itself.
const idleBufSize = 256

// idleLoad is the state of the idle scenario.
type idleLoad struct {
	mu    sync.Mutex
	conns []*idleConn

	readers sync.WaitGroup // one per connection, until it closes
	closing atomic.Bool    // set before the close phase: later read errors are not losses
	lost    reasons

	pingRTT      histogram
	pings        atomic.Int64
	pingFailures atomic.Int64
}

type idleConn struct {
	c    *ws.Conn
	lost atomic.Bool
}

// idle runs the idle scenario: open, hold (pinging), close.
func (r *benchRun) idle(ctx context.Context) error {
	cfg := r.cfg
	d := newDialer(cfg, idleBufSize)
	l := &idleLoad{}
	r.server.begin() // the server's memory before the connections
	r.client.begin()

	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("idle: opening %s/%s, %s failed", commas(d.established.Load()), commas(int64(cfg.conns)), commas(d.failures.count())),
			countShare(d.established.Load(), int64(cfg.conns))
	})
	d.dialAll(ctx, cfg.conns, cfg.dialConcurrency, newPacer(cfg.rate), l.hold)
	r.prog.end()
	r.sum.Dial, r.sum.Extensions = d.summary(), d.extensions
	defer l.readers.Wait()
	if len(l.conns) == 0 {
		return d.noConnections(ctx)
	}

	holdStart := time.Now()
	holdCtx, endHold := context.WithTimeout(ctx, cfg.duration)
	defer endHold()
	var pinger sync.WaitGroup
	if cfg.pingInterval > 0 {
		pinger.Go(func() { l.ping(holdCtx, cfg.pingInterval) })
	}
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("idle: holding %s for %.0fs/%v, %s lost, %s pings", commas(int64(len(l.conns))-l.lost.count()), time.Since(holdStart).Seconds(), cfg.duration, commas(l.lost.count()), commas(l.pings.Load())),
			timeShare(time.Since(holdStart), cfg.duration)
	})
	<-holdCtx.Done()
	r.prog.end()
	pinger.Wait()
	r.sum.StoppedBy = "duration"
	if ctx.Err() != nil {
		r.sum.StoppedBy = "interrupt"
	}
	r.sum.Seconds = round3(time.Since(holdStart).Seconds())
	established := int64(len(l.conns))
	r.sum.Server = r.server.finish(established, "connection", established)
	r.sum.Client = r.client.finish()

	is := &idleSummary{
		Lost:         l.lost.count(),
		LostReasons:  l.lost.snapshot(),
		Pings:        l.pings.Load(),
		PingFailures: l.pingFailures.Load(),
		PingRTT:      l.pingRTT.summary(),
	}
	is.Open = established - is.Lost

	l.closing.Store(true)
	var closeFailures reasons
	var closed atomic.Int64
	conns := make([]*ws.Conn, 0, len(l.conns))
	for _, ic := range l.conns {
		if !ic.lost.Load() {
			conns = append(conns, ic.c)
		} else {
			_ = ic.c.CloseNow()
		}
	}
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("idle: closing, %s/%s closed", commas(closed.Load()), commas(int64(len(conns)))),
			countShare(closed.Load(), int64(len(conns)))
	})
	closeAll(conns, func(err error) {
		closed.Add(1)
		if err != nil {
			closeFailures.add(failureReason(err))
		}
	})
	r.prog.end()
	is.ClosedCleanly = int64(len(conns)) - closeFailures.count()
	is.CloseFailures = closeFailures.snapshot()
	r.sum.Idle = is
	return nil
}

// hold keeps c open: a goroutine reads it, so that pings are answered and
// the server's close is seen, and counts it lost if it ends before the
// close phase.
func (l *idleLoad) hold(c *ws.Conn) {
	ic := &idleConn{c: c}
	l.mu.Lock()
	l.conns = append(l.conns, ic)
	l.mu.Unlock()
	l.readers.Go(func() {
		var buf []byte
		for {
			// Background: the read ends when the connection closes.
			_, p, err := c.ReadAppend(context.Background(), buf[:0])
			if err != nil {
				if !l.closing.Load() {
					ic.lost.Store(true)
					l.lost.add(failureReason(err))
				}
				_ = c.CloseNow()
				return
			}
			if cap(p) <= 4<<10 {
				buf = p
			}
		}
	})
}

// ping pings every connection once per interval, spread evenly over it,
// until ctx is done. A ping not answered within the interval fails.
func (l *idleLoad) ping(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	n := len(l.conns)
	// Wake at most every millisecond, pinging as many as are due: the
	// schedule is absolute, so late wake-ups do not stretch a round.
	batch := max(n/int(max(interval/time.Millisecond, 1)), 1)
	t := newStoppedTimer()
	for round := time.Now(); ; round = round.Add(interval) {
		for i := 0; i < n; i += batch {
			due := round.Add(time.Duration(int64(interval) * int64(i) / int64(n)))
			if d := time.Until(due); d > 0 {
				if sleepCtx(ctx, t, d) != nil {
					return
				}
			} else if ctx.Err() != nil {
				return
			}
			for _, ic := range l.conns[i:min(i+batch, n)] {
				if ic.lost.Load() {
					continue
				}
				wg.Go(func() {
					pctx, cancel := context.WithTimeout(ctx, interval)
					defer cancel()
					t0 := nanotime()
					err := ic.c.Ping(pctx)
					switch {
					case err == nil:
						l.pingRTT.record(time.Duration(nanotime() - t0))
						l.pings.Add(1)
					case ctx.Err() == nil && !ic.lost.Load():
						l.pingFailures.Add(1)
					}
				})
			}
		}
	}
}
