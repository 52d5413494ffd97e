package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is a group of sockets with its own handlers, middleware and
// rooms (the client names it when it connects, "/" by default). Make it
// with Server.Of.
type Namespace struct {
	srv     *Server
	name    string
	adapter Adapter

	ready chan struct{} // closed once a dynamic namespace's setup has run
	ids   atomic.Int64  // acknowledgement ids, shared by the sockets and broadcasts

	mu          sync.RWMutex
	sockets     map[string]*Socket
	middlewares []func(s *Socket) error
	onConn      []func(s *Socket)
	serverSide  map[string][]func(ns *Namespace, e *Event)
}

func newNamespace(s *Server, name string) *Namespace {
	ns := &Namespace{srv: s, name: name, sockets: make(map[string]*Socket), ready: make(chan struct{})}
	ns.adapter = s.newAdapter(ns)
	if _, ok := ns.adapter.(SessionAdapter); s.recovery != nil && !ok {
		s.log.Warn("socketio: ServerOptions.Recovery is set but the adapter keeps no sessions (it is not a SessionAdapter): connection state recovery is off", "nsp", name)
	}
	return ns
}

// nextAckID returns a new acknowledgement id.
func (ns *Namespace) nextAckID() int64 { return ns.ids.Add(1) - 1 }

// Name returns the namespace's name, such as "/" or "/admin".
func (ns *Namespace) Name() string { return ns.name }

// Server returns the server of the namespace.
func (ns *Namespace) Server() *Server { return ns.srv }

// Adapter returns the namespace's adapter.
func (ns *Namespace) Adapter() Adapter { return ns.adapter }

// Use adds a middleware: a function called for each socket that connects,
// in the order they were added, before the connection handlers. A non-nil
// error refuses the connection: the client gets a CONNECT_ERROR packet
// with the error's message, and with its Data when the error is (or wraps)
// a *ConnectError. A middleware may block (to check a token, say): the
// socket's events wait.
func (ns *Namespace) Use(fn func(s *Socket) error) {
	ns.mu.Lock()
	ns.middlewares = append(ns.middlewares, fn)
	ns.mu.Unlock()
}

// OnConnection adds a handler called for each socket that has joined the
// namespace (after the middleware). Install the socket's event handlers
// there: events the client sent meanwhile wait for it to return.
func (ns *Namespace) OnConnection(fn func(s *Socket)) {
	ns.mu.Lock()
	ns.onConn = append(ns.onConn, fn)
	ns.mu.Unlock()
}

// OnServerSideEmit adds a handler for event when another server of the
// cluster sends it with ServerSideEmit. e.Ack answers a ServerSideEmit
// that waits for acknowledgements.
func (ns *Namespace) OnServerSideEmit(event string, fn func(ns *Namespace, e *Event)) {
	ns.mu.Lock()
	if ns.serverSide == nil {
		ns.serverSide = make(map[string][]func(*Namespace, *Event))
	}
	ns.serverSide[event] = append(ns.serverSide[event], fn)
	ns.mu.Unlock()
}

// ServerSideEmit sends an event to the other servers of the cluster (not
// to clients); their OnServerSideEmit handlers receive it. With the
// in-memory adapter there is no other server.
func (ns *Namespace) ServerSideEmit(ctx context.Context, event string, args ...any) error {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return err
	}
	return ns.adapter.ServerSideEmit(ctx, &Packet{Type: PacketEvent, Namespace: ns.name, ID: -1, Data: data, Attachments: att}, nil, nil)
}

// ServerSideEmitWithAck sends an event to the other servers and collects
// their acknowledgements until each has answered or ctx ends (then it
// returns those that came, and an error wrapping ctx's).
func (ns *Namespace) ServerSideEmitWithAck(ctx context.Context, event string, args ...any) ([]*Args, error) {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return nil, err
	}
	p := &Packet{Type: PacketEvent, Namespace: ns.name, ID: 0, Data: data, Attachments: att}
	c := newCollector()
	if err := ns.adapter.ServerSideEmit(ctx, p, c.expect, c.add); err != nil {
		return c.stop(), err // what came before the adapter gave up
	}
	return c.wait(ctx, event)
}

// ServeServerSideEmit runs the OnServerSideEmit handlers for p, an event
// from another server; ack, if not nil, sends their acknowledgement back.
// Adapters call it.
func (ns *Namespace) ServeServerSideEmit(p *Packet, ack func(*Packet) error) {
	name, args, err := eventName(p.Data)
	if err != nil {
		ns.srv.log.Warn("socketio: a malformed server-side event", "nsp", ns.name, "err", err)
		return
	}
	e := &Event{Name: name, Args: Args{raw: args, att: p.Attachments}}
	if ack != nil {
		e.nsp, e.ackID, e.send = ns.name, p.ID, ack
	}
	ns.mu.RLock()
	hs := ns.serverSide[name]
	ns.mu.RUnlock()
	for _, fn := range hs {
		fn(ns, e)
	}
}

// ServerCount returns the number of servers in the cluster.
func (ns *Namespace) ServerCount(ctx context.Context) (int, error) {
	return ns.adapter.ServerCount(ctx)
}

// ConnectError refuses a connection from a middleware with data for the
// client (the JavaScript server's err.data).
type ConnectError struct {
	Message string // sent as the CONNECT_ERROR's message
	Data    any    // sent as its data (JSON); nil for none
}

// Error returns the message.
func (e *ConnectError) Error() string { return e.Message }

// Socket returns the socket of this process with that id, or nil.
func (ns *Namespace) Socket(id string) *Socket {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.sockets[id]
}

// Sockets returns the sockets of the namespace in this process.
func (ns *Namespace) Sockets() []*Socket {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	out := make([]*Socket, 0, len(ns.sockets))
	for _, s := range ns.sockets {
		out = append(out, s)
	}
	return out
}

// connect runs the middleware for s, then joins it; on the socket's
// executor.
func (ns *Namespace) connect(s *Socket) {
	<-ns.ready // a dynamic namespace's setup has run
	var restored *SessionState
	if ns.srv.recovery != nil {
		if sa, ok := ns.adapter.(SessionAdapter); ok {
			if pid, offset, ok := recoveryAuth(s.handshake.Auth); ok {
				st, err := sa.RestoreSession(pid, offset)
				if err != nil {
					ns.srv.log.Warn("socketio: restoring a session failed", "nsp", ns.name, "err", err)
				}
				if st != nil {
					s.restore(st)
					restored = st
				}
			}
		}
	}
	ns.mu.RLock()
	mws := ns.middlewares
	ns.mu.RUnlock()
	if restored != nil && ns.srv.recovery.SkipMiddlewares {
		mws = nil
	}
	for _, mw := range mws {
		if err := safeCall(ns.srv, s, func() error { return mw(s) }); err != nil {
			s.refuse(err)
			return
		}
	}
	// Connected before it is added anywhere, and only if the connection
	// has not closed meanwhile: a close from now on finds it connected
	// and removes it.
	if s.client.isClosed() || !s.setConnected() {
		s.client.remove(s)
		return
	}
	ns.mu.Lock()
	ns.sockets[s.id] = s
	handlers := ns.onConn
	ns.mu.Unlock()
	rooms := []string{s.id}
	if restored != nil {
		rooms = append(rooms, restored.Rooms...)
	}
	ns.adapter.AddAll(s.id, rooms)
	if s.isDisconnected() {
		ns.removeSocket(s) // closed while being added: undo, once more
		return
	}
	if err := s.client.sendPacket(&Packet{Type: PacketConnect, Namespace: ns.name, ID: -1, Data: connectReply(s.id, s.pid)}); err != nil {
		s.client.close(ReasonForcedServerClose)
		return
	}
	if restored != nil {
		for _, p := range restored.Missed {
			_ = s.client.sendPacket(p)
		}
	}
	s.client.joined()
	for _, fn := range handlers {
		if s.isDisconnected() {
			return
		}
		_ = safeCall(ns.srv, s, func() error { fn(s); return nil })
	}
}

func connectReply(id, pid string) json.RawMessage {
	b := make([]byte, 0, 64)
	b = append(b, `{"sid":`...)
	b = appendJSONString(b, id)
	if pid != "" {
		b = append(b, `,"pid":`...)
		b = appendJSONString(b, pid)
	}
	return append(b, '}')
}

// connectErrorData is the CONNECT_ERROR payload for a middleware error.
func connectErrorData(err error) json.RawMessage {
	v := struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{Message: err.Error()}
	var ce *ConnectError
	if errors.As(err, &ce) {
		v.Message, v.Data = ce.Message, ce.Data
	}
	b, merr := json.Marshal(v)
	if merr != nil {
		b, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{v.Message})
	}
	return b
}

// removeSocket forgets s, which has disconnected.
func (ns *Namespace) removeSocket(s *Socket) {
	ns.mu.Lock()
	if ns.sockets[s.id] == s {
		delete(ns.sockets, s.id)
	}
	ns.mu.Unlock()
	ns.adapter.DelAll(s.id)
}

// To selects the sockets in any of rooms (a socket's id is a room of its
// own) for a broadcast.
func (ns *Namespace) To(rooms ...string) *BroadcastOperator {
	return newOperator(ns, nil).To(rooms...)
}

// In is To.
func (ns *Namespace) In(rooms ...string) *BroadcastOperator { return ns.To(rooms...) }

// Except leaves out the sockets in any of rooms from a broadcast.
func (ns *Namespace) Except(rooms ...string) *BroadcastOperator {
	return newOperator(ns, nil).Except(rooms...)
}

// Local restricts a broadcast to this process.
func (ns *Namespace) Local() *BroadcastOperator { return newOperator(ns, nil).Local() }

// Volatile marks a broadcast's event as droppable for clients that are
// not ready to receive it.
func (ns *Namespace) Volatile() *BroadcastOperator { return newOperator(ns, nil).Volatile() }

// Compress says whether a broadcast's event may be compressed.
func (ns *Namespace) Compress(compress bool) *BroadcastOperator {
	return newOperator(ns, nil).Compress(compress)
}

// Timeout bounds the wait of a broadcast's EmitWithAck.
func (ns *Namespace) Timeout(d time.Duration) *BroadcastOperator {
	return newOperator(ns, nil).Timeout(d)
}

// Emit sends an event to every socket of the namespace.
func (ns *Namespace) Emit(event string, args ...any) error {
	return newOperator(ns, nil).Emit(event, args...)
}

// SocketsJoin makes every socket of the namespace join rooms.
func (ns *Namespace) SocketsJoin(rooms ...string) { newOperator(ns, nil).SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the namespace leave rooms.
func (ns *Namespace) SocketsLeave(rooms ...string) { newOperator(ns, nil).SocketsLeave(rooms...) }

// FetchSockets describes every socket of the namespace, in every process
// of the cluster.
func (ns *Namespace) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return newOperator(ns, nil).FetchSockets(ctx)
}

// DisconnectSockets disconnects every socket of the namespace; with
// closeConn, their connections are closed too.
func (ns *Namespace) DisconnectSockets(closeConn bool) {
	newOperator(ns, nil).DisconnectSockets(closeConn)
}
