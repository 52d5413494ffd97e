package ws

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ReadyState is a Socket's state, numbered as the browser's
// WebSocket.readyState.
type ReadyState int32

// The four states of a Socket, as in the browser.
const (
	StateConnecting ReadyState = 0 // connecting, or waiting to reconnect
	StateOpen       ReadyState = 1 // open: messages flow both ways
	StateClosing    ReadyState = 2 // Close was called; the close handshake is under way
	StateClosed     ReadyState = 3 // closed (for good, or until the next reconnection)
)

func (s ReadyState) String() string {
	switch s {
	case StateConnecting:
		return "CONNECTING"
	case StateOpen:
		return "OPEN"
	case StateClosing:
		return "CLOSING"
	case StateClosed:
		return "CLOSED"
	}
	return fmt.Sprintf("ReadyState(%d)", int32(s))
}

// Errors returned by Socket methods.
var (
	// ErrCloseCode is returned by Socket.Close for a code other than 1000
	// or 3000–4999, where the browser throws an InvalidAccessError.
	ErrCloseCode = errors.New("ws: close code must be 1000 or in 3000–4999")

	// ErrCloseReason is returned by Socket.Close for a reason longer than
	// 123 bytes of UTF-8 or not valid UTF-8, where the browser throws a
	// SyntaxError.
	ErrCloseReason = errors.New("ws: close reason must be valid UTF-8 of at most 123 bytes")

	// ErrSocketClosed is returned by Send once Close was called, the
	// socket's context is done or the socket closed for good.
	ErrSocketClosed = errors.New("ws: socket is closing or closed")

	// ErrNotConnected is returned by Send while a socket that drops
	// messages while disconnected (Reconnect.DropWhileDisconnected) is
	// not open.
	ErrNotConnected = errors.New("ws: socket is not connected")

	// ErrSendQueueFull is wrapped by the error of a send that would take a
	// queue over its limit: Socket.Send over SocketOptions.SendLimit (the
	// message is not queued; the socket stays open), and Conn.Send over
	// AcceptOptions.SendQueueLimit (what follows is the SendQueueFull
	// policy's).
	ErrSendQueueFull = errors.New("ws: send queue is full")

	// ErrNoPong is reported in an ErrorEvent when a Socket's heartbeat
	// ping got no pong in time, and wrapped by the read error of a server
	// connection whose AcceptOptions.Heartbeat found the peer gone; the
	// connection was then closed as lost (1006).
	ErrNoPong = errors.New("ws: heartbeat: no pong in time")
)

// DefaultSendLimit is the default SocketOptions.SendLimit: the most bytes
// Send queues before it refuses a message.
const DefaultSendLimit = 16 << 20

// maxQueuedMessages bounds the send queue's length, whatever the bytes: a
// flood of empty messages must not grow it without end either.
const maxQueuedMessages = 1 << 16

// eventReadAhead is how many events a Socket holds for a busy callback
// before its reader stops reading: a slow callback slows its own socket's
// reads, and no other socket's.
const eventReadAhead = 16

// SocketOptions configures a Socket. A nil *SocketOptions is the zero
// value: no callbacks, no reconnection, no heartbeat, the send limit
// DefaultSendLimit and Dial's defaults.
type SocketOptions struct {
	// Dial configures every connection attempt: headers, subprotocols
	// (the browser's protocols argument), compression, TLS, proxy,
	// timeouts and read limit. Nil means Dial's defaults.
	Dial *DialOptions

	// BeforeDial, if not nil, runs before every connection attempt,
	// the first included (attempt 0), with a copy of Dial whose Header
	// it may change, to refresh a token or a cookie. An error fails the
	// attempt with that error.
	BeforeDial func(ctx context.Context, attempt int, opts *DialOptions) error

	// The callbacks, the browser's onopen, onmessage, onerror and onclose,
	// and two events browsers lack. Each may be nil. A socket calls them
	// on a goroutine of its own, one at a time and in order, with itself
	// as the first argument (the browser's event.target: the first may
	// run before NewSocket has returned); a callback may call any method
	// of the socket.
	OnOpen         func(*Socket, OpenEvent)
	OnMessage      func(*Socket, MessageEvent)
	OnError        func(*Socket, ErrorEvent)
	OnClose        func(*Socket, CloseEvent)
	OnReconnecting func(*Socket, ReconnectingEvent)
	OnReconnected  func(*Socket, ReconnectedEvent)

	// Events, if not nil, receives every event after its callback has
	// run, in the same order, for code that prefers a loop to callbacks.
	// The socket waits for each receive, so receive until the channel is
	// closed: the socket closes it after its last event.
	Events chan<- Event

	// SendLimit is the most BufferedAmount may reach: a Send that would
	// go over it returns ErrSendQueueFull. Zero means DefaultSendLimit.
	SendLimit int

	// Reconnect, if not nil, reconnects after a connection is lost or
	// closed by the server, and retries a failed first connection.
	Reconnect *Reconnect

	// Heartbeat, if not nil, pings the server to find a connection that
	// died without a word.
	Heartbeat *Heartbeat
}

// Reconnect configures reconnection: after a connection ends other than by
// Socket.Close or the socket's context, the socket waits and dials again,
// with exponential backoff and full jitter: before attempt n (from 1) it
// waits a random time in [0, min(MaxDelay, MinDelay·2ⁿ⁻¹)]. The zero
// value reconnects forever, with delays from 500 ms up to 30 s, keeping
// the messages sent meanwhile.
type Reconnect struct {
	// MinDelay caps the wait before the first attempt; each later attempt
	// doubles the cap. Zero means 500 ms.
	MinDelay time.Duration

	// MaxDelay is the largest cap. Zero means 30 s.
	MaxDelay time.Duration

	// MaxAttempts is how many attempts in a row may fail before the socket
	// gives up and closes for good. Zero means no limit.
	MaxAttempts int

	// DropWhileDisconnected discards the messages not yet written when a
	// connection ends, and makes Send return ErrNotConnected whenever no
	// connection is up (the first connect included). The zero value keeps them: they go out, in
	// order, on the next connection. A message being written when the
	// connection broke is lost either way (at most once), and so may be
	// messages the kernel had taken but the server never got.
	DropWhileDisconnected bool

	// ShouldReconnect, if not nil, decides whether to try again after err:
	// a CloseError (errors.As) for a connection that closed, a *DialError
	// for a refused handshake, another error for a network failure. Nil
	// means always.
	ShouldReconnect func(err error) bool
}

// Heartbeat configures the pings that find a dead connection.
//
// In SocketOptions (the client): every Interval the socket pings, and if
// no pong arrives within Timeout it closes the connection as lost (code
// 1006, an ErrorEvent wrapping ErrNoPong), then reconnects if Reconnect
// is set. A dead peer is noticed within Interval + Timeout. A callback
// that holds the socket's events for longer than Timeout also holds back
// the pong, and fails it.
//
// In AcceptOptions (the server): the connection pings only after
// Interval without a frame from the peer; see AcceptOptions.Heartbeat.
type Heartbeat struct {
	// Interval is the time between pings. Zero means 30 s.
	Interval time.Duration
	// Timeout is how long to wait for each pong. Zero means Interval.
	Timeout time.Duration
}

// Event is one of OpenEvent, MessageEvent, ErrorEvent, CloseEvent,
// ReconnectingEvent and ReconnectedEvent, as sent to
// SocketOptions.Events.
type Event interface{ socketEvent() }

// OpenEvent is the browser's open event: the connection is open.
type OpenEvent struct {
	Protocol   string // the subprotocol the server chose, or ""
	Extensions string // the extensions the server accepted, or ""
}

// MessageEvent is the browser's message event: a whole message arrived.
type MessageEvent struct {
	Type MessageType
	Data []byte // the payload; it belongs to the callback, which may keep it
}

// Text returns the payload as a string.
func (e MessageEvent) Text() string { return string(e.Data) }

// ErrorEvent is the browser's error event, with the error the browser does
// not show: why the connection failed. The browser, and so the socket,
// fails a connection for a refused or broken handshake, a protocol
// violation by the server, and a Close while connecting; the socket also
// fails one whose heartbeat got no pong. A CloseEvent with code 1006
// follows, or a ReconnectingEvent after a failed reconnection attempt. A
// connection that merely ends without a close frame is closed, not failed:
// it gets no ErrorEvent, only a CloseEvent with code 1006 (whose Err says
// what happened), as in the browser.
type ErrorEvent struct{ Err error }

// CloseEvent is the browser's close event.
type CloseEvent struct {
	// Code is the code of the server's close frame, 1005 if it had
	// none, or 1006 if the connection ended without one (or we failed
	// it for a protocol violation, as the browser reports it).
	Code StatusCode
	// Reason is the reason of the server's close frame.
	Reason string
	// WasClean tells whether the close handshake completed.
	WasClean bool
	// Err, beyond the browser, tells why a close that was not clean
	// happened: the network error of a lost connection, or the error an
	// ErrorEvent reported just before. It is nil for a clean close.
	Err error
}

// ReconnectingEvent says the socket will dial again after Delay. The state
// is StateConnecting from this event on.
type ReconnectingEvent struct {
	Attempt int           // the coming attempt, from 1
	Delay   time.Duration // the wait before it
	Err     error         // what ended the last connection or attempt
	Dropped int           // messages discarded from the send queue (DropWhileDisconnected)
}

// ReconnectedEvent follows the OpenEvent of a connection made by
// reconnecting.
type ReconnectedEvent struct {
	Attempts int // the attempts it took
}

func (OpenEvent) socketEvent()         {}
func (MessageEvent) socketEvent()      {}
func (ErrorEvent) socketEvent()        {}
func (CloseEvent) socketEvent()        {}
func (ReconnectingEvent) socketEvent() {}
func (ReconnectedEvent) socketEvent()  {}

// Socket is a WebSocket client shaped like the browser's WebSocket object:
// ReadyState, the open, message, error and close events, Send that queues
// and never blocks, BufferedAmount, Close(code, reason), Protocol,
// Extensions and URL. Beyond the browser it can reconnect with backoff and
// send heartbeats. Make one with NewSocket; every method is safe for
// concurrent use.
//
// Events are delivered on one goroutine per socket, in order, never two at
// once, and ReadyState changes as the event that announces it is
// delivered, as in the browser (it is StateOpen inside OnOpen, StateClosed
// inside OnClose). Messages that arrive once Close was called are dropped,
// as the browser drops them.
//
// Where a Socket differs from the browser, it is on purpose:
//   - Send while connecting queues the message (the browser throws), so a
//     program can send before the first open, and during a reconnection.
//   - Send on a closing or closed socket returns ErrSocketClosed (the
//     browser silently discards the data and grows bufferedAmount), and a
//     Send over SendLimit returns ErrSendQueueFull: Go code checks errors,
//     and memory stays bounded.
//   - Close's errors are ErrCloseCode and ErrCloseReason where the browser
//     throws InvalidAccessError and SyntaxError.
type Socket struct {
	url     string
	opts    SocketOptions
	dial    DialOptions // opts.Dial, copied
	limit   int64
	ctx     context.Context
	stopCtx context.CancelFunc

	state    atomic.Int32 // the ReadyState delivered so far
	buffered atomic.Int64

	mu         sync.Mutex
	closeReq   *closeRequest // Close was called (or ctx is done); never changed once set
	goAway     bool          // the context ended: close at once, dropping the queue
	connected  bool          // a connection is up (whatever the delivered state)
	ended      bool          // no connection will be made any more
	protocol   string        // of the last open delivered
	extensions string
	queue      sendQueue
	wake       chan struct{}   // the writer looks again at the queue and closeReq
	closeCtx   context.Context // done at the first Close (or the context's end)
	closed     context.CancelFunc

	events chan Event // to the dispatcher
	done   chan struct{}
}

// closeRequest is a Close waiting to be carried out.
type closeRequest struct {
	code   StatusCode
	reason string
	from   ReadyState // the delivered state when Close was called
}

// closingError is an ErrorEvent that a CloseEvent follows: the state turns
// to StateClosed as it is delivered, as in the browser, whose error event
// comes after the connection closed.
type closingError struct{ err error }

func (closingError) socketEvent() {}

// endEvent tells the dispatcher that no event follows.
type endEvent struct{}

func (endEvent) socketEvent() {}

// NewSocket starts connecting to rawURL (ws://, wss://, or http:// and
// https:// taken as the same) and returns at once with the socket in
// StateConnecting, as the browser's new WebSocket(url) does. It returns an
// error only for a URL the browser would refuse (a bad scheme, no host, a
// fragment) or invalid options.
//
// When ctx is done the socket closes with 1001 Going Away, dropping the
// messages not yet sent, and then closes for good; a close handshake that
// Close began is cut short instead (the CloseEvent then reports 1006).
func NewSocket(ctx context.Context, rawURL string, opts *SocketOptions) (*Socket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ws: socket URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("ws: socket URL %q: the scheme must be ws or wss", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("ws: socket URL %q: no host", rawURL)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return nil, fmt.Errorf("ws: socket URL %q: a WebSocket URL may not have a fragment", rawURL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	s := &Socket{
		url:    u.String(),
		limit:  DefaultSendLimit,
		wake:   make(chan struct{}, 1),
		events: make(chan Event, eventReadAhead),
		done:   make(chan struct{}),
	}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Dial != nil {
		s.dial = *s.opts.Dial
	}
	if err := s.dial.Compression.check(); err != nil {
		return nil, fmt.Errorf("%w (in SocketOptions.Dial.Compression)", err)
	}
	if s.opts.SendLimit < 0 {
		return nil, errors.New("ws: SocketOptions.SendLimit is negative")
	}
	if s.opts.SendLimit > 0 {
		s.limit = int64(s.opts.SendLimit)
	}
	if r := s.opts.Reconnect; r != nil && (r.MinDelay < 0 || r.MaxDelay < 0 || r.MaxAttempts < 0) {
		return nil, errors.New("ws: SocketOptions.Reconnect has a negative delay or attempt count")
	}
	if h := s.opts.Heartbeat; h != nil && (h.Interval < 0 || h.Timeout < 0) {
		return nil, errors.New("ws: SocketOptions.Heartbeat has a negative interval or timeout")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	s.ctx, s.stopCtx = context.WithCancel(ctx)
	s.closeCtx, s.closed = context.WithCancel(context.Background())
	s.state.Store(int32(StateConnecting))
	go s.dispatch()
	go s.run()
	return s, nil
}

// URL returns the socket's URL, normalized as the browser's url attribute
// (ws or wss scheme, "/" for an empty path).
func (s *Socket) URL() string { return s.url }

// ReadyState returns the socket's state.
func (s *Socket) ReadyState() ReadyState { return ReadyState(s.state.Load()) }

// Protocol returns the subprotocol the server chose on the connection last
// opened, or "" before the first open.
func (s *Socket) Protocol() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.protocol
}

// Extensions returns the extensions the server accepted on the connection
// last opened (such as "permessage-deflate; ..."), or "".
func (s *Socket) Extensions() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.extensions
}

// BufferedAmount returns the bytes of application data (UTF-8 text and
// binary data) queued by Send and not yet written to the network,
// counting a message being written until its last byte is.
func (s *Socket) BufferedAmount() int { return int(s.buffered.Load()) }

// Done returns a channel that is closed once the socket has closed for good
// and delivered its last event.
func (s *Socket) Done() <-chan struct{} { return s.done }

// SendText queues a text message. It never blocks; see Send.
func (s *Socket) SendText(text string) error {
	if !utf8.ValidString(text) {
		return errors.New("ws: SendText: the text is not valid UTF-8; send it with SendBinary")
	}
	return s.send(MessageText, []byte(text))
}

// SendBinary queues a binary message with a copy of data. It never blocks;
// see Send.
func (s *Socket) SendBinary(data []byte) error {
	return s.send(MessageBinary, append([]byte(nil), data...))
}

// Send queues a message of type typ with a copy of data, to be written in
// order after the messages queued before it. It never blocks. It returns
// ErrSocketClosed once Close was called or the socket closed for good,
// ErrNotConnected while disconnected if Reconnect.DropWhileDisconnected is
// set, and ErrSendQueueFull when BufferedAmount would go over SendLimit.
// Text must be valid UTF-8.
func (s *Socket) Send(typ MessageType, data []byte) error {
	switch typ {
	case MessageText:
		if !utf8.Valid(data) {
			return errors.New("ws: Send: the text is not valid UTF-8; send it as MessageBinary")
		}
	case MessageBinary:
	default:
		return fmt.Errorf("ws: Send: %v is not a data message type", typ)
	}
	return s.send(typ, append([]byte(nil), data...))
}

func (s *Socket) send(typ MessageType, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closeReq != nil || s.ended:
		return ErrSocketClosed
	case !s.connected && s.opts.Reconnect != nil && s.opts.Reconnect.DropWhileDisconnected:
		return ErrNotConnected
	}
	n := s.buffered.Load()
	if n+int64(len(p)) > s.limit || s.queue.len() >= maxQueuedMessages {
		return fmt.Errorf("%w: %d bytes queued, %d more would pass the limit of %d (SocketOptions.SendLimit)",
			ErrSendQueueFull, n, len(p), s.limit)
	}
	s.queue.push(typ, p)
	s.buffered.Add(int64(len(p)))
	s.poke()
	return nil
}

// poke wakes the writer.
func (s *Socket) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close closes the socket, as the browser's close(code, reason): code must
// be 1000 or in 3000–4999, or 0 for none; reason at most 123 bytes of
// UTF-8 (a reason without a code sends 1000). On an open socket the state
// turns to StateClosing at once, the messages queued before go out, then
// the close handshake runs and OnClose reports the server's answer. On a
// connecting socket the attempt is abandoned: an ErrorEvent and a
// CloseEvent with code 1006 follow, as in the browser. Close stops
// reconnection. It does not wait (Done tells when the socket is closed),
// and calling it again does nothing.
func (s *Socket) Close(code StatusCode, reason string) error {
	if code != 0 && code != StatusNormalClosure && (code < 3000 || code > 4999) {
		return fmt.Errorf("%w, or 0 for none (got %d)", ErrCloseCode, int(code))
	}
	if len(reason) > maxCloseReason || !utf8.ValidString(reason) {
		return fmt.Errorf("%w (got %d bytes)", ErrCloseReason, len(reason))
	}
	if code == 0 {
		code = StatusNoStatusRcvd
		if reason != "" {
			code = StatusNormalClosure
		}
	}
	s.requestClose(&closeRequest{code: code, reason: reason}, false)
	return nil
}

// requestClose records the first Close, and the end of the context
// (goAway) whenever it comes.
func (s *Socket) requestClose(req *closeRequest, goAway bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if goAway && !s.goAway {
		s.goAway = true
		s.dropQueueLocked()
		s.poke()
	}
	if s.closeReq != nil {
		return
	}
	req.from = s.ReadyState()
	s.closeReq = req
	s.closed()
	if req.from == StateConnecting || req.from == StateOpen {
		s.state.Store(int32(StateClosing))
	}
	s.poke()
}

// dropQueueLocked empties the send queue and returns how many messages it
// held.
func (s *Socket) dropQueueLocked() int {
	n := s.queue.len()
	s.queue.clear()
	s.buffered.Store(0)
	return n
}

// ---------------------------------------------------------------------------
// Delivering events

// emit hands an event to the dispatcher, waiting while it is busy.
func (s *Socket) emit(ev Event) { s.events <- ev }

// dispatch delivers events in order until the last one.
func (s *Socket) dispatch() {
	defer close(s.done)
	if s.opts.Events != nil {
		defer close(s.opts.Events)
	}
	for ev := range s.events {
		if _, ok := ev.(endEvent); ok {
			s.state.Store(int32(StateClosed))
			return
		}
		if !s.apply(ev) {
			continue
		}
		if ce, ok := ev.(closingError); ok {
			ev = ErrorEvent{Err: ce.err}
		}
		switch ev := ev.(type) {
		case OpenEvent:
			if s.opts.OnOpen != nil {
				s.opts.OnOpen(s, ev)
			}
		case MessageEvent:
			if s.opts.OnMessage != nil {
				s.opts.OnMessage(s, ev)
			}
		case ErrorEvent:
			if s.opts.OnError != nil {
				s.opts.OnError(s, ev)
			}
		case CloseEvent:
			if s.opts.OnClose != nil {
				s.opts.OnClose(s, ev)
			}
		case ReconnectingEvent:
			if s.opts.OnReconnecting != nil {
				s.opts.OnReconnecting(s, ev)
			}
		case ReconnectedEvent:
			if s.opts.OnReconnected != nil {
				s.opts.OnReconnected(s, ev)
			}
		}
		if s.opts.Events != nil {
			s.opts.Events <- ev
		}
	}
}

// apply makes the state change an event announces, and tells whether to
// deliver it: an open after Close was called, a message once the socket is
// no longer open, and a reconnection after Close are dropped.
func (s *Socket) apply(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ReadyState()
	switch ev := ev.(type) {
	case OpenEvent:
		if st != StateConnecting || s.closeReq != nil {
			return false
		}
		s.protocol, s.extensions = ev.Protocol, ev.Extensions
		s.state.Store(int32(StateOpen))
	case MessageEvent:
		return st == StateOpen
	case ReconnectedEvent:
		return st == StateOpen
	case closingError, CloseEvent:
		s.state.Store(int32(StateClosed))
	case ReconnectingEvent:
		if s.closeReq != nil {
			return false
		}
		s.state.Store(int32(StateConnecting))
	}
	return true
}

// ---------------------------------------------------------------------------
// The connection loop

// run connects, serves each connection, and reconnects, until the socket
// closes for good.
func (s *Socket) run() {
	defer s.stopCtx()
	defer s.closed()
	defer s.emit(endEvent{})
	defer func() {
		s.mu.Lock()
		s.ended = true
		s.dropQueueLocked()
		s.mu.Unlock()
	}()
	stopWatch := context.AfterFunc(s.ctx, func() {
		s.requestClose(&closeRequest{code: StatusGoingAway}, true)
	})
	defer stopWatch()

	attempt := 0 // attempts in a row that failed
	var lastErr error
	for {
		if attempt > 0 {
			if !s.waitToReconnect(attempt, lastErr) {
				return
			}
		}
		conn, err := s.connect(attempt)
		if err != nil {
			if s.closing() {
				s.endWhileConnecting(err)
				return
			}
			attempt++
			lastErr = err
			if !s.mayReconnect(attempt, err) {
				s.emit(closingError{err})
				s.emit(CloseEvent{Code: StatusAbnormalClosure, Err: err})
				return
			}
			s.emit(ErrorEvent{Err: err})
			continue
		}
		s.emit(OpenEvent{Protocol: conn.Subprotocol(), Extensions: conn.Extensions()})
		if attempt > 0 {
			s.emit(ReconnectedEvent{Attempts: attempt})
		}
		attempt = 0
		ce, failure := s.serve(conn)
		s.mu.Lock()
		s.connected = false
		req := s.closeReq
		s.mu.Unlock()
		if req != nil && req.from == StateConnecting {
			// Closed before the open was delivered: the browser's
			// "closed before the connection is established".
			s.endWhileConnecting(nil)
			return
		}
		if failure != nil {
			s.emit(closingError{failure})
		}
		s.emit(ce)
		if req != nil {
			return
		}
		lastErr = ce.Err
		if lastErr == nil {
			lastErr = CloseError{Code: ce.Code, Reason: ce.Reason}
		}
		attempt = 1
		if !s.mayReconnect(attempt, lastErr) {
			return
		}
	}
}

// closing tells whether Close was called or the context is done.
func (s *Socket) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeReq != nil
}

// endWhileConnecting reports a Close that came while connecting: an error
// and a close with 1006 if the socket was announced as connecting, nothing
// if it had already reported its close.
func (s *Socket) endWhileConnecting(err error) {
	s.mu.Lock()
	from := s.closeReq.from
	s.mu.Unlock()
	if from != StateConnecting {
		return
	}
	if err == nil || errors.Is(err, context.Canceled) {
		err = errors.New("ws: socket closed before the connection was established")
	}
	s.emit(closingError{err})
	s.emit(CloseEvent{Code: StatusAbnormalClosure, Err: err})
}

// mayReconnect tells whether attempt (from 1) may be made after err.
func (s *Socket) mayReconnect(attempt int, err error) bool {
	r := s.opts.Reconnect
	if r == nil || s.closing() {
		return false
	}
	if r.MaxAttempts > 0 && attempt > r.MaxAttempts {
		return false
	}
	return r.ShouldReconnect == nil || r.ShouldReconnect(err)
}

// waitToReconnect announces attempt and waits its backoff delay. It returns
// false if the socket was closed meanwhile.
func (s *Socket) waitToReconnect(attempt int, lastErr error) bool {
	r := s.opts.Reconnect
	minDelay, maxDelay := r.MinDelay, r.MaxDelay
	if minDelay == 0 {
		minDelay = 500 * time.Millisecond
	}
	if maxDelay == 0 {
		maxDelay = 30 * time.Second
	}
	ceiling := maxDelay
	if attempt-1 < 32 && minDelay<<(attempt-1) < maxDelay && minDelay<<(attempt-1) > 0 {
		ceiling = minDelay << (attempt - 1)
	}
	delay := time.Duration(rand.Int64N(int64(ceiling) + 1))

	dropped := 0
	s.mu.Lock()
	if r.DropWhileDisconnected {
		dropped = s.dropQueueLocked()
	}
	s.mu.Unlock()
	if s.closing() {
		s.endWhileConnecting(nil)
		return false
	}
	s.emit(ReconnectingEvent{Attempt: attempt, Delay: delay, Err: lastErr, Dropped: dropped})

	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closeCtx.Done():
		s.endWhileConnecting(nil)
		return false
	}
}

// connect makes one connection attempt. A Close while it runs abandons it.
func (s *Socket) connect(attempt int) (*Conn, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()

	opts := s.dial
	opts.Header = s.dial.Header.Clone()
	if opts.Header == nil {
		opts.Header = http.Header{}
	}
	if s.opts.BeforeDial != nil {
		if err := s.opts.BeforeDial(ctx, attempt, &opts); err != nil {
			return nil, fmt.Errorf("ws: BeforeDial: %w", err)
		}
	}
	conn, _, err := Dial(ctx, s.url, &opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	closing := s.closeReq != nil
	if !closing {
		s.connected = true
	}
	s.mu.Unlock()
	if closing {
		_ = conn.CloseNow()
		return nil, context.Canceled
	}
	return conn, nil
}

// serve runs one connection until it ends, and returns its close event and,
// if the connection failed rather than closed, why.
func (s *Socket) serve(conn *Conn) (CloseEvent, error) {
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var heartbeatErr, writeErr atomic.Pointer[error]
	var wg sync.WaitGroup
	readDone := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		readDone <- s.readLoop(conn)
	}()
	go func() {
		defer wg.Done()
		if err := s.writeLoop(cctx, conn); err != nil {
			writeErr.Store(&err)
		}
	}()
	if hb := s.opts.Heartbeat; hb != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := heartbeat(cctx, conn, hb); err != nil {
				heartbeatErr.Store(&err)
				_ = conn.CloseNow()
			}
		}()
	}
	err := s.waitConn(conn, readDone)
	cancel()
	_ = conn.CloseNow()
	wg.Wait()

	// As in the browser, a connection that ends without a close frame is
	// closed (1006), and only one that we fail (a protocol violation, a
	// heartbeat without an answer) also reports an error.
	lost := CloseEvent{Code: StatusAbnormalClosure, Err: err}
	if p := heartbeatErr.Load(); p != nil {
		lost.Err = *p
		return lost, *p
	}
	var ce CloseError
	var ab *abnormalClosure
	switch {
	case errors.As(err, &ab):
		return lost, nil
	case errors.As(err, &ce):
		return CloseEvent{Code: ce.Code, Reason: ce.Reason, WasClean: true}, nil
	case errors.Is(err, ErrProtocol) || errors.Is(err, ErrMessageTooBig):
		// We failed the connection with its code, and report 1006, as
		// the browser does.
		return lost, err
	case writeErr.Load() != nil:
		lost.Err = *writeErr.Load()
		return lost, nil
	case s.closing():
		// Our close got no answer in time, or the context cut it short.
		lost.Err = fmt.Errorf("ws: the close handshake did not complete: %w", err)
		return lost, nil
	default:
		return lost, err
	}
}

// waitConn waits for the reader to end. When the context ends it closes
// the connection with 1001 at once, or cuts it if a Close is already under
// way; after Close it lets the writer send the queue and run the close
// handshake, for at most twice the close timeout, and then cuts the
// connection.
func (s *Socket) waitConn(conn *Conn, readDone <-chan error) error {
	closeCh, ctxDone := s.closeCtx.Done(), s.ctx.Done()
	var cut <-chan time.Time
	for {
		select {
		case err := <-readDone:
			return err
		case <-ctxDone:
			ctxDone = nil
			s.mu.Lock()
			req := s.closeReq
			s.mu.Unlock()
			if req != nil && req.code != StatusGoingAway {
				// Close came first (it never takes 1001): its handshake
				// is under way, and the context cuts it short.
				_ = conn.CloseNow()
				continue
			}
			go func() { _ = conn.Close(StatusGoingAway, "") }()
		case <-closeCh:
			closeCh = nil
			t := time.NewTimer(2 * conn.cfg.closeTimeout)
			defer t.Stop()
			cut = t.C
		case <-cut:
			_ = conn.CloseNow()
		}
	}
}

// readLoop reads messages into events until the connection ends.
func (s *Socket) readLoop(conn *Conn) error {
	for {
		typ, p, err := conn.Read(context.Background())
		if err != nil {
			return err
		}
		if s.closing() {
			continue // the browser drops messages once close() was called
		}
		s.emit(MessageEvent{Type: typ, Data: p})
	}
}

// writeLoop writes the queued messages in order and, when Close is called,
// runs the close handshake after them. It ends when ctx is done or a write
// fails; it then closes the connection and returns the write's error.
func (s *Socket) writeLoop(ctx context.Context, conn *Conn) error {
	for {
		s.mu.Lock()
		m, ok := s.queue.peek()
		req, goAway := s.closeReq, s.goAway
		s.mu.Unlock()
		switch {
		case goAway:
			return nil // waitConn closes the connection
		case ok:
			if err := conn.Write(ctx, m.typ, m.data); err != nil {
				_ = conn.CloseNow()
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			s.mu.Lock()
			if s.queue.popIf(m.seq) {
				s.buffered.Add(-int64(len(m.data)))
			}
			s.mu.Unlock()
			continue
		case req != nil && req.from == StateConnecting:
			_ = conn.CloseNow()
			return nil
		case req != nil:
			_ = conn.Close(req.code, req.reason)
			return nil
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// heartbeat pings every interval until ctx is done, and returns an error
// wrapping ErrNoPong if a pong does not come in time.
func heartbeat(ctx context.Context, conn *Conn, hb *Heartbeat) error {
	interval, timeout := hb.Interval, hb.Timeout
	if interval == 0 {
		interval = 30 * time.Second
	}
	if timeout == 0 {
		timeout = interval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return nil // the connection ended some other way
			}
			return fmt.Errorf("%w (waited %v)", ErrNoPong, timeout)
		}
	}
}

// ---------------------------------------------------------------------------
// The send queue

type outMessage struct {
	typ  MessageType
	data []byte
	seq  uint64
}

// sendQueue is a FIFO of messages, each with a sequence number.
type sendQueue struct {
	items []outMessage
	head  int
	seq   uint64
}

func (q *sendQueue) len() int { return len(q.items) - q.head }

func (q *sendQueue) push(typ MessageType, p []byte) {
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.seq++
	q.items = append(q.items, outMessage{typ, p, q.seq})
}

func (q *sendQueue) peek() (outMessage, bool) {
	if q.len() == 0 {
		return outMessage{}, false
	}
	return q.items[q.head], true
}

// popIf removes the head if it is still message seq (the queue may have
// been dropped while it was written).
func (q *sendQueue) popIf(seq uint64) bool {
	if q.len() == 0 || q.items[q.head].seq != seq {
		return false
	}
	q.items[q.head] = outMessage{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return true
}

func (q *sendQueue) clear() {
	clear(q.items)
	q.items, q.head = q.items[:0], 0
}
