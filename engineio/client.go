package engineio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// DialOptions configures Dial. A nil *DialOptions is the zero value, and
// Dial never changes the caller's struct.
type DialOptions struct {
	// Transports lists the transports to use, the first to connect and
	// the others to upgrade to, as engine.io-client's transports option:
	// nil means {TransportPolling, TransportWebSocket} (long-polling,
	// then an upgrade to WebSocket when the server offers it);
	// {TransportWebSocket} connects over WebSocket only;
	// {TransportPolling} never upgrades.
	Transports []string

	// Header holds extra request headers for every request (Cookie,
	// Authorization).
	Header http.Header
	// Query holds extra query parameters for every request; EIO,
	// transport and sid are set by the client.
	Query url.Values

	// HTTPClient makes the long-polling requests. Nil means a client of
	// its own, whose idle connections are closed with the Client.
	HTTPClient *http.Client
	// WebSocket configures the WebSocket connection (TLS, proxy,
	// compression). Nil means ws.Dial's defaults. Its Header is merged
	// with Header.
	WebSocket *ws.DialOptions

	// SendBufferLimit bounds the bytes of message data queued and not yet
	// sent. A send over it returns an error wrapping ErrSendBufferFull and
	// closes the client with ReasonTransportError. Zero means
	// DefaultSendBufferLimit (4 MiB).
	SendBufferLimit int

	// OnMessage is called for each message from the server, one call at a
	// time and in order; data is valid until it returns. Nil drops
	// messages. It runs on the goroutine that reads, so a call that blocks
	// holds back the next messages (heartbeats are answered by the reader
	// before the message is delivered).
	OnMessage func(c *Client, typ MessageType, data []byte)
	// OnUpgrade, if not nil, is called once the client has moved from
	// long-polling to WebSocket.
	OnUpgrade func(c *Client)
	// OnClose, if not nil, is called once when the client has closed,
	// after the last OnMessage.
	OnClose func(c *Client, reason CloseReason, err error)

	// Logger receives the client's logs (upgrade failures at Debug). Nil
	// means no logs.
	Logger *slog.Logger
}

// Client is an Engine.IO v4 client session, made by Dial.
//
// Every method is safe for concurrent use; sends never block.
type Client struct {
	opts       DialOptions
	base       *url.URL
	httpClient *http.Client
	ownHTTP    *http.Transport // closed at the end when the client made it
	log        *slog.Logger

	id           string
	pingInterval time.Duration
	pingTimeout  time.Duration
	maxPayload   int64

	ctx    context.Context // ends when the client closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	closed atomic.Bool

	deliverMu sync.Mutex

	mu           sync.Mutex
	state        sessionState
	transport    string
	ws           *ws.Conn
	queue        []Packet
	queued       int
	wake         chan struct{} // wakes the polling writer
	pausing      bool          // polling is paused for an upgrade
	pollerPaused chan struct{}
	writerPaused chan struct{}
	timer        *time.Timer
	timerGen     uint64
	scratch      []byte
}

// maxPollResponse bounds the body of a poll response the client reads, and
// a WebSocket message unless DialOptions.WebSocket sets ReadLimit.
const maxPollResponse = 64 << 20

// handshakeData is the open packet's JSON.
type handshakeData struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

// Dial opens an Engine.IO session with the server at rawURL, an http://,
// https://, ws:// or wss:// URL whose path is the server's ("/engine.io/"
// when the URL has none). It returns once the handshake is done, on the
// first transport of opts.Transports; an upgrade to WebSocket then runs in
// the background. ctx bounds the handshake only.
//
// A server that refuses the handshake with Engine.IO's JSON error gives a
// *RequestError.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Client, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("engineio: Dial: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("engineio: Dial: URL scheme %q is not http, https, ws or wss", u.Scheme)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/engine.io/"
	}
	if o.Transports == nil {
		o.Transports = []string{TransportPolling, TransportWebSocket}
	}
	if len(o.Transports) == 0 {
		return nil, errors.New("engineio: DialOptions.Transports lists no transport")
	}
	for _, t := range o.Transports {
		if t != TransportPolling && t != TransportWebSocket {
			return nil, fmt.Errorf("engineio: DialOptions.Transports: unknown transport %q", t)
		}
	}
	if o.SendBufferLimit < 0 {
		return nil, errors.New("engineio: DialOptions.SendBufferLimit is negative")
	}
	if o.SendBufferLimit == 0 {
		o.SendBufferLimit = DefaultSendBufferLimit
	}
	c := &Client{opts: o, base: u, log: o.Logger, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.httpClient = o.HTTPClient
	if c.httpClient == nil {
		c.ownHTTP = http.DefaultTransport.(*http.Transport).Clone()
		c.httpClient = &http.Client{Transport: c.ownHTTP}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// The session holds a count in wg from here until closeWith's last
	// goroutine ends, so that Done waits for the close, not merely for the
	// transports' goroutines (they all stop for a while in an upgrade).
	c.wg.Add(1)

	var rest []byte
	if o.Transports[0] == TransportWebSocket {
		err = c.openWebSocket(ctx)
	} else {
		rest, err = c.openPolling(ctx)
	}
	if err != nil {
		c.wg.Done() // never opened: no closeWith
		c.cancel()
		if c.ownHTTP != nil {
			c.ownHTTP.CloseIdleConnections()
		}
		return nil, err
	}
	c.mu.Lock()
	c.armTimerLocked()
	c.mu.Unlock()
	if c.transport == TransportPolling {
		c.wg.Add(2)
		go c.poller(rest)
		go c.writer()
	}
	go func() {
		c.wg.Wait()
		if c.ownHTTP != nil {
			c.ownHTTP.CloseIdleConnections()
		}
		close(c.done)
	}()
	return c, nil
}

// requestURL returns the URL of a request on transport.
func (c *Client) requestURL(transport string) string {
	u := *c.base
	q := url.Values{}
	for k, v := range c.opts.Query {
		q[k] = v
	}
	q.Set("EIO", "4")
	q.Set("transport", transport)
	if c.id != "" {
		q.Set("sid", c.id)
	}
	u.RawQuery = q.Encode()
	if transport == TransportWebSocket {
		u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	}
	return u.String()
}

func (c *Client) setHandshake(b []byte) error {
	if len(b) == 0 || b[0] != '0' {
		return fmt.Errorf("engineio: handshake %q is not an open packet", quoteStart(b))
	}
	var h handshakeData
	if err := json.Unmarshal(b[1:], &h); err != nil {
		return fmt.Errorf("engineio: handshake: %w", err)
	}
	if h.SID == "" || h.PingInterval <= 0 || h.PingTimeout <= 0 {
		return fmt.Errorf("engineio: handshake %q lacks sid, pingInterval or pingTimeout", quoteStart(b))
	}
	c.id = h.SID
	c.log = c.log.With(slog.String("sid", c.id)) // before any goroutine reads it
	c.pingInterval = time.Duration(h.PingInterval) * time.Millisecond
	c.pingTimeout = time.Duration(h.PingTimeout) * time.Millisecond
	c.maxPayload = h.MaxPayload
	if c.maxPayload <= 0 {
		c.maxPayload = DefaultMaxPayload
	}
	if c.transport == TransportPolling && slices.Contains(h.Upgrades, TransportWebSocket) &&
		slices.Contains(c.opts.Transports, TransportWebSocket) {
		c.wg.Add(1)
		go c.upgrade()
	}
	return nil
}

// doHTTP makes a long-polling request and returns the body of a 200
// response.
func (c *Client) doHTTP(ctx context.Context, method string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.requestURL(TransportPolling), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range c.opts.Header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPollResponse))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		re := &RequestError{Status: resp.StatusCode, Code: -1}
		var j struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &j) == nil && j.Code != nil {
			re.Code, re.Message = ErrorCode(*j.Code), j.Message
		} else {
			re.Message = http.StatusText(resp.StatusCode)
		}
		return nil, re
	}
	return b, nil
}

func (c *Client) openPolling(ctx context.Context) ([]byte, error) {
	c.transport = TransportPolling
	b, err := c.doHTTP(ctx, http.MethodGet, nil)
	if err != nil {
		return nil, fmt.Errorf("engineio: handshake: %w", err)
	}
	first, rest, _ := bytes.Cut(b, []byte{recordSeparator})
	if err := c.setHandshake(first); err != nil {
		return nil, err
	}
	return rest, nil
}

func (c *Client) wsDialOptions() *ws.DialOptions {
	var o ws.DialOptions
	if c.opts.WebSocket != nil {
		o = *c.opts.WebSocket
	}
	if len(c.opts.Header) > 0 {
		h := o.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		for k, v := range c.opts.Header {
			h[k] = v
		}
		o.Header = h
	}
	if o.ReadLimit == 0 {
		// maxPayload bounds what the server reads, not what it sends.
		o.ReadLimit = maxPollResponse
	}
	return &o
}

func (c *Client) openWebSocket(ctx context.Context) error {
	c.transport = TransportWebSocket
	conn, _, err := ws.Dial(ctx, c.requestURL(TransportWebSocket), c.wsDialOptions())
	if err != nil {
		return fmt.Errorf("engineio: handshake: %w", err)
	}
	_, b, err := conn.Read(ctx)
	if err == nil {
		err = c.setHandshake(b)
	}
	if err != nil {
		_ = conn.CloseNow()
		return err
	}
	c.ws = conn
	c.wg.Add(1)
	go c.readWebSocket(conn)
	return nil
}

// ID returns the session id the server gave.
func (c *Client) ID() string { return c.id }

// Transport returns the transport in use: TransportPolling, or
// TransportWebSocket once connected or upgraded.
func (c *Client) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Done returns a channel that is closed once the client has closed and
// its goroutines have ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// SendText queues a text message. It never blocks. It returns ErrClosed
// once the client is closing, and an error wrapping ErrSendBufferFull if
// the send buffer would go over its limit (the client then closes).
func (c *Client) SendText(text string) error { return c.send(false, nil, text) }

// SendBinary queues a binary message with a copy of data; see SendText.
func (c *Client) SendBinary(data []byte) error { return c.send(true, data, "") }

// Send queues a message of type typ with a copy of data; see SendText.
func (c *Client) Send(typ MessageType, data []byte) error {
	return c.send(typ == MessageBinary, data, "")
}

func (c *Client) send(binary bool, data []byte, text string) error {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	var err error
	if c.ws != nil {
		if binary {
			err = c.ws.Send(ws.MessageBinary, data)
		} else {
			b := append(c.scratch[:0], '4')
			b = append(b, data...)
			b = append(b, text...)
			err = c.ws.Send(ws.MessageText, b)
			if cap(b) <= 64<<10 {
				c.scratch = b[:0]
			}
		}
		if errors.Is(err, ws.ErrSendQueueFull) {
			err = fmt.Errorf("%w: %w", ErrSendBufferFull, err)
		}
	} else {
		p := Packet{Type: PacketMessage, Binary: binary, Data: make([]byte, len(data)+len(text))}
		copy(p.Data[copy(p.Data, data):], text)
		err = c.enqueueLocked(p)
	}
	c.mu.Unlock()
	if err != nil {
		c.closeWith(ReasonTransportError, err)
	}
	return err
}

func (c *Client) enqueueLocked(p Packet) error {
	if len(c.queue) > 0 && c.queued+len(p.Data) > c.opts.SendBufferLimit {
		return fmt.Errorf("%w: %d bytes queued, %d more would go over %d; raise DialOptions.SendBufferLimit",
			ErrSendBufferFull, c.queued, len(p.Data), c.opts.SendBufferLimit)
	}
	c.queue = append(c.queue, p)
	c.queued += len(p.Data)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// sendControl sends a packet of the client's own (pong, close).
func (c *Client) sendControlLocked(p Packet) error {
	if c.ws != nil {
		c.scratch = AppendPacket(c.scratch[:0], p)
		return c.ws.Send(ws.MessageText, c.scratch)
	}
	c.queue = append(c.queue, p)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close closes the session with ReasonForcedClose: messages already queued
// are sent, then a close packet (long-polling) or the WebSocket close
// handshake. It does not wait: Done tells when the client has closed.
// Calling it again does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return nil
	}
	c.state = stateClosing
	if c.ws == nil && !c.pausing {
		// The writer sends the close packet and closes; the timer bounds it.
		_ = c.sendControlLocked(Packet{Type: PacketClose})
		c.armCloseTimerLocked()
		c.mu.Unlock()
		return nil
	}
	if c.pausing {
		// An upgrade is under way and polling has stopped for it: the
		// upgrade sends what is queued over the WebSocket, then closes
		// (it sees stateClosing); the timer bounds it.
		c.armCloseTimerLocked()
		c.mu.Unlock()
		return nil
	}
	conn := c.ws
	c.mu.Unlock()
	c.closeAfterFlush(conn)
	return nil
}

// closeAfterFlush closes the client with ReasonForcedClose once conn has
// written what is queued (for a second at most).
func (c *Client) closeAfterFlush(conn *ws.Conn) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if conn != nil {
			deadline := time.Now().Add(time.Second)
			for conn.SendQueued() > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		c.closeWith(ReasonForcedClose, nil)
	}()
}

// closeWith closes the client once, for reason.
func (c *Client) closeWith(reason CloseReason, err error) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.closed.Store(true)
	c.timerGen++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.queue = nil
	c.queued = 0
	conn := c.ws
	c.mu.Unlock()
	c.cancel()
	go func() {
		defer c.wg.Done() // the session's count, from Dial
		c.deliverMu.Lock()
		if f := c.opts.OnClose; f != nil {
			f(c, reason, err)
		}
		c.deliverMu.Unlock()
		if conn != nil {
			_ = conn.Close(ws.StatusNormalClosure, "")
		}
	}()
}

// armTimerLocked expects the next ping within pingInterval+pingTimeout.
func (c *Client) armTimerLocked() {
	c.timerGen++
	gen := c.timerGen
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.pingInterval+c.pingTimeout, func() {
		c.mu.Lock()
		stale := gen != c.timerGen
		c.mu.Unlock()
		if !stale {
			c.closeWith(ReasonPingTimeout, nil)
		}
	})
}

// armCloseTimerLocked bounds a graceful close over long-polling.
func (c *Client) armCloseTimerLocked() {
	c.timerGen++
	gen := c.timerGen
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.pingTimeout+time.Second, func() {
		c.mu.Lock()
		stale := gen != c.timerGen
		c.mu.Unlock()
		if !stale {
			c.closeWith(ReasonForcedClose, errors.New("engineio: the close packet was not sent in time"))
		}
	})
}

// onPacket handles a packet from the server; false means stop reading.
func (c *Client) onPacket(p Packet) bool {
	switch p.Type {
	case PacketPing:
		c.mu.Lock()
		var err error
		if c.state == stateOpen {
			c.armTimerLocked()
			err = c.sendControlLocked(Packet{Type: PacketPong, Data: p.Data})
		}
		c.mu.Unlock()
		if err != nil {
			c.closeWith(ReasonTransportError, err)
			return false
		}
	case PacketMessage:
		typ := MessageText
		if p.Binary {
			typ = MessageBinary
		}
		c.deliver(typ, p.Data)
	case PacketClose:
		c.closeWith(ReasonTransportClose, nil)
		return false
	}
	return !c.closed.Load()
}

func (c *Client) deliver(typ MessageType, data []byte) {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.closed.Load() || c.opts.OnMessage == nil {
		return
	}
	c.opts.OnMessage(c, typ, data)
}

// poller long-polls until the client closes or pauses for an upgrade.
// first holds the packets that came with the handshake.
func (c *Client) poller(first []byte) {
	defer c.wg.Done()
	body := first
	for {
		if len(body) > 0 {
			packets, err := DecodePayload(nil, body)
			if err != nil {
				c.closeWith(ReasonParseError, err)
				return
			}
			for _, p := range packets {
				if !c.onPacket(p) {
					return
				}
			}
		}
		c.mu.Lock()
		if c.pausing {
			close(c.pollerPaused)
			c.mu.Unlock()
			return
		}
		if c.state != stateOpen {
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		var err error
		body, err = c.doHTTP(c.ctx, http.MethodGet, nil)
		if err != nil {
			c.closeWith(ReasonTransportError, err)
			return
		}
	}
}

// writer sends the queue with POST requests, one at a time, each up to
// the server's maxPayload.
func (c *Client) writer() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.pausing {
			close(c.writerPaused)
			c.mu.Unlock()
			return
		}
		if c.state == stateClosed {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		var body []byte
		n, closing := 0, false
		for n < len(c.queue) {
			p := c.queue[n]
			if p.Type == PacketClose && n > 0 {
				// The close packet goes in a request of its own, after
				// what was queued before it, as engine.io-client does: a
				// server handles a payload's packets in order, but the
				// layer above may act on the messages only after the
				// close.
				break
			}
			size := len(p.Data) + 1
			if p.Binary {
				size = 1 + (len(p.Data)+2)/3*4
			}
			if n > 0 && int64(len(body)+1+size) > c.maxPayload {
				break
			}
			if n > 0 {
				body = append(body, recordSeparator)
			}
			body = AppendPacket(body, p)
			c.queued -= len(p.Data)
			closing = closing || p.Type == PacketClose
			n++
		}
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.ctx, c.pingInterval+c.pingTimeout)
		b, err := c.doHTTP(ctx, http.MethodPost, body)
		cancel()
		if err == nil && string(b) != "ok" {
			err = fmt.Errorf("engineio: POST answered %q, not ok", quoteStart(b))
		}
		if closing {
			c.closeWith(ReasonForcedClose, nil)
			return
		}
		if err != nil {
			c.closeWith(ReasonTransportError, err)
			return
		}
	}
}

// readWebSocket reads the WebSocket until it ends.
func (c *Client) readWebSocket(conn *ws.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 0, 512)
	for {
		typ, data, err := conn.ReadAppend(context.Background(), buf[:0])
		if err != nil {
			reason := ReasonTransportError
			var ce ws.CloseError
			if errors.As(err, &ce) && !errors.Is(err, ws.ErrProtocol) && !errors.Is(err, ws.ErrMessageTooBig) {
				reason = ReasonTransportClose
			}
			c.closeWith(reason, err)
			return
		}
		if cap(data) <= maxKeptReadBuffer {
			buf = data[:0]
		}
		if c.closed.Load() {
			continue
		}
		if typ == ws.MessageBinary {
			c.deliver(MessageBinary, data)
			continue
		}
		p, err := DecodePacket(data)
		if err != nil {
			c.closeWith(ReasonParseError, err)
			continue
		}
		c.onPacket(p)
	}
}

// upgrade probes a WebSocket and moves the session to it, as
// engine.io-client does: 2probe, 3probe, pause polling, 5.
func (c *Client) upgrade() {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, DefaultUpgradeTimeout)
	defer cancel()
	conn, _, err := ws.Dial(ctx, c.requestURL(TransportWebSocket), c.wsDialOptions())
	if err != nil {
		c.log.Debug("engineio: upgrade failed", "err", err)
		return
	}
	fail := func(err error) {
		c.log.Debug("engineio: upgrade failed", "err", err)
		_ = conn.CloseNow()
	}
	if err := conn.Write(ctx, ws.MessageText, []byte("2probe")); err != nil {
		fail(err)
		return
	}
	typ, b, err := conn.Read(ctx)
	if err == nil && (typ != ws.MessageText || string(b) != "3probe") {
		err = fmt.Errorf("engineio: upgrade: got %q, want 3probe", quoteStart(b))
	}
	if err != nil {
		fail(err)
		return
	}
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		fail(ErrClosed)
		return
	}
	c.pausing = true
	c.pollerPaused, c.writerPaused = make(chan struct{}), make(chan struct{})
	pp, wp := c.pollerPaused, c.writerPaused
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.mu.Unlock()
	// Wait for the poll in flight (the server ends it with a noop) and
	// the POST in flight.
	for _, ch := range []chan struct{}{pp, wp} {
		select {
		case <-ch:
		case <-c.ctx.Done():
			fail(ErrClosed)
			return
		}
	}
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		fail(ErrClosed)
		return
	}
	c.ws = conn
	c.transport = TransportWebSocket
	c.pausing = false
	err = conn.Send(ws.MessageText, []byte{'5'})
	for _, p := range c.queue {
		if err != nil {
			break
		}
		if p.Binary {
			err = conn.Send(ws.MessageBinary, p.Data)
		} else {
			c.scratch = AppendPacket(c.scratch[:0], p)
			err = conn.Send(ws.MessageText, c.scratch)
		}
	}
	c.queue, c.queued = nil, 0
	closing := c.state == stateClosing // Close came during the upgrade
	c.mu.Unlock()
	if err != nil {
		c.closeWith(ReasonTransportError, err)
	} else if closing {
		c.closeAfterFlush(conn)
	}
	c.deliverMu.Lock()
	if f := c.opts.OnUpgrade; f != nil && !c.closed.Load() {
		f(c)
	}
	c.deliverMu.Unlock()
	c.wg.Add(1)
	c.readWebSocket(conn)
}
