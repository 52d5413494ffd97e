package ws

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Listener goes between a net.Listener and the http.Server that serves
// from it, and performs the WebSocket handshakes of some paths itself:
// for a connection whose first request is a plain handshake for one of
// its routes, it reads the request and answers it without net/http, and
// serves the connection with the route's Server on the goroutine that
// read it. Every other connection, and every request the Server would
// refuse, reaches net/http untouched (the Listener only peeks at it): the
// same handler then serves it, answers a refusal as always, and serves
// later requests on a keep-alive connection.
//
// What it saves, per handshake: net/http's goroutine and its background
// read, its 4 KiB read and write buffers and the hijack; and the goroutine
// that read a request goes on to the next connection, with the stack it
// has grown. `duplex bench connect` measures the difference. A
// connection taken this way is a Server's like any other: OnAccept sees
// an http.Request with the request's method, URL, headers, Host and
// RemoteAddr, and Shutdown closes it.
//
// The Listener is for plain TCP: behind TLS the bytes are encrypted, so
// use it under the http.Server, not around a tls.Listener. On systems
// other than Linux, macOS and the BSDs every connection goes to net/http.
//
//	ln, _ := net.Listen("tcp", ":8080")
//	fast := ws.NewListener(ln, &ws.ListenerOptions{Routes: map[string]*ws.Server{"/ws": srv}})
//	mux.Handle("/ws", srv) // the same Server: it answers what the Listener leaves to net/http
//	http.Serve(fast, mux)
type Listener struct {
	ln      net.Listener
	routes  map[string]*Server
	timeout time.Duration

	conns chan net.Conn // to Accept: connections for net/http
	errs  chan error    // to Accept: the inner listener's errors
	done  chan struct{} // closed by Close
	work  chan net.Conn // to an idle worker: a new connection

	mu       sync.Mutex
	closed   bool
	sniffing map[net.Conn]struct{} // whose first request is being read
}

// ListenerOptions configures a Listener. A nil *ListenerOptions means the
// zero value: no routes, so that every connection goes to net/http.
type ListenerOptions struct {
	// Routes maps a request path (the URL path exactly, "/ws/echo") to
	// the Server that takes its handshakes. The same Server should serve
	// the path in the http.Server's handler too, for the requests the
	// Listener leaves to net/http. The map must not change after
	// NewListener.
	Routes map[string]*Server
	// HeadTimeout bounds the wait for the first request's head on a new
	// connection; a connection that has not sent it by then is closed, as
	// net/http's ReadHeaderTimeout would. Zero means 10 seconds.
	HeadTimeout time.Duration
}

// NewListener returns a Listener that accepts from ln. Close closes ln.
func NewListener(ln net.Listener, opts *ListenerOptions) *Listener {
	l := &Listener{
		ln:       ln,
		timeout:  10 * time.Second,
		conns:    make(chan net.Conn),
		errs:     make(chan error),
		done:     make(chan struct{}),
		work:     make(chan net.Conn),
		sniffing: make(map[net.Conn]struct{}),
	}
	if opts != nil {
		l.routes = opts.Routes
		if opts.HeadTimeout > 0 {
			l.timeout = opts.HeadTimeout
		}
	}
	go l.accept()
	return l
}

// Accept returns the next connection for net/http.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.conns:
		return nc, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: net.ErrClosed}
	}
}

// Close closes the inner listener and the connections whose first
// request is still being read. Connections already handed to net/http or
// served by a Server are theirs to close (http.Server.Shutdown,
// Server.Shutdown).
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	for nc := range l.sniffing {
		_ = nc.Close()
	}
	clear(l.sniffing)
	l.mu.Unlock()
	return l.ln.Close()
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// accept takes the inner listener's connections, each to a goroutine of
// its own, and passes its errors to Accept, so that net/http's Serve
// backs off after a temporary one as it would without the Listener.
func (l *Listener) accept() {
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // Accept's caller decides whether to go on
		}
		if len(l.routes) == 0 {
			l.pass(nc)
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = nc.Close()
			return
		}
		l.sniffing[nc] = struct{}{}
		l.mu.Unlock()
		select {
		case l.work <- nc: // to a worker waiting for one
		default:
			go l.worker(nc)
		}
	}
}

// workerIdle is how long a worker waits for a new connection before it
// exits.
const workerIdle = 10 * time.Second

// worker reads the first request of nc, serves it (in the portable mode,
// until it ends), and then waits for another connection. A goroutine that
// has served one connection has the stack the next needs: a new one grows
// its stack twice on the way to its first write (a copy of the stack each
// time), which was a tenth of the server's CPU per handshake.
func (l *Listener) worker(nc net.Conn) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		l.sniff(nc)
		t.Reset(workerIdle)
		select {
		case nc = <-l.work:
		case <-t.C:
			return
		case <-l.done:
			return
		}
	}
}

// headBufs holds the buffers the first requests are peeked into.
var headBufs = sync.Pool{New: func() any { return new([maxHeadBytes]byte) }}

// sniff reads, without consuming it, nc's first request head, and either
// serves nc with the Server of its route or passes it to net/http.
func (l *Listener) sniff(nc net.Conn) {
	buf := headBufs.Get().(*[maxHeadBytes]byte)
	defer headBufs.Put(buf)
	p := newPeeker(nc, buf[:])
	if p == nil {
		if l.unsniff(nc) {
			l.pass(nc)
		}
		return
	}
	deadline := false
	for {
		// The first look does not wait: the head is usually there, and
		// the head timeout is set only when it is not.
		n, none, err := p.more(deadline)
		if none {
			deadline = true
			_ = nc.SetReadDeadline(time.Now().Add(l.timeout))
			continue
		}
		if err != nil || n == 0 {
			// EOF before a request, a reset, the head timeout or Close:
			// net/http would close it too, without an answer.
			l.unsniff(nc)
			_ = nc.Close()
			return
		}
		head, st := parseHead(buf[:n], l.route)
		switch st {
		case headMore:
			if !deadline {
				deadline = true
				_ = nc.SetReadDeadline(time.Now().Add(l.timeout))
			}
			continue
		case headOK:
			if !l.unsniff(nc) {
				return // closed by Close
			}
			if deadline {
				_ = nc.SetReadDeadline(time.Time{})
			}
			if l.routes[head.path].serveHead(nc, &head, buf[:]) {
				return
			}
			l.pass(nc)
			return
		default:
			if l.unsniff(nc) {
				l.pass(nc) // net/http sets its own read deadline for the request
			}
			return
		}
	}
}

// route reports whether path is one of the routes.
func (l *Listener) route(path []byte) bool {
	_, ok := l.routes[string(path)]
	return ok
}

// unsniff forgets nc as being read, and reports false if Close has
// already closed it.
func (l *Listener) unsniff(nc net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sniffing[nc]; !ok {
		return false
	}
	delete(l.sniffing, nc)
	return true
}

// pass hands nc to net/http, through Accept, or closes it if the Listener
// is closed first.
func (l *Listener) pass(nc net.Conn) {
	select {
	case l.conns <- nc:
	case <-l.done:
		_ = nc.Close()
	}
}
