package ws

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// DefaultSendQueueLimit is the default AcceptOptions.SendQueueLimit: the
// bytes Send may hold queued for one connection.
const DefaultSendQueueLimit = 4 << 20

// SendQueuePolicy says what Send does when a message would take a
// connection's queue over its limit: the peer reads more slowly than the
// application sends.
type SendQueuePolicy int

const (
	// SendQueueClose closes the connection with 1013 Try Again Later: a
	// peer that falls behind is let go, and can come back. The default.
	SendQueueClose SendQueuePolicy = iota
	// SendQueueClosePolicy closes the connection with 1008 Policy
	// Violation.
	SendQueueClosePolicy
	// SendQueueDrop drops the message, and keeps the connection: for
	// streams where a newer message replaces an older one (prices,
	// positions).
	SendQueueDrop
)

func (p SendQueuePolicy) String() string {
	switch p {
	case SendQueueClose:
		return "close 1013"
	case SendQueueClosePolicy:
		return "close 1008"
	case SendQueueDrop:
		return "drop"
	}
	return fmt.Sprintf("SendQueuePolicy(%d)", int(p))
}

// sendMessage is a message queued by Send.
type sendMessage struct {
	typ        MessageType
	data       *[]byte          // Send's copy, from sendBufs
	pm         *PreparedMessage // or a prepared message
	noCompress bool             // SendUncompressed
}

func (m sendMessage) size() int {
	if m.pm != nil {
		return len(m.pm.data)
	}
	return len(*m.data)
}

// sendQueueState is a connection's queue of messages for Send; its writer
// goroutine runs only while the queue holds something.
type sendQueueState struct {
	mu      sync.Mutex
	msgs    []sendMessage
	bytes   int
	running bool
	closing bool          // the queue overflowed and the connection is being closed
	err     error         // the write error that ended the writer; Send returns it
	drained chan struct{} // closed when the writer ends; made by waitSendQueue
}

// writerDone marks the writer ended and wakes waitSendQueue. q.mu must be
// held.
func (q *sendQueueState) writerDone() {
	q.running = false
	if q.drained != nil {
		close(q.drained)
		q.drained = nil
	}
}

// waitSendQueue waits, at most d, until the messages queued by Send are
// written (or dropped, the connection failing).
func (c *Conn) waitSendQueue(d time.Duration) {
	q := c.sendQ.Load()
	if q == nil {
		return
	}
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return
	}
	if q.drained == nil {
		q.drained = make(chan struct{})
	}
	drained := q.drained
	q.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
	}
}

// sendBufs holds Send's copies, by capacity class (powers of two from
// 64 bytes to 64 KiB; larger copies are left to the GC).
var sendBufs [11]sync.Pool

func sendBufClass(n int) int {
	c := 0
	for size := 64; size < n; size <<= 1 {
		c++
	}
	return c
}

func getSendBuf(n int) *[]byte {
	c := sendBufClass(n)
	if c >= len(sendBufs) {
		b := make([]byte, n)
		return &b
	}
	if p, ok := sendBufs[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 64<<c)
	return &b
}

func putSendBuf(p *[]byte) {
	c := sendBufClass(cap(*p))
	if c < len(sendBufs) && cap(*p) == 64<<c {
		sendBufs[c].Put(p)
	}
}

// Send queues a copy of p as a message of type typ and returns at once;
// a goroutine of the connection writes the queue, running only while the
// queue holds messages. Messages go out in the order of Send, and several
// queued messages are written with one system call where the connection
// has no compression. Use it where a writer must not wait for a slow peer:
// a broadcast, or a Handler that answers without blocking its reads.
//
// The queue holds at most AcceptOptions.SendQueueLimit bytes; a message
// that would go over it is handled by AcceptOptions.SendQueueFull, and Send
// returns an error wrapping ErrSendQueueFull. Once the connection is closed
// or a queued write failed, Send returns that error. Send and Write may be
// mixed: each message is whole on the wire, but a Write does not wait for
// the messages queued before it, so only Send keeps Send's order. A close
// (Close, or the SendQueueFull policy's) goes out ahead of what is still
// queued, which is then dropped. The answer to the peer's close frame
// waits for what is queued to be written (the close timeout at most), as
// it would after a Write.
func (c *Conn) Send(typ MessageType, p []byte) error {
	if _, err := dataOpcode(typ); err != nil {
		return err
	}
	buf := getSendBuf(len(p))
	copy(*buf, p)
	if err := c.enqueue(sendMessage{typ: typ, data: buf}); err != nil {
		putSendBuf(buf)
		return err
	}
	return nil
}

// SendUncompressed is Send for a message that goes out without
// permessage-deflate even when the connection has it: already compressed
// data, or a message the sender knows will not shrink.
func (c *Conn) SendUncompressed(typ MessageType, p []byte) error {
	if _, err := dataOpcode(typ); err != nil {
		return err
	}
	buf := getSendBuf(len(p))
	copy(*buf, p)
	if err := c.enqueue(sendMessage{typ: typ, data: buf, noCompress: true}); err != nil {
		putSendBuf(buf)
		return err
	}
	return nil
}

// SendPrepared queues a prepared message, as Send does, without copying
// it: the same bytes go to every connection it is sent to.
func (c *Conn) SendPrepared(pm *PreparedMessage) error {
	return c.enqueue(sendMessage{typ: pm.typ, pm: pm})
}

// SendQueued returns the bytes queued by Send and SendPrepared and not yet
// written.
func (c *Conn) SendQueued() int {
	q := c.sendQ.Load()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// sendQueue returns the connection's send queue, made at the first Send.
func (c *Conn) sendQueue() *sendQueueState {
	if q := c.sendQ.Load(); q != nil {
		return q
	}
	q := new(sendQueueState)
	if c.sendQ.CompareAndSwap(nil, q) {
		return q
	}
	return c.sendQ.Load()
}

func (c *Conn) enqueue(m sendMessage) error {
	q := c.sendQueue()
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return err
	}
	if c.isClosed.Load() {
		q.mu.Unlock()
		return c.lockError(net.ErrClosed)
	}
	n := m.size()
	// A message that finds the queue empty always goes in, whatever its
	// size: the limit bounds what waits, not what is sent. The count
	// bounds a flood of tiny messages.
	if q.bytes > 0 && q.bytes+n > c.cfg.sendLimit || len(q.msgs) >= max(minSendMessages, c.cfg.sendLimit/64) {
		queued, count := q.bytes, len(q.msgs)
		q.mu.Unlock()
		err := fmt.Errorf("%w: %d bytes in %d messages queued, %d more would pass the limit of %d (%s.SendQueueLimit)",
			ErrSendQueueFull, queued, count, n, c.cfg.sendLimit, c.optionsName())
		if c.cfg.sendPolicy == SendQueueDrop {
			return err
		}
		code := StatusTryAgainLater
		if c.cfg.sendPolicy == SendQueueClosePolicy {
			code = StatusPolicyViolation
		}
		c.closeForSendQueue(code)
		return fmt.Errorf("%w; the connection is being closed", err)
	}
	q.msgs = append(q.msgs, m)
	q.bytes += n
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go c.sendLoop()
	}
	return nil
}

// minSendMessages is the least number of messages a queue may hold,
// whatever SendQueueLimit; it holds limit/64 otherwise.
const minSendMessages = 1024

// closeForSendQueue closes the connection with code because its queue is
// full: the close frame goes ahead of what is queued. A writer blocked on
// the peer is interrupted (the rest of its frame is sent before the close
// frame), so that the close is not held up by the very peer it is for.
func (c *Conn) closeForSendQueue(code StatusCode) {
	q := c.sendQ.Load() // made by the enqueue that called this
	q.mu.Lock()
	first := !q.closing
	q.closing = true
	q.mu.Unlock()
	if !first {
		return
	}
	_ = c.nc.SetWriteDeadline(aLongTimeAgo)
	go func() {
		// Once the interrupted writer has let go of the frame lock, lift
		// the deadline for the close frame (and the owed rest before it).
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.closeTimeout)
		if c.writeFrameMu.lock(ctx, c) == nil {
			_ = c.nc.SetWriteDeadline(time.Time{})
			c.writeFrameMu.unlock()
		}
		cancel()
		_ = c.Close(code, "send queue full")
	}()
}

// sendBatch is the writer's scratch space, pooled between runs.
type sendBatch struct {
	msgs []sendMessage
	hdrs []byte
	iov  net.Buffers
}

var sendBatches = sync.Pool{New: func() any { return new(sendBatch) }}

// sendLoop writes the queue until it is empty, then ends.
func (c *Conn) sendLoop() {
	q := c.sendQ.Load() // made by the enqueue that called this
	b := sendBatches.Get().(*sendBatch)
	defer func() {
		clear(b.msgs)
		b.msgs, b.hdrs, b.iov = b.msgs[:0], b.hdrs[:0], b.iov[:0]
		sendBatches.Put(b)
	}()
	for {
		q.mu.Lock()
		if q.closing {
			// The close goes ahead of what is queued, which is dropped.
			for _, m := range q.msgs {
				if m.data != nil {
					putSendBuf(m.data)
				}
			}
			clear(q.msgs)
			q.msgs, q.bytes = q.msgs[:0], 0
		}
		if len(q.msgs) == 0 {
			q.writerDone()
			q.mu.Unlock()
			return
		}
		b.msgs, q.msgs = q.msgs, b.msgs[:0]
		q.mu.Unlock()

		err := c.writeBatch(b)
		n := 0
		for i, m := range b.msgs {
			n += m.size()
			if m.data != nil {
				putSendBuf(m.data)
			}
			b.msgs[i] = sendMessage{}
		}
		b.msgs = b.msgs[:0]

		q.mu.Lock()
		q.bytes -= n
		if err != nil {
			// The connection is broken: what is queued cannot go out.
			for _, m := range q.msgs {
				if m.data != nil {
					putSendBuf(m.data)
				}
			}
			clear(q.msgs)
			q.msgs, q.bytes, q.err = q.msgs[:0], 0, err
			q.writerDone()
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
}

// writeBatch writes the messages of b in order. Without compression, on a
// server, they go out in one writev; otherwise one by one.
func (c *Conn) writeBatch(b *sendBatch) error {
	ctx := context.Background()
	if c.client || c.deflate != nil || len(b.msgs) == 1 {
		for _, m := range b.msgs {
			var err error
			switch {
			case m.pm != nil:
				err = c.WritePrepared(ctx, m.pm)
			case m.noCompress:
				err = c.writeMessage(ctx, m.typ, *m.data, false)
			default:
				err = c.Write(ctx, m.typ, *m.data)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := c.writeMsgMu.lock(ctx, c); err != nil {
		return c.lockError(err)
	}
	defer c.writeMsgMu.unlock()
	if err := c.writeFrameMu.lock(ctx, c); err != nil {
		return c.lockError(err)
	}
	defer c.writeFrameMu.unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	c.closeMu.Lock()
	sent, pc := c.closeSent, c.peerClose
	c.closeMu.Unlock()
	switch {
	case pc != nil:
		return fmt.Errorf("ws: cannot write: the peer closed the connection (%w): %w", *pc, net.ErrClosed)
	case sent:
		return fmt.Errorf("ws: cannot write after the close frame: %w", net.ErrClosed)
	}
	if err := c.writeWait.start(ctx, c.nc, true); err != nil {
		return err
	}
	if wb := c.wb; wb != nil && len(wb.owed) > 0 {
		b.iov = append(b.iov, wb.owed)
	}
	// Headers first, all in one buffer (it must not move once sliced).
	for _, m := range b.msgs {
		op, _ := dataOpcode(m.typ)
		b.hdrs = appendHeader(b.hdrs, header{fin: true, opcode: op, length: int64(m.size())})
	}
	hdrs := b.hdrs
	for _, m := range b.msgs {
		n := headerLen(hdrs[1])
		b.iov = append(b.iov, hdrs[:n:n])
		hdrs = hdrs[n:]
		if m.pm != nil {
			b.iov = append(b.iov, m.pm.data)
		} else {
			b.iov = append(b.iov, *m.data)
		}
	}
	iov := b.iov // WriteTo consumes the slice it is given: what is left is unsent
	_, err := iov.WriteTo(c.nc)
	if c.wb != nil {
		c.wb.owed = nil
		c.releaseWriteBuf()
	}
	if err != nil && isTimeout(err) {
		// closeForSendQueue cut the write short: the frame under way is
		// owed (sent before the close frame), the ones not begun are
		// dropped with the rest of the queue.
		if len(iov) > 0 {
			c.borrowWriteBuf()
			c.wb.owed = owedFrame(iov, b.iov)
		}
		err = fmt.Errorf("ws: send queue full, connection closing: %w", net.ErrClosed)
	} else if err != nil {
		c.writeErr = fmt.Errorf("ws: write failed, connection closed: %w", err)
		c.closeConn()
		err = c.writeErr
	}
	clear(b.iov)
	b.iov, b.hdrs = b.iov[:0], b.hdrs[:0]
	return err
}

// owedFrame returns a copy of the unsent rest of the frame that rest (the
// unwritten tail of all, a writev's buffers: owed bytes, then header and
// payload pairs) begins in, up to the end of that frame.
func owedFrame(rest, all net.Buffers) []byte {
	// all[k] for the first buffer rest[0] is part of: the buffers are cut
	// from the front only, so the counts tell.
	k := len(all) - len(rest)
	var frameEnd int
	// Pairs start after the owed bytes, if any: a header is at an index
	// of the same parity as the first header.
	first := len(all) % 2 // 1 if all[0] is owed bytes
	switch {
	case k < first:
		frameEnd = first // inside the owed bytes: finish them only
	case (k-first)%2 == 0:
		frameEnd = k + 2 // inside a header: its payload too
	default:
		frameEnd = k + 1 // inside a payload
	}
	var out []byte
	for _, b := range rest[:frameEnd-k] {
		out = append(out, b...)
	}
	return out
}
