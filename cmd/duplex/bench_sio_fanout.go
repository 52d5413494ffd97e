package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// sioFanoutLoad is the state of socketio --mode fanout: subscribers spread
// over the URLs, publishers on the first, deliveries counted as they come.
type sioFanoutLoad struct {
	cfg  *benchConfig
	w    *window
	pace *pacer

	closing  atomic.Bool
	ready    atomic.Int64 // subscribers that got a probe
	sent     atomic.Int64 // measured publishes
	received atomic.Int64 // measured deliveries, all subscribers
	last     atomic.Int64 // nanotime of the last measured delivery
	hist     histogram    // send to receipt
	errors   reasons      // the subscribers'

	acks     atomic.Int64 // measured publishes acknowledged
	ackHist  histogram
	pubErrs  reasons
	pubsLive atomic.Int64
}

type sioSub struct {
	c     *socketio.ClientSocket
	ready atomic.Bool
}

// sioFanout runs socketio --mode fanout.
func (r *benchRun) sioFanout(ctx context.Context) error {
	cfg := r.cfg
	f := &sioFanoutLoad{cfg: cfg, w: newWindow(cfg.count), pace: newPacer(cfg.rate)}
	r.server.markUnloaded()

	d := newSIODialer(cfg)
	total := int64(cfg.conns + cfg.publishers)
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("socketio fanout: connecting %s/%s, %s failed", commas(d.established.Load()), commas(total), commas(d.failures.count())),
			countShare(d.established.Load(), total)
	})
	subs := make([]*sioSub, cfg.conns)
	d.dialAll(ctx, cfg.urls, cfg.conns, func(i int, c *socketio.ClientSocket) {
		s := &sioSub{c: c}
		subs[i] = s
		c.On(cfg.recvEvent, func(_ *socketio.ClientSocket, e *socketio.Event) { f.deliver(s, e) })
		c.OnDisconnect(func(_ *socketio.ClientSocket, reason string) {
			if !f.closing.Load() {
				f.errors.add("subscriber lost: " + reason)
			}
		})
	})
	var pubs []*socketio.ClientSocket
	if ctx.Err() == nil && d.established.Load() > 0 {
		pubs = d.dialAll(ctx, cfg.urls[:1], cfg.publishers, nil)
	}
	r.prog.end()
	r.sum.Dial = d.summary()
	var all []*socketio.ClientSocket
	var live []*sioSub
	for _, s := range subs {
		if s != nil {
			all = append(all, s.c)
			live = append(live, s)
		}
	}
	all = append(all, pubs...)
	defer func() {
		f.closing.Store(true)
		closeSIO(all)
	}()
	ss := &sioSummary{Event: cfg.event, Transport: cfg.transport, RecvEvent: cfg.recvEvent, Publishers: len(pubs)}
	r.sum.SocketIO = ss
	switch {
	case len(live) == 0:
		r.failed = "no subscriber connected"
		return nil
	case len(pubs) == 0:
		r.failed = "no publisher connected"
		return nil
	}

	// Probe until every subscriber has had a broadcast, for at most
	// --timeout: that proves the path from the publishers' server to each
	// subscriber's (its adapter subscribed, the subscriber in the
	// namespace) before anything is measured.
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("socketio fanout: waiting for subscribers, %s/%s ready", commas(f.ready.Load()), commas(int64(len(live)))),
			countShare(f.ready.Load(), int64(len(live)))
	})
	probe := string(makePayload(cfg.size))
	probe = strings.Repeat("0", 16) + probe[16:]
	joinBy := time.Now().Add(cfg.timeout)
	t := newStoppedTimer()
	for f.ready.Load() < int64(len(live)) && time.Now().Before(joinBy) && ctx.Err() == nil {
		_ = pubs[0].Emit(cfg.event, probe)
		_ = sleepCtx(ctx, t, fanoutProbeEvery)
	}
	r.prog.end()
	for _, s := range live {
		if !s.ready.Load() {
			f.errors.add(fmt.Sprintf("no broadcast within --timeout %v", cfg.timeout))
		}
	}
	subscribers := f.ready.Load()

	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var publishers sync.WaitGroup
	f.pubsLive.Store(int64(len(pubs)))
	for _, c := range pubs {
		publishers.Go(func() {
			f.publish(pubCtx, c)
			if f.pubsLive.Add(-1) == 0 {
				f.w.abort("every publisher failed")
			}
		})
	}
	var rm rateMeter
	r.prog.start(func() (string, float64) {
		if !f.w.measuring.Load() {
			return "socketio fanout: warming up", progressOpen
		}
		n := f.received.Load()
		return fmt.Sprintf("socketio fanout %.1fs/%v: %s sent, %s delivered, %s/s, %s errors", f.w.elapsed().Seconds(), cfg.duration, commas(f.sent.Load()), commas(n), commas(int64(rm.rate(n))), commas(f.errors.count()+f.pubErrs.count())),
			timeShare(f.w.elapsed(), cfg.duration)
	})
	f.w.run(ctx, cfg.warmup, cfg.duration, func() {
		r.server.begin()
		r.client.begin()
	})
	stopPub()
	publishers.Wait()

	// Wait for the deliveries still on their way: a server behind its
	// publishers delivers for a while after they stop.
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
	r.sum.Server = r.server.finish(received, "delivery", int64(len(all)))
	r.sum.Client = r.client.finish()

	secs := f.w.seconds()
	r.sum.Seconds, r.sum.StoppedBy = round3(secs), f.w.stoppedBy
	// Deliveries per second over the window and, when the servers fell
	// behind, the time they took after it to deliver the rest.
	span := secs
	if lastAt := f.last.Load(); lastAt > 0 {
		span = max(span, time.Duration(lastAt-nanotimeAt(f.w.start)).Seconds())
	}
	fs := &fanoutSummary{
		Subscribers:  subscribers,
		Sent:         sent,
		Expected:     expected,
		Received:     received,
		Lost:         max(expected-received, 0),
		Latency:      f.hist.summary(),
		Errors:       f.errors.count() + f.pubErrs.count(),
		ErrorReasons: mergeReasons(f.errors.snapshot(), f.pubErrs.snapshot()),
	}
	if span > 0 {
		fs.DeliveriesPerSec = round1(float64(received) / span)
	}
	r.sum.Fanout = fs
	ss.Acks = f.acks.Load()
	ss.Latency = f.ackHist.summary()
	ss.Errors, ss.ErrorReasons = f.pubErrs.count(), f.pubErrs.snapshot()
	if secs > 0 {
		ss.AcksPerSec = round1(float64(ss.Acks) / secs)
	}
	return nil
}

// nanotimeAt is nanotime at t.
func nanotimeAt(t time.Time) int64 { return int64(t.Sub(benchEpoch)) }

// deliver counts one broadcast received by s: its first argument is the
// publisher's string, "<16 hex digits of send time><filler>".
func (f *sioFanoutLoad) deliver(s *sioSub, e *socketio.Event) {
	now := nanotime()
	raw := e.Raw(0)
	if len(raw) != f.cfg.size+2 || raw[0] != '"' {
		f.errors.add("a broadcast that was not the publishers'")
		return
	}
	v, ok := readStamp(raw[1:], false)
	if !ok {
		f.errors.add("a broadcast that was not the publishers'")
		return
	}
	switch {
	case v == 0:
		if !s.ready.Swap(true) {
			f.ready.Add(1)
		}
	case v&stampMeasured != 0 && s.ready.Load():
		f.hist.record(time.Duration(now - int64(v&^stampMeasured)))
		f.received.Add(1)
		for {
			l := f.last.Load()
			if now <= l || f.last.CompareAndSwap(l, now) {
				break
			}
		}
	}
}

// publish is one publisher's loop: emit a stamped string with an
// acknowledgement, wait for it, repeat, at the shared pace.
func (f *sioFanoutLoad) publish(ctx context.Context, c *socketio.ClientSocket) {
	buf := makePayload(f.cfg.size)
	t := newStoppedTimer()
	for {
		if f.pace.wait(ctx, t) != nil {
			return
		}
		measured, ok := f.w.claim()
		if !ok {
			return
		}
		t0 := nanotime()
		v := uint64(t0)
		if measured {
			v |= stampMeasured
		}
		putStamp(buf, false, v)
		if measured {
			f.sent.Add(1)
		}
		_, err := c.EmitWithAck(ctx, f.cfg.event, string(buf))
		if err != nil {
			if ctx.Err() == nil {
				f.pubErrs.add(fmt.Sprintf("publisher: %s", sioFailure(err)))
				if measured {
					f.w.done()
				}
			}
			return
		}
		if measured {
			if f.w.inWindow() {
				f.ackHist.record(time.Duration(nanotime() - t0))
				f.acks.Add(1)
			}
			f.w.done()
		}
	}
}

// mergeReasons adds b's counts to a's.
func mergeReasons(a, b map[string]int64) map[string]int64 {
	if a == nil {
		return b
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}
