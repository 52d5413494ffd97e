package ws

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// h2Stream is one HTTP/2 stream carrying a WebSocket (RFC 8441), as a
// net.Conn for Conn: the peer's bytes are the DATA frames of one side of
// the stream (the request body on a server, the response body on a
// client), ours go out through the other (the ResponseWriter, flushed
// after every write, or the request body pipe).
//
// Conn needs what a socket gives: a read or write that a deadline
// interrupts without breaking the stream, and a close that ends both
// directions. net/http's HTTP/2 bodies give neither (a stream deadline
// resets the stream, and a blocked Read or Write cannot be abandoned), so a
// goroutine reads the body into a buffer of its own and another writes
// copies of what Write is given; Read and Write wait for them under their
// deadlines. Bytes a timed-out Write has handed over still go out, as a
// socket's kernel buffer would send them.
type h2Stream struct {
	body  io.ReadCloser    // the peer's DATA frames
	w     io.Writer        // ours
	flush func() error     // sends what w buffers; nil if nothing
	stop  func(abort bool) // before the body is closed: end our side (abort: reset it, a write may be blocked)
	laddr net.Addr
	raddr net.Addr

	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	loops     sync.WaitGroup // readLoop and writeLoop

	// Reading: readLoop fills rbuf, Read drains avail.
	rbuf  []byte
	rmu   sync.Mutex
	avail []byte        // guarded by rmu
	rerr  error         // guarded by rmu: the body's error, after avail
	ready chan struct{} // capacity 1: avail or rerr changed
	more  chan struct{} // capacity 1: avail is drained, read on
	rdl   pipeDeadline

	// Writing: Write copies into wbuf and hands it to writeLoop.
	wmu   sync.Mutex // serializes Write; guards wbuf, busy, werr
	wbuf  []byte
	busy  bool  // writeLoop holds wbuf
	werr  error // sticky
	wreq  chan []byte
	wdone chan error // capacity 1
	wdl   pipeDeadline

	stateMu  sync.Mutex
	inWrite  bool // writeLoop is inside w.Write or flush
	isClosed bool
}

// maxKeptWriteBuf is the largest copy buffer a stream keeps between writes.
const maxKeptWriteBuf = 64 << 10

func newH2Stream(body io.ReadCloser, w io.Writer, flush func() error, stop func(abort bool), laddr, raddr net.Addr, bufSize int) *h2Stream {
	s := &h2Stream{
		body:   body,
		w:      w,
		flush:  flush,
		stop:   stop,
		laddr:  laddr,
		raddr:  raddr,
		closed: make(chan struct{}),
		rbuf:   make([]byte, bufSize),
		ready:  make(chan struct{}, 1),
		more:   make(chan struct{}, 1),
		rdl:    makeDeadline(),
		wreq:   make(chan []byte),
		wdone:  make(chan error, 1),
		wdl:    makeDeadline(),
	}
	s.loops.Add(2)
	go s.readLoop()
	go s.writeLoop()
	return s
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *h2Stream) readLoop() {
	defer s.loops.Done()
	for {
		n, err := s.body.Read(s.rbuf)
		s.rmu.Lock()
		s.avail = s.rbuf[:n]
		if err != nil {
			s.rerr = err
		}
		s.rmu.Unlock()
		signal(s.ready)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		select {
		case <-s.more:
		case <-s.closed:
			return
		}
	}
}

func (s *h2Stream) Read(p []byte) (int, error) {
	for {
		select {
		case <-s.closed:
			return 0, s.opError("read", net.ErrClosed)
		case <-s.rdl.wait():
			return 0, s.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		s.rmu.Lock()
		if len(s.avail) > 0 {
			n := copy(p, s.avail)
			s.avail = s.avail[n:]
			drained := len(s.avail) == 0 && s.rerr == nil
			s.rmu.Unlock()
			if drained {
				signal(s.more)
			}
			return n, nil
		}
		err := s.rerr
		s.rmu.Unlock()
		if err != nil {
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case <-s.ready:
		case <-s.rdl.wait():
		case <-s.closed:
		}
	}
}

func (s *h2Stream) writeLoop() {
	defer s.loops.Done()
	for {
		select {
		case b := <-s.wreq:
			s.stateMu.Lock()
			if s.isClosed {
				s.stateMu.Unlock()
				s.wdone <- net.ErrClosed
				return
			}
			s.inWrite = true
			s.stateMu.Unlock()
			err := s.writeOut(b)
			s.stateMu.Lock()
			s.inWrite = false
			s.stateMu.Unlock()
			s.wdone <- err
		case <-s.closed:
			return
		}
	}
}

// writeOut writes b and flushes it. A ResponseWriter used after its
// handler returned panics; that is the application's error (see Accept),
// reported here rather than crashing the process.
func (s *h2Stream) writeOut(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ws: HTTP/2 stream gone (did the handler return before the connection closed?): %v", r)
		}
	}()
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if s.flush != nil {
		return s.flush()
	}
	return nil
}

func (s *h2Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.busy {
		// The write a deadline interrupted is still going out.
		if err := s.waitWrite(); err != nil {
			return 0, err
		}
	}
	if s.werr != nil {
		return 0, s.werr
	}
	select {
	case <-s.closed:
		return 0, s.opError("write", net.ErrClosed)
	case <-s.wdl.wait():
		return 0, s.opError("write", os.ErrDeadlineExceeded)
	default:
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.wbuf = append(s.wbuf[:0], p...)
	select {
	case s.wreq <- s.wbuf:
	case <-s.closed:
		return 0, s.opError("write", net.ErrClosed)
	}
	s.busy = true
	if err := s.waitWrite(); err != nil {
		if s.busy {
			// Interrupted: what was handed over goes out all the same.
			return len(p), err
		}
		return 0, err
	}
	return len(p), nil
}

// waitWrite waits for writeLoop to finish the write it holds. wmu is held.
func (s *h2Stream) waitWrite() error {
	select {
	case err := <-s.wdone:
		s.busy = false
		if cap(s.wbuf) > maxKeptWriteBuf {
			s.wbuf = nil
		}
		if err != nil {
			s.werr = err
		}
		return err
	case <-s.wdl.wait():
		return s.opError("write", os.ErrDeadlineExceeded)
	case <-s.closed:
		return s.opError("write", net.ErrClosed)
	}
}

// Close ends the stream and returns once the stream's goroutines have
// exited, so that the handler that holds it may return.
func (s *h2Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stateMu.Lock()
		s.isClosed = true
		busy := s.inWrite
		s.stateMu.Unlock()
		close(s.closed)
		s.stop(busy)
		_ = s.body.Close()
		s.loops.Wait()
	})
	return nil
}

func (s *h2Stream) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "http2", Source: s.laddr, Addr: s.raddr, Err: err}
}

func (s *h2Stream) LocalAddr() net.Addr  { return s.laddr }
func (s *h2Stream) RemoteAddr() net.Addr { return s.raddr }

func (s *h2Stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

func (s *h2Stream) SetReadDeadline(t time.Time) error {
	s.rdl.set(t)
	return nil
}

func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.wdl.set(t)
	return nil
}

// pipeDeadline is a channel that is closed when a time passes (net.Pipe's
// pipeDeadline).
type pipeDeadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func makeDeadline() pipeDeadline { return pipeDeadline{cancel: make(chan struct{})} }

func (d *pipeDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer's function is closing it
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *pipeDeadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// h2Addr is the address of an HTTP/2 stream's connection, from its string.
type h2Addr string

func (a h2Addr) Network() string { return "tcp" }
func (a h2Addr) String() string  { return string(a) }
