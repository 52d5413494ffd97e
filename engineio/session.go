package engineio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// MessageType is the type of a message's data: text (valid UTF-8) or
// binary.
type MessageType int

// The two types of message data.
const (
	MessageText   MessageType = 1
	MessageBinary MessageType = 2
)

// String returns "text" or "binary".
func (t MessageType) String() string {
	switch t {
	case MessageText:
		return "text"
	case MessageBinary:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// Handler receives a server's sessions' events.
//
// The calls for one session come one at a time and in order: OnOpen first,
// once the handshake is sent, then OnMessage for each message in the order
// the client sent them, whatever transport carried them, then OnClose,
// exactly once. Calls for different sessions run concurrently. They run on
// the goroutine that read the message (the POST's handler, or the
// WebSocket's reader), so a call that blocks holds back its session's
// next messages and nothing else; a session's heartbeat runs on timers and
// is not held back.
//
// A method may call any Session method, Close included. A panic in a
// method is recovered and logged, and the session closed with
// ReasonTransportError.
type Handler interface {
	// OnOpen is called once the handshake has been sent.
	OnOpen(s *Session)
	// OnMessage is called for each message. data is valid only until
	// OnMessage returns: its buffer is reused for the next message.
	// Copy what you keep.
	OnMessage(s *Session, typ MessageType, data []byte)
	// OnClose is called once when the session has closed: reason says
	// why, err gives details when there are any (a network or parse
	// error).
	OnClose(s *Session, reason CloseReason, err error)
}

// HandlerFuncs is a Handler made of functions; each may be nil.
type HandlerFuncs struct {
	Open    func(s *Session)
	Message func(s *Session, typ MessageType, data []byte)
	Close   func(s *Session, reason CloseReason, err error)
}

// OnOpen calls f.Open, if not nil.
func (f HandlerFuncs) OnOpen(s *Session) {
	if f.Open != nil {
		f.Open(s)
	}
}

// OnMessage calls f.Message, if not nil.
func (f HandlerFuncs) OnMessage(s *Session, typ MessageType, data []byte) {
	if f.Message != nil {
		f.Message(s, typ, data)
	}
}

// OnClose calls f.Close, if not nil.
func (f HandlerFuncs) OnClose(s *Session, reason CloseReason, err error) {
	if f.Close != nil {
		f.Close(s, reason, err)
	}
}

// lingerTime is how long a session closed by the client's close packet
// stays in the table to answer one more poll with a noop.
const lingerTime = time.Second

type sessionState int

const (
	stateOpen    sessionState = iota
	stateClosing              // polling: the close packet waits for the next poll
	stateClosed
)

// shutdownPollWait bounds how long Server.Shutdown waits for the next
// poll of a long-polling client to give it its close packet.
const shutdownPollWait = time.Second

// closeMode says how a session closes.
type closeMode int

const (
	closeNow      closeMode = iota // a pending poll gets a close packet; the queue is dropped
	closeGraceful                  // Close: the queue goes out first, then a close packet
	closeByClient                  // the client sent close: a pending poll gets a noop
)

// Session is one Engine.IO session on a Server: a client that may use
// long-polling, WebSocket, or long-polling then WebSocket.
//
// Every method is safe for concurrent use. Sends never block: they queue
// the message for the client, up to ServerOptions.SendBufferLimit bytes.
type Session struct {
	srv    *Server
	id     string
	req    *http.Request
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Bool

	// deliverMu makes the Handler calls of the session one at a time.
	deliverMu sync.Mutex

	mu           sync.Mutex
	state        sessionState
	transport    string
	ws           *ws.Conn // the session's WebSocket, once it has one
	upgradeConn  *ws.Conn // a WebSocket in the upgrade handshake
	upgrading    bool     // an upgrade is under way
	probed       bool     // ...and probed: messages wait for it
	queue        []Packet // packets waiting for a poll, or for the upgrade
	queued       int      // bytes of data in queue
	poll         *pollWaiter
	posting      bool
	lingerNoop   bool        // closed by the client with no poll pending: the next poll gets a noop
	lingerTimer  *time.Timer // takes a lingering session out of the table
	awaitingPong bool
	timer        *time.Timer
	timerGen     uint64
	timerDue     time.Time // when the timer is due
	pongDeadline time.Time // while awaitingPong: when the session times out
	reason       CloseReason
	closeErr     error
	scratch      []byte
	value        any
}

func newSession(srv *Server, r *http.Request, transport string) *Session {
	id := newSID()
	req := r.Clone(context.Background())
	req.Body = http.NoBody
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		srv:       srv,
		id:        id,
		req:       req,
		log:       srv.log.With(slog.String("sid", id), slog.String("remote", r.RemoteAddr)),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		transport: transport,
	}
}

// ID returns the session id (sid).
func (s *Session) ID() string { return s.id }

// Request returns the handshake request: its headers (cookies included),
// URL with query, and RemoteAddr. Its body is empty and its context never
// ends. Do not change it.
func (s *Session) Request() *http.Request { return s.req }

// Transport returns the name of the transport the session uses now:
// TransportPolling or TransportWebSocket. It changes once, when an upgrade
// completes.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport
}

// Context returns a context that is done once the session has closed.
func (s *Session) Context() context.Context { return s.ctx }

// Done returns a channel that is closed after OnClose has returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// SetValue keeps v with the session, for the layer above (Socket.IO keeps
// its client state here). Set it in OnOpen: later Handler calls see it.
func (s *Session) SetValue(v any) {
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
}

// Value returns what SetValue kept, or nil.
func (s *Session) Value() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}

// Buffered returns the bytes of message data queued for the client and not
// yet written: waiting for a poll or an upgrade, or in the WebSocket's send
// queue (framing included).
func (s *Session) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.queued
	if s.ws != nil {
		n += s.ws.SendQueued()
	}
	return n
}

// SendText queues a text message. It never blocks. It returns ErrClosed
// once the session is closing, and an error wrapping ErrSendBufferFull
// when the send buffer would go over its limit (the session is then
// closed). text must be valid UTF-8.
func (s *Session) SendText(text string) error { return s.send(false, nil, text, false) }

// SendBinary queues a binary message with a copy of data. It never blocks;
// see SendText.
func (s *Session) SendBinary(data []byte) error { return s.send(true, data, "", false) }

// Send queues a message of type typ with a copy of data. It never blocks;
// see SendText.
func (s *Session) Send(typ MessageType, data []byte) error {
	return s.send(typ == MessageBinary, data, "", false)
}

// SendOptions modifies one send.
type SendOptions struct {
	// NoCompress sends the message without permessage-deflate when it
	// goes out on a WebSocket that negotiated it (Socket.IO's
	// compress(false)). A message waiting for a poll or an upgrade goes
	// out as its transport sends.
	NoCompress bool
}

// SendWith is Send with options.
func (s *Session) SendWith(typ MessageType, data []byte, o SendOptions) error {
	return s.send(typ == MessageBinary, data, "", o.NoCompress)
}

func (s *Session) send(binary bool, data []byte, text string, noCompress bool) error {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return ErrClosed
	}
	var err error
	if s.ws != nil && !s.upgrading {
		send := s.ws.Send
		if noCompress {
			send = s.ws.SendUncompressed
		}
		if binary {
			err = send(ws.MessageBinary, data)
		} else {
			b := append(s.scratch[:0], '4')
			b = append(b, data...)
			b = append(b, text...)
			err = send(ws.MessageText, b)
			if cap(b) <= 64<<10 {
				s.scratch = b[:0]
			}
		}
		if errors.Is(err, ws.ErrSendQueueFull) {
			err = fmt.Errorf("%w: %w", ErrSendBufferFull, err)
		}
	} else {
		p := Packet{Type: PacketMessage, Binary: binary, Data: make([]byte, len(data)+len(text))}
		copy(p.Data[copy(p.Data, data):], text)
		err = s.enqueueLocked(p)
	}
	s.mu.Unlock()
	if err != nil {
		s.closeWith(ReasonTransportError, err, closeNow)
		if errors.Is(err, ErrSendBufferFull) {
			s.srv.reportError(s.req, err)
		}
	}
	return err
}

// enqueueLocked queues p for a poll or the upgrade, and answers a pending
// poll.
func (s *Session) enqueueLocked(p Packet) error {
	if len(s.queue) > 0 && s.queued+len(p.Data) > s.srv.opts.SendBufferLimit {
		return fmt.Errorf("%w: %d bytes queued, %d more would go over %d; raise ServerOptions.SendBufferLimit",
			ErrSendBufferFull, s.queued, len(p.Data), s.srv.opts.SendBufferLimit)
	}
	s.queue = append(s.queue, p)
	s.queued += len(p.Data)
	if s.poll != nil && !s.probed {
		s.answerPollLocked(pollResult{body: s.takeQueueLocked()})
	}
	return nil
}

// sendControlLocked sends a packet of the session's own (a ping).
func (s *Session) sendControlLocked(p Packet) error {
	if s.ws != nil && !s.upgrading {
		s.scratch = AppendPacket(s.scratch[:0], p)
		err := s.ws.Send(ws.MessageText, s.scratch)
		if errors.Is(err, ws.ErrSendQueueFull) {
			err = fmt.Errorf("%w: %w", ErrSendBufferFull, err)
		}
		return err
	}
	return s.enqueueLocked(p)
}

// takeQueueLocked returns the queue as one payload and empties it.
func (s *Session) takeQueueLocked() []byte {
	body := AppendPayload(nil, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.queued = 0
	return body
}

// flushToWebSocketLocked sends the queue over the session's WebSocket.
func (s *Session) flushToWebSocketLocked() error {
	var err error
	for _, p := range s.queue {
		if err == nil {
			if p.Binary {
				err = s.ws.Send(ws.MessageBinary, p.Data)
			} else {
				s.scratch = AppendPacket(s.scratch[:0], p)
				err = s.ws.Send(ws.MessageText, s.scratch)
			}
		}
	}
	clear(s.queue)
	s.queue = s.queue[:0]
	s.queued = 0
	return err
}

// Close closes the session with ReasonForcedClose. Messages already queued
// are sent first: over long-polling with the next poll (waiting at most
// PingTimeout for it), over WebSocket before the close handshake. Close
// does not wait; Done tells when the session has closed. Calling it again
// does nothing.
func (s *Session) Close() error {
	s.closeWith(ReasonForcedClose, nil, closeGraceful)
	return nil
}

// closeWith closes the session once, for reason.
func (s *Session) closeWith(reason CloseReason, err error, mode closeMode) {
	s.mu.Lock()
	if s.state == stateClosed || (s.state == stateClosing && mode == closeGraceful) {
		s.mu.Unlock()
		return
	}
	if mode == closeGraceful && s.ws == nil && s.poll == nil && !s.upgrading {
		// Long-polling and no poll waiting: the next poll takes what is
		// queued and the close packet (as Node's engine.io, so that the
		// client sees a close, not an unknown session). A client in the
		// middle of an upgrade polls no more: it is closed at once.
		s.state = stateClosing
		s.reason, s.closeErr = reason, err
		s.queue = append(s.queue, Packet{Type: PacketClose})
		s.stopTimerLocked()
		s.timerGen++
		gen := s.timerGen
		wait := s.srv.opts.PingTimeout
		if reason == ReasonServerShutdown {
			// A live client polls again at once; one that does not within
			// shutdownPollWait is gone, and does not hold the shutdown.
			wait = min(wait, shutdownPollWait)
		}
		s.timer = time.AfterFunc(wait, func() { s.onTimer(gen) })
		s.mu.Unlock()
		return
	}
	if s.state == stateClosing {
		reason, err = s.reason, s.closeErr
	}
	linger := mode == closeByClient && s.ws == nil && s.poll == nil
	s.state = stateClosed
	s.closed.Store(true)
	s.reason, s.closeErr = reason, err
	s.stopTimerLocked()
	if s.poll != nil {
		var body []byte
		switch {
		case mode == closeByClient:
			body = []byte{'6'}
		case mode == closeGraceful && len(s.queue) > 0:
			s.queue = append(s.queue, Packet{Type: PacketClose})
			body = s.takeQueueLocked()
		default:
			body = []byte{'1'}
		}
		s.answerPollLocked(pollResult{body: body})
	}
	s.lingerNoop = linger
	clear(s.queue)
	s.queue = nil
	s.queued = 0
	conn, upg := s.ws, s.upgradeConn
	if s.upgrading {
		conn = nil // the WebSocket's reader is the upgrade, which ends with the context
	}
	s.cancel()
	s.mu.Unlock()

	if linger {
		// The client may have sent its poll and its close packet at the
		// same moment, on two connections; if the close won the race,
		// the poll is answered as if it had been pending (a noop) rather
		// than refused. Node's engine.io, single-threaded, handles them
		// in arrival order.
		t := time.AfterFunc(lingerTime, func() { s.srv.remove(s) })
		s.mu.Lock()
		s.lingerTimer = t
		s.mu.Unlock()
	} else {
		s.srv.remove(s)
	}
	s.srv.wg.Add(1)
	go s.finish(conn, upg, reason, err, mode)
}

// finish calls OnClose and closes the WebSocket, if any.
func (s *Session) finish(conn, upg *ws.Conn, reason CloseReason, err error, mode closeMode) {
	defer s.srv.wg.Done()
	defer close(s.done)
	if upg != nil {
		_ = upg.CloseNow()
	}
	if conn != nil && mode == closeGraceful {
		// Let the queued messages go out: a close goes out ahead of what
		// the connection still has queued.
		deadline := time.Now().Add(time.Second)
		for conn.SendQueued() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.deliverMu.Lock()
	s.callClose(reason, err)
	s.deliverMu.Unlock()
	s.log.Debug("engineio: session closed", slog.String("reason", string(reason)), slog.Any("err", err))
	if conn != nil {
		code := ws.StatusNormalClosure
		if reason == ReasonServerShutdown {
			code = ws.StatusGoingAway
		}
		_ = conn.Close(code, "")
	}
}

func (s *Session) stopTimerLocked() {
	s.timerGen++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// startHeartbeat schedules the first ping, PingInterval from now.
func (s *Session) startHeartbeat() { s.armTimerLocked(s.srv.opts.PingInterval) }

func (s *Session) armTimerLocked(d time.Duration) {
	s.stopTimerLocked()
	gen := s.timerGen
	s.timerDue = time.Now().Add(d)
	s.timer = time.AfterFunc(d, func() { s.onTimer(gen) })
}

// pingExpiredLocked tells whether the pong is late, even if the timer that
// closes the session has not run yet: a request that comes after the
// deadline finds the session closed, however late the timer fires.
func (s *Session) pingExpiredLocked() bool {
	return s.state == stateOpen && s.awaitingPong && !time.Now().Before(s.pongDeadline)
}

// onTimer sends a ping, or closes the session whose pong is late (or whose
// graceful close found no poll).
func (s *Session) onTimer(gen uint64) {
	s.mu.Lock()
	if gen != s.timerGen || s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	if s.state == stateClosing {
		s.mu.Unlock()
		s.closeWith(s.reason, s.closeErr, closeNow)
		return
	}
	if s.awaitingPong {
		s.mu.Unlock()
		s.closeWith(ReasonPingTimeout, nil, closeNow)
		return
	}
	s.awaitingPong = true
	err := s.sendControlLocked(Packet{Type: PacketPing})
	// The deadline counts from when the ping was due, not from when this
	// timer ran, so a late timer does not lengthen it.
	s.pongDeadline = s.timerDue.Add(s.srv.opts.PingTimeout)
	s.armTimerLocked(time.Until(s.pongDeadline))
	s.mu.Unlock()
	if err != nil {
		s.closeWith(ReasonTransportError, err, closeNow)
		if errors.Is(err, ErrSendBufferFull) {
			s.srv.reportError(s.req, err)
		}
	}
}

func (s *Session) onPong() {
	s.mu.Lock()
	if s.awaitingPong && s.state == stateOpen {
		s.awaitingPong = false
		s.armTimerLocked(s.srv.opts.PingInterval)
	}
	s.mu.Unlock()
}

// onPacket handles a packet from the client; it returns false when the
// session has ended.
func (s *Session) onPacket(p Packet) bool {
	switch p.Type {
	case PacketMessage:
		typ := MessageText
		if p.Binary {
			typ = MessageBinary
		}
		s.deliver(typ, p.Data)
	case PacketPong:
		s.onPong()
	case PacketClose:
		s.closeWith(ReasonTransportClose, nil, closeByClient)
		return false
	case PacketPing:
		// Protocol v4: only the server pings.
		s.closeWith(ReasonTransportError, errors.New("engineio: client sent a ping (protocol v4 pings go from server to client)"), closeNow)
		return false
	default:
		// open, upgrade and noop mean nothing here.
	}
	return !s.closed.Load()
}

// deliver calls OnMessage, unless the session has closed.
func (s *Session) deliver(typ MessageType, data []byte) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if s.closed.Load() {
		return
	}
	defer s.recoverHandler("OnMessage")
	s.srv.handler.OnMessage(s, typ, data)
}

func (s *Session) callOpen() {
	defer s.recoverHandler("OnOpen")
	s.srv.handler.OnOpen(s)
}

func (s *Session) callClose(reason CloseReason, err error) {
	defer s.recoverHandler("OnClose")
	s.srv.handler.OnClose(s, reason, err)
}

func (s *Session) recoverHandler(method string) {
	if v := recover(); v != nil {
		err := fmt.Errorf("engineio: Handler.%s panicked: %v", method, v)
		s.log.Error("engineio: handler panic", slog.String("method", method), slog.Any("panic", v))
		s.closeWith(ReasonTransportError, err, closeNow)
	}
}
