package ws

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
)

// Server is an http.Handler that accepts WebSocket connections and serves
// each in one of two styles:
//
//   - Handle, a function that runs on the request's goroutine and reads
//     in a loop. When it returns, the connection is closed (with 1000 if
//     Handle did not close it).
//   - Handler, whose methods the Server calls for the connection's events
//     (open, message, error, close) while it reads for them.
//
// Shutdown closes every open connection with 1001 Going Away: net/http's
// own Shutdown does not see connections taken over by a WebSocket.
//
//	srv := &ws.Server{Handle: echo}
//	httpSrv.RegisterOnShutdown(func() { srv.Shutdown(context.Background()) })
//
// The zero value is not usable: Handle or Handler must be set. Fields must
// not change after the first request.
type Server struct {
	// Handle serves one connection. ctx is the request's context, done when
	// Handle returns. Return when a read reports the connection closed.
	Handle func(ctx context.Context, c *Conn)
	// Handler, used when Handle is nil, receives each connection's events.
	Handler Handler
	// Poller, if not nil, holds the Handler's connections while they are
	// idle, without a goroutine or a buffer each (Linux; see Poller). Nil
	// means the portable mode: a goroutine per connection, reading.
	Poller *Poller
	// Options configures the handshake and the connections; nil means the
	// defaults of AcceptOptions.
	Options *AcceptOptions
	// OnAcceptError, if not nil, is called with each request whose
	// handshake failed and the error Accept returned (a *HandshakeError
	// for a refused request, whose status has been written, or
	// ErrServerClosed after Shutdown began), e.g. to
	// count refusals by reason. It runs on the request's goroutine.
	OnAcceptError func(r *http.Request, err error)

	// OnAccept, if not nil, is called with each request whose handshake
	// succeeded and its connection, before Handle or the Handler's OnOpen
	// runs: the place to read what the request carries (a query, a
	// cookie, the authenticated user) for the connection's handlers,
	// without keeping the request. It runs on the request's goroutine.
	OnAccept func(r *http.Request, c *Conn)

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	closing  bool
	handlers sync.WaitGroup
}

// ErrServerClosed is returned for requests that arrive after Shutdown
// began; they are answered 503 Service Unavailable.
var ErrServerClosed = errors.New("ws: server shutting down")

// ServeHTTP performs the handshake and serves the connection with Handle
// or Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Handle == nil && s.Handler == nil {
		http.Error(w, "ws.Server: neither Handle nor Handler is set", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		if s.OnAcceptError != nil {
			s.OnAcceptError(r, ErrServerClosed)
		}
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()

	c, err := Accept(w, r, s.Options)
	if err != nil {
		s.handlers.Done()
		if s.OnAcceptError != nil {
			s.OnAcceptError(r, err)
		}
		return
	}
	s.serve(r, c, false)
}

// serve runs the Handle or Handler of c, whose handshake with request r
// has just been answered. With own, the caller's goroutine is c's own
// (a Listener's); otherwise it is net/http's, which a Handler does not
// keep.
func (s *Server) serve(r *http.Request, c *Conn, own bool) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		if s.conns == nil {
			s.conns = make(map[*Conn]struct{})
		}
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if closing {
		// Shutdown began after this handshake did: the connection is
		// closed like every other, and Handle still runs, so that it sees
		// the 1001 as the others do.
		go func() { _ = c.Close(StatusGoingAway, "server shutting down") }()
	}
	if s.OnAccept != nil {
		s.OnAccept(r, c)
	}
	if s.Handle != nil {
		ctx := r.Context()
		if own {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel() // done when Handle returns, as a request's
		}
		defer s.forget(c)
		defer closeServed(c)
		s.Handle(ctx, c)
		return
	}
	if r.ProtoMajor >= 2 {
		// An HTTP/2 stream lives on this request's ResponseWriter: serve
		// it here, and return when it has ended.
		defer s.forget(c)
		defer closeServed(c)
		serveHandler(context.Background(), c, s.Handler)
		return
	}
	if s.Poller != nil && s.Poller.hold(c, s.Handler, s) {
		return // the poller serves it, and forgets it when it ends
	}
	if own {
		defer s.forget(c)
		defer closeServed(c)
		serveHandler(context.Background(), c, s.Handler)
		return
	}
	// The Handler runs on a goroutine of its own, and ServeHTTP returns:
	// net/http's goroutine for the request then ends and drops what it
	// still holds for the hijacked connection (its read and write
	// buffers, the request), about 12 KiB.
	go func() {
		defer s.forget(c)
		defer closeServed(c)
		serveHandler(context.Background(), c, s.Handler)
	}()
}

// serveHead serves a connection whose first request, whose head a
// Listener has read ahead of net/http, is a handshake for s: the head, of
// head.len bytes, is still in the socket, and buf has room for it. It
// returns false, having read nothing, when s would not accept the request
// as it is (a refusal, a shutdown, options that cannot work): net/http
// then reads the request and ServeHTTP answers it, as without a
// Listener. It returns true when it took the connection, served it to its
// end or handed it to the Poller.
func (s *Server) serveHead(nc net.Conn, head *requestHead, buf []byte) bool {
	if s.Handle == nil && s.Handler == nil {
		return false
	}
	o := s.Options
	if o == nil {
		o = &noAcceptOptions
	}
	r, err := head.request()
	if err != nil || o.validate() != nil || checkRequest(r, o) != nil {
		return false
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	if _, err := io.ReadFull(nc, buf[:head.len]); err != nil {
		s.handlers.Done()
		_ = nc.Close()
		return true
	}
	if s.OnAccept != nil || s.Handle != nil {
		r.RemoteAddr = nc.RemoteAddr().String()
	}
	subprotocol := selectSubprotocol(r, o.Subprotocols)
	deflate, compress := acceptDeflate(r.Header, o.Compression)
	c, err := newServerConn(nc, nil, r.Header, o, subprotocol, deflate, compress)
	if err != nil {
		s.handlers.Done()
		return true
	}
	s.serve(r, c, true)
	return true
}

// forget drops c, whose handler has ended, from the connections Shutdown
// closes and waits for.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// closeServed ends a connection whose Handle or Handler has returned.
func closeServed(c *Conn) {
	_ = c.Close(StatusNormalClosure, "")
	_ = c.CloseNow()
}

// Shutdown refuses new connections, closes every open one with 1001 Going
// Away (each close handshake bounded by the connection's close timeout),
// and waits for the handlers to return or ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go func() { _ = c.Close(StatusGoingAway, "server shutting down") }()
	}
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.CloseNow()
		}
		return ctx.Err()
	}
}
