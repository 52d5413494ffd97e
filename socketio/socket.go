package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// The reasons a socket disconnects, as the JavaScript server names them.
const (
	ReasonClientNamespaceDisconnect = "client namespace disconnect" // the client left the namespace
	ReasonServerNamespaceDisconnect = "server namespace disconnect" // Socket.Disconnect
	ReasonServerShuttingDown        = "server shutting down"        // Server.Close or Shutdown
	ReasonForcedServerClose         = "forced server close"         // the connection was closed by this side (Disconnect(true))
	ReasonForcedClose               = "forced close"                // the Engine.IO session was closed by this side
	ReasonTransportClose            = "transport close"             // the client's connection ended
	ReasonTransportError            = "transport error"             // the connection failed
	ReasonPingTimeout               = "ping timeout"                // the client stopped answering pings
	ReasonParseError                = "parse error"                 // the client sent a malformed packet
)

var (
	// ErrDisconnected is returned by EmitWithAck when the socket
	// disconnected before the client answered, and by the emits of a
	// disconnected socket.
	ErrDisconnected = errors.New("socketio: the socket is disconnected")
	// ErrReservedEvent is returned when an emit uses an event name that
	// the protocol reserves (connect, connect_error, disconnect,
	// disconnecting, newListener, removeListener).
	ErrReservedEvent = errors.New("socketio: reserved event name")
)

// Handshake describes the request that opened a socket's connection.
type Handshake struct {
	Headers http.Header     // the request headers (cookies included)
	Time    time.Time       // when the connection was opened
	Address string          // the client's IP address (of the proxy, behind one)
	XDomain bool            // the request named an Origin
	Secure  bool            // the request came over TLS
	URL     string          // the request URI
	Query   url.Values      // the request's query parameters
	Auth    json.RawMessage // the CONNECT packet's payload: {} when it had none
}

// Socket is a client's connection to one namespace. Its methods are safe
// for concurrent use.
type Socket struct {
	id        string
	pid       string // the private session id, with recovery on
	recovered bool
	nsp       *Namespace
	client    *client
	handshake Handshake
	exec      executor

	mu            sync.Mutex
	data          any
	handlers      map[string][]*eventHandler
	anyIn         []func(s *Socket, e *Event)
	anyOut        []func(s *Socket, event string, args []any)
	middlewares   []func(s *Socket, e *Event) error
	onDisconnect  []func(s *Socket, reason string)
	onDisconnecti []func(s *Socket, reason string)
	onError       []func(s *Socket, err error)
	acks          map[int64]func(*Args) // called with nil when the socket disconnects
	connected     bool
	disconnected  bool
}

func newSocket(ns *Namespace, c *client, auth json.RawMessage) *Socket {
	r := c.sess.Request()
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s := &Socket{
		id:     newID(),
		nsp:    ns,
		client: c,
		handshake: Handshake{
			Headers: r.Header,
			Time:    time.Now(),
			Address: host,
			XDomain: r.Header.Get("Origin") != "",
			Secure:  r.TLS != nil,
			URL:     r.URL.RequestURI(),
			Query:   r.URL.Query(),
			Auth:    append(json.RawMessage(nil), auth...),
		},
		handlers: make(map[string][]*eventHandler),
		acks:     make(map[int64]func(*Args)),
		exec:     executor{limit: ns.srv.maxPending, track: &ns.srv.handlers},
	}
	if ns.srv.recovery != nil {
		s.pid = newID()
	}
	return s
}

// restore makes s the socket of a recovered session: its id, rooms (once
// connected) and data.
func (s *Socket) restore(st *SessionState) {
	s.id, s.pid, s.data, s.recovered = st.SID, st.PID, st.Data, true
}

// Recovered reports whether the socket is a session restored by
// connection state recovery (RecoveryOptions).
func (s *Socket) Recovered() bool { return s.recovered }

// Engine returns the Engine.IO session under the socket, shared by the
// client's sockets in every namespace: closing it drops the connection
// with no Socket.IO DISCONNECT, as a network failure would.
func (s *Socket) Engine() *engineio.Session { return s.client.sess }

// newID returns a socket id: 20 characters from 120 random bits.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ID returns the socket's id, unique among the server's sockets, and the
// name of a room the socket is in.
func (s *Socket) ID() string { return s.id }

// Namespace returns the socket's namespace.
func (s *Socket) Namespace() *Namespace { return s.nsp }

// Handshake returns the request that opened the connection.
func (s *Socket) Handshake() *Handshake { return &s.handshake }

// EngineID returns the id of the Engine.IO session under the socket.
func (s *Socket) EngineID() string { return s.client.sess.ID() }

// Transport returns the name of the transport the connection uses now:
// "polling" or "websocket".
func (s *Socket) Transport() string { return s.client.sess.Transport() }

// Data returns what SetData kept, or nil.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData keeps v with the socket for the application (the JavaScript
// socket.data); adapters that fetch sockets across processes send it as
// JSON.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Connected reports whether the socket has joined its namespace and not
// disconnected.
func (s *Socket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected && !s.disconnected
}

// setConnected marks s connected, unless it has disconnected already.
func (s *Socket) setConnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disconnected {
		return false
	}
	s.connected = true
	return true
}

func (s *Socket) isDisconnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disconnected
}

// On adds a handler for the event called event. fn is a function whose
// first parameter is *Socket, then either
//
//   - one *Event: the raw event (arguments, acknowledgement);
//   - or the event's arguments, each decoded into its parameter's type
//     (with encoding/json; a []byte parameter takes a binary attachment; a
//     json.RawMessage takes the argument's JSON text, binary attachments
//     inlined as base64 strings — take a *Event and relay Values() to pass
//     binary on; any takes what
//     encoding/json makes of it, with []byte for binary), a missing
//     argument leaving its zero value; then, optionally, a func(...any)
//     last, which acknowledges the event with its arguments (calling it
//     when the client asked for no acknowledgement does nothing; only the
//     first call counts).
//
// An argument that cannot be decoded into its parameter skips the handler
// and is reported to the OnError handlers (and logged). On panics with a
// description of the problem if fn has another shape: that is a mistake
// in the program, not in the input.
func (s *Socket) On(event string, fn any) {
	h, err := newEventHandler[*Socket](fn)
	if err != nil {
		panic(fmt.Sprintf("socketio: On(%q): %v", event, err))
	}
	s.mu.Lock()
	s.handlers[event] = append(s.handlers[event], h)
	s.mu.Unlock()
}

// Off removes every handler of event.
func (s *Socket) Off(event string) {
	s.mu.Lock()
	delete(s.handlers, event)
	s.mu.Unlock()
}

// OnAny adds a handler called for every incoming event, before the
// event's own handlers.
func (s *Socket) OnAny(fn func(s *Socket, e *Event)) {
	s.mu.Lock()
	s.anyIn = append(s.anyIn, fn)
	s.mu.Unlock()
}

// OnAnyOutgoing adds a handler called for every event the socket emits to
// its client (not for broadcasts).
func (s *Socket) OnAnyOutgoing(fn func(s *Socket, event string, args []any)) {
	s.mu.Lock()
	s.anyOut = append(s.anyOut, fn)
	s.mu.Unlock()
}

// Use adds a middleware for the socket's incoming events: called for each
// event before its handlers; a non-nil error drops the event and goes to
// the OnError handlers.
func (s *Socket) Use(fn func(s *Socket, e *Event) error) {
	s.mu.Lock()
	s.middlewares = append(s.middlewares, fn)
	s.mu.Unlock()
}

// OnDisconnecting adds a handler called when the socket is about to
// disconnect, while it is still in its rooms.
func (s *Socket) OnDisconnecting(fn func(s *Socket, reason string)) {
	s.mu.Lock()
	s.onDisconnecti = append(s.onDisconnecti, fn)
	s.mu.Unlock()
}

// OnDisconnect adds a handler called once the socket has disconnected,
// with the reason (one of the Reason constants).
func (s *Socket) OnDisconnect(fn func(s *Socket, reason string)) {
	s.mu.Lock()
	s.onDisconnect = append(s.onDisconnect, fn)
	s.mu.Unlock()
}

// OnError adds a handler for errors about the socket's events: a
// middleware's refusal, an argument that does not decode.
func (s *Socket) OnError(fn func(s *Socket, err error)) {
	s.mu.Lock()
	s.onError = append(s.onError, fn)
	s.mu.Unlock()
}

func (s *Socket) reportError(err error) {
	s.mu.Lock()
	hs := s.onError
	s.mu.Unlock()
	s.nsp.srv.log.Warn("socketio: event error", "nsp", s.nsp.name, "socket", s.id, "err", err)
	for _, h := range hs {
		h(s, err)
	}
}

// onPacket acts on a packet from the client for this namespace.
func (s *Socket) onPacket(p *Packet) {
	switch p.Type {
	case PacketEvent, PacketBinaryEvent:
		if !s.exec.run(func() { s.dispatch(p) }) {
			s.nsp.srv.log.Warn("socketio: closing a connection whose handlers fall behind", "nsp", s.nsp.name, "socket", s.id, "pending", s.exec.limit)
			s.client.close(ReasonTransportError)
		}
	case PacketAck, PacketBinaryAck:
		s.mu.Lock()
		fn := s.acks[p.ID]
		delete(s.acks, p.ID)
		s.mu.Unlock()
		if fn == nil {
			return // late (timed out) or unknown: ignored, as the JavaScript server does
		}
		args, err := splitArgs(p.Data)
		if err != nil {
			s.client.close(ReasonParseError)
			return
		}
		fn(&Args{raw: args, att: p.Attachments})
	case PacketDisconnect:
		s.closed(ReasonClientNamespaceDisconnect)
	}
}

// dispatch runs the handlers of an incoming event, on the executor.
func (s *Socket) dispatch(p *Packet) {
	if s.isDisconnected() {
		return
	}
	name, args, err := eventName(p.Data)
	if err != nil {
		s.reportError(err)
		return
	}
	e := &Event{Name: name, Args: Args{raw: args, att: p.Attachments}}
	if p.ID >= 0 {
		e.nsp, e.ackID, e.send = s.nsp.name, p.ID, s.client.sendPacket
	}
	s.mu.Lock()
	mws, anyIn, hs := s.middlewares, s.anyIn, s.handlers[name]
	s.mu.Unlock()
	for _, mw := range mws {
		if err := safeCall(s.nsp.srv, s, func() error { return mw(s, e) }); err != nil {
			s.reportError(err)
			return
		}
	}
	for _, fn := range anyIn {
		_ = safeCall(s.nsp.srv, s, func() error { fn(s, e); return nil })
	}
	for _, h := range hs {
		if err := safeCall(s.nsp.srv, s, func() error { return h.call(s, e, s.reportError) }); err != nil {
			s.reportError(fmt.Errorf("socketio: event %q: %w", name, err))
		}
	}
}

// Emit sends an event with its arguments to the client. Arguments are
// encoded as JSON, except []byte (also inside maps, slices and structs),
// which travel as binary attachments, and json.RawMessage, sent as is.
// It does not wait for the network.
func (s *Socket) Emit(event string, args ...any) error {
	p, err := s.eventPacket(event, args)
	if err != nil {
		return err
	}
	if s.nsp.srv.recovery != nil {
		// Through the adapter, to the socket's own room, so that the
		// event gets an offset and is kept for recovery.
		s.mu.Lock()
		gone, out := s.disconnected, s.anyOut
		s.mu.Unlock()
		if gone {
			return ErrDisconnected
		}
		for _, fn := range out {
			fn(s, event, args)
		}
		return s.nsp.adapter.Broadcast(p, &BroadcastOptions{Rooms: []string{s.id}})
	}
	return s.sendEvent(p, event, args)
}

// EmitWithAck sends an event and waits for the client's acknowledgement,
// until ctx is done (context.WithTimeout gives the JavaScript timeout).
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) (*Args, error) {
	p, err := s.eventPacket(event, args)
	if err != nil {
		return nil, err
	}
	ch := make(chan *Args, 1)
	p.ID = s.nsp.nextAckID()
	if !s.expectAck(p.ID, func(a *Args) { ch <- a }) {
		return nil, ErrDisconnected
	}
	if err := s.sendEvent(p, event, args); err != nil {
		s.dropAck(p.ID)
		return nil, err
	}
	select {
	case a := <-ch:
		if a == nil {
			return nil, ErrDisconnected
		}
		return a, nil
	case <-ctx.Done():
		s.dropAck(p.ID)
		return nil, fmt.Errorf("socketio: no acknowledgement of %q: %w", event, ctx.Err())
	}
}

// expectAck registers fn for the acknowledgement id; false if the socket
// has disconnected.
func (s *Socket) expectAck(id int64, fn func(*Args)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disconnected {
		return false
	}
	s.acks[id] = fn
	return true
}

func (s *Socket) dropAck(id int64) {
	s.mu.Lock()
	delete(s.acks, id)
	s.mu.Unlock()
}

func (s *Socket) eventPacket(event string, args []any) (*Packet, error) {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return nil, err
	}
	p := &Packet{Type: PacketEvent, Namespace: s.nsp.name, ID: -1, Data: data, Attachments: att}
	if len(att) > 0 {
		p.Type = PacketBinaryEvent
	}
	return p, nil
}

func (s *Socket) sendEvent(p *Packet, event string, args []any) error {
	s.mu.Lock()
	gone, out := s.disconnected, s.anyOut
	s.mu.Unlock()
	if gone {
		return ErrDisconnected
	}
	for _, fn := range out {
		fn(s, event, args)
	}
	return s.client.sendPacket(p)
}

// encodeEvent encodes an EVENT's payload: the name, then the arguments.
func encodeEvent(event string, args []any) (json.RawMessage, [][]byte, error) {
	if isReservedName(event) {
		return nil, nil, fmt.Errorf("%w: %q", ErrReservedEvent, event)
	}
	all := make([]any, 0, len(args)+1)
	all = append(all, event)
	all = append(all, args...)
	data, att, err := encodeArgs(make([]byte, 0, 64), all)
	if err != nil {
		return nil, nil, fmt.Errorf("socketio: encoding the arguments of %q: %w", event, err)
	}
	return data, att, nil
}

func isReservedName(name string) bool {
	switch name {
	case "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener":
		return true
	}
	return false
}

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {
	if s.isDisconnected() {
		return
	}
	s.nsp.adapter.AddAll(s.id, rooms)
}

// Leave removes the socket from room.
func (s *Socket) Leave(room string) { s.nsp.adapter.Del(s.id, room) }

// Rooms returns the rooms the socket is in, its own id among them, sorted.
func (s *Socket) Rooms() []string {
	rooms := s.nsp.adapter.SocketRooms(s.id)
	sort.Strings(rooms)
	return rooms
}

// To selects, for a broadcast from this socket, the sockets in any of
// rooms, this one left out.
func (s *Socket) To(rooms ...string) *BroadcastOperator {
	return newOperator(s.nsp, s).To(rooms...)
}

// In is To.
func (s *Socket) In(rooms ...string) *BroadcastOperator { return s.To(rooms...) }

// Except leaves out, for a broadcast from this socket, the sockets in any
// of rooms (and this one).
func (s *Socket) Except(rooms ...string) *BroadcastOperator {
	return newOperator(s.nsp, s).Except(rooms...)
}

// Volatile returns an operator for this socket alone whose events may be
// dropped when the client is not ready for them (data still queued).
func (s *Socket) Volatile() *BroadcastOperator { return s.self().Volatile() }

// Compress returns an operator for this socket alone whose events are
// compressed or not (permessage-deflate, when negotiated).
func (s *Socket) Compress(compress bool) *BroadcastOperator { return s.self().Compress(compress) }

// Timeout returns an operator for this socket alone whose EmitWithAck
// waits at most d.
func (s *Socket) Timeout(d time.Duration) *BroadcastOperator { return s.self().Timeout(d) }

// self is an operator that selects s only (its own room).
func (s *Socket) self() *BroadcastOperator { return newOperator(s.nsp, nil).To(s.id) }

// Broadcast selects every socket of the namespace but this one.
func (s *Socket) Broadcast() *BroadcastOperator { return newOperator(s.nsp, s) }

// Disconnect makes the socket leave its namespace (reason "server
// namespace disconnect"); with closeConn, the whole connection is closed,
// and the client's sockets in other namespaces disconnect too.
func (s *Socket) Disconnect(closeConn bool) {
	if closeConn {
		s.client.disconnectAll()
		return
	}
	if !s.isDisconnected() {
		_ = s.client.sendPacket(&Packet{Type: PacketDisconnect, Namespace: s.nsp.name, ID: -1})
	}
	s.closed(ReasonServerNamespaceDisconnect)
}

// refuse answers a CONNECT that a middleware refused.
func (s *Socket) refuse(err error) {
	s.client.remove(s)
	s.mu.Lock()
	s.disconnected = true
	s.mu.Unlock()
	s.client.refuse(s.nsp.name, err, connectErrorData(err))
}

// closed disconnects the socket: its pending acknowledgements fail at
// once, and its disconnect handlers run after the events already queued.
func (s *Socket) closed(reason string) {
	s.mu.Lock()
	if s.disconnected {
		s.mu.Unlock()
		return
	}
	s.disconnected = true
	wasConnected := s.connected
	acks := s.acks
	s.acks = map[int64]func(*Args){}
	data := s.data
	s.mu.Unlock()
	for _, fn := range acks {
		fn(nil)
	}
	s.client.remove(s)
	if !wasConnected {
		return // the middleware had not let it in
	}
	if s.nsp.srv.recovery != nil && recoverable(reason) {
		if sa, ok := s.nsp.adapter.(SessionAdapter); ok {
			sa.PersistSession(&SessionState{SID: s.id, PID: s.pid, Rooms: s.nsp.adapter.SocketRooms(s.id), Data: data})
		}
	}
	s.exec.force(func() {
		s.mu.Lock()
		before, after := s.onDisconnecti, s.onDisconnect
		s.mu.Unlock()
		for _, fn := range before {
			_ = safeCall(s.nsp.srv, s, func() error { fn(s, reason); return nil })
		}
		s.nsp.removeSocket(s)
		for _, fn := range after {
			_ = safeCall(s.nsp.srv, s, func() error { fn(s, reason); return nil })
		}
	})
}

// safeCall runs fn, turning a panic into an error that is logged.
func safeCall(srv *Server, s *Socket, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			srv.log.Error("socketio: handler panicked", "nsp", s.nsp.name, "socket", s.id, "panic", v)
			err = fmt.Errorf("socketio: handler panicked: %v", v)
		}
	}()
	return fn()
}

// executor runs a socket's handlers one at a time, in order, on a
// goroutine that exists while it has work.
type executor struct {
	limit   int
	track   *busy // counts the goroutine, when not nil
	mu      sync.Mutex
	queue   []func()
	running bool
}

// run queues f; it returns false, queuing nothing, when the queue is full.
func (e *executor) run(f func()) bool {
	e.mu.Lock()
	if e.limit > 0 && len(e.queue) >= e.limit {
		e.mu.Unlock()
		return false
	}
	e.push(f)
	return true
}

// force queues f whatever the queue's length.
func (e *executor) force(f func()) {
	e.mu.Lock()
	e.push(f)
}

// push queues f and unlocks e.mu.
func (e *executor) push(f func()) {
	e.queue = append(e.queue, f)
	start := !e.running
	e.running = true
	e.mu.Unlock()
	if start {
		e.track.add()
		go e.loop()
	}
}

func (e *executor) loop() {
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.running = false
			e.queue = nil
			e.mu.Unlock()
			e.track.done()
			return
		}
		f := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.mu.Unlock()
		f()
	}
}

// busy counts goroutines at work (the executors of a server's sockets),
// so that Shutdown can wait for them. Unlike a sync.WaitGroup it may go
// from zero to one while someone waits.
type busy struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero; nil until waited on
}

func (b *busy) add() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
}

func (b *busy) done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.n--
	if b.n == 0 && b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
	b.mu.Unlock()
}

// wait returns nil once nothing is at work, or ctx's error.
func (b *busy) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.n == 0 {
		b.mu.Unlock()
		return nil
	}
	if b.idle == nil {
		b.idle = make(chan struct{})
	}
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
