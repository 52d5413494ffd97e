package ws

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// NetConn returns a net.Conn that carries a byte stream over c, for code
// that wants a net.Conn (a protocol library, a test): each Write sends one
// message of type typ, and Read returns the payloads of the messages
// received, in order, whatever their type. A close frame with 1000 Normal
// Closure or 1001 Going Away reads as io.EOF.
//
// Deadlines work as net.Conn documents: an expired deadline makes Read and
// Write return an error wrapping os.ErrDeadlineExceeded. A read deadline that
// expires before a message starts leaves the stream intact; one that expires
// halfway through a message loses the rest of that message, and a write
// deadline that expires during a write fails the connection (see Conn).
//
// ctx bounds every read and write, on top of the deadlines. Close runs the
// close handshake with 1000. Read buffers one message at a time, so messages
// up to the read limit are held in memory whole.
func NetConn(ctx context.Context, c *Conn, typ MessageType) net.Conn {
	nc := &netConn{c: c, ctx: ctx, typ: typ}
	nc.readDL.init(ctx)
	nc.writeDL.init(ctx)
	return nc
}

type netConn struct {
	c   *Conn
	ctx context.Context
	typ MessageType

	readMu  sync.Mutex
	buf     []byte // the rest of the message being read
	readErr error  // sticky end of stream

	readDL, writeDL deadline
}

func (nc *netConn) LocalAddr() net.Addr  { return nc.c.LocalAddr() }
func (nc *netConn) RemoteAddr() net.Addr { return nc.c.RemoteAddr() }

func (nc *netConn) Read(p []byte) (int, error) {
	nc.readMu.Lock()
	defer nc.readMu.Unlock()
	for len(nc.buf) == 0 {
		if nc.readErr != nil {
			return 0, nc.readErr
		}
		ctx := nc.readDL.context()
		_, msg, err := nc.c.ReadAppend(ctx, nc.buf[:0])
		if err != nil {
			if ctx.Err() != nil && nc.ctx.Err() == nil {
				return 0, deadlineError("read")
			}
			switch CloseStatus(err) {
			case StatusNormalClosure, StatusGoingAway:
				nc.readErr = io.EOF
			default:
				nc.readErr = err
			}
			return 0, nc.readErr
		}
		nc.buf = msg
	}
	n := copy(p, nc.buf)
	nc.buf = nc.buf[n:]
	return n, nil
}

func (nc *netConn) Write(p []byte) (int, error) {
	ctx := nc.writeDL.context()
	if err := nc.c.Write(ctx, nc.typ, p); err != nil {
		if ctx.Err() != nil && nc.ctx.Err() == nil {
			return 0, deadlineError("write")
		}
		return 0, err
	}
	return len(p), nil
}

func (nc *netConn) Close() error {
	err := nc.c.Close(StatusNormalClosure, "")
	if errors.Is(err, net.ErrClosed) {
		return nil // closed already: net.Conn's Close may be repeated
	}
	return err
}

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.readDL.set(t)
	nc.writeDL.set(t)
	return nil
}

func (nc *netConn) SetReadDeadline(t time.Time) error  { nc.readDL.set(t); return nil }
func (nc *netConn) SetWriteDeadline(t time.Time) error { nc.writeDL.set(t); return nil }

func deadlineError(op string) error {
	return &net.OpError{Op: op, Net: "websocket", Err: os.ErrDeadlineExceeded}
}

// deadline turns a net.Conn deadline into contexts: every operation runs
// under a context that is canceled when the deadline passes, including a
// deadline set while the operation is blocked.
type deadline struct {
	parent context.Context

	mu     sync.Mutex
	t      time.Time
	timer  *time.Timer
	ctx    context.Context // canceled when t passes; renewed when t moves
	cancel context.CancelFunc
}

func (d *deadline) init(parent context.Context) {
	d.parent = parent
	d.ctx, d.cancel = context.WithCancel(parent)
}

// set moves the deadline. Operations in progress see the change.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.t = t
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ctx.Err() != nil {
		// The previous deadline fired; later operations get a fresh context.
		d.ctx, d.cancel = context.WithCancel(d.parent)
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur <= 0 {
		d.cancel()
	} else {
		d.timer = time.AfterFunc(dur, d.cancel)
	}
}

// context returns the context for one operation.
func (d *deadline) context() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.t.IsZero() && !time.Now().Before(d.t) {
		d.cancel()
	}
	return d.ctx
}
