package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// The reasons a client socket disconnects, as socket.io-client names them
// (besides the Engine.IO ones: "transport close", "ping timeout"…).
const (
	ReasonIOServerDisconnect = "io server disconnect" // the server disconnected the socket
	ReasonIOClientDisconnect = "io client disconnect" // ClientSocket.Disconnect or Manager.Close
)

// clientLimits bound what a client decodes from its server, which it
// trusts more than a server trusts its clients: the Engine.IO client
// bounds each message already.
var clientLimits = parserLimits{MaxPacketSize: -1, MaxAttachments: 1000, MaxDepth: 1000}

// ErrBufferFull is returned by a disconnected ClientSocket's emits when
// ClientOptions.MaxBufferedEmits events wait already.
var ErrBufferFull = errors.New("socketio: too many events buffered while disconnected")

// ClientOptions configures a Manager. A nil *ClientOptions means the
// defaults.
type ClientOptions struct {
	// Path is the server's Engine.IO path. Empty means "/socket.io/".
	Path string
	// Engine configures the Engine.IO connection: transports (long-polling
	// then WebSocket by default), headers, query, TLS. Its OnMessage and
	// OnClose are the Manager's own.
	Engine *engineio.DialOptions
	// Reconnection configures reconnection after a lost connection. Nil
	// means the defaults: on, with backoff from 1 s to 5 s.
	Reconnection *Reconnection
	// ConnectTimeout bounds each attempt to open the connection. Zero
	// means 20 seconds.
	ConnectTimeout time.Duration
	// NoAutoConnect makes Manager.Socket return a socket that connects
	// only when its Connect is called (socket.io-client's autoConnect:
	// false). A socket connects on a goroutine of its own, so without it
	// an event the server sends on connection may arrive before the
	// handlers installed after Socket returns: set it, install them, then
	// call Connect.
	NoAutoConnect bool
	// MaxBufferedEmits bounds the events a socket keeps while it is not
	// connected, to send once it is. Zero means 1024.
	MaxBufferedEmits int
	// MaxPendingEvents bounds the events a socket holds while its
	// handlers are busy; a server that sends more has the connection
	// closed (reason "transport error"). Zero means
	// DefaultMaxPendingEvents.
	MaxPendingEvents int
	// Logger receives the client's logs. Nil means no logs.
	Logger *slog.Logger
}

// Reconnection configures a Manager's reconnection, as socket.io-client's
// options do.
type Reconnection struct {
	// Disable turns reconnection off.
	Disable bool
	// MaxAttempts is the number of attempts before giving up. Zero means
	// no limit.
	MaxAttempts int
	// MinDelay is the delay before the first attempt, doubled after each
	// failure up to MaxDelay. Zero means 1 s and 5 s.
	MinDelay, MaxDelay time.Duration
	// Jitter randomizes each delay by up to this fraction. Zero means 0.5;
	// negative means none.
	Jitter float64
}

// Manager is a client's connection to a Socket.IO server, shared by its
// sockets: one per namespace, multiplexed on one Engine.IO session. It
// reconnects after a lost connection, and its sockets then join their
// namespaces again (recovering their state when the server keeps it).
type Manager struct {
	url  string
	opts ClientOptions
	rec  Reconnection
	log  *slog.Logger

	sendMu sync.Mutex // a packet's text and its attachments go out together

	mu       sync.Mutex
	eio      *engineio.Client
	sockets  map[string]*ClientSocket
	opening  bool
	closed   bool
	attempts int
	timer    *time.Timer
	wg       sync.WaitGroup
}

// NewManager returns a Manager for the server at rawURL (its path is
// ignored: namespaces are chosen with Socket). It connects when its first
// socket does.
func NewManager(rawURL string, opts *ClientOptions) (*Manager, error) {
	var o ClientOptions
	if opts != nil {
		o = *opts
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("socketio: %w", err)
	}
	if o.Path == "" {
		o.Path = "/socket.io/"
	}
	u.Path, u.RawPath = o.Path, ""
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 20 * time.Second
	}
	if o.MaxBufferedEmits <= 0 {
		o.MaxBufferedEmits = 1024
	}
	if o.MaxPendingEvents <= 0 {
		o.MaxPendingEvents = DefaultMaxPendingEvents
	}
	m := &Manager{url: u.String(), opts: o, log: o.Logger, sockets: make(map[string]*ClientSocket)}
	if o.Reconnection != nil {
		m.rec = *o.Reconnection
	}
	if m.rec.MinDelay <= 0 {
		m.rec.MinDelay = time.Second
	}
	if m.rec.MaxDelay <= 0 {
		m.rec.MaxDelay = 5 * time.Second
	}
	m.rec.MaxDelay = max(m.rec.MaxDelay, m.rec.MinDelay)
	if m.rec.Jitter == 0 {
		m.rec.Jitter = 0.5
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// Socket returns the manager's socket for namespace nsp ("/" by
// default), connecting it with auth as its CONNECT payload (nil for none;
// else a value that encodes to a JSON object), unless
// ClientOptions.NoAutoConnect is set.
func (m *Manager) Socket(nsp string, auth any) *ClientSocket {
	if nsp == "" || nsp[0] != '/' {
		nsp = "/" + nsp
	}
	m.mu.Lock()
	s := m.sockets[nsp]
	if s == nil {
		s = &ClientSocket{
			m:        m,
			nsp:      nsp,
			auth:     auth,
			exec:     executor{limit: m.opts.MaxPendingEvents},
			handlers: make(map[string][]*eventHandler),
			acks:     make(map[int64]func(*Args)),
		}
		m.sockets[nsp] = s
	}
	m.mu.Unlock()
	if !m.opts.NoAutoConnect {
		s.Connect()
	}
	return s
}

// Close disconnects every socket (reason "io client disconnect") and
// closes the connection; it waits for the manager's goroutines to end.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
	}
	sockets := make([]*ClientSocket, 0, len(m.sockets))
	for _, s := range m.sockets {
		sockets = append(sockets, s)
	}
	eio := m.eio
	m.eio = nil
	m.mu.Unlock()
	for _, s := range sockets {
		s.disconnected(ReasonIOClientDisconnect, false)
	}
	if eio != nil {
		_ = eio.Close()
		<-eio.Done()
	}
	m.wg.Wait()
	return nil
}

// open connects the engine, once, unless it is connected or connecting.
func (m *Manager) open() {
	m.mu.Lock()
	if m.closed || m.opening || m.eio != nil {
		m.mu.Unlock()
		return
	}
	m.opening = true
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		m.dial()
	}()
}

func (m *Manager) dial() {
	var eo engineio.DialOptions
	if m.opts.Engine != nil {
		eo = *m.opts.Engine
	}
	// A decoder per connection: a connection closing late must not feed
	// (or reset) the next one's.
	dec := newDecoder(clientLimits)
	eo.OnMessage = func(c *engineio.Client, typ engineio.MessageType, data []byte) { m.onMessage(c, dec, typ, data) }
	eo.OnClose = m.onClose
	if eo.Logger == nil {
		eo.Logger = m.opts.Logger
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.ConnectTimeout)
	defer cancel()
	eio, err := engineio.Dial(ctx, m.url, &eo)
	m.mu.Lock()
	m.opening = false
	if err != nil {
		sockets := m.activeLocked()
		m.mu.Unlock()
		m.log.Debug("socketio: connecting failed", "url", m.url, "err", err)
		cerr := fmt.Errorf("socketio: connecting to %s: %w", m.url, err)
		for _, s := range sockets {
			s.connectError(cerr)
		}
		if !m.scheduleReconnect() {
			for _, s := range sockets {
				s.giveUp(cerr) // no more attempts: Dial returns the error
			}
		}
		return
	}
	if m.closed {
		m.mu.Unlock()
		_ = eio.Close()
		return
	}
	m.eio = eio
	m.attempts = 0
	sockets := m.activeLocked()
	m.mu.Unlock()
	for _, s := range sockets {
		s.sendConnect()
	}
}

func (m *Manager) activeLocked() []*ClientSocket {
	var out []*ClientSocket
	for _, s := range m.sockets {
		if s.isActive() {
			out = append(out, s)
		}
	}
	return out
}

// scheduleReconnect starts the next attempt after the backoff delay; it
// reports whether there will be one.
func (m *Manager) scheduleReconnect() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.rec.Disable || len(m.activeLocked()) == 0 {
		return false
	}
	if m.rec.MaxAttempts > 0 && m.attempts >= m.rec.MaxAttempts {
		m.log.Debug("socketio: reconnection attempts exhausted", "url", m.url)
		return false
	}
	d := m.rec.MinDelay << min(m.attempts, 16)
	if d <= 0 || d > m.rec.MaxDelay {
		d = m.rec.MaxDelay
	}
	if m.rec.Jitter > 0 {
		dev := time.Duration(rand.Float64() * m.rec.Jitter * float64(d))
		if rand.IntN(2) == 0 {
			d -= dev
		} else {
			d += dev
		}
		d = min(d, m.rec.MaxDelay)
	}
	m.attempts++
	m.timer = time.AfterFunc(d, m.open)
	return true
}

// send queues an encoded packet on the connection.
func (m *Manager) send(p *Packet) error {
	m.mu.Lock()
	eio := m.eio
	m.mu.Unlock()
	if eio == nil {
		return ErrDisconnected
	}
	text := encodePacket(make([]byte, 0, 64+len(p.Data)), p)
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if err := eio.Send(engineio.MessageText, text); err != nil {
		return err
	}
	for _, a := range p.Attachments {
		if err := eio.Send(engineio.MessageBinary, a); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) onMessage(c *engineio.Client, dec *decoder, typ engineio.MessageType, data []byte) {
	var p *Packet
	var err error
	if typ == engineio.MessageBinary {
		p, err = dec.decodeBinary(data)
	} else {
		p, err = dec.decodeText(data)
	}
	if err != nil {
		m.log.Warn("socketio: the server sent a malformed packet", "err", err)
		m.fail(c, ReasonParseError)
		return
	}
	if p == nil {
		return
	}
	m.mu.Lock()
	current := m.eio == c
	s := m.sockets[p.Namespace]
	m.mu.Unlock()
	if !current {
		return // a connection that is closing: its packets are stale
	}
	if s != nil {
		s.onPacket(p)
	}
}

func (m *Manager) onClose(c *engineio.Client, reason engineio.CloseReason, err error) {
	m.closeConn(c, string(reason))
}

// fail closes the connection c for reason (the sockets see it), rather
// than engineio's "forced close".
func (m *Manager) fail(c *engineio.Client, reason string) {
	m.closeConn(c, reason)
	_ = c.Close()
}

// closeConn disconnects the sockets of connection c, which has closed
// (or is being closed), with reason, and reconnects if it should.
func (m *Manager) closeConn(c *engineio.Client, reason string) {
	m.mu.Lock()
	if m.eio != c {
		m.mu.Unlock()
		return // Close, or an old connection
	}
	m.eio = nil
	sockets := make([]*ClientSocket, 0, len(m.sockets))
	for _, s := range m.sockets {
		sockets = append(sockets, s)
	}
	m.mu.Unlock()
	for _, s := range sockets {
		s.disconnected(reason, true)
	}
	m.scheduleReconnect()
}

// EngineID returns the id of the Engine.IO session under the manager's
// sockets, "" while it is not connected.
func (m *Manager) EngineID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eio == nil {
		return ""
	}
	return m.eio.ID()
}

// maybeClose closes the connection when no socket wants it any more.
func (m *Manager) maybeClose() {
	m.mu.Lock()
	if len(m.activeLocked()) > 0 || m.eio == nil {
		m.mu.Unlock()
		return
	}
	eio := m.eio
	m.eio = nil
	m.mu.Unlock()
	_ = eio.Close()
}

// ClientSocket is a client's socket in one namespace of a server. Its
// methods are safe for concurrent use; its handlers run one at a time, in
// order, on a goroutine of their own.
type ClientSocket struct {
	m    *Manager
	nsp  string
	auth any
	exec executor

	mu          sync.Mutex
	id, pid     string
	offset      string // of the last event received, for recovery
	connected   bool
	recovered   bool
	active      bool // wants to be connected
	handlers    map[string][]*eventHandler
	anyIn       []func(s *ClientSocket, e *Event)
	onConnect   []func(s *ClientSocket)
	onDisc      []func(s *ClientSocket, reason string)
	onConnErr   []func(s *ClientSocket, err error)
	buffered    []*Packet
	acks        map[int64]func(*Args)
	ackSeq      int64
	connectWait []chan error
}

// Dial connects to the namespace named by rawURL's path ("/" when it has
// none) and returns its socket once it is connected, or the server's
// refusal (a *ConnectError) or the connection's error. The socket's
// manager reconnects it after a lost connection; close it with
// s.Manager().Close(). Handlers installed after Dial returns may miss the
// events the server sends on connection; to catch those, use NewManager
// with NoAutoConnect, Manager.Socket, On, then Connect.
func Dial(ctx context.Context, rawURL string, auth any, opts *ClientOptions) (*ClientSocket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("socketio: %w", err)
	}
	m, err := NewManager(rawURL, opts)
	if err != nil {
		return nil, err
	}
	ch := make(chan error, 1)
	nsp := u.Path
	if nsp == "" {
		nsp = "/"
	}
	m.mu.Lock()
	s := &ClientSocket{m: m, nsp: nsp, auth: auth, exec: executor{limit: m.opts.MaxPendingEvents}, handlers: make(map[string][]*eventHandler), acks: make(map[int64]func(*Args)), connectWait: []chan error{ch}}
	m.sockets[nsp] = s
	m.mu.Unlock()
	s.Connect()
	select {
	case err := <-ch:
		if err != nil {
			_ = m.Close()
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		_ = m.Close()
		return nil, fmt.Errorf("socketio: connecting to %s: %w", rawURL, ctx.Err())
	}
}

// Manager returns the socket's manager.
func (s *ClientSocket) Manager() *Manager { return s.m }

// Namespace returns the socket's namespace.
func (s *ClientSocket) Namespace() string { return s.nsp }

// ID returns the socket's id, "" while it is not connected.
func (s *ClientSocket) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Connected reports whether the socket is connected.
func (s *ClientSocket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// Recovered reports whether the last connection recovered the previous
// session (the server keeps state: RecoveryOptions).
func (s *ClientSocket) Recovered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

func (s *ClientSocket) isActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// On adds a handler for the event called event, of the shapes Socket.On
// takes, with *ClientSocket as the first parameter.
func (s *ClientSocket) On(event string, fn any) {
	h, err := newEventHandler[*ClientSocket](fn)
	if err != nil {
		panic(fmt.Sprintf("socketio: On(%q): %v", event, err))
	}
	s.mu.Lock()
	s.handlers[event] = append(s.handlers[event], h)
	s.mu.Unlock()
}

// OnAny adds a handler called for every incoming event.
func (s *ClientSocket) OnAny(fn func(s *ClientSocket, e *Event)) {
	s.mu.Lock()
	s.anyIn = append(s.anyIn, fn)
	s.mu.Unlock()
}

// OnConnect adds a handler called each time the socket has connected.
func (s *ClientSocket) OnConnect(fn func(s *ClientSocket)) {
	s.mu.Lock()
	s.onConnect = append(s.onConnect, fn)
	s.mu.Unlock()
}

// OnDisconnect adds a handler called each time the socket disconnects,
// with the reason.
func (s *ClientSocket) OnDisconnect(fn func(s *ClientSocket, reason string)) {
	s.mu.Lock()
	s.onDisc = append(s.onDisc, fn)
	s.mu.Unlock()
}

// OnConnectError adds a handler called when connecting fails: the server
// refused (a *ConnectError, after which the socket does not try again),
// or the connection could not be opened (the manager tries again).
func (s *ClientSocket) OnConnectError(fn func(s *ClientSocket, err error)) {
	s.mu.Lock()
	s.onConnErr = append(s.onConnErr, fn)
	s.mu.Unlock()
}

// Connect connects the socket, if it is not: after Disconnect, or a
// refusal.
func (s *ClientSocket) Connect() {
	s.mu.Lock()
	if s.active {
		s.mu.Unlock()
		return
	}
	s.active = true
	s.mu.Unlock()
	s.m.mu.Lock()
	up := s.m.eio != nil
	s.m.mu.Unlock()
	if up {
		s.sendConnect()
		return
	}
	s.m.open()
}

// sendConnect sends the CONNECT packet, with the session to recover.
func (s *ClientSocket) sendConnect() {
	s.mu.Lock()
	auth, pid, offset := s.auth, s.pid, s.offset
	s.mu.Unlock()
	var data json.RawMessage
	if auth != nil {
		b, err := json.Marshal(auth)
		if err != nil || len(b) < 2 || b[0] != '{' {
			s.connectError(fmt.Errorf("socketio: the auth of %s is not a JSON object (%s): %v", s.nsp, b, err))
			return
		}
		data = b
	}
	if pid != "" && offset != "" {
		if data == nil {
			data = json.RawMessage(`{}`)
		}
		b := append([]byte(nil), data[:len(data)-1]...)
		if len(data) > 2 {
			b = append(b, ',')
		}
		b = append(b, `"pid":`...)
		b = appendJSONString(b, pid)
		b = append(b, `,"offset":`...)
		b = appendJSONString(b, offset)
		data = append(b, '}')
	}
	if err := s.m.send(&Packet{Type: PacketConnect, Namespace: s.nsp, ID: -1, Data: data}); err != nil {
		s.connectError(err)
	}
}

func (s *ClientSocket) onPacket(p *Packet) {
	switch p.Type {
	case PacketConnect:
		var v struct {
			SID string `json:"sid"`
			PID string `json:"pid"`
		}
		if json.Unmarshal(p.Data, &v) != nil || v.SID == "" {
			s.m.log.Warn("socketio: a CONNECT without sid", "nsp", s.nsp, "data", string(p.Data))
			return
		}
		s.mu.Lock()
		if !s.active {
			// Disconnect came first: leave the namespace again.
			s.mu.Unlock()
			_ = s.m.send(&Packet{Type: PacketDisconnect, Namespace: s.nsp, ID: -1})
			return
		}
		s.recovered = v.PID != "" && v.PID == s.pid
		s.id, s.pid, s.connected = v.SID, v.PID, true
		if !s.recovered {
			s.offset = ""
		}
		buffered := s.buffered
		s.buffered = nil
		waits := s.connectWait
		s.connectWait = nil
		s.mu.Unlock()
		for _, b := range buffered {
			_ = s.m.send(b)
		}
		for _, ch := range waits {
			ch <- nil
		}
		s.exec.force(func() {
			s.mu.Lock()
			hs := s.onConnect
			s.mu.Unlock()
			for _, fn := range hs {
				s.safe(func() { fn(s) })
			}
		})
	case PacketConnectError:
		ce := &ConnectError{}
		var v struct {
			Message string `json:"message"`
			Data    any    `json:"data"`
		}
		if json.Unmarshal(p.Data, &v) == nil {
			ce.Message, ce.Data = v.Message, v.Data
		} else {
			var msg string
			_ = json.Unmarshal(p.Data, &msg)
			ce.Message = msg
		}
		s.mu.Lock()
		s.active = false
		s.mu.Unlock()
		s.connectError(ce)
		s.m.maybeClose()
	case PacketEvent, PacketBinaryEvent:
		if !s.exec.run(func() { s.dispatch(p) }) {
			s.m.log.Warn("socketio: closing a connection whose event handlers fall behind", "nsp", s.nsp, "pending", s.exec.limit)
			s.m.mu.Lock()
			c := s.m.eio
			s.m.mu.Unlock()
			if c != nil {
				s.m.fail(c, ReasonTransportError)
			}
		}
	case PacketAck, PacketBinaryAck:
		s.mu.Lock()
		fn := s.acks[p.ID]
		delete(s.acks, p.ID)
		s.mu.Unlock()
		if fn == nil {
			return
		}
		args, err := splitArgs(p.Data)
		if err != nil {
			return
		}
		fn(&Args{raw: args, att: p.Attachments})
	case PacketDisconnect:
		s.disconnected(ReasonIOServerDisconnect, false)
		s.m.maybeClose()
	}
}

func (s *ClientSocket) dispatch(p *Packet) {
	name, args, err := eventName(p.Data)
	if err != nil {
		return
	}
	e := &Event{Name: name, Args: Args{raw: args, att: p.Attachments}}
	if p.ID >= 0 {
		e.nsp, e.ackID, e.send = s.nsp, p.ID, s.m.send
	}
	s.mu.Lock()
	if s.pid != "" && len(args) > 0 && len(args[len(args)-1]) > 0 && args[len(args)-1][0] == '"' {
		var off string
		if json.Unmarshal(args[len(args)-1], &off) == nil {
			s.offset = off
		}
	}
	anyIn, hs := s.anyIn, s.handlers[name]
	s.mu.Unlock()
	report := func(err error) { s.m.log.Warn("socketio: event error", "nsp", s.nsp, "event", name, "err", err) }
	for _, fn := range anyIn {
		s.safe(func() { fn(s, e) })
	}
	for _, h := range hs {
		s.safe(func() {
			if err := h.call(s, e, report); err != nil {
				report(err)
			}
		})
	}
}

// safe runs a handler, logging a panic rather than letting it end the
// process: input from the server must not crash the client.
func (s *ClientSocket) safe(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			s.m.log.Error("socketio: client handler panicked", "nsp", s.nsp, "panic", v)
		}
	}()
	fn()
}

// connectError reports err to the OnConnectError handlers and to Dial.
func (s *ClientSocket) connectError(err error) {
	s.mu.Lock()
	waits := s.connectWait
	var ce *ConnectError
	if errors.As(err, &ce) {
		s.connectWait = nil // a refusal ends Dial; a failed connection is tried again
	}
	s.mu.Unlock()
	if ce != nil {
		for _, ch := range waits {
			ch <- err
		}
	}
	s.exec.force(func() {
		s.mu.Lock()
		hs := s.onConnErr
		s.mu.Unlock()
		for _, fn := range hs {
			s.safe(func() { fn(s, err) })
		}
	})
}

// giveUp ends the waits of Dial with err: the manager will not try again.
func (s *ClientSocket) giveUp(err error) {
	s.mu.Lock()
	waits := s.connectWait
	s.connectWait = nil
	s.mu.Unlock()
	for _, ch := range waits {
		ch <- err
	}
}

// disconnected marks the socket disconnected; keepActive says it will
// connect again with the connection.
func (s *ClientSocket) disconnected(reason string, keepActive bool) {
	s.mu.Lock()
	was := s.connected
	s.connected = false
	s.id = "" // as socket.io-client; the session to recover is pid's
	s.active = s.active && keepActive
	acks := s.acks
	s.acks = make(map[int64]func(*Args))
	s.mu.Unlock()
	for _, fn := range acks {
		fn(nil)
	}
	if !was {
		return
	}
	s.exec.force(func() {
		s.mu.Lock()
		hs := s.onDisc
		s.mu.Unlock()
		for _, fn := range hs {
			s.safe(func() { fn(s, reason) })
		}
	})
}

// Disconnect leaves the namespace (reason "io client disconnect"); the
// connection closes when no socket of the manager is left.
func (s *ClientSocket) Disconnect() {
	if s.Connected() {
		_ = s.m.send(&Packet{Type: PacketDisconnect, Namespace: s.nsp, ID: -1})
	}
	s.disconnected(ReasonIOClientDisconnect, false)
	s.m.maybeClose()
}

// Emit sends an event, encoded as Socket.Emit does. While the socket is
// not connected the event is kept, and sent once it is.
func (s *ClientSocket) Emit(event string, args ...any) error {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return err
	}
	return s.sendOrBuffer(s.eventPacket(data, att, -1))
}

func (s *ClientSocket) eventPacket(data json.RawMessage, att [][]byte, id int64) *Packet {
	p := &Packet{Type: PacketEvent, Namespace: s.nsp, ID: id, Data: data, Attachments: att}
	if len(att) > 0 {
		p.Type = PacketBinaryEvent
	}
	return p
}

func (s *ClientSocket) sendOrBuffer(p *Packet) error {
	s.mu.Lock()
	if !s.connected {
		defer s.mu.Unlock()
		if len(s.buffered) >= s.m.opts.MaxBufferedEmits {
			return ErrBufferFull
		}
		s.buffered = append(s.buffered, p)
		return nil
	}
	s.mu.Unlock()
	return s.m.send(p)
}

// EmitWithAck sends an event and waits for the server's acknowledgement,
// until ctx is done.
func (s *ClientSocket) EmitWithAck(ctx context.Context, event string, args ...any) (*Args, error) {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return nil, err
	}
	ch := make(chan *Args, 1)
	s.mu.Lock()
	id := s.ackSeq
	s.ackSeq++
	s.acks[id] = func(a *Args) { ch <- a }
	s.mu.Unlock()
	if err := s.sendOrBuffer(s.eventPacket(data, att, id)); err != nil {
		s.dropAck(id)
		return nil, err
	}
	select {
	case a := <-ch:
		if a == nil {
			return nil, ErrDisconnected
		}
		return a, nil
	case <-ctx.Done():
		s.dropAck(id)
		return nil, fmt.Errorf("socketio: no acknowledgement of %q: %w", event, ctx.Err())
	}
}

func (s *ClientSocket) dropAck(id int64) {
	s.mu.Lock()
	delete(s.acks, id)
	s.mu.Unlock()
}

// String returns the socket's namespace and id.
func (s *ClientSocket) String() string {
	return strings.TrimSpace(s.nsp + " " + s.ID())
}
