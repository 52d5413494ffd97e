package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// DefaultConnectTimeout is how long a new connection may take to join a
// namespace before it is closed, when ServerOptions.ConnectTimeout is zero
// (the JavaScript server's connectTimeout).
const DefaultConnectTimeout = 45 * time.Second

// DefaultMaxPendingEvents bounds the events a socket holds for its
// handlers when ServerOptions.MaxPendingEvents is zero.
const DefaultMaxPendingEvents = 1024

// DefaultMaxNamespacesPerConnection bounds the namespaces one connection
// joins when ServerOptions.MaxNamespacesPerConnection is zero.
const DefaultMaxNamespacesPerConnection = 100

var (
	// ErrInvalidNamespace is wrapped by the error that
	// ServerOptions.OnConnectError gets for a CONNECT to a namespace that
	// does not exist and that no OfFunc matcher accepts, or that a
	// matcher accepts once MaxDynamicNamespaces are made. The client gets
	// a CONNECT_ERROR {"message":"Invalid namespace"}.
	ErrInvalidNamespace = errors.New("socketio: invalid namespace")
	// ErrNamespaceLimit is wrapped by the error that
	// ServerOptions.OnConnectError gets for a CONNECT from a connection
	// that has ServerOptions.MaxNamespacesPerConnection namespaces joined
	// (or joining) already.
	ErrNamespaceLimit = errors.New("socketio: too many namespaces on one connection")
)

// ServerOptions configures a Server. A nil *ServerOptions means the
// defaults.
type ServerOptions struct {
	// Engine configures the Engine.IO server underneath: heartbeat,
	// maxPayload, transports, CORS, AllowRequest, limits. Its Handler is
	// the Socket.IO server's own and is replaced. Nil means engineio's
	// defaults.
	Engine *engineio.ServerOptions

	// ConnectTimeout closes a connection that has not joined a namespace
	// in this time. Zero means DefaultConnectTimeout (45 s).
	ConnectTimeout time.Duration

	// NewAdapter makes the Adapter of each namespace. Nil means
	// NewMemoryAdapter: rooms and broadcasts within this process.
	NewAdapter func(ns *Namespace) Adapter

	// MaxAttachments bounds the binary attachments of one incoming packet;
	// a packet announcing more closes the connection. Zero means 10.
	MaxAttachments int

	// MaxPendingEvents bounds the events a socket holds while its handlers
	// are busy; a client that sends more is disconnected (reason "transport
	// error"). Zero means DefaultMaxPendingEvents.
	MaxPendingEvents int

	// MaxDynamicNamespaces bounds the namespaces that OfFunc and OfRegexp
	// make on first use: a client cannot grow the server by connecting to
	// endless names. A CONNECT to a new one past the bound is refused as
	// an invalid namespace. Dynamic namespaces stay once made. Zero means
	// 10,000.
	MaxDynamicNamespaces int

	// MaxNamespacesPerConnection bounds the namespaces one connection
	// (one Engine.IO session) has joined, or is joining, at once: each
	// holds a socket with its handlers and rooms. A CONNECT past it is
	// refused with a CONNECT_ERROR {"message":"Too many namespaces on this
	// connection (at most N)"}; the connection stays open with the
	// namespaces it has, and one it leaves makes room. Zero means
	// DefaultMaxNamespacesPerConnection (100); negative means no limit.
	MaxNamespacesPerConnection int

	// OnConnectError, if not nil, is called with each CONNECT the server
	// refuses with a CONNECT_ERROR, once that packet is queued, e.g. to
	// count refusals by reason. r is the request that opened the
	// connection, nsp the namespace the client asked for (any string a
	// client sends), and err wraps ErrInvalidNamespace or
	// ErrNamespaceLimit, or is what a middleware of the namespace returned
	// (or the panic it made). It runs on the connection's reader or on
	// the socket's handler goroutine, concurrently for different
	// connections; it must not block.
	OnConnectError func(r *http.Request, nsp string, err error)

	// Recovery, if not nil, turns on connection state recovery (see
	// RecoveryOptions). The adapter must be a SessionAdapter, as the
	// MemoryAdapter is.
	Recovery *RecoveryOptions

	// Logger receives the server's logs: connections at Debug, refused
	// packets and handler argument errors at Warn, handler panics at
	// Error. Nil means no logs.
	Logger *slog.Logger
}

// Server is a Socket.IO server: an http.Handler for the path the clients
// use, "/socket.io/" by default. Make it with NewServer.
type Server struct {
	eio            *engineio.Server
	log            *slog.Logger
	connectTimeout time.Duration
	maxPending     int
	limits         parserLimits
	newAdapter     func(ns *Namespace) Adapter
	recovery       *RecoveryOptions // nil: off
	maxDynamic     int
	maxNamespaces  int // per connection; <= 0: no limit
	onConnectError func(r *http.Request, nsp string, err error)

	handlers busy // sockets' executors at work

	mu      sync.Mutex
	nsps    map[string]*Namespace
	dynamic []dynamicNamespace
	made    int // dynamic namespaces made
	closed  bool
}

type dynamicNamespace struct {
	match func(name string) bool
	setup func(ns *Namespace)
}

// NewServer returns a server with the main namespace "/" ready for
// handlers.
func NewServer(opts *ServerOptions) (*Server, error) {
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	s := &Server{
		log:            o.Logger,
		connectTimeout: o.ConnectTimeout,
		maxPending:     o.MaxPendingEvents,
		newAdapter:     o.NewAdapter,
		nsps:           make(map[string]*Namespace),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.connectTimeout <= 0 {
		s.connectTimeout = DefaultConnectTimeout
	}
	if s.maxPending <= 0 {
		s.maxPending = DefaultMaxPendingEvents
	}
	if s.newAdapter == nil {
		s.newAdapter = func(ns *Namespace) Adapter { return NewMemoryAdapter(ns) }
	}
	if o.Recovery != nil {
		s.recovery = o.Recovery.withDefaults()
	}
	s.maxDynamic = o.MaxDynamicNamespaces
	if s.maxDynamic <= 0 {
		s.maxDynamic = 10_000
	}
	s.maxNamespaces = o.MaxNamespacesPerConnection
	if s.maxNamespaces == 0 {
		s.maxNamespaces = DefaultMaxNamespacesPerConnection
	}
	s.onConnectError = o.OnConnectError
	s.limits = parserLimits{MaxAttachments: o.MaxAttachments}
	var eo engineio.ServerOptions
	if o.Engine != nil {
		eo = *o.Engine
	}
	if eo.MaxPayload > 0 {
		s.limits.MaxPacketSize = int(eo.MaxPayload)
	}
	eo.Handler = engineHandler{s}
	if eo.Logger == nil {
		eo.Logger = o.Logger
	}
	eio, err := engineio.NewServer(&eo)
	if err != nil {
		return nil, fmt.Errorf("socketio: %w", err)
	}
	s.eio = eio
	s.Of("/")
	return s, nil
}

// ServeHTTP serves the Engine.IO transports that carry Socket.IO.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.eio.ServeHTTP(w, r) }

// Engine returns the Engine.IO server underneath.
func (s *Server) Engine() *engineio.Server { return s.eio }

// Of returns the namespace called name ("/" is the main one; a name
// without a leading slash gets one), making it if it does not exist yet.
func (s *Server) Of(name string) *Namespace {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns := s.nsps[name]; ns != nil {
		return ns
	}
	ns := newNamespace(s, name)
	close(ns.ready)
	s.nsps[name] = ns
	return ns
}

// OfFunc declares dynamic namespaces: the first client that connects to a
// namespace that does not exist and whose name match accepts makes it, and
// setup is called with it (to install middleware and handlers) before the
// client joins. Matchers are tried in the order they were declared.
func (s *Server) OfFunc(match func(name string) bool, setup func(ns *Namespace)) {
	s.mu.Lock()
	s.dynamic = append(s.dynamic, dynamicNamespace{match, setup})
	s.mu.Unlock()
}

// OfRegexp is OfFunc with a regular expression that must match the whole
// name, such as `^/dyn-[a-z0-9-]+$`.
func (s *Server) OfRegexp(re *regexp.Regexp, setup func(ns *Namespace)) {
	s.OfFunc(re.MatchString, setup)
}

// lookup returns the namespace a CONNECT names, making a dynamic one if a
// matcher accepts the name, or an error wrapping ErrInvalidNamespace.
func (s *Server) lookup(name string) (*Namespace, error) {
	s.mu.Lock()
	if ns := s.nsps[name]; ns != nil {
		s.mu.Unlock()
		return ns, nil
	}
	var setup func(*Namespace)
	for _, d := range s.dynamic {
		if d.match(name) {
			setup = d.setup
			break
		}
	}
	if setup == nil || s.closed {
		s.mu.Unlock()
		return nil, ErrInvalidNamespace
	}
	if s.made >= s.maxDynamic {
		s.mu.Unlock()
		s.log.Warn("socketio: refusing a new dynamic namespace: ServerOptions.MaxDynamicNamespaces reached", "nsp", name, "max", s.maxDynamic)
		return nil, fmt.Errorf("%w: ServerOptions.MaxDynamicNamespaces (%d) are made", ErrInvalidNamespace, s.maxDynamic)
	}
	s.made++
	ns := newNamespace(s, name)
	s.nsps[name] = ns
	s.mu.Unlock()
	// Connections to it wait on ready until setup has installed its
	// middleware and handlers.
	defer close(ns.ready)
	setup(ns)
	return ns, nil
}

// connectError tells OnConnectError, if set, of a refused CONNECT.
func (s *Server) connectError(r *http.Request, nsp string, err error) {
	if s.onConnectError != nil {
		s.onConnectError(r, nsp, err)
	}
}

// OnConnection adds fn to the main namespace's connection handlers; see
// Namespace.OnConnection.
func (s *Server) OnConnection(fn func(s *Socket)) { s.Of("/").OnConnection(fn) }

// Use adds middleware to the main namespace; see Namespace.Use.
func (s *Server) Use(fn func(s *Socket) error) { s.Of("/").Use(fn) }

// To selects the main namespace's sockets in rooms; see Namespace.To.
func (s *Server) To(rooms ...string) *BroadcastOperator { return s.Of("/").To(rooms...) }

// In is To.
func (s *Server) In(rooms ...string) *BroadcastOperator { return s.Of("/").To(rooms...) }

// Except leaves out the main namespace's sockets in rooms.
func (s *Server) Except(rooms ...string) *BroadcastOperator { return s.Of("/").Except(rooms...) }

// Local restricts an operation on the main namespace to this process.
func (s *Server) Local() *BroadcastOperator { return s.Of("/").Local() }

// Volatile marks a broadcast on the main namespace as droppable.
func (s *Server) Volatile() *BroadcastOperator { return s.Of("/").Volatile() }

// Compress says whether a broadcast on the main namespace may be
// compressed.
func (s *Server) Compress(compress bool) *BroadcastOperator { return s.Of("/").Compress(compress) }

// Timeout bounds the wait of a broadcast's EmitWithAck on the main
// namespace.
func (s *Server) Timeout(d time.Duration) *BroadcastOperator { return s.Of("/").Timeout(d) }

// Emit sends an event to every socket of the main namespace.
func (s *Server) Emit(event string, args ...any) error { return s.Of("/").Emit(event, args...) }

// FetchSockets describes every socket of the main namespace, in every
// process of the cluster.
func (s *Server) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return s.Of("/").FetchSockets(ctx)
}

// SocketsJoin makes every socket of the main namespace join rooms.
func (s *Server) SocketsJoin(rooms ...string) { s.Of("/").SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the main namespace leave rooms.
func (s *Server) SocketsLeave(rooms ...string) { s.Of("/").SocketsLeave(rooms...) }

// DisconnectSockets disconnects every socket of the main namespace.
func (s *Server) DisconnectSockets(closeConn bool) { s.Of("/").DisconnectSockets(closeConn) }

// ServerSideEmit sends an event to the other servers of the cluster, on
// the main namespace; see Namespace.ServerSideEmit.
func (s *Server) ServerSideEmit(ctx context.Context, event string, args ...any) error {
	return s.Of("/").ServerSideEmit(ctx, event, args...)
}

// Close disconnects every client at once (reason "server shutting
// down"), dropping what is still queued for them, and closes the
// namespaces' adapters.
func (s *Server) Close() error {
	return s.stop(func() error { return s.eio.Close() })
}

// Shutdown disconnects every client gracefully (what is queued for a
// client goes out first; a long-polling client gets the close with its
// next poll) and waits, until ctx is done, for their sessions to close;
// then it closes the rest at once, as Close does. It then waits, until
// ctx is done, for the handlers still running or queued (the disconnect
// handlers among them) to return, and closes the namespaces' adapters.
// Close does not wait for handlers.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(func() error {
		err := s.eio.Shutdown(ctx)
		if werr := s.handlers.wait(ctx); err == nil && werr != nil {
			err = fmt.Errorf("socketio: handlers still running at the end of Shutdown: %w", werr)
		}
		return err
	})
}

func (s *Server) stop(closeEngine func() error) error {
	s.mu.Lock()
	s.closed = true
	nsps := make([]*Namespace, 0, len(s.nsps))
	for _, ns := range s.nsps {
		nsps = append(nsps, ns)
	}
	s.mu.Unlock()
	err := closeEngine()
	var errs []error
	for _, ns := range nsps {
		if cerr := ns.adapter.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// engineHandler receives the Engine.IO sessions' events.
type engineHandler struct{ s *Server }

func (h engineHandler) OnOpen(sess *engineio.Session) {
	c := newClient(h.s, sess)
	sess.SetValue(c)
}

func (h engineHandler) OnMessage(sess *engineio.Session, typ engineio.MessageType, data []byte) {
	if c, ok := sess.Value().(*client); ok {
		c.onMessage(typ, data)
	}
}

func (h engineHandler) OnClose(sess *engineio.Session, reason engineio.CloseReason, err error) {
	if c, ok := sess.Value().(*client); ok {
		c.onClose(reason, err)
	}
}
