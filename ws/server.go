package ws

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// Server is an http.Handler that accepts WebSocket connections and runs
// Handle for each, on the request's goroutine. When Handle returns, the
// connection is closed (with 1000 if Handle did not close it). Shutdown
// closes every open connection with 1001 Going Away: net/http's own
// Shutdown does not see connections taken over by a WebSocket.
//
//	srv := &ws.Server{Handle: echo}
//	httpSrv.RegisterOnShutdown(func() { srv.Shutdown(context.Background()) })
//
// The zero value is not usable: Handle must be set. Fields must not change
// after the first request.
type Server struct {
	// Handle serves one connection. ctx is the request's context, done when
	// Handle returns. Return when a read reports the connection closed.
	Handle func(ctx context.Context, c *Conn)
	// Options configures the handshake and the connections; nil means the
	// defaults of AcceptOptions.
	Options *AcceptOptions

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	closing  bool
	handlers sync.WaitGroup
}

// ErrServerClosed is returned for requests that arrive after Shutdown
// began; they are answered 503 Service Unavailable.
var ErrServerClosed = errors.New("ws: server shutting down")

// ServeHTTP performs the handshake and runs Handle.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	c, err := Accept(w, r, s.Options)
	if err != nil {
		return
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		if s.conns == nil {
			s.conns = make(map[*Conn]struct{})
		}
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close(StatusNormalClosure, "")
		_ = c.CloseNow()
	}()
	if closing {
		// Shutdown began after this handshake did: the connection is
		// closed like every other, and Handle still runs, so that it sees
		// the 1001 as the others do.
		go func() { _ = c.Close(StatusGoingAway, "server shutting down") }()
	}
	s.Handle(r.Context(), c)
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
