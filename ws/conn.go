package ws

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
)

// MessageType is the type of a data message (RFC 6455 §5.6).
type MessageType int

const (
	// MessageText is a text message: its payload is valid UTF-8, which the
	// reader checks and the writer leaves to the caller.
	MessageText MessageType = 1
	// MessageBinary is a binary message.
	MessageBinary MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case MessageText:
		return "text"
	case MessageBinary:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// Defaults for the limits shared by AcceptOptions and DialOptions.
const (
	// DefaultReadLimit is the largest message a Conn reads unless told
	// otherwise: 1 MiB.
	DefaultReadLimit = 1 << 20
	// minMaxFragments is the floor of the default fragment limit, which is
	// one frame per fragmentBytes of the read limit: 32,768 frames for the
	// default 1 MiB. Frames cost no memory here, only the work of a header
	// each, so the limit scales with the message size: a 4 MiB limit
	// allows 4 MiB in 64-byte fragments (Autobahn 9.3 and 9.4 send 65,537
	// frames), while a flood of empty fragments is cut off.
	minMaxFragments = 1024
	fragmentBytes   = 32
	// DefaultCloseTimeout bounds the wait for the peer's close frame in Close.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultBufferSize is the size of each connection's read and write
	// buffers unless told otherwise: 4 KiB.
	DefaultBufferSize = 4096

	minBufferSize = 256
)

// connConfig holds the options that both sides share, defaults filled in.
type connConfig struct {
	readLimit       int64
	maxFragments    int
	closeTimeout    time.Duration
	readBufferSize  int
	writeBufferSize int
	sendLimit       int
	sendPolicy      SendQueuePolicy
}

// configs interns connection configurations, so that the connections
// made with the same options share one; at most maxConfigs of them; a
// connection with yet other options has its own. Guarded by configsMu.
var (
	configsMu sync.Mutex
	configs   map[connConfig]*connConfig
)

const maxConfigs = 64

func internConfig(cfg connConfig) *connConfig {
	configsMu.Lock()
	defer configsMu.Unlock()
	if p := configs[cfg]; p != nil {
		return p
	}
	p := &cfg
	if len(configs) < maxConfigs {
		if configs == nil {
			configs = make(map[connConfig]*connConfig)
		}
		configs[cfg] = p
	}
	return p
}

func newConnConfig(readLimit int64, maxFragments int, closeTimeout time.Duration, rbuf, wbuf int) connConfig {
	cfg := connConfig{readLimit: readLimit, maxFragments: maxFragments, closeTimeout: closeTimeout, readBufferSize: rbuf, writeBufferSize: wbuf}
	switch {
	case cfg.readLimit == 0:
		cfg.readLimit = DefaultReadLimit
	case cfg.readLimit < 0:
		cfg.readLimit = math.MaxInt64
	}
	switch {
	case cfg.maxFragments == 0:
		cfg.maxFragments = int(max(minMaxFragments, min(cfg.readLimit/fragmentBytes, math.MaxInt32)))
	case cfg.maxFragments < 0:
		cfg.maxFragments = math.MaxInt
	}
	if cfg.closeTimeout == 0 {
		cfg.closeTimeout = DefaultCloseTimeout
	}
	if cfg.readBufferSize == 0 {
		cfg.readBufferSize = DefaultBufferSize
	}
	cfg.readBufferSize = max(cfg.readBufferSize, minBufferSize)
	if cfg.writeBufferSize == 0 {
		cfg.writeBufferSize = DefaultBufferSize
	}
	cfg.writeBufferSize = max(cfg.writeBufferSize, minBufferSize)
	cfg.sendLimit = DefaultSendQueueLimit
	return cfg
}

// Conn is a WebSocket connection, made by Accept or Dial.
//
// Every method is safe to call from many goroutines at once, except the
// reading ones: Read, ReadAppend and Reader (and reads from the io.Reader
// that Reader returns) must be called from one goroutine at a time. Writes
// never interleave: Write and a Writer each send whole messages, and control
// frames (pongs, pings, close) go between the frames of a message, as
// RFC 6455 §5.4 allows.
//
// Pings from the peer are answered, pongs delivered to Ping and the close
// frame handled while a read is in progress: a connection that nobody reads
// answers nothing. Call Read in a loop, or CloseRead if the application
// only writes.
type Conn struct {
	nc          net.Conn
	subprotocol string
	cfg         *connConfig // shared by the connections with the same options

	// Reading: guarded by readMu.
	readMu    semaphore
	br        *bufio.Reader // nil while no read buffer is held (before the first read, and between messages on an idle server connection)
	prefix    *prefixConn   // what br reads from if not nil (the handshake's leftovers, then nc); otherwise nc
	yield     bool          // nextMessage returns errWouldBlock when nothing is buffered
	yieldSkip bool          // except at its first header: the socket has input
	idleWait  bool          // server conns: between messages, wait for input without a read buffer (readMu held)
	client    bool          // set once, before use
	idle      *idleWaiter   // for idleWait, made at the first wait; noIdleWaiter if the conn is not a plain socket
	rd        messageState
	pending   *[]pendingMessage // read by Close, not yet by the application; nil if none
	msgSeq    uint64            // messages begun, so a stale message reader can tell
	readErr   error             // sticky: set once the read side failed
	readWait  ctxWatch

	// Writing: writeMsgMu is held for a whole message, writeFrameMu for
	// one frame, so that control frames can go between a message's frames.
	writeMsgMu   semaphore
	writeFrameMu semaphore
	wb           *writeBuf     // nil while pooled and idle, unless it holds owed bytes
	rng          *rand.ChaCha8 // masking keys (client only)
	writeErr     error
	writeWait    ctxWatch

	// Messages queued by Send, made at the first.
	sendQ atomic.Pointer[sendQueueState]

	// The server's heartbeat (AcceptOptions.Heartbeat), or nil.
	ka *keepalive

	// Pings waiting for their pong, made at the first Ping.
	pings atomic.Pointer[pingState]

	// permessage-deflate, when negotiated (nil otherwise).
	deflate *deflateState

	// A server connection borrows its buffers for each read and write
	// (pooled); one held by a Poller has its entry scheduled once the
	// connection is closed (held).
	pooled   atomic.Bool
	isClosed atomic.Bool // set as the connection closes, before closed is closed
	held     atomic.Pointer[pollEntry]

	// Closing: closeMu guards closeSent, peerClose, peerClosed and closed.
	closeMu    sync.Mutex
	peerClose  *CloseError   // the peer's close frame, once read
	peerClosed chan struct{} // closed once peerClose is set; made by the first close that waits for it
	closed     chan struct{} // closed with nc; made by closedChan, the first to wait for it
	closeOnce  sync.Once
	closeSent  bool // a close frame went out
}

// messageState is the reader's position in the current message.
type messageState struct {
	typ       MessageType // of the current message
	remaining int64       // payload bytes of the current frame not yet read
	size      int64       // payload bytes of the message so far (headers seen)
	fragments int
	inflated  int64  // bytes inflated so far
	key       uint32 // the masking key, rotated to the next byte
	utf8      utf8Validator
	inMessage bool // a data message has started and not ended
	fin       bool // the current frame is the message's last
	masked    bool

	compressed    bool // RSV1 was set: the payload is deflated
	inflating     bool // a compressed message's data is not all out yet
	inflateBroken bool // the decompressor failed; the rest cannot be inflated
}

func newConn(nc net.Conn, br *bufio.Reader, client bool, subprotocol string, cfg connConfig) *Conn {
	if br == nil {
		br = bufio.NewReaderSize(nc, cfg.readBufferSize)
	}
	c := newPooledConn(nc, nil, subprotocol, cfg)
	c.pooled.Store(false)
	c.br = br
	if client {
		c.client = true
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (crypto/rand.Read doc)
		c.rng = rand.NewChaCha8(seed)
	}
	return c
}

// newPooledConn returns a server connection that reads from src (nc, or
// nc behind the handshake's leftovers) and borrows its buffers from pools
// (see borrowReader and borrowWriteBuf): it has none of its own.
func newPooledConn(nc net.Conn, prefix *prefixConn, subprotocol string, cfg connConfig) *Conn {
	c := &Conn{
		nc:          nc,
		prefix:      prefix,
		subprotocol: subprotocol,
		cfg:         internConfig(cfg),
	}
	c.pooled.Store(true)
	c.readMu.init()
	c.writeMsgMu.init()
	c.writeFrameMu.init()
	return c
}

// Subprotocol returns the subprotocol chosen in the handshake, or "" if none.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Extensions returns the Sec-WebSocket-Extensions value the handshake
// settled on, such as "permessage-deflate; client_max_window_bits=15", or
// "" if none (the browser's WebSocket.extensions).
func (c *Conn) Extensions() string {
	if c.deflate == nil {
		return "" // permessage-deflate is the only extension there is
	}
	return c.deflate.extensions
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the peer's network address. Behind a proxy this is the
// proxy's address; read X-Forwarded-For from the request if it is trusted.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// ---------------------------------------------------------------------------
// Reading

// Read reads the next data message and returns its type and payload in a new
// slice. Control frames that arrive meanwhile are handled (see Conn).
//
// If ctx is done before the message's first frame arrives, Read returns
// ctx.Err() and the connection stays usable; if it is done halfway through a
// message, the rest of that message is discarded by the next read. Once the
// peer has closed, Read returns a CloseError; after a protocol violation, an
// error wrapping ErrProtocol or ErrMessageTooBig (the connection has then
// been failed with 1002, 1007 or 1009).
func (c *Conn) Read(ctx context.Context) (MessageType, []byte, error) {
	return c.ReadAppend(ctx, nil)
}

// ReadAppend is Read that appends the payload to dst and returns the
// extended slice, so that a caller who reuses one buffer reads without
// allocating.
func (c *Conn) ReadAppend(ctx context.Context, dst []byte) (MessageType, []byte, error) {
	if err := c.readMu.lock(ctx, nil); err != nil {
		return 0, dst, c.lockError(err)
	}
	defer c.readMu.unlock()
	c.borrowReader()
	if c.pending != nil {
		m := c.popPending()
		return m.typ, append(dst, m.data...), nil
	}
	if err := c.readWait.start(ctx, c.nc, false); err != nil {
		return 0, dst, err
	}
	typ, dst, err := c.readMessage(dst)
	if err != nil {
		return 0, dst, c.readWait.explain(ctx, err)
	}
	return typ, dst, nil
}

// readMessage reads the next data message whole, appending it to dst.
func (c *Conn) readMessage(dst []byte) (MessageType, []byte, error) {
	if err := c.nextMessage(); err != nil {
		return 0, dst, err
	}
	typ := c.rd.typ
	for {
		switch {
		case c.rd.compressed:
			// The inflated size is unknown: grow as it comes, within the
			// read limit that readData enforces.
			if cap(dst)-len(dst) < 512 {
				dst = slices.Grow(dst, min(max(4096, len(dst)), 1<<20))
			}
		case c.rd.remaining > 0:
			// Grow dst by at most what the frame still holds, in steps that
			// keep a peer from making us allocate the whole frame up front.
			dst = slices.Grow(dst, int(min(c.rd.remaining, 1<<20)))
		}
		n, err := c.readData(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return typ, dst, nil
		}
		if err != nil {
			return 0, dst, err
		}
	}
}

// pendingMessage is a message that Close read while waiting for the peer's
// close frame, kept for the application's next read.
type pendingMessage struct {
	typ  MessageType
	data []byte
}

// maxPending bounds the messages Close keeps for later reads; their bytes
// are bounded by the read limit.
const maxPending = 64

func (c *Conn) popPending() pendingMessage {
	q := *c.pending
	m := q[0]
	q[0] = pendingMessage{}
	if len(q) == 1 {
		c.pending = nil
	} else {
		*c.pending = q[1:]
	}
	return m
}

// Reader waits for the next data message and returns its type and a reader
// for its payload, which returns io.EOF at the message's end. The reader is
// valid until the next call to Read, ReadAppend or Reader; a message not read
// to its end is discarded then. ctx governs the reads from the returned
// reader as well.
func (c *Conn) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	if err := c.readMu.lock(ctx, nil); err != nil {
		return 0, nil, c.lockError(err)
	}
	defer c.readMu.unlock()
	c.borrowReader()
	if c.pending != nil {
		m := c.popPending()
		return m.typ, bytes.NewReader(m.data), nil
	}
	if err := c.readWait.start(ctx, c.nc, false); err != nil {
		return 0, nil, err
	}
	if err := c.nextMessage(); err != nil {
		return 0, nil, c.readWait.explain(ctx, err)
	}
	return c.rd.typ, &messageReader{c: c, ctx: ctx, seq: c.msgSeq}, nil
}

// messageReader streams one message's payload.
type messageReader struct {
	c    *Conn
	ctx  context.Context
	seq  uint64 // the message's number, to spot a stale reader
	done bool
}

func (r *messageReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	c := r.c
	if err := c.readMu.lock(r.ctx, nil); err != nil {
		return 0, c.lockError(err)
	}
	defer c.readMu.unlock()
	c.borrowReader()
	if c.msgSeq != r.seq {
		r.done = true
		return 0, errors.New("ws: read from a message reader after the next message was requested")
	}
	if err := c.readWait.start(r.ctx, c.nc, false); err != nil {
		return 0, err
	}
	n, err := c.readData(p)
	if err == io.EOF {
		r.done = true
	} else if err != nil {
		err = c.readWait.explain(r.ctx, err)
	}
	return n, err
}

// nextMessage skips what is left of the current message, then reads frames
// until a data message begins.
func (c *Conn) nextMessage() error {
	if c.readErr != nil {
		return c.readErr
	}
	if c.rd.inflating {
		if err := c.skipCompressed(); err != nil {
			return err
		}
	}
	for c.rd.inMessage {
		if _, err := c.readPayload(nil); err != nil && err != io.EOF {
			return err
		}
		if c.rd.inMessage && c.rd.remaining > 0 {
			if _, err := c.discardPayload(); err != nil {
				return err
			}
		}
	}
	h, err := c.readDataHeader()
	if err != nil {
		return err
	}
	if h.opcode == opContinuation {
		return c.fail(protocolErrorf("continuation frame without a message to continue"))
	}
	c.rd = messageState{inMessage: true, typ: MessageType(h.opcode), fragments: 1, compressed: h.rsv1}
	c.msgSeq++
	if err := c.beginFrame(h); err != nil {
		return err
	}
	if c.rd.compressed {
		var dict []byte
		if c.deflate.recvTakeover {
			dict = c.deflate.recvHist
		}
		c.deflate.in.start(c, dict)
		c.rd.inflating = true
	}
	return nil
}

// beginFrame takes a data frame's header as the reader's current frame.
func (c *Conn) beginFrame(h header) error {
	// Compared this way round, a length near 2⁶³ cannot overflow the sum
	// past the limit (size never exceeds the limit).
	limit := c.cfg.readLimit
	if c.rd.compressed && limit < math.MaxInt64/2 {
		// Deflate can grow incompressible data a little; the inflated size
		// is held to the limit itself in readData.
		limit += limit/16 + 1024
	}
	if h.length > limit-c.rd.size {
		total := c.rd.size + h.length
		if total < 0 {
			total = math.MaxInt64
		}
		return c.fail(tooBigError("message of %d bytes or more exceeds the read limit of %d bytes; raise %s.ReadLimit", total, c.cfg.readLimit, c.optionsName()))
	}
	c.rd.size += h.length
	c.rd.fin = h.fin
	c.rd.remaining = h.length
	c.rd.masked = h.masked
	c.rd.key = h.key
	return nil
}

// readPayload reads the current message's payload into p. It returns io.EOF
// at the message's end, reading the headers of continuation frames (and
// handling control frames) as needed. With len(p) == 0 it only advances to
// a frame with payload or to the end.
func (c *Conn) readPayload(p []byte) (int, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	for c.rd.remaining == 0 {
		if c.rd.fin {
			if c.rd.typ == MessageText && !c.rd.compressed && !c.rd.utf8.complete() {
				return 0, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "text message ends inside a UTF-8 sequence"})
			}
			c.rd.inMessage = false
			return 0, io.EOF
		}
		h, err := c.readDataHeader()
		if err != nil {
			return 0, err
		}
		if h.opcode != opContinuation {
			return 0, c.fail(protocolErrorf("%v frame inside a fragmented message: expected a continuation", h.opcode))
		}
		c.rd.fragments++
		if c.rd.fragments > c.cfg.maxFragments {
			return 0, c.fail(tooBigError("message in more than %d fragments; raise %s.MaxFragments", c.cfg.maxFragments, c.optionsName()))
		}
		if err := c.beginFrame(h); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > c.rd.remaining {
		p = p[:c.rd.remaining]
	}
	n, err := c.br.Read(p)
	c.ka.received()
	c.rd.remaining -= int64(n)
	if c.rd.masked {
		c.rd.key = mask(p[:n], c.rd.key)
	}
	if c.rd.typ == MessageText && !c.rd.compressed && !c.rd.utf8.valid(p[:n]) {
		return n, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "text message is not valid UTF-8"})
	}
	if err != nil {
		return n, c.readFailed(err)
	}
	if c.rd.remaining == 0 && c.rd.fin && !c.rd.compressed {
		// The message ends here: say so now rather than on the next call.
		if c.rd.typ == MessageText && !c.rd.utf8.complete() {
			return n, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "text message ends inside a UTF-8 sequence"})
		}
		c.rd.inMessage = false
		return n, io.EOF
	}
	return n, nil
}

// readData reads the current message's data into p: its payload, inflated
// if the message is compressed (RFC 7692 §7.2.2). It returns io.EOF at the
// message's end. Text is checked for UTF-8 after inflation, and the
// inflated size is held to the read limit, so a compression bomb is cut
// off before it is inflated in full.
func (c *Conn) readData(p []byte) (int, error) {
	if !c.rd.compressed {
		return c.readPayload(p)
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	if c.rd.inflateBroken {
		return 0, errors.New("ws: the rest of this compressed message was lost to an earlier error")
	}
	if !c.rd.inflating {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	in := &c.deflate.in
	n, err := in.fr.Read(p)
	if n > 0 {
		c.rd.inflated += int64(n)
		if c.rd.inflated > c.cfg.readLimit {
			in.release()
			return 0, c.fail(tooBigError("compressed message inflates to more than the read limit of %d bytes; raise %s.ReadLimit", c.cfg.readLimit, c.optionsName()))
		}
		if c.rd.typ == MessageText && !c.rd.utf8.valid(p[:n]) {
			in.release()
			return 0, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "text message is not valid UTF-8"})
		}
		if c.deflate.recvTakeover {
			c.deflate.recvHist = appendWindow(c.deflate.recvHist, p[:n], 1<<c.deflate.recvBits)
		}
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		in.release()
		if !in.done || in.tail != len(deflateTail) {
			return n, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "compressed data ends before the message does"})
		}
		if c.rd.typ == MessageText && !c.rd.utf8.complete() {
			return n, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "text message ends inside a UTF-8 sequence"})
		}
		c.rd.inflating = false
		return n, io.EOF
	}
	in.release()
	c.rd.inflateBroken, c.rd.inflating = true, false
	if c.readErr != nil {
		return n, c.readErr // the frame layer failed: its error says why
	}
	if isTimeout(err) {
		if c.deflate.recvTakeover {
			// The decompressor cannot resume, and with context takeover
			// every later message depends on this one's data.
			c.abort(StatusInternalError, "read interrupted inside a compressed message")
			c.readErr = fmt.Errorf("ws: a read was interrupted inside a compressed message, which context takeover cannot skip; connection closed: %w", err)
		}
		return n, err
	}
	return n, c.fail(&protocolError{code: StatusInvalidPayloadData, msg: "compressed data is corrupt: " + err.Error()})
}

// skipCompressed finishes a compressed message nobody reads to its end:
// with context takeover its data must still be inflated into the history.
func (c *Conn) skipCompressed() error {
	if !c.rd.inflateBroken && c.deflate.recvTakeover {
		var scratch [512]byte
		for {
			_, err := c.readData(scratch[:])
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	c.deflate.in.release()
	c.rd.inflating = false
	return nil
}

// abort closes the connection after a close frame with code and reason
// (cut to fit), without waiting for the peer's answer: for protocol
// violations (fail) and for failures that leave the stream unusable.
func (c *Conn) abort(code StatusCode, reason string) {
	c.closeMu.Lock()
	sent := c.closeSent
	c.closeSent = true
	c.closeMu.Unlock()
	if !sent {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if c.writeControl(ctx, opClose, appendClosePayload(nil, code, reason)) == nil {
			c.lingerClose()
		}
		cancel()
	}
	c.closeConn()
}

// optionsName names the options struct that configured c, for errors that
// tell the caller which field to change.
func (c *Conn) optionsName() string {
	if c.client {
		return "DialOptions"
	}
	return "AcceptOptions"
}

// discardPayload skips the rest of the current frame, still checking UTF-8
// so that the message is refused as it would have been if read.
func (c *Conn) discardPayload() (int64, error) {
	var scratch [512]byte
	var total int64
	for c.rd.remaining > 0 {
		n, err := c.readPayload(scratch[:min(int64(len(scratch)), c.rd.remaining)])
		total += int64(n)
		if err == io.EOF {
			break // the message ended with this frame
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// readDataHeader reads frame headers, handling any control frames, until a
// data frame's header arrives. Between messages, when c.yield is set and no
// input is buffered, it returns errWouldBlock instead of waiting.
func (c *Conn) readDataHeader() (header, error) {
	for {
		if c.yield && !c.rd.inMessage {
			if c.yieldSkip {
				c.yieldSkip = false
			} else if c.bufferedInput() == 0 {
				return header{}, errWouldBlock
			}
		} else if c.idleWait && !c.rd.inMessage && c.bufferedInput() == 0 {
			// Between messages with nothing buffered: wait for input
			// without holding the read buffer, so that an idle server
			// connection holds none. A deadline (a context's) ends the
			// wait, and the read below reports it.
			// (c.idleWait is read without readMu by serveHandler: it is
			// not written after Accept; a socket that turns out not to
			// be plain gets the noIdleWaiter mark instead.)
			if c.idle == nil {
				c.idle = noIdleWaiter
				if w := newIdleWaiter(c); w != nil {
					c.idle = w
				}
			}
			if c.idle != noIdleWaiter {
				c.releaseReader()
				c.idle.wait()
				c.borrowReader()
			}
		}
		h, err := c.readHeader()
		if err != nil {
			return h, err
		}
		if !h.opcode.isControl() {
			return h, nil
		}
		if err := c.handleControl(h); err != nil {
			return h, err
		}
	}
}

// readHeader reads and checks one frame header. It peeks before it
// consumes, so a read interrupted by a deadline leaves the stream where it
// was.
func (c *Conn) readHeader() (header, error) {
	// One Peek when the whole header is likely buffered already (the
	// common case for small messages), two otherwise.
	b, _ := c.br.Peek(min(c.br.Buffered(), 14)) // never fails: it asks for what is buffered
	var err error
	if len(b) < 2 {
		if b, err = c.br.Peek(2); err != nil {
			return header{}, c.readFailed(err)
		}
	}
	n := headerLen(b[1])
	if len(b) < n {
		if b, err = c.br.Peek(n); err != nil {
			return header{}, c.readFailed(err)
		}
	}
	h, err := parseHeader(b[:n])
	if err != nil {
		return h, c.fail(err)
	}
	if err := c.checkHeader(h); err != nil {
		return h, c.fail(err)
	}
	if h.opcode.isControl() {
		// A control frame is handled whole: wait for its payload before
		// consuming the header, so that a deadline cannot leave the
		// stream between the two. Both fit the buffer (at most 139 bytes).
		if _, err := c.br.Peek(n + int(h.length)); err != nil {
			return header{}, c.readFailed(err)
		}
	}
	_, _ = c.br.Discard(n)
	c.ka.received()
	return h, nil
}

// checkHeader applies the rules of RFC 6455 §5.2–5.5 that a header breaks
// on its own, given which side we are.
func (c *Conn) checkHeader(h header) error {
	if h.rsv2 || h.rsv3 {
		return protocolErrorf("reserved bits RSV2/RSV3 set in a %v frame header with no extension negotiated", h.opcode)
	}
	if h.rsv1 {
		switch {
		case c.deflate == nil:
			return protocolErrorf("reserved bit RSV1 set in a %v frame header with no extension negotiated", h.opcode)
		case h.opcode != opText && h.opcode != opBinary:
			// RFC 7692 §6: only a message's first frame says it is compressed.
			return protocolErrorf("RSV1 set on a %v frame; permessage-deflate allows it only on a message's first frame", h.opcode)
		}
	}
	switch h.opcode {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return protocolErrorf("%v", h.opcode)
	}
	if h.masked == c.client {
		if c.client {
			return protocolErrorf("masked frame from the server (RFC 6455 §5.1)")
		}
		return protocolErrorf("unmasked frame from the client (RFC 6455 §5.1)")
	}
	if h.opcode.isControl() {
		if h.length > maxControlPayload {
			return protocolErrorf("%v frame with %d bytes of payload; control frames carry at most 125", h.opcode, h.length)
		}
		if !h.fin {
			return protocolErrorf("fragmented %v frame; control frames cannot be fragmented", h.opcode)
		}
	}
	return nil
}

// handleControl reads a control frame's payload and acts on it.
func (c *Conn) handleControl(h header) error {
	n := int(h.length)
	b, err := c.br.Peek(n)
	if err != nil {
		return c.readFailed(err)
	}
	// The payload is unmasked where it lies, in the read buffer: it stays
	// there until the next read, and nothing below reads before it is done
	// with it (a control payload is at most 125 bytes, and a read buffer
	// at least 256).
	p := b[:n:n]
	_, _ = c.br.Discard(n)
	if h.masked {
		mask(p, h.key)
	}
	switch h.opcode {
	case opPing:
		c.closeMu.Lock()
		closing := c.closeSent
		c.closeMu.Unlock()
		if closing {
			return nil // after our close frame we send nothing more
		}
		// The pong waits for the write side, which a slow peer can hold
		// up: bound it by the read's context, so that Read still returns
		// when its context ends (the pong is then finished before the next
		// frame we write).
		ctx := c.readWait.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		if err := c.writeControl(ctx, opPong, p); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	case opPong:
		c.deliverPong(p)
	case opClose:
		ce, err := parseClosePayload(p)
		if err != nil {
			return c.fail(err)
		}
		return c.peerClosing(ce)
	}
	return nil
}

// peerClosing handles the peer's close frame: it answers with the same code
// unless we closed first, then closes the connection (RFC 6455 §5.5.1).
func (c *Conn) peerClosing(ce CloseError) error {
	c.closeMu.Lock()
	sent := c.closeSent
	c.closeMu.Unlock()
	if !sent {
		// What Send queued before the peer's close frame was read goes
		// out before the answer, as a Write before it would have (RFC
		// 6455 §5.5.1 lets an endpoint finish sending first; the peer
		// reads until our close frame). The close timeout bounds it.
		c.waitSendQueue(c.cfg.closeTimeout)
	}
	c.closeMu.Lock()
	c.peerClose = &ce
	replied := c.closeSent
	c.closeSent = true
	peerClosed := c.peerClosed
	c.closeMu.Unlock()
	if peerClosed != nil {
		close(peerClosed)
	}
	if !replied {
		code := ce.Code
		b := appendClosePayload(nil, code, "")
		_ = c.writeControl(context.Background(), opClose, b)
	}
	if c.client {
		// The server closes the TCP connection first (RFC 6455 §7.1.1),
		// which spares it the TIME_WAIT state; give it a moment to.
		c.borrowReader()
		c.readWait.stop() // a context's late deadline must not cut this short
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.closeTimeout))
		_, _ = c.br.Discard(c.br.Buffered())
		_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 1<<16))
	}
	c.closeConn()
	c.readErr = ce
	return ce
}

// fail fails the connection after a protocol violation found while reading
// (RFC 6455 §7.1.7): it sends a close frame with the violation's code,
// closes the connection and makes the error sticky.
func (c *Conn) fail(err error) error {
	var pe *protocolError
	if errors.As(err, &pe) {
		c.abort(pe.code, pe.msg)
	} else {
		c.closeConn()
	}
	c.readErr = err
	return err
}

// lingerClose lets the peer read the close frame just sent before the
// connection goes. Closing a socket with unread input makes the kernel
// send a reset, and a reset can make the peer drop the close frame still
// in its buffers (it then reports 1006 instead of the code sent). So shut
// the write side, and read and discard what the peer still sends until it
// closes too, for at most a second and 1 MiB.
func (c *Conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.readWait.stop()
	_ = c.nc.SetReadDeadline(time.Now().Add(min(time.Second, c.cfg.closeTimeout)))
	_, _ = c.br.Discard(c.br.Buffered())
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
}

// readFailed records a network error on the read side. A deadline that
// expired is not fatal: readWait.explain turns it into the context's error
// and the stream is still in step.
func (c *Conn) readFailed(err error) error {
	if isTimeout(err) {
		return err
	}
	c.closeMu.Lock()
	pc := c.peerClose
	lost := c.ka.lostErr()
	c.closeMu.Unlock()
	switch {
	case pc != nil:
		err = *pc
	case lost != nil:
		err = &abnormalClosure{lost}
	default:
		if c.isClosed.Load() {
			err = fmt.Errorf("ws: read from a closed connection: %w", net.ErrClosed)
		} else {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			err = &abnormalClosure{err}
		}
	}
	c.closeConn()
	c.readErr = err
	return err
}

// abnormalClosure is a connection lost without a close frame: it wraps the
// network error and reads as CloseError{Code: StatusAbnormalClosure} with
// errors.As, as browsers report code 1006 for it.
type abnormalClosure struct{ err error }

func (e *abnormalClosure) Error() string {
	return "ws: connection lost without a close frame (1006): " + e.err.Error()
}

func (e *abnormalClosure) Unwrap() error { return e.err }

func (e *abnormalClosure) As(target any) bool {
	if ce, ok := target.(*CloseError); ok {
		*ce = CloseError{Code: StatusAbnormalClosure}
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CloseRead starts a goroutine that reads and discards data messages, so
// that pings are answered and the peer's close frame is seen, for a
// connection the application only writes to. It returns a context that is
// done when the connection is closed. Do not call Read, ReadAppend or Reader
// after CloseRead. The goroutine ends with the connection.
func (c *Conn) CloseRead(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		for {
			_, r, err := c.Reader(ctx)
			if err != nil {
				c.CloseNow()
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				c.CloseNow()
				return
			}
		}
	}()
	return ctx
}

// ---------------------------------------------------------------------------
// Writing

// Write sends one message of the given type. It returns once the message is
// written to the network. A text message's payload must be valid UTF-8; it
// is not checked here, since the caller usually knows.
//
// If ctx is done before the message starts, Write returns ctx.Err() and
// nothing is sent. If it is done while the message is being written (a
// slow peer), Write returns ctx.Err() too, and the rest of the message is
// sent ahead of the next frame, since a frame cut short cannot be taken
// back; the connection stays usable.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	return c.writeMessage(ctx, typ, p, true)
}

// writeMessage is Write; compress false sends p as it is even when the
// connection compresses.
func (c *Conn) writeMessage(ctx context.Context, typ MessageType, p []byte, compress bool) error {
	op, err := dataOpcode(typ)
	if err != nil {
		return err
	}
	if err := c.writeMsgMu.lock(ctx, c); err != nil {
		return c.lockError(err)
	}
	defer c.writeMsgMu.unlock()
	if d := c.deflate; compress && d != nil && d.shouldCompress(len(p)) {
		bp := compressBufs.Get().(*[]byte)
		out := d.compress((*bp)[:0], p)
		_, err := c.writeFrameRSV(ctx, true, true, op, out, func() { d.commit(p) })
		if cap(out) <= 64<<10 { // a big message's buffer is left to the GC
			*bp = out[:0]
			compressBufs.Put(bp)
		}
		return err
	}
	return c.writeFrame(ctx, true, op, p)
}

func dataOpcode(typ MessageType) (opcode, error) {
	switch typ {
	case MessageText:
		return opText, nil
	case MessageBinary:
		return opBinary, nil
	}
	return 0, fmt.Errorf("ws: cannot write a message of %v: use MessageText or MessageBinary", typ)
}

// Writer returns a writer for one message of the given type, for a message
// too large to hold in memory or produced in pieces. Bytes are sent in
// frames as the write buffer fills; Close sends the last frame. Until
// Close, other messages wait (control frames still go through). ctx governs
// every write of the message.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	op, err := dataOpcode(typ)
	if err != nil {
		return nil, err
	}
	if err := c.writeMsgMu.lock(ctx, c); err != nil {
		return nil, c.lockError(err)
	}
	bp := fragmentPool(c.cfg.writeBufferSize).Get().(*[]byte)
	w := &messageWriter{c: c, ctx: ctx, op: op, buf: (*bp)[:0], bp: bp}
	if d := c.deflate; d != nil {
		// A streamed message is compressed as it comes, whatever its size:
		// the compressor's output fills the frames.
		w.fw = getWriter(d.level, d.sendBits)
		var dict []byte
		if d.sendTakeover {
			dict = d.sendHist
		}
		w.out.b = w.buf
		w.fw.ResetDict(&w.out, dict)
	}
	return w, nil
}

// messageWriter streams one message, a frame per buffer-full.
type messageWriter struct {
	c      *Conn
	ctx    context.Context
	op     opcode // of the next frame: the message's type, then continuation
	buf    []byte
	bp     *[]byte
	closed bool
	err    error

	fw  *flate.Writer // compressing, when deflate is negotiated
	out appendWriter  // the compressor's output, on buf
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("ws: write to a closed message writer")
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.fw != nil {
		return w.writeCompressed(p)
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= cap(w.buf) {
			// Nothing buffered and a buffer-full at hand: send it as is.
			if err := w.flush(p[:len(p)-len(p)%cap(w.buf)], false); err != nil {
				return n, err
			}
			k := len(p) - len(p)%cap(w.buf)
			n += k
			p = p[k:]
			continue
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		n += k
		p = p[k:]
		if len(w.buf) == cap(w.buf) && len(p) > 0 {
			if err := w.flush(w.buf, false); err != nil {
				return n, err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// writeCompressed feeds p to the compressor and sends its output a
// buffer-full at a time.
func (w *messageWriter) writeCompressed(p []byte) (int, error) {
	_, _ = w.fw.Write(p) // appendWriter never fails
	w.c.deflate.commit(p)
	if len(w.out.b) >= cap(w.buf) {
		if err := w.flush(w.out.b, false); err != nil {
			return 0, err
		}
		w.out.b = w.out.b[:0]
	}
	return len(p), nil
}

func (w *messageWriter) flush(p []byte, fin bool) error {
	if err := w.ctx.Err(); err != nil && w.op != opContinuation {
		w.err = err // nothing of the message is on the wire yet
		return err
	}
	rsv1 := w.fw != nil && w.op != opContinuation
	_, err := w.c.writeFrameRSV(w.ctx, fin, rsv1, w.op, p, nil)
	w.op = opContinuation
	if err != nil {
		// Part of the message may be on the wire, and the peer would take
		// whatever came next as its continuation: the message cannot be
		// finished, so neither can the connection.
		w.err = err
		_ = w.c.CloseNow()
	}
	return err
}

// Close sends what is buffered as the message's last frame and lets the
// next message go.
func (w *messageWriter) Close() error {
	if w.closed {
		return errors.New("ws: message writer closed twice")
	}
	w.closed = true
	err := w.err
	if w.fw != nil {
		if err == nil {
			_ = w.fw.Flush()
			err = w.flush(bytes.TrimSuffix(w.out.b, deflateTail[:4]), true)
		}
		putWriter(w.fw, w.c.deflate.level, w.c.deflate.sendBits)
		w.fw = nil
		if cap(w.out.b) <= cap(w.buf) {
			w.buf = w.out.b
		}
		w.out.b = nil
	} else if err == nil {
		err = w.flush(w.buf, true)
	}
	*w.bp = w.buf[:0]
	fragmentPool(w.c.cfg.writeBufferSize).Put(w.bp)
	w.buf, w.bp = nil, nil
	w.c.writeMsgMu.unlock()
	return err
}

var fragmentPools sync.Map // buffer size → *sync.Pool

func fragmentPool(size int) *sync.Pool {
	if p, ok := fragmentPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := fragmentPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, 0, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// writeControl sends a control frame, between the frames of a message if
// one is being written.
func (c *Conn) writeControl(ctx context.Context, op opcode, p []byte) error {
	return c.writeFrame(ctx, true, op, p)
}

// writeFrame writes one frame. Small frames go out in one write from the
// connection's buffer; a large server frame goes out as header and payload
// in one writev, without a copy; client payloads are masked through the
// buffer, never in the caller's bytes.
//
// If ctx ends (a deadline) partway through the frame, the unsent rest is
// kept and sent before any later frame, so the stream stays in step and the
// connection usable. Any other write error fails the connection.
func (c *Conn) writeFrame(ctx context.Context, fin bool, op opcode, p []byte) error {
	_, err := c.writeFrameRSV(ctx, fin, false, op, p, nil)
	return err
}

// writeFrameRSV is writeFrame with RSV1 (a compressed message's first
// frame). It reports whether the frame went out, or is owed; if so, and
// sent is not nil, it calls sent before it lets the next frame go, so that
// compression history follows the order of the wire.
func (c *Conn) writeFrameRSV(ctx context.Context, fin, rsv1 bool, op opcode, p []byte, sent func()) (bool, error) {
	if err := c.writeFrameMu.lock(ctx, c); err != nil {
		return false, c.lockError(err)
	}
	defer c.writeFrameMu.unlock()
	if c.writeErr != nil {
		return false, c.writeErr
	}
	if op != opClose {
		c.closeMu.Lock()
		sent, pc := c.closeSent, c.peerClose
		c.closeMu.Unlock()
		if pc != nil {
			// The peer's code and reason are what the caller wants to see.
			return false, fmt.Errorf("ws: cannot write: the peer closed the connection (%w): %w", *pc, net.ErrClosed)
		}
		if sent {
			return false, fmt.Errorf("ws: cannot write after the close frame: %w", net.ErrClosed)
		}
	}
	if err := c.writeWait.start(ctx, c.nc, true); err != nil {
		return false, err
	}
	if sent != nil {
		// From here on the frame is on the wire or owed.
		defer sent()
	}
	return true, c.writeFrameLocked(ctx, fin, rsv1, op, p)
}

func (c *Conn) writeFrameLocked(ctx context.Context, fin, rsv1 bool, op opcode, p []byte) error {
	c.borrowWriteBuf()
	err := c.writeFrameBuf(ctx, fin, rsv1, op, p)
	c.releaseWriteBuf()
	return err
}

func (c *Conn) writeFrameBuf(ctx context.Context, fin, rsv1 bool, op opcode, p []byte) error {
	wb := c.wb
	if len(wb.owed) > 0 {
		n, err := c.nc.Write(wb.owed)
		wb.owed = wb.owed[n:]
		if err != nil {
			return c.writeFailed(ctx, err, nil)
		}
		wb.owed = nil
	}
	h := header{fin: fin, rsv1: rsv1, opcode: op, masked: c.client, length: int64(len(p))}
	if c.client {
		h.key = uint32(c.rng.Uint64())
	}
	buf := appendHeader(wb.b[:0], h)
	switch {
	case c.client:
		key := h.key
		for {
			k := min(cap(buf)-len(buf), len(p))
			buf = append(buf, p[:k]...)
			key = mask(buf[len(buf)-k:], key)
			p = p[k:]
			n, err := c.nc.Write(buf)
			if err != nil {
				// Owe the rest of this chunk and the rest of the payload,
				// masked with the key where it left off.
				rest := append(slices.Clip(buf[n:]), p...)
				mask(rest[len(buf)-n:], key)
				return c.writeFailed(ctx, err, rest)
			}
			if len(p) == 0 {
				return nil
			}
			buf = wb.b[:0]
		}
	case len(buf)+len(p) <= cap(buf):
		buf = append(buf, p...)
		n, err := c.nc.Write(buf)
		if err != nil {
			return c.writeFailed(ctx, err, buf[n:])
		}
	default:
		wb.iov = [2][]byte{buf, p}
		wb.bufs = wb.iov[:]
		n, err := wb.bufs.WriteTo(c.nc)
		wb.iov, wb.bufs = [2][]byte{}, nil // do not keep the caller's bytes
		if err != nil {
			var rest []byte
			if n < int64(len(buf)) {
				rest = append(rest, buf[n:]...)
				n = int64(len(buf))
			}
			return c.writeFailed(ctx, err, append(rest, p[n-int64(len(buf)):]...))
		}
	}
	return nil
}

// writeFailed handles a write error partway through a frame. A deadline
// (from ctx) leaves the rest of the frame owed; anything else fails the
// connection.
func (c *Conn) writeFailed(ctx context.Context, err error, rest []byte) error {
	if isTimeout(err) {
		if len(rest) > 0 {
			wb := c.wb // writeFailed is called with the buffer borrowed
			wb.owed = append(wb.owed[:len(wb.owed):len(wb.owed)], rest...)
		}
		return c.writeWait.explain(ctx, err)
	}
	c.writeErr = fmt.Errorf("ws: write failed, connection closed: %w", err)
	c.closeConn()
	return c.writeErr
}

// ---------------------------------------------------------------------------
// Ping

// Ping sends a ping and waits for its pong, or for ctx to be done. Pongs
// arrive through reads, so another goroutine must be reading (Read, Reader
// or CloseRead) for Ping to return before ctx.
func (c *Conn) Ping(ctx context.Context) error {
	ps := c.pings.Load()
	if ps == nil {
		ps = &pingState{waiting: make(map[uint64]chan<- struct{})}
		if !c.pings.CompareAndSwap(nil, ps) {
			ps = c.pings.Load()
		}
	}
	id := ps.seq.Add(1)
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], id)
	pong := make(chan struct{}, 1)
	ps.mu.Lock()
	ps.waiting[id] = pong
	ps.mu.Unlock()
	defer func() {
		ps.mu.Lock()
		delete(ps.waiting, id)
		ps.mu.Unlock()
	}()
	if err := c.writeControl(ctx, opPing, p[:]); err != nil {
		return err
	}
	select {
	case <-pong:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ws: no pong: %w", ctx.Err())
	case <-c.closedChan():
		return fmt.Errorf("ws: connection closed while waiting for a pong: %w", net.ErrClosed)
	}
}

// pingState is the pings of a connection that wait for their pong.
type pingState struct {
	seq     atomic.Uint64
	mu      sync.Mutex
	waiting map[uint64]chan<- struct{}
}

func (c *Conn) deliverPong(p []byte) {
	ps := c.pings.Load()
	if len(p) != 8 || ps == nil {
		return // not ours: unsolicited pongs are allowed (RFC 6455 §5.5.3)
	}
	id := binary.BigEndian.Uint64(p)
	ps.mu.Lock()
	ch := ps.waiting[id]
	ps.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// ---------------------------------------------------------------------------
// Closing

// Close runs the close handshake (RFC 6455 §7): it sends a close frame with
// code and reason, waits up to the close timeout for the peer's close frame
// (reading meanwhile, unless another goroutine is reading), then closes the
// connection. Messages that arrive between the two close frames are kept
// for later calls to Read, ReadAppend or Reader (up to 64 messages and the
// read limit in bytes), so a read loop running beside Close sees them before
// the CloseError. code must be one that may be sent
// (1000–1003, 1007–1014, 3000–4999), or StatusNoStatusRcvd for a close frame
// without a code; reason at most 123 bytes of UTF-8.
//
// Close returns nil once the handshake is complete, and an error if the peer
// did not answer in time (the connection is closed all the same). On a
// connection already closing, Close waits for that close to finish (at most
// the close timeout) and returns an error wrapping net.ErrClosed.
func (c *Conn) Close(code StatusCode, reason string) error {
	if err := checkCloseArgs(code, reason); err != nil {
		return err
	}
	c.closeMu.Lock()
	already := c.closeSent
	c.closeSent = true
	c.closeMu.Unlock()
	if already {
		// Let the close under way finish rather than cut it short.
		t := time.NewTimer(c.cfg.closeTimeout)
		defer t.Stop()
		select {
		case <-c.closedChan():
		case <-t.C:
		}
		return fmt.Errorf("ws: close called on a connection already closing: %w", net.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.closeTimeout)
	defer cancel()
	var b [maxControlPayload]byte
	err := c.writeControl(ctx, opClose, appendClosePayload(b[:0], code, reason))
	if err != nil {
		c.closeConn()
		return fmt.Errorf("ws: sending the close frame: %w", err)
	}
	err = c.waitPeerClose(ctx)
	c.closeConn()
	return err
}

// waitPeerClose waits for the peer's close frame: it reads itself if no
// other goroutine is reading.
func (c *Conn) waitPeerClose(ctx context.Context) error {
	if c.readMu.tryLock() {
		// Nobody is reading now. Read until the close frame, keeping the
		// messages still in flight for a read loop that may come back for
		// them (the usual shape: a reader goroutine, and Close called from
		// another), within bounds. The rest of a message half read is
		// skipped: its reader gave up, or is cut short by Close.
		c.borrowReader()
		c.readWait.stop() // a context's late deadline must not cut this short
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.closeTimeout))
		var kept int64
		for c.readErr == nil {
			typ, p, err := c.readMessage(nil)
			if err != nil {
				break
			}
			if c.pending == nil {
				if kept+int64(len(p)) > c.cfg.readLimit {
					continue
				}
				c.pending = new([]pendingMessage)
			}
			if len(*c.pending) < maxPending && kept+int64(len(p)) <= c.cfg.readLimit {
				kept += int64(len(p))
				*c.pending = append(*c.pending, pendingMessage{typ, p})
			}
		}
		c.readMu.unlock()
	}
	// A reader elsewhere sees the close frame, or the wait ends.
	c.closeMu.Lock()
	if c.peerClose == nil && c.peerClosed == nil {
		c.peerClosed = make(chan struct{})
	}
	peerClose, peerClosed := c.peerClose, c.peerClosed
	c.closeMu.Unlock()
	if peerClose != nil {
		return nil
	}
	select {
	case <-peerClosed:
	case <-c.closedChan(): // lost: no close frame will come
	case <-ctx.Done():
	}
	c.closeMu.Lock()
	peerClose = c.peerClose
	c.closeMu.Unlock()
	if peerClose == nil {
		return errors.New("ws: the peer did not answer the close frame in time; connection closed")
	}
	return nil
}

// CloseNow closes the connection without a close handshake. Reads and writes
// in progress return errors. It is safe to call more than once.
func (c *Conn) CloseNow() error {
	c.closeMu.Lock()
	c.closeSent = true
	c.closeMu.Unlock()
	c.closeConn()
	return nil
}

func (c *Conn) closeConn() {
	c.closeOnce.Do(func() {
		_ = c.nc.Close()
		c.closeMu.Lock()
		c.isClosed.Store(true)
		ch := c.closed
		c.closed = closedDone
		c.closeMu.Unlock()
		if ch != nil {
			close(ch)
		}
		c.ka.stop()
		c.readWait.release()
		c.writeWait.release()
		if e := c.held.Load(); e != nil {
			e.schedule()
		}
	})
}

// closedChan returns a channel closed when the connection is: made by the
// first caller, for an idle connection need not hold one.
func (c *Conn) closedChan() <-chan struct{} {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed == nil {
		c.closed = make(chan struct{})
	}
	return c.closed
}

// noIdleWaiter marks a connection that cannot wait for input without a
// read buffer (its socket is not a plain one).
var noIdleWaiter = new(idleWaiter)

// closedDone is the closed channel of every closed connection.
var closedDone = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// lockError explains a failure to take a read or write lock.
func (c *Conn) lockError(err error) error {
	if errors.Is(err, net.ErrClosed) {
		c.closeMu.Lock()
		pc := c.peerClose
		c.closeMu.Unlock()
		if pc != nil {
			return *pc
		}
		return fmt.Errorf("ws: connection closed: %w", net.ErrClosed)
	}
	return err
}

// ---------------------------------------------------------------------------
// Helpers

// semaphore is a mutex whose lock can be abandoned when a context is done
// or the connection closes. Taking a free lock is one compare-and-swap, as
// with sync.Mutex; the channel only wakes waiters.
//
// The read lock passes a nil *Conn: its holder always lets go once
// the connection closes (a read on a closed net.Conn fails, Close's wait is
// bounded), so readers wait their turn rather than give up, and get the
// messages Close kept for them.
type semaphore struct {
	// state is 1 while the lock is held, plus 2 for each waiter, so that
	// unlock learns whether anyone waits from the same atomic operation
	// that frees the lock.
	state atomic.Int32
	// wake, capacity 1, is a hint to waiters to try again. It is made at
	// the first contention: most connections never need one, and an
	// idle connection's memory is what a server holds by the thousand.
	wake atomic.Pointer[chan struct{}]
}

func (s *semaphore) init() {}

// wakeChan returns the wake channel, making it if need be.
func (s *semaphore) wakeChan() chan struct{} {
	if p := s.wake.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if s.wake.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *s.wake.Load()
}

func (s *semaphore) tryLock() bool {
	for {
		v := s.state.Load()
		if v&1 != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v|1) {
			return true
		}
	}
}

// lock takes the lock, or gives up when ctx is done or, if c is not nil,
// when c is closed.
func (s *semaphore) lock(ctx context.Context, c *Conn) error {
	if s.state.CompareAndSwap(0, 1) {
		return nil
	}
	// Register before the retry, so that an unlock after it sees a waiter
	// and leaves a wake-up (no lost wake-ups: see unlock).
	s.state.Add(2)
	defer s.state.Add(-2)
	wake := s.wakeChan()
	var closed <-chan struct{} // nil: never ready
	if c != nil {
		closed = c.closedChan()
	}
	for {
		if s.tryLock() {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			// The lock may have been freed at the same moment: take it if
			// so, and let the caller see the connection's state.
			if s.tryLock() {
				return nil
			}
			return net.ErrClosed
		}
	}
}

func (s *semaphore) unlock() {
	if s.state.Add(-1) != 0 {
		select {
		case s.wakeChan() <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// aLongTimeAgo is a deadline in the past, which interrupts a blocked read
// or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// ctxWatch turns a context into a deadline on one direction of the
// connection. The registration with the context is kept while the same
// context is used for call after call, so the steady path costs no
// allocation; only a change of context registers anew.
type ctxWatch struct {
	ctx context.Context // the registered context; only the owner uses it

	// reg is made at the first registration: a connection that is only
	// ever used with contexts that cannot end (context.Background, say)
	// never has one. release puts releasedReg there if it finds none.
	reg atomic.Pointer[ctxReg]
}

// ctxReg is a ctxWatch's registration with its contexts.
type ctxReg struct {
	nc    net.Conn
	write bool // the deadline to set: the write one, or the read one

	mu       sync.Mutex
	cancel   func() bool // stops the context.AfterFunc
	gen      uint64      // registration number; a late callback of an older one does nothing
	fired    bool        // the deadline was set in the past for ctx
	released bool        // the connection is closed: register nothing more
}

// releasedReg stands for the registration of a watch released before it
// had one. Nothing changes it.
var releasedReg = &ctxReg{released: true}

func (r *ctxReg) set(t time.Time) error {
	if r.write {
		return r.nc.SetWriteDeadline(t)
	}
	return r.nc.SetReadDeadline(t)
}

// start prepares for an operation under ctx, which sets the read deadline
// of nc, or with write its write deadline. It returns ctx's error if ctx
// is already done.
func (w *ctxWatch) start(ctx context.Context, nc net.Conn, write bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil && w.ctx == nil {
		return nil
	}
	// Contexts are pointers in practice; a context of a type that cannot
	// be compared is simply registered anew each time.
	if w.ctx != nil && reflect.TypeOf(ctx).Comparable() && w.ctx == ctx {
		return nil
	}
	w.stop()
	if ctx.Done() == nil {
		return nil
	}
	r := w.reg.Load()
	if r == nil {
		r = &ctxReg{nc: nc, write: write}
		if !w.reg.CompareAndSwap(nil, r) {
			r = w.reg.Load() // released meanwhile
		}
	}
	if r == releasedReg {
		return nil // the connection is closed; the operation fails on its own
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		return nil
	}
	w.ctx = ctx
	gen := r.gen
	r.cancel = context.AfterFunc(ctx, func() { r.fire(gen) })
	return nil
}

func (r *ctxReg) fire(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		// stop ran while this callback was starting: the operation it
		// guarded is over, and the next one must not see the deadline.
		return
	}
	r.fired = true
	_ = r.set(aLongTimeAgo)
}

// stop forgets the current context, undoing its deadline if it fired.
func (w *ctxWatch) stop() {
	w.ctx = nil
	r := w.reg.Load()
	if r == nil || r == releasedReg {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	r.gen++
	if r.fired {
		r.fired = false
		_ = r.set(time.Time{})
	}
}

// release drops the registration for good when the connection closes, from
// any goroutine. Without it a long-lived context (an application's root
// context, passed to every Read) would keep every closed Conn reachable.
func (w *ctxWatch) release() {
	r := w.reg.Load()
	if r == nil {
		if w.reg.CompareAndSwap(nil, releasedReg) {
			return
		}
		r = w.reg.Load()
	}
	if r == releasedReg {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = true
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	r.gen++
}

// explain replaces a deadline error caused by ctx with ctx's error, and
// clears the deadline so the next operation can run.
func (w *ctxWatch) explain(ctx context.Context, err error) error {
	if ctx.Err() != nil && isTimeout(err) {
		w.stop()
		return ctx.Err()
	}
	return err
}
