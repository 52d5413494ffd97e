package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// dialer opens a run's connections and records how the handshakes went.
type dialer struct {
	url  string
	opts *ws.DialOptions

	handshake   histogram
	failures    reasons
	established atomic.Int64

	extOnce    sync.Once
	extensions string // negotiated by the first connection
}

func newDialer(cfg *benchConfig, bufSize int) *dialer {
	return &dialer{url: cfg.url, opts: cfg.dialOptions(bufSize)}
}

// dial opens one connection. A failure is counted unless ctx ended it.
func (d *dialer) dial(ctx context.Context) (*ws.Conn, error) {
	t0 := nanotime()
	c, _, err := ws.Dial(ctx, d.url, d.opts)
	if err != nil {
		if ctx.Err() == nil {
			d.failures.add(failureReason(err))
		}
		return nil, err
	}
	d.handshake.record(time.Duration(nanotime() - t0))
	d.established.Add(1)
	d.extOnce.Do(func() { d.extensions = c.Extensions() })
	return c, nil
}

// dialAll opens n connections, with at most concurrency handshakes in
// flight and at the pace of p (nil: no pacing), and calls opened, if not
// nil, for each as soon as it is open. It returns the connections opened
// once all n were tried or ctx is done.
func (d *dialer) dialAll(ctx context.Context, n, concurrency int, p *pacer, opened func(*ws.Conn)) []*ws.Conn {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		conns = make([]*ws.Conn, 0, n)
		wg    sync.WaitGroup
	)
	for range min(concurrency, n) {
		wg.Go(func() {
			t := newStoppedTimer()
			for next.Add(1) <= int64(n) {
				if p.wait(ctx, t) != nil {
					return
				}
				c, err := d.dial(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				if opened != nil {
					opened(c)
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns
}

// summary digests the handshakes.
func (d *dialer) summary() *dialSummary {
	return &dialSummary{
		Established: d.established.Load(),
		Failed:      d.failures.count(),
		Failures:    d.failures.snapshot(),
		Handshake:   d.handshake.summary(),
	}
}

// noConnections is the error of a run that could open no connection.
func (d *dialer) noConnections(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted before a connection to %s was open", d.url)
	}
	return fmt.Errorf("no connection to %s could be opened (%s); is the server running, and is the URL's path a WebSocket endpoint?", d.url, formatReasons(d.failures.snapshot()))
}

// The close phase: at most closeConcurrency close handshakes at a time, and
// after closePhaseLimit the connections still open are cut without one, so
// that a server that never answers cannot hold the run.
const (
	closeConcurrency = 1000
	closePhaseLimit  = 15 * time.Second
)

// closeAll closes conns with the close handshake (1000) and reports each
// outcome to closed, if not nil: nil for a completed handshake.
func closeAll(conns []*ws.Conn, closed func(err error)) {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		deadline = time.Now().Add(closePhaseLimit)
	)
	for range min(closeConcurrency, len(conns)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(conns)) {
					return
				}
				c := conns[i]
				var err error
				if time.Now().After(deadline) {
					err = fmt.Errorf("not closed within %v", closePhaseLimit)
				} else {
					err = c.Close(ws.StatusNormalClosure, "")
				}
				_ = c.CloseNow()
				if closed != nil {
					closed(err)
				}
			}
		})
	}
	wg.Wait()
}

// Messages of echo and fanout carry a stamp at their start, when they are
// long enough: 8 bytes big-endian in binary messages, 16 lowercase hex
// digits in text ones (which must be UTF-8). Echo stamps a sequence number;
// fanout the send time in nanotime, with stampMeasured set on messages sent
// while measuring, and 0 for the probes that tell who is subscribed.
const stampMeasured = 1 << 63

func stampLen(bin bool) int {
	if bin {
		return 8
	}
	return 16
}

func putStamp(p []byte, bin bool, v uint64) {
	if bin {
		binary.BigEndian.PutUint64(p, v)
		return
	}
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		p[i] = digits[v&0xf]
		v >>= 4
	}
}

func readStamp(p []byte, bin bool) (uint64, bool) {
	if len(p) < stampLen(bin) {
		return 0, false
	}
	if bin {
		return binary.BigEndian.Uint64(p), true
	}
	var v uint64
	for _, c := range p[:16] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// makePayload returns a message of size bytes: letters, so that it is
// valid text and compresses as real traffic does.
func makePayload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}
