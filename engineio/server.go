package engineio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// The transport names of the protocol, as in the transport query parameter
// and Session.Transport.
const (
	TransportPolling   = "polling"
	TransportWebSocket = "websocket"
)

// Defaults of ServerOptions and DialOptions.
const (
	DefaultPingInterval    = 25 * time.Second
	DefaultPingTimeout     = 20 * time.Second
	DefaultMaxPayload      = 1_000_000
	DefaultUpgradeTimeout  = 10 * time.Second
	DefaultMaxSessions     = 100_000
	DefaultSendBufferLimit = 4 << 20
)

// upgradeNoopDelay is how long a poll that arrives while an upgrade is
// being probed waits before it is ended with a noop: Node's engine.io
// checks every 100 ms. Within that time a completed upgrade answers it 400
// instead, as the session then belongs to the WebSocket.
const upgradeNoopDelay = 100 * time.Millisecond

// ServerOptions configures a Server. A nil *ServerOptions is the zero
// value; NewServer copies it and never changes the caller's struct.
type ServerOptions struct {
	// Handler receives the sessions' events. Nil means sessions are
	// accepted and their messages dropped.
	Handler Handler

	// PingInterval is the time between the server's pings. Zero means
	// DefaultPingInterval (25 s).
	PingInterval time.Duration
	// PingTimeout is how long the server waits for the pong of a ping
	// before it closes the session with ReasonPingTimeout. Zero means
	// DefaultPingTimeout (20 s). A session whose client stopped polling is
	// expired this way, within PingInterval+PingTimeout.
	PingTimeout time.Duration

	// MaxPayload is the largest HTTP request body (one long-polling
	// payload) and WebSocket message the server accepts, in bytes,
	// announced in the handshake. A larger POST is answered 413 and a
	// larger WebSocket message fails the connection with 1009; both close
	// the session with ReasonTransportError. Zero means DefaultMaxPayload
	// (1,000,000).
	MaxPayload int64

	// Transports lists the transports clients may use, from
	// TransportPolling and TransportWebSocket. Nil means both.
	Transports []string
	// DisableUpgrades stops long-polling sessions from upgrading to
	// WebSocket: the handshake then announces no upgrades.
	DisableUpgrades bool
	// UpgradeTimeout bounds an upgrade from the WebSocket's handshake to
	// the client's upgrade packet; an upgrade that takes longer is
	// abandoned and its WebSocket closed. Zero means DefaultUpgradeTimeout
	// (10 s).
	UpgradeTimeout time.Duration

	// CORS, if not nil, answers cross-origin requests from browsers: the
	// Access-Control-* headers, preflight OPTIONS requests, and the
	// WebSocket Origin check. Nil sends no CORS headers, and WebSockets
	// from a browser must then come from the server's own origin.
	CORS *CORS

	// AllowRequest, if not nil, is called with each handshake request
	// (a request without sid, long-polling or WebSocket) before a session
	// is made, to check cookies, tokens or headers. A non-nil error refuses
	// it with HTTP 403 and {"code":4,"message":err.Error()}.
	AllowRequest func(r *http.Request) error

	// MaxSessions bounds the open sessions; a handshake over it is refused
	// with HTTP 503. Zero means DefaultMaxSessions (100,000); negative
	// means no limit.
	MaxSessions int

	// SendBufferLimit bounds the bytes a session holds queued for its
	// client: long-polling packets waiting for the next poll, messages held
	// during an upgrade, or the WebSocket's send queue. A send over it
	// returns an error wrapping ErrSendBufferFull and closes the session
	// with ReasonTransportError. Zero means DefaultSendBufferLimit (4 MiB).
	SendBufferLimit int

	// OnError, if not nil, is told of each request the server refuses and
	// of each session it closes for what its client did, e.g. to count
	// them by reason. r is the refused request, or the one that opened the
	// session. err is one of:
	//   - a *RequestError (errors.As) for a request answered with an error
	//     status: 400 with its Code (an unknown sid, transport or protocol
	//     version, a bad method, overlapping polls, a payload that does not
	//     parse: Err wraps ErrInvalidPacket), 403 (AllowRequest), 413 (a
	//     POST over MaxPayload: ErrPayloadTooLarge), 503 (ErrTooManySessions
	//     or ErrServerClosed);
	//   - the error of ws.Accept for a WebSocket handshake it refused (a
	//     *ws.HandshakeError; its status has been written);
	//   - for a session's WebSocket failed by the server: an error wrapping
	//     ws.ErrMessageTooBig (a message over MaxPayload, closed with 1009)
	//     or ws.ErrProtocol (a violation of RFC 6455: 1002, or 1007 for
	//     invalid UTF-8), ErrInvalidPacket (a message that is not
	//     Engine.IO), or ErrAlreadyUpgraded (1008);
	//   - ErrSendBufferFull, wrapping ws.ErrSendQueueFull when the session
	//     was on WebSocket (closed with 1013), for a session let go because
	//     its client did not read what was sent to it.
	// It runs on the goroutine that found the error, concurrently for
	// different requests; it must not block.
	OnError func(r *http.Request, err error)

	// WebSocket configures the WebSocket connections, for compression or
	// buffer sizes. Its ReadLimit is replaced by MaxPayload,
	// SendQueueLimit by SendBufferLimit, and its Origin check by CORS when
	// CORS is set. Nil means ws.Accept's defaults.
	WebSocket *ws.AcceptOptions

	// Logger receives the server's logs: sessions opened and closed at
	// Debug, handler panics at Error. Nil means no logs.
	Logger *slog.Logger
}

// CORS configures cross-origin resource sharing for browsers, as the cors
// option of Node's engine.io does.
type CORS struct {
	// Origins lists the allowed origins ("https://example.com"), compared
	// without case; "*" allows every origin.
	Origins []string
	// AllowOrigin, if not nil, is asked about origins that Origins does not
	// allow.
	AllowOrigin func(origin string) bool
	// Credentials allows cookies and HTTP auth on cross-origin requests
	// (Access-Control-Allow-Credentials: true); the allowed origin is then
	// echoed, never "*".
	Credentials bool
	// Headers lists the request headers a preflight allows. Nil allows
	// those the preflight asks for.
	Headers []string
	// MaxAge is how long browsers may cache a preflight's answer. Zero
	// sends no Access-Control-Max-Age.
	MaxAge time.Duration
}

// allows tells whether origin may make cross-origin requests.
func (c *CORS) allows(origin string) bool {
	for _, o := range c.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return c.AllowOrigin != nil && c.AllowOrigin(origin)
}

// Server is an Engine.IO v4 server: an http.Handler, usually mounted at
// "/engine.io/" (or under Socket.IO at "/socket.io/"), that serves
// long-polling and WebSocket sessions and hands them to its Handler.
//
// Its methods are safe for concurrent use.
type Server struct {
	opts       ServerOptions // with defaults filled in
	handler    Handler
	log        *slog.Logger
	polling    bool
	websocket  bool
	upgrades   bool
	acceptOpts ws.AcceptOptions

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	wg       sync.WaitGroup // goroutines of sessions and parked requests
}

// NewServer returns a Server with opts, which may be nil. It returns an
// error, naming the field, for options it cannot use.
func NewServer(opts *ServerOptions) (*Server, error) {
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case o.PingInterval < 0:
		return nil, errors.New("engineio: ServerOptions.PingInterval is negative")
	case o.PingTimeout < 0:
		return nil, errors.New("engineio: ServerOptions.PingTimeout is negative")
	case o.MaxPayload < 0:
		return nil, errors.New("engineio: ServerOptions.MaxPayload is negative")
	case o.UpgradeTimeout < 0:
		return nil, errors.New("engineio: ServerOptions.UpgradeTimeout is negative")
	case o.SendBufferLimit < 0:
		return nil, errors.New("engineio: ServerOptions.SendBufferLimit is negative")
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.UpgradeTimeout == 0 {
		o.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.SendBufferLimit == 0 {
		o.SendBufferLimit = DefaultSendBufferLimit
	}
	s := &Server{opts: o, handler: o.Handler, log: o.Logger, sessions: map[string]*Session{}}
	if o.Transports == nil {
		s.polling, s.websocket = true, true
	}
	for _, t := range o.Transports {
		switch t {
		case TransportPolling:
			s.polling = true
		case TransportWebSocket:
			s.websocket = true
		default:
			return nil, fmt.Errorf("engineio: ServerOptions.Transports: unknown transport %q", t)
		}
	}
	if !s.polling && !s.websocket {
		return nil, errors.New("engineio: ServerOptions.Transports enables no transport")
	}
	s.upgrades = s.polling && s.websocket && !o.DisableUpgrades
	if s.handler == nil {
		s.handler = HandlerFuncs{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.WebSocket != nil {
		s.acceptOpts = *o.WebSocket
	}
	s.acceptOpts.ReadLimit = o.MaxPayload
	s.acceptOpts.SendQueueLimit = o.SendBufferLimit
	s.acceptOpts.SendQueueFull = ws.SendQueueClose
	return s, nil
}

// Len returns the number of open sessions.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Session returns the open session with the id, or nil.
func (s *Server) Session(id string) *Session {
	ss := s.lookup(id)
	if ss == nil || ss.closed.Load() {
		return nil
	}
	return ss
}

// lookup returns the session with the id from the table, which holds a
// session closed by its client for lingerTime.
func (s *Server) lookup(id string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Close closes every session with ReasonServerShutdown at once and
// refuses new ones: parked long-polls are answered with a close packet,
// WebSockets closed with 1001 Going Away; messages still queued are
// dropped. It waits for the sessions' goroutines to end.
func (s *Server) Close() error {
	s.closeSessions(s.stopAccepting(), closeNow)
	s.wg.Wait()
	return nil
}

// Shutdown closes the server gracefully: it refuses new sessions, and
// closes every session with ReasonServerShutdown after what is queued for
// it. A WebSocket gets its queued messages, then a close with 1001 Going
// Away; a long-polling client gets its queued messages and a close packet
// with its next poll (at once if one is waiting; a client that does not
// poll within a second is closed), so that it sees the server close
// rather than an unknown session. Shutdown waits for the
// sessions to close; when ctx is done first, it closes the rest at once,
// as Close does, and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	list := s.stopAccepting()
	s.closeSessions(list, closeGraceful)
	for _, ss := range list {
		select {
		case <-ss.done:
		case <-ctx.Done():
			s.closeSessions(list, closeNow)
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopAccepting refuses new sessions from now on and returns the open
// ones, which stay in the table so that their next requests find them.
func (s *Server) stopAccepting() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	list := make([]*Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	return list
}

// closeSessions closes each session of list with ReasonServerShutdown.
func (s *Server) closeSessions(list []*Session, mode closeMode) {
	for _, ss := range list {
		ss.closeWith(ReasonServerShutdown, nil, mode)
		if mode == closeNow {
			// A session closed by its client lingers in the table for a
			// moment (lingerTime); not past a shutdown.
			ss.mu.Lock()
			if ss.lingerTimer != nil {
				ss.lingerTimer.Stop()
			}
			ss.mu.Unlock()
			s.remove(ss)
		}
	}
}

// remove takes a closed session out of the table.
func (s *Server) remove(ss *Session) {
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.mu.Unlock()
}

// ServeHTTP serves the Engine.IO requests: handshakes, polls, posts and
// WebSocket connections.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c := s.opts.CORS; c != nil {
		if s.cors(w, r, c) {
			return
		}
	}
	q := r.URL.Query()
	transport := q.Get("transport")
	if !(transport == TransportPolling && s.polling) && !(transport == TransportWebSocket && s.websocket) {
		s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnknownTransport})
		return
	}
	if q.Get("EIO") != "4" {
		s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnsupportedProtocolVersion})
		return
	}
	if sid := q.Get("sid"); sid != "" {
		ss := s.lookup(sid)
		if ss == nil {
			s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeUnknownSID})
			return
		}
		if transport == TransportWebSocket {
			if !isUpgrade(r) {
				s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
				return
			}
			s.serveUpgrade(w, r, ss)
			return
		}
		switch r.Method {
		case http.MethodGet:
			ss.servePoll(w, r)
		case http.MethodPost:
			ss.servePost(w, r)
		default:
			s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
		}
		return
	}
	if r.Method != http.MethodGet && !(transport == TransportWebSocket && isH2WebSocket(r)) {
		s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadHandshakeMethod})
		return
	}
	if transport == TransportWebSocket && !isUpgrade(r) {
		s.refuse(w, r, &RequestError{Status: http.StatusBadRequest, Code: CodeBadRequest})
		return
	}
	if s.opts.AllowRequest != nil {
		if err := s.opts.AllowRequest(r); err != nil {
			s.refuse(w, r, &RequestError{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error()})
			return
		}
	}
	if transport == TransportWebSocket {
		s.serveWebSocketHandshake(w, r)
		return
	}
	s.servePollingHandshake(w, r)
}

// isUpgrade tells whether r asks for a WebSocket, over HTTP/1.1 or
// HTTP/2: a plain HTTP request for the WebSocket transport is refused as
// Node's engine.io refuses it.
func isUpgrade(r *http.Request) bool {
	return isH2WebSocket(r) || strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// isH2WebSocket tells whether r is an HTTP/2 extended CONNECT for a
// WebSocket (RFC 8441 §4), which a browser sends instead of a GET with
// Upgrade when the page's HTTP/2 connection allows it.
func isH2WebSocket(r *http.Request) bool {
	return r.ProtoMajor >= 2 && r.Method == http.MethodConnect && strings.EqualFold(r.Header.Get(":protocol"), "websocket")
}

// cors writes the CORS headers, and answers a preflight request, which it
// reports by returning true.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, c *CORS) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	if origin != "" && c.allows(origin) {
		if !c.Credentials && slices.Contains(c.Origins, "*") {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		if c.Credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	if r.Method != http.MethodOptions {
		return false
	}
	if origin != "" && c.allows(origin) {
		h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
		if c.Headers != nil {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.Headers, ", "))
		} else if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
			h.Set("Access-Control-Allow-Headers", rh)
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		if c.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.MaxAge/time.Second)))
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// refuse answers a request with e, as Node's engine.io does: the status
// and {"code":N,"message":"..."} (a 413 without a body), and tells
// OnError. An empty Message is the code's.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *RequestError) {
	if e.Message == "" {
		e.Message = e.Code.String()
	}
	if e.Status == http.StatusRequestEntityTooLarge {
		w.WriteHeader(e.Status)
	} else {
		writeError(w, e.Status, e.Code, e.Message)
	}
	s.reportError(r, e)
}

// reportError tells OnError, if set, of err.
func (s *Server) reportError(r *http.Request, err error) {
	if s.opts.OnError != nil {
		s.opts.OnError(r, err)
	}
}

// writeError refuses a request as Node's engine.io does: the status and
// {"code":N,"message":"..."}.
func writeError(w http.ResponseWriter, status int, code ErrorCode, message string) {
	if message == "" {
		message = code.String()
	}
	body := fmt.Appendf(nil, `{"code":%d,"message":%s}`, int(code), strconv.Quote(message))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// newSID returns a session id: 15 bytes from crypto/rand in URL-safe
// base64, 20 characters, as Node's base64id.
func newSID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// register makes a new session and puts it in the table, or writes why it
// cannot.
func (s *Server) register(w http.ResponseWriter, r *http.Request, transport string) *Session {
	ss := newSession(s, r, transport)
	s.mu.Lock()
	if err := s.fullLocked(); err != nil {
		s.mu.Unlock()
		s.refuseFull(w, r, err)
		return nil
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()
	return ss
}

// fullLocked returns why a new session cannot be made now, or nil.
func (s *Server) fullLocked() error {
	switch {
	case s.closed:
		return ErrServerClosed
	case s.opts.MaxSessions > 0 && len(s.sessions) >= s.opts.MaxSessions:
		return ErrTooManySessions
	}
	return nil
}

// refuseFull answers a handshake that fullLocked refused with 503.
func (s *Server) refuseFull(w http.ResponseWriter, r *http.Request, err error) {
	msg := "Too many sessions"
	if errors.Is(err, ErrServerClosed) {
		msg = "Server is shutting down"
	} else {
		w.Header().Set("Retry-After", "1")
	}
	s.refuse(w, r, &RequestError{Status: http.StatusServiceUnavailable, Code: CodeBadRequest, Message: msg, Err: err})
}

// handshake returns the open packet for a session on transport.
func (s *Server) handshake(sid, transport string) []byte {
	upgrades := "[]"
	if transport == TransportPolling && s.upgrades {
		upgrades = `["websocket"]`
	}
	return fmt.Appendf(nil, `0{"sid":%q,"upgrades":%s,"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		sid, upgrades, s.opts.PingInterval.Milliseconds(), s.opts.PingTimeout.Milliseconds(), s.opts.MaxPayload)
}

func (s *Server) servePollingHandshake(w http.ResponseWriter, r *http.Request) {
	ss := s.register(w, r, TransportPolling)
	if ss == nil {
		return
	}
	body := s.handshake(ss.id, TransportPolling)
	ss.deliverMu.Lock()
	defer ss.deliverMu.Unlock()
	ss.mu.Lock()
	ss.startHeartbeat()
	ss.mu.Unlock()
	writePayload(w, body)
	// Send the handshake now, not when OnOpen returns.
	_ = http.NewResponseController(w).Flush()
	ss.log.Debug("engineio: session opened", "transport", TransportPolling, "proto", r.Proto)
	ss.callOpen()
}

// writePayload answers a poll.
func writePayload(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// acceptOptions returns the ws options for request r.
func (s *Server) acceptOptions(r *http.Request) *ws.AcceptOptions {
	o := s.acceptOpts
	if c := s.opts.CORS; c != nil {
		if origin := r.Header.Get("Origin"); origin != "" && c.allows(origin) {
			o.InsecureSkipOriginCheck = true
		}
	}
	return &o
}

func (s *Server) serveWebSocketHandshake(w http.ResponseWriter, r *http.Request) {
	// Check the table before the upgrade, so that a refusal is an HTTP
	// answer; the session is made once the connection is up.
	s.mu.Lock()
	err := s.fullLocked()
	s.mu.Unlock()
	if err != nil {
		s.refuseFull(w, r, err)
		return
	}
	c, err := ws.Accept(w, r, s.acceptOptions(r))
	if err != nil {
		s.reportError(r, err) // Accept has answered
		return
	}
	ss := s.register(discardResponse{}, r, TransportWebSocket)
	if ss == nil {
		_ = c.Close(ws.StatusTryAgainLater, "too many sessions")
		return
	}
	ss.deliverMu.Lock()
	ss.mu.Lock()
	if ss.state != stateOpen {
		// Closed (Shutdown) between register and here: the session never
		// had this WebSocket, so its close did not close it.
		ss.mu.Unlock()
		ss.deliverMu.Unlock()
		_ = c.Close(ws.StatusGoingAway, "server shutting down")
		return
	}
	s.wg.Add(1)
	ss.ws = c
	err = c.Send(ws.MessageText, s.handshake(ss.id, TransportWebSocket))
	ss.startHeartbeat()
	ss.mu.Unlock()
	ss.log.Debug("engineio: session opened", "transport", TransportWebSocket, "proto", r.Proto)
	ss.callOpen()
	ss.deliverMu.Unlock()
	if err != nil {
		ss.closeWith(ReasonTransportError, err, closeNow)
	}
	s.readWebSocket(r, ss, c)
}

// readWebSocket runs the reader of a session's WebSocket, c, accepted
// for request r.
func (s *Server) readWebSocket(r *http.Request, ss *Session, c *ws.Conn) {
	if r.ProtoMajor >= 2 {
		// Over HTTP/2 (RFC 8441) the WebSocket is a stream on this
		// request's ResponseWriter and body, which end when the handler
		// returns: read it here, until the connection ends.
		defer s.wg.Done()
		ss.readWebSocket(c)
		return
	}
	// The reader runs on a goroutine of its own and the handler returns,
	// so that net/http's goroutine ends and drops what it holds for the
	// hijacked connection (its buffers, the request): about 12 KiB per
	// session.
	go func() {
		defer s.wg.Done()
		ss.readWebSocket(c)
	}()
}

// discardResponse is a ResponseWriter for a connection already upgraded.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (discardResponse) WriteHeader(int)             {}
