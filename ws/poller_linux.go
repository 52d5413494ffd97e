//go:build linux

package ws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Poller holds the idle connections of Handler servers in an epoll
// instance, so that a connection waiting for data costs no goroutine and
// no buffer: when input arrives, a worker goroutine borrows a read buffer,
// reads the messages that have arrived, calls the Handler, gives the
// buffer back and returns the connection to epoll. Writes borrow their
// buffer per frame and stay safe from any goroutine.
//
// Set it as Server.Poller. Connections the poller cannot hold (TLS, or a
// net.Conn that is not a socket) are served in the portable mode, with a
// goroutine each. A connection that has begun a message keeps its worker
// until the message is complete.
type Poller struct {
	epfd int
	epf  *os.File        // epfd, known to Go's network poller
	eprc syscall.RawConn // of epf
	wake [2]int          // a pipe: a byte written to wake[1] stops the loop

	mu       sync.Mutex
	held     []*pollEntry // by file descriptor (a slice: descriptors are small and dense)
	nheld    int          // entries in held
	closed   bool         // Close was called: hold takes nothing more
	stopping bool         // Close waits for the workers: start no counted one

	idle     time.Duration   // PollerOptions.WorkerIdleTimeout
	work     chan *pollEntry // to an idle worker
	stop     chan struct{}
	loopDone chan struct{}
	workers  sync.WaitGroup
}

// PollerOptions configures a Poller. A nil *PollerOptions means the
// defaults.
type PollerOptions struct {
	// WorkerIdleTimeout is how long a worker goroutine with nothing to do
	// waits for work before it exits. Zero means 10 seconds.
	WorkerIdleTimeout time.Duration
}

// pollEvents are the events a held connection waits for, once: the entry
// re-arms them after each activation.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// NewPoller starts a poller: one goroutine waiting in epoll_wait, and
// workers started as input arrives. Close stops it.
func NewPoller(opts *PollerOptions) (*Poller, error) {
	idle := 10 * time.Second
	if opts != nil && opts.WorkerIdleTimeout > 0 {
		idle = opts.WorkerIdleTimeout
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("ws: NewPoller: epoll_create1: %w", err)
	}
	var wake [2]int
	if err := syscall.Pipe2(wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("ws: NewPoller: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wake[0], &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(wake[0])
		_ = syscall.Close(wake[1])
		return nil, fmt.Errorf("ws: NewPoller: epoll_ctl: %w", err)
	}
	// The loop waits for the epoll descriptor through Go's own network
	// poller, as for a socket, rather than in epoll_wait on a thread of
	// its own: with GOMAXPROCS=1, a thread blocked in the kernel costs a
	// context switch per wake-up (0.2 per echoed message, measured).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(wake[0])
		_ = syscall.Close(wake[1])
		return nil, fmt.Errorf("ws: NewPoller: %w", err)
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		_ = epf.Close()
		_ = syscall.Close(wake[0])
		_ = syscall.Close(wake[1])
		return nil, fmt.Errorf("ws: NewPoller: %w", err)
	}
	p := &Poller{
		epfd:     epfd,
		epf:      epf,
		eprc:     rc,
		wake:     wake,
		idle:     idle,
		work:     make(chan *pollEntry),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go p.loop()
	return p, nil
}

// Len returns how many connections the poller holds.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nheld
}

// Close stops the poller and closes the connections it holds without a
// close handshake (their handlers see OnClose); run Server.Shutdown first
// for a graceful close. It waits for the workers to finish.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	entries := make([]*pollEntry, 0, p.nheld)
	for _, e := range p.held {
		if e != nil {
			entries = append(entries, e)
		}
	}
	p.mu.Unlock()
	for _, e := range entries {
		_ = e.c.CloseNow()
	}
	_, _ = syscall.Write(p.wake[1], []byte{1})
	<-p.loopDone
	close(p.stop)
	p.mu.Lock()
	p.stopping = true // no Add from here on: Wait may begin
	p.mu.Unlock()
	p.workers.Wait()
	_ = p.epf.Close()
	_ = syscall.Close(p.wake[0])
	_ = syscall.Close(p.wake[1])
	return nil
}

// loop waits for input on the held connections and schedules them.
func (p *Poller) loop() {
	defer close(p.loopDone)
	events := make([]syscall.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = syscall.EpollWait(int(fd), events, 0)
		// Nothing ready: Go's poller parks this goroutine until the
		// epoll descriptor is readable.
		return n > 0 || (werr != nil && !errors.Is(werr, syscall.EINTR))
	}
	for {
		err := p.eprc.Read(wait)
		if err != nil || werr != nil {
			return // the poller is gone
		}
		for i := range n {
			fd := int(events[i].Fd)
			if fd == p.wake[0] {
				return
			}
			var e *pollEntry
			p.mu.Lock()
			if fd >= 0 && fd < len(p.held) {
				e = p.held[fd]
			}
			p.mu.Unlock()
			if e != nil {
				e.schedule()
			}
		}
	}
}

// hold takes c, a connection accepted by s, with its Handler. It returns
// false if c is not a socket it can watch (TLS, say) or the poller is
// closed; the caller then serves c itself. Once the connection has ended
// and OnClose has returned, s forgets it.
func (p *Poller) hold(c *Conn, h Handler, s *Server) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil || fd < 0 {
		return false
	}
	e := &pollEntry{p: p, c: c, h: h, s: s, fd: fd}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	// Added disarmed: the first activation reads what is buffered, then
	// arms it.
	ev := syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Unlock()
		return false
	}
	if fd >= len(p.held) {
		held := make([]*pollEntry, max(fd+1, 2*len(p.held), 64))
		copy(held, p.held)
		p.held = held
	}
	// A closed connection's entry may still hold the slot of its fd,
	// reused by this one, until its last handler returns: it is no longer
	// counted once replaced (forget then leaves the slot alone).
	if p.held[fd] == nil {
		p.nheld++
	}
	p.held[fd] = e
	p.mu.Unlock()
	c.pooled.Store(true)
	c.held.Store(e)
	e.schedule()
	return true
}

// forget drops e from the poller, if it is still the entry for its fd.
func (p *Poller) forget(e *pollEntry) {
	p.mu.Lock()
	if p.held[e.fd] == e {
		p.held[e.fd] = nil
		p.nheld--
	}
	p.mu.Unlock()
}

// dispatch hands e to an idle worker, or starts one. Once Close is
// waiting for the workers, a connection closing late gets a goroutine of
// its own, outside the count, for its last OnClose.
func (p *Poller) dispatch(e *pollEntry) {
	select {
	case p.work <- e:
		return
	default:
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		go e.run(nil)
		return
	}
	p.workers.Add(1)
	p.mu.Unlock()
	go p.worker(e)
}

// worker runs entries until it has been idle for the idle time, keeping
// one message buffer for all of them.
func (p *Poller) worker(e *pollEntry) {
	defer p.workers.Done()
	var buf []byte
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		buf = e.run(buf)
		if cap(buf) > maxKeptReadBuffer {
			buf = nil
		}
		t.Reset(p.idle)
		select {
		case e = <-p.work:
		case <-t.C:
			return
		case <-p.stop:
			return
		}
	}
}

// pollEntry is a connection held by a poller. Its activations run one at
// a time: schedule starts one, or asks the running one to go again.
type pollEntry struct {
	p  *Poller
	c  *Conn
	h  Handler
	s  *Server // forgets c once it has ended
	fd int

	opened bool // OnOpen was called; touched by activations only

	mu      sync.Mutex
	running bool
	again   bool
	ended   bool
}

// schedule runs an activation of e: input arrived, or the connection
// closed.
func (e *pollEntry) schedule() {
	e.mu.Lock()
	switch {
	case e.ended:
	case e.running:
		e.again = true
	default:
		e.running = true
		e.mu.Unlock()
		e.p.dispatch(e)
		return
	}
	e.mu.Unlock()
}

// run activates e until nothing more is asked of it, then re-arms its
// epoll registration (unless it ended).
func (e *pollEntry) run(buf []byte) []byte {
	for {
		var ended bool
		ended, buf = e.activate(buf, e.opened)
		e.mu.Lock()
		switch {
		case ended:
			e.ended, e.running = true, false
			e.mu.Unlock()
			return buf
		case e.again:
			e.again = false
			e.mu.Unlock()
			continue
		}
		// Armed under the lock, so that an event that comes at once
		// finds the entry not running, and starts a new activation.
		ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(e.fd)}
		_ = syscall.EpollCtl(e.p.epfd, syscall.EPOLL_CTL_MOD, e.fd, &ev) // fails only once the fd is closed: the close schedules us
		e.running = false
		e.mu.Unlock()
		return buf
	}
}

// activate reads and delivers the messages that have arrived. It reports
// whether the connection ended. ready says input has arrived (epoll said
// so), or the connection closed: the first read may then wait for the
// socket, which answers at once; later ones stop when nothing is
// buffered.
func (e *pollEntry) activate(buf []byte, ready bool) (bool, []byte) {
	c := e.c
	if !e.opened {
		e.opened = true
		e.h.OnOpen(c)
	}
	for {
		_ = c.readMu.lock(context.Background(), nil) // cannot fail: no deadline, no close channel
		typ, p, err := c.pollRead(buf[:0], ready)
		ready = false
		if err != nil {
			if err == errWouldBlock {
				c.releaseReader()
				c.readMu.unlock()
				return false, buf
			}
			c.releaseReader()
			c.br = nil // whatever it held is of no use any more
			c.readMu.unlock()
			e.p.forget(e)
			handlerEnd(c, e.h, err)
			e.s.forget(c)
			return true, buf
		}
		c.readMu.unlock()
		e.h.OnMessage(c, typ, p)
		buf = p
	}
}
