package ws

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// keepalive is a server connection's heartbeat (AcceptOptions.Heartbeat):
// a timer, and no goroutine, per connection. Each time it fires it looks
// whether anything arrived from the peer since the last time; if nothing
// did, it pings, and if nothing arrives before the next firing either,
// the connection is lost.
type keepalive struct {
	c                 *Conn
	interval, timeout time.Duration
	timer             *time.Timer

	// rx counts frame headers and payload reads: bumped by the reader,
	// read by the timer.
	rx atomic.Uint32

	// The timer's own state: only its callback touches these, and the
	// callbacks of one timer never overlap (each is scheduled by the one
	// before it).
	seen   uint32
	pinged bool

	// err is why the heartbeat ended the connection, set before it closes
	// it; readFailed reports it. Guarded by c.closeMu.
	err error
}

// startKeepalive arms the heartbeat of a connection just accepted.
func (c *Conn) startKeepalive(hb *Heartbeat) {
	if hb == nil {
		return
	}
	interval, timeout := hb.durations()
	k := &keepalive{c: c, interval: interval, timeout: timeout}
	c.ka = k
	k.timer = time.AfterFunc(interval, k.fire)
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

func (k *keepalive) fire() {
	c := k.c
	if c.isClosed.Load() {
		return
	}
	if rx := k.rx.Load(); rx != k.seen {
		k.seen, k.pinged = rx, false
		k.timer.Reset(k.interval)
		return
	}
	c.closeMu.Lock()
	closing := c.closeSent
	c.closeMu.Unlock()
	if closing {
		return // the close handshake has its own bound (CloseTimeout)
	}
	if k.pinged {
		k.lost(fmt.Errorf("%w: nothing from the peer for %v after a ping", ErrNoPong, k.timeout))
		return
	}
	k.pinged = true
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	err := c.writeControl(ctx, opPing, nil)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The peer has not read what we sent for the whole timeout
			// (a frame, or this ping, is stuck in the socket's buffer).
			k.lost(fmt.Errorf("%w: the peer read nothing for %v (the ping could not be written)", ErrNoPong, k.timeout))
		}
		return // otherwise the connection is closed already
	}
	k.timer.Reset(max(k.timeout-time.Since(start), time.Millisecond))
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

// stop disarms the timer once the connection is closed.
func (k *keepalive) stop() {
	if k != nil {
		k.timer.Stop()
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
