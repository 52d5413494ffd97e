package ws

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// keepalive is a server connection's heartbeat (AcceptOptions.Heartbeat):
// an entry in a timing wheel shared by every connection with the same
// heartbeat, and no timer or goroutine of its own. Each time it comes due
// it looks whether anything arrived from the peer since the last time; if
// nothing did, it pings, and if nothing arrives before it comes due again
// either, the connection is lost.
type keepalive struct {
	c *Conn
	w *wheel

	// In w's slot for due while queued; guarded by w.mu.
	prev, next *keepalive

	// err is why the heartbeat ended the connection, set before it closes
	// it; readFailed reports it. Guarded by c.closeMu.
	err error

	due uint32 // the tick it is due at, modulo 2^32; guarded by w.mu

	// The entry's own state, touched only by whoever took it out of the
	// wheel (the wheel's callback, then the goroutine that pings), never
	// by two at once.
	seen uint32

	// rx counts frame headers and payload reads: bumped by the reader,
	// read when the entry comes due.
	rx atomic.Uint32

	queued  bool // guarded by w.mu
	stopped bool // the connection is closed: queue it no more; guarded by w.mu
	pinged  bool // the entry's own state, as seen
}

// startKeepalive arms the heartbeat of a connection just accepted.
func (c *Conn) startKeepalive(hb *Heartbeat) {
	if hb == nil {
		return
	}
	interval, timeout := hb.durations()
	k := &keepalive{c: c, w: wheelFor(interval, timeout)}
	c.ka = k
	k.w.add(k, interval)
}

// durations returns the interval and timeout with the zero values'
// defaults filled in.
func (hb *Heartbeat) durations() (interval, timeout time.Duration) {
	interval, timeout = hb.Interval, hb.Timeout
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if timeout <= 0 {
		timeout = interval
	}
	return interval, timeout
}

// received notes input from the peer. It is called by the reader.
func (k *keepalive) received() {
	if k != nil {
		k.rx.Add(1)
	}
}

// dueNow is called by the wheel with k taken out of it. It puts k back for
// another interval if the peer sent something since the last time, which
// costs no goroutine; otherwise it pings, or gives up, on a goroutine of
// its own, for the ping may wait for the write side.
func (k *keepalive) dueNow() {
	if rx := k.rx.Load(); rx != k.seen {
		k.seen, k.pinged = rx, false
		k.w.add(k, k.w.interval)
		return
	}
	go k.fire()
}

func (k *keepalive) fire() {
	c := k.c
	if c.isClosed.Load() {
		return
	}
	c.closeMu.Lock()
	closing := c.closeSent
	c.closeMu.Unlock()
	if closing {
		return // the close handshake has its own bound (CloseTimeout)
	}
	timeout := k.w.timeout
	if k.pinged {
		k.lost(fmt.Errorf("%w: nothing from the peer for %v after a ping", ErrNoPong, timeout))
		return
	}
	k.pinged = true
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := c.writeControl(ctx, opPing, nil)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The peer has not read what we sent for the whole timeout
			// (a frame, or this ping, is stuck in the socket's buffer).
			k.lost(fmt.Errorf("%w: the peer read nothing for %v (the ping could not be written)", ErrNoPong, timeout))
		}
		return // otherwise the connection is closed already
	}
	k.w.add(k, max(timeout-time.Since(start), time.Millisecond))
}

// lost ends the connection as a dead peer's: reads return an error that
// wraps err and reads as CloseError{Code: StatusAbnormalClosure}.
func (k *keepalive) lost(err error) {
	c := k.c
	c.closeMu.Lock()
	if k.err == nil {
		k.err = err
	}
	c.closeSent = true // nothing more goes out: the peer is gone
	c.closeMu.Unlock()
	c.closeConn()
}

// stop takes k out of its wheel for good once the connection is closed.
func (k *keepalive) stop() {
	if k != nil {
		k.w.remove(k)
	}
}

// lostErr returns why the heartbeat ended the connection, or nil.
// c.closeMu must be held.
func (k *keepalive) lostErr() error {
	if k == nil {
		return nil
	}
	return k.err
}
