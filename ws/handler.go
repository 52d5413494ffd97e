package ws

import (
	"context"
	"errors"
	"sync"
)

// Handler receives a server connection's events, the browser's onopen,
// onmessage, onerror and onclose, for servers that want no read loop of
// their own. Server calls it when its Handler field is set.
//
// The calls for one connection come one at a time and in order: OnOpen
// first, then OnMessage for each message, then OnError if the connection
// failed, and OnClose last, exactly once. Calls for different connections
// run concurrently. A method may call any Conn method except the reading
// ones (Read, ReadAppend, Reader, CloseRead): the Server reads. Writes are
// safe from any goroutine, at any time, including after OnClose (they then
// return an error).
//
// Pings are answered and the close handshake is run between the calls, so
// a method that blocks holds back its connection's pongs and close; it
// does not hold back other connections.
type Handler interface {
	// OnOpen is called once the handshake is done.
	OnOpen(c *Conn)
	// OnMessage is called for each data message. data is valid only
	// until OnMessage returns: the Server reuses the buffer for the next
	// message, so that reading allocates nothing. Copy what you keep.
	OnMessage(c *Conn, typ MessageType, data []byte)
	// OnError is called when the connection failed: the peer broke the
	// protocol (err wraps ErrProtocol, and the connection was failed with
	// 1002 or 1007) or sent a message over the read limit (err wraps
	// ErrMessageTooBig; 1009). OnClose follows.
	OnError(c *Conn, err error)
	// OnClose is called once when the connection has ended. err tells
	// how: a CloseError (errors.As) with the peer's code and reason after
	// a close handshake, or why the connection ended otherwise;
	// CloseStatus(err) is the code, 1006 for a connection lost without a
	// close frame.
	OnClose(c *Conn, err error)
}

// HandlerFuncs is a Handler made of functions; each may be nil.
type HandlerFuncs struct {
	Open    func(c *Conn)
	Message func(c *Conn, typ MessageType, data []byte)
	Error   func(c *Conn, err error)
	Close   func(c *Conn, err error)
}

// OnOpen calls f.Open, if not nil.
func (f HandlerFuncs) OnOpen(c *Conn) {
	if f.Open != nil {
		f.Open(c)
	}
}

// OnMessage calls f.Message, if not nil.
func (f HandlerFuncs) OnMessage(c *Conn, typ MessageType, data []byte) {
	if f.Message != nil {
		f.Message(c, typ, data)
	}
}

// OnError calls f.Error, if not nil.
func (f HandlerFuncs) OnError(c *Conn, err error) {
	if f.Error != nil {
		f.Error(c, err)
	}
}

// OnClose calls f.Close, if not nil.
func (f HandlerFuncs) OnClose(c *Conn, err error) {
	if f.Close != nil {
		f.Close(c, err)
	}
}

// maxKeptReadBuffer is the largest read buffer a connection keeps from one
// message to the next: a rare large message does not pin its memory.
const maxKeptReadBuffer = 64 << 10

// serveHandler runs h for c on this goroutine, the portable mode: it reads
// messages into one reused buffer until the connection ends.
func serveHandler(ctx context.Context, c *Conn, h Handler) {
	h.OnOpen(c)
	// A waiter of its own: c.idle serves readers that hold readMu (a
	// Close reading the peer's close frame), and this loop waits without.
	if c.idleWait {
		if w := newIdleWaiter(c); w != nil {
			serveLean(c, h, w)
			return
		}
	}
	var buf []byte
	for {
		typ, p, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			handlerEnd(c, h, err)
			return
		}
		h.OnMessage(c, typ, p)
		if cap(p) <= maxKeptReadBuffer {
			buf = p[:0]
		} else {
			buf = nil
		}
	}
}

// msgBufs holds the message buffers of portable-mode connections that are
// idle (*[]byte, at most maxKeptReadBuffer each).
var msgBufs = sync.Pool{New: func() any { return new([]byte) }}

// serveLean is serveHandler for a plain socket: between messages, when no
// input is buffered, it gives its read buffer, write buffer and message
// buffer back to their pools and waits for the socket to become readable
// without reading, so that an idle connection holds its goroutine and
// nothing more. It reads as the Poller's workers do.
func serveLean(c *Conn, h Handler, w *idleWaiter) {
	c.pooled.Store(true)
	box := msgBufs.Get().(*[]byte)
	buf := *box
	ready := false
	for {
		_ = c.readMu.lock(context.Background(), nil) // cannot fail: no deadline, no close channel
		typ, p, err := c.pollRead(buf[:0], ready)
		ready = false
		switch {
		case err == errWouldBlock:
			c.releaseReader()
			c.readMu.unlock()
			if cap(buf) <= maxKeptReadBuffer {
				*box = buf[:0]
				msgBufs.Put(box)
			}
			box, buf = nil, nil
			w.wait()
			box = msgBufs.Get().(*[]byte)
			buf, ready = *box, true
			continue
		case err != nil:
			c.releaseReader()
			c.br = nil // whatever it held is of no use any more
			c.readMu.unlock()
			handlerEnd(c, h, err)
			return
		}
		c.readMu.unlock()
		h.OnMessage(c, typ, p)
		buf = p
	}
}

// handlerEnd reports the end of a connection: OnError for a failure, then
// OnClose.
func handlerEnd(c *Conn, h Handler, err error) {
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrMessageTooBig) {
		h.OnError(c, err)
	}
	_ = c.CloseNow()
	h.OnClose(c, err)
}
