package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// echoLoad is the state the echo scenario's connections share. The hot
// loop allocates nothing: each connection reuses its message and its read
// buffer, and the histogram and counters are atomics.
type echoLoad struct {
	cfg    *benchConfig
	typ    ws.MessageType
	stamp  bool // messages are long enough to carry their sequence number
	w      *window
	pace   *pacer
	hist   histogram
	msgs   atomic.Int64 // echoed, checked and measured
	errors reasons
	live   atomic.Int64 // connections still running
}

// echo runs the echo scenario: every connection in a closed loop.
func (r *benchRun) echo(ctx context.Context) error {
	cfg := r.cfg
	d := newDialer(cfg, messageBufSize(cfg.size))
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("echo: connecting %s/%s, %s failed", commas(d.established.Load()), commas(int64(cfg.conns)), commas(d.failures.count())),
			countShare(d.established.Load(), int64(cfg.conns))
	})
	conns := d.dialAll(ctx, cfg.conns, cfg.dialConcurrency, nil, nil)
	r.prog.end()
	r.sum.Dial, r.sum.Extensions = d.summary(), d.extensions
	if len(conns) == 0 {
		return d.noConnections(ctx)
	}

	e := &echoLoad{
		cfg:   cfg,
		typ:   msgType(cfg.binary),
		stamp: cfg.size >= stampLen(cfg.binary),
		w:     newWindow(cfg.count),
		pace:  newPacer(cfg.rate),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	e.live.Store(int64(len(conns)))
	for _, c := range conns {
		wg.Go(func() {
			if cfg.pipeline > 1 {
				e.runPipelined(runCtx, c)
			} else {
				e.run(runCtx, c)
			}
			if e.live.Add(-1) == 0 {
				e.w.abort("every connection failed")
			}
		})
	}
	var rm rateMeter
	r.prog.start(func() (string, float64) {
		if !e.w.measuring.Load() {
			return "echo: warming up", progressOpen
		}
		n := e.msgs.Load()
		return fmt.Sprintf("echo %.1fs/%v: %s messages, %s/s, %s errors", e.w.elapsed().Seconds(), cfg.duration, commas(n), commas(int64(rm.rate(n))), commas(e.errors.count())),
			timeShare(e.w.elapsed(), cfg.duration)
	})
	e.w.run(ctx, cfg.warmup, cfg.duration, func() {
		r.server.begin()
		r.client.begin()
	})
	r.prog.end()
	msgs := e.msgs.Load()
	r.sum.Server = r.server.finish(msgs, "message", 0)
	r.sum.Client = r.client.finish()
	stop()
	wg.Wait()
	closeAll(conns, nil)

	secs := e.w.seconds()
	r.sum.Seconds, r.sum.StoppedBy = round3(secs), e.w.stoppedBy
	es := &echoSummary{
		Messages:     msgs,
		Latency:      e.hist.summary(),
		Errors:       e.errors.count(),
		ErrorReasons: e.errors.snapshot(),
	}
	if secs > 0 {
		es.MessagesPerSec = round1(float64(msgs) / secs)
		es.BytesPerSec = round1(float64(msgs) * float64(cfg.size) / secs)
	}
	r.sum.Echo = es
	return nil
}

// run is one connection's closed loop: send, wait for the echo, check it.
func (e *echoLoad) run(ctx context.Context, c *ws.Conn) {
	out := makePayload(e.cfg.size)
	in := make([]byte, 0, e.cfg.size)
	t := newStoppedTimer()
	for seq := uint64(0); ; seq++ {
		if e.pace.wait(ctx, t) != nil {
			return
		}
		measured, ok := e.w.claim()
		if !ok {
			<-ctx.Done() // the count is reached: wait for the end
			return
		}
		if e.stamp {
			putStamp(out, e.cfg.binary, seq)
		}
		t0 := nanotime()
		if err := c.Write(ctx, e.typ, out); err != nil {
			e.fail(ctx, err, measured)
			return
		}
		typ, p, err := c.ReadAppend(ctx, in[:0])
		if err != nil {
			e.fail(ctx, err, measured)
			return
		}
		lat := nanotime() - t0
		in = p
		if typ != e.typ || !bytes.Equal(p, out) {
			e.mismatch(typ, p, out, measured)
			return
		}
		if measured {
			e.completed(lat)
		}
	}
}

// completed records a measured message that came back as sent.
func (e *echoLoad) completed(lat int64) {
	if e.w.inWindow() {
		e.hist.record(time.Duration(lat))
		e.msgs.Add(1)
	}
	e.w.done()
}

// fail counts a connection's failure, unless the run is ending.
func (e *echoLoad) fail(ctx context.Context, err error, measured bool) {
	if ctx.Err() != nil {
		return
	}
	e.errors.add(failureReason(err))
	if measured {
		e.w.done()
	}
}

// mismatch counts an echo that differs from what was sent; the connection
// stops, since what follows cannot be trusted either.
func (e *echoLoad) mismatch(typ ws.MessageType, got, want []byte, measured bool) {
	switch {
	case typ != e.typ:
		e.errors.add(fmt.Sprintf("echo of a %v message came back as %v", e.typ, typ))
	case len(got) != len(want):
		e.errors.add("echo of a different length")
	default:
		e.errors.add("echo with different bytes (or out of order)")
	}
	if measured {
		e.w.done()
	}
}

// runPipelined keeps --pipeline messages in flight on one connection: a
// writer sends while it has credit, the reader checks the echoes in order
// and returns the credit.
func (e *echoLoad) runPipelined(ctx context.Context, c *ws.Conn) {
	k := e.cfg.pipeline
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	credits := make(chan struct{}, k)
	for range k {
		credits <- struct{}{}
	}
	// sent[seq%k] is the send time of message seq, shifted left by one,
	// with the low bit set if it is measured. Atomics, because the echo
	// reaches the reader through the network, which the race detector
	// does not count as synchronization.
	sent := make([]atomic.Int64, k)
	// outstanding counts the measured messages sent and not yet checked;
	// those a failure leaves behind are done all the same, so that a
	// --count run does not wait for them.
	var outstanding atomic.Int64
	defer func() {
		for n := outstanding.Load(); n > 0; n-- {
			e.w.done()
		}
	}()
	var failed sync.Once
	fail := func(err error) {
		failed.Do(func() { e.fail(ctx, err, false) })
		cancel()
	}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		out := makePayload(e.cfg.size)
		t := newStoppedTimer()
		for seq := uint64(0); ; seq++ {
			select {
			case <-credits:
			case <-ctx.Done():
				return
			}
			if e.pace.wait(ctx, t) != nil {
				return
			}
			measured, ok := e.w.claim()
			if !ok {
				return // the count is reached; the reader waits for the end
			}
			if e.stamp {
				putStamp(out, e.cfg.binary, seq)
			}
			v := nanotime() << 1
			if measured {
				v |= 1
				outstanding.Add(1)
			}
			sent[seq%uint64(k)].Store(v)
			if err := c.Write(ctx, e.typ, out); err != nil {
				fail(err)
				return
			}
		}
	}()

	want := makePayload(e.cfg.size)
	in := make([]byte, 0, e.cfg.size)
	for seq := uint64(0); ; seq++ {
		typ, p, err := c.ReadAppend(ctx, in[:0])
		if err != nil {
			fail(err)
			break
		}
		now := nanotime()
		in = p
		v := sent[seq%uint64(k)].Load()
		measured := v&1 == 1
		if e.stamp {
			putStamp(want, e.cfg.binary, seq)
		}
		if typ != e.typ || !bytes.Equal(p, want) {
			failed.Do(func() { e.mismatch(typ, p, want, false) })
			cancel()
			break
		}
		if measured {
			outstanding.Add(-1)
			e.completed(now - v>>1)
		}
		credits <- struct{}{} // never blocks: at most k messages are in flight
	}
	<-writerDone
}
