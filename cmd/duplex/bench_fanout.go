package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// The fan-out run's phases besides the measurement: how long subscribers
// may take to receive the first probe (which proves the server has them
// subscribed), and how long the run waits, after the last message, for
// deliveries that make no more progress.
const (
	fanoutJoinTimeout  = 10 * time.Second
	fanoutProbeEvery   = 20 * time.Millisecond
	fanoutDrainStalled = 2 * time.Second
)

// fanoutLoad is the state of the fanout scenario.
type fanoutLoad struct {
	cfg  *benchConfig
	typ  ws.MessageType
	w    *window
	pace *pacer

	mu   sync.Mutex
	subs []*fanoutSub

	readers  sync.WaitGroup
	closing  atomic.Bool
	ready    atomic.Int64 // subscribers that got a probe
	sent     atomic.Int64 // measured messages sent
	received atomic.Int64 // measured messages received, all subscribers
	hist     histogram
	errors   reasons
}

type fanoutSub struct {
	c     *ws.Conn
	ready atomic.Bool
}

// fanout runs the fanout scenario: subscribers, a publisher, deliveries.
func (r *benchRun) fanout(ctx context.Context) error {
	cfg := r.cfg
	d := newDialer(cfg, messageBufSize(cfg.size))
	f := &fanoutLoad{cfg: cfg, typ: msgType(cfg.binary), w: newWindow(cfg.count), pace: newPacer(cfg.rate)}
	defer f.readers.Wait()

	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("fanout: subscribing %s/%s, %s failed", commas(d.established.Load()), commas(int64(cfg.conns)), commas(d.failures.count())),
			countShare(d.established.Load(), int64(cfg.conns))
	})
	d.dialAll(ctx, cfg.conns, cfg.dialConcurrency, nil, f.subscribe)
	r.prog.end()
	if len(f.subs) == 0 {
		r.sum.Dial = d.summary()
		return d.noConnections(ctx)
	}
	pub, err := d.dial(ctx)
	r.sum.Dial, r.sum.Extensions = d.summary(), d.extensions
	if err != nil {
		f.closeAll(nil)
		return fmt.Errorf("the publisher could not connect to %s: %w", cfg.url, err)
	}
	conns := []*ws.Conn{pub}
	// The publisher is subscribed too: it reads and discards, so that the
	// server never finds it too slow.
	f.readers.Go(func() {
		var buf []byte
		for {
			_, p, err := pub.ReadAppend(context.Background(), buf[:0])
			if err != nil {
				if !f.closing.Load() {
					f.errors.add("publisher: " + failureReason(err))
					f.w.abort("publisher lost")
				}
				return
			}
			buf = p
		}
	})

	// Probe until every subscriber is known to be subscribed: a handshake
	// completes before the server registers the connection.
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("fanout: waiting for subscribers, %s/%s ready", commas(f.ready.Load()), commas(int64(len(f.subs)))),
			countShare(f.ready.Load(), int64(len(f.subs)))
	})
	probe := makePayload(cfg.size)
	putStamp(probe, cfg.binary, 0)
	joinBy := time.Now().Add(fanoutJoinTimeout)
	t := newStoppedTimer()
	for f.ready.Load() < int64(len(f.subs)) && time.Now().Before(joinBy) && ctx.Err() == nil {
		if err := pub.Write(ctx, f.typ, probe); err != nil && ctx.Err() == nil {
			f.closeAll(conns)
			return fmt.Errorf("the publisher could not send: %w", err)
		}
		_ = sleepCtx(ctx, t, fanoutProbeEvery)
	}
	r.prog.end()
	f.mu.Lock()
	for _, s := range f.subs {
		if !s.ready.Load() {
			f.errors.add(fmt.Sprintf("not subscribed within %v", fanoutJoinTimeout))
			_ = s.c.CloseNow()
		}
	}
	f.mu.Unlock()
	subscribers := f.ready.Load()

	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var publisher sync.WaitGroup
	publisher.Go(func() { f.publish(pubCtx, pub) })
	var rm rateMeter
	r.prog.start(func() (string, float64) {
		if !f.w.measuring.Load() {
			return "fanout: warming up", progressOpen
		}
		n := f.received.Load()
		return fmt.Sprintf("fanout %.1fs/%v: %s sent, %s delivered, %s/s, %s errors", f.w.elapsed().Seconds(), cfg.duration, commas(f.sent.Load()), commas(n), commas(int64(rm.rate(n))), commas(f.errors.count())),
			timeShare(f.w.elapsed(), cfg.duration)
	})
	f.w.run(ctx, cfg.warmup, cfg.duration, func() {
		r.server.begin()
		r.client.begin()
	})
	stopPub()
	publisher.Wait()

	// Wait for the deliveries still on their way.
	sent := f.sent.Load()
	expected := sent * subscribers
	last, lastProgress := f.received.Load(), time.Now()
	for ctx.Err() == nil {
		n := f.received.Load()
		if n >= expected {
			break
		}
		if n != last {
			last, lastProgress = n, time.Now()
		} else if time.Since(lastProgress) > fanoutDrainStalled {
			break
		}
		_ = sleepCtx(ctx, t, 10*time.Millisecond)
	}
	r.prog.end()
	received := f.received.Load()
	r.sum.Server = r.server.finish(received, "delivery", 0)
	r.sum.Client = r.client.finish()
	f.closeAll(conns)

	secs := f.w.seconds()
	r.sum.Seconds, r.sum.StoppedBy = round3(secs), f.w.stoppedBy
	fs := &fanoutSummary{
		Subscribers:  subscribers,
		Sent:         sent,
		Expected:     expected,
		Received:     received,
		Lost:         max(expected-received, 0),
		Latency:      f.hist.summary(),
		Errors:       f.errors.count(),
		ErrorReasons: f.errors.snapshot(),
	}
	if secs > 0 {
		fs.DeliveriesPerSec = round1(float64(received) / secs)
	}
	r.sum.Fanout = fs
	return nil
}

// subscribe reads c until it closes, counting the measured deliveries and
// their latency.
func (f *fanoutLoad) subscribe(c *ws.Conn) {
	s := &fanoutSub{c: c}
	f.mu.Lock()
	f.subs = append(f.subs, s)
	f.mu.Unlock()
	bin := f.cfg.binary
	f.readers.Go(func() {
		buf := make([]byte, 0, f.cfg.size)
		for {
			// Background: the read ends when the connection closes.
			typ, p, err := c.ReadAppend(context.Background(), buf[:0])
			now := nanotime()
			if err != nil {
				if !f.closing.Load() && s.ready.Load() {
					f.errors.add(failureReason(err))
				}
				return
			}
			buf = p
			v, ok := readStamp(p, bin)
			if !ok || typ != f.typ || len(p) != f.cfg.size {
				f.errors.add("a message that was not the publisher's")
				continue
			}
			switch {
			case v == 0:
				if !s.ready.Swap(true) {
					f.ready.Add(1)
				}
			case v&stampMeasured != 0 && s.ready.Load():
				f.hist.record(time.Duration(now - int64(v&^stampMeasured)))
				f.received.Add(1)
			}
		}
	})
}

// publish sends messages stamped with their send time at the run's rate
// until ctx is done or the count is reached.
func (f *fanoutLoad) publish(ctx context.Context, pub *ws.Conn) {
	out := makePayload(f.cfg.size)
	t := newStoppedTimer()
	for {
		if f.pace.wait(ctx, t) != nil {
			return
		}
		measured, ok := f.w.claim()
		if !ok {
			return
		}
		v := uint64(nanotime())
		if measured {
			v |= stampMeasured
		}
		putStamp(out, f.cfg.binary, v)
		if err := pub.Write(ctx, f.typ, out); err != nil {
			if ctx.Err() == nil {
				f.errors.add("publisher: " + failureReason(err))
				f.w.abort("publisher lost")
			}
			return
		}
		if measured {
			f.sent.Add(1)
			f.w.done()
		}
	}
}

// closeAll closes the subscribers and conns.
func (f *fanoutLoad) closeAll(conns []*ws.Conn) {
	f.closing.Store(true)
	f.mu.Lock()
	for _, s := range f.subs {
		if s.ready.Load() {
			conns = append(conns, s.c)
		} else {
			_ = s.c.CloseNow()
		}
	}
	f.mu.Unlock()
	closeAll(conns, nil)
}
