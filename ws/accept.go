package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// AcceptOptions configures Accept. A nil *AcceptOptions is the zero value,
// and Accept never changes the caller's struct.
type AcceptOptions struct {
	// Subprotocols lists the subprotocols the server speaks, most preferred
	// first. The first one the client also offers is chosen; if none is, the
	// handshake succeeds with no subprotocol and the application decides
	// (Conn.Subprotocol returns ""). Empty: no subprotocol is ever chosen.
	Subprotocols []string

	// OriginPatterns lists the browser Origins allowed besides the
	// request's own host, as path.Match patterns matched against the
	// Origin's host ("example.com", "*.example.com", "localhost:*"), or
	// against scheme and host when the pattern has "://"
	// ("https://*.example.com"). Matching ignores case.
	//
	// A request without an Origin header (a non-browser client) is always
	// allowed; a browser Origin that matches neither the host nor a pattern
	// gets 403 Forbidden. Allowing any Origin lets any web page use its
	// visitors' cookies to talk to the server (cross-site WebSocket
	// hijacking): see InsecureSkipOriginCheck.
	OriginPatterns []string

	// InsecureSkipOriginCheck allows every Origin. Only for servers that
	// authenticate each connection by other means than cookies or HTTP
	// auth, such as a token in the first message.
	InsecureSkipOriginCheck bool

	// Compression accepts permessage-deflate (RFC 7692) offers with these
	// settings; nil declines them. See Compression for the memory each
	// compressed connection costs.
	Compression *Compression

	// HandshakeTimeout bounds the writing of the handshake response.
	// Zero means 10 seconds. The request itself is read by net/http: set
	// http.Server.ReadHeaderTimeout against slow clients.
	HandshakeTimeout time.Duration

	// ReadLimit is the largest message, in bytes, the connection accepts;
	// a larger one fails the connection with 1009 Message Too Big before
	// its payload is read. Zero means DefaultReadLimit (1 MiB). Negative
	// means no limit: only for peers you trust.
	ReadLimit int64

	// MaxFragments is the most frames one message may arrive in; more fail
	// the connection with 1009. Zero means one per 32 bytes of ReadLimit,
	// at least 1,024 (32,768 for the default ReadLimit); negative means no
	// limit.
	MaxFragments int

	// CloseTimeout bounds Close's wait for the peer's close frame. Zero
	// means DefaultCloseTimeout (5 seconds).
	CloseTimeout time.Duration

	// ReadBufferSize and WriteBufferSize size the connection's buffers, in
	// bytes. Zero means DefaultBufferSize (4 KiB); at least 256 is used.
	// Larger buffers mean fewer system calls for large messages and more
	// memory per connection.
	ReadBufferSize, WriteBufferSize int

	// SendQueueLimit bounds the bytes Conn.Send and Conn.SendPrepared hold
	// queued for one connection; a message that finds the queue empty is
	// taken whatever its size. Zero means DefaultSendQueueLimit (4 MiB).
	SendQueueLimit int
	// SendQueueFull is what a Send over the limit does; the zero value
	// closes the connection with 1013 Try Again Later.
	SendQueueFull SendQueuePolicy

	// Heartbeat, if not nil, finds peers that are gone without a word
	// (a half-open connection: the client's machine lost power, a NAT or
	// a proxy forgot the flow), which TCP alone notices only after many
	// minutes, if at all. When nothing has arrived from the peer for
	// Heartbeat.Interval the server pings it; if still nothing arrives
	// within Heartbeat.Timeout, or the ping cannot even be written in
	// that time (the peer reads nothing), the connection is closed
	// without a close frame: reads return an error that wraps ErrNoPong
	// and reads as CloseError{Code: StatusAbnormalClosure} (1006). Any
	// frame from the peer counts, so a busy connection is never pinged,
	// and a connection waiting in a Poller stays without a goroutine or a
	// timer (the connections with the same Heartbeat durations share one
	// timer). A dead peer is noticed within Interval + Timeout of its last
	// frame (twice Interval + Timeout if it last sent a ping that could
	// not be answered), plus the shared timer's granularity: an eighth of
	// the shorter of the two (at least a millisecond) per wait, three
	// eighths at most. Nil means no heartbeat, as in
	// the browser's API and other libraries: the application pings, or
	// the connection lives until TCP gives up.
	Heartbeat *Heartbeat
}

// HandshakeError is a handshake refused because the request is not a valid
// WebSocket upgrade (RFC 6455 §4.2.1) or comes from a refused Origin. Accept
// has already answered with Status and the message as the body.
type HandshakeError struct {
	Status  int    // the HTTP status written: 400, 403, 405 or 426
	Message string // what was wrong, and what to do
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("ws: handshake refused with %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Accept completes the server side of the WebSocket handshake on any
// net/http server and returns the connection. On failure it has already
// written the HTTP error (400 with the reason, 403 for a refused Origin, 405
// for a method other than GET, 426 for a missing upgrade or an unsupported
// version) and returns a *HandshakeError, or the error that stopped the
// hijack.
//
// Over HTTP/1.1 the connection outlives the handler's http.ResponseWriter:
// Accept takes the connection from net/http and keeps none of its buffers.
// The request context ends when the handler returns; pass a context of
// your own to the connection's methods if the connection is handed to
// another goroutine.
//
// Over HTTP/2, Accept takes the extended CONNECT of RFC 8441 (:protocol
// websocket), answers 200 and runs the connection on the request's stream,
// which net/http does not let go: the connection lives on the handler's
// ResponseWriter and request body, and the handler must not return before
// the connection is closed (Close or CloseNow; Server waits by itself).
// Every Conn feature works the same way over a stream; the Poller cannot
// hold one (a Server serves it in the portable mode). net/http enables
// extended CONNECT only with GODEBUG=http2xconnect=1 in the environment at
// process start (see the package documentation); without it, browsers use
// HTTP/1.1 for WebSockets.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &noAcceptOptions
	}
	if err := opts.validate(); err != nil {
		http.Error(w, "WebSocket endpoint misconfigured", http.StatusInternalServerError)
		return nil, err
	}
	if isH2Connect(r) {
		return acceptH2(w, r, opts)
	}
	if herr := checkRequest(r, opts); herr != nil {
		refuse(w, herr)
		return nil, herr
	}
	subprotocol := selectSubprotocol(r, opts.Subprotocols)
	deflate, compress := acceptDeflate(r.Header, opts.Compression)
	return upgrade(w, r, opts, subprotocol, deflate, compress)
}

// noAcceptOptions is what a nil *AcceptOptions means.
var noAcceptOptions AcceptOptions

// validate says what in o cannot work, if anything.
//
//go:noinline
func (o *AcceptOptions) validate() error {
	for i, p := range o.OriginPatterns {
		// A malformed pattern would silently match nothing and refuse
		// every browser: say so instead.
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("ws: AcceptOptions.OriginPatterns[%d] %q is not a valid path.Match pattern: %w", i, p, err)
		}
	}
	if err := o.Compression.check(); err != nil {
		return fmt.Errorf("%w (in AcceptOptions.Compression)", err)
	}
	return nil
}

// refuse answers a refused handshake with herr's status and message, and
// the headers RFC 6455 and RFC 9110 ask for with it.
//
//go:noinline
func refuse(w http.ResponseWriter, herr *HandshakeError) {
	h := w.Header()
	if herr.Status == http.StatusUpgradeRequired {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		h.Set(hdrVersion, "13")
	}
	if herr.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", "GET")
	}
	http.Error(w, herr.Message, herr.Status)
}

// upgrade takes the connection from net/http, answers 101 and returns the
// Conn. It is Accept's part that runs under net/http's Hijack, kept apart
// with a small stack frame: net/http's goroutine has a small stack there,
// and growing it (a copy of the whole stack) is a measurable part of a
// handshake.
func upgrade(w http.ResponseWriter, r *http.Request, o *AcceptOptions, subprotocol string, deflate deflateParams, compress bool) (*Conn, error) {
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, hijackFailed(w, err)
	}
	// net/http clears its deadlines when it lets the connection go; other
	// http.Hijacker implementations may not. The connection's life is
	// ours now.
	_ = nc.SetDeadline(time.Time{})

	// Frames the client sent right behind its request may sit in
	// net/http's buffer. Move them out, so that nothing of ours refers to
	// net/http's buffers. The connection makes no read buffer of its own:
	// it borrows one from a pool when it reads (see borrowReader).
	var prefix *prefixConn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		prefix = &prefixConn{Conn: nc, prefix: append([]byte(nil), early...)}
	}
	return newServerConn(nc, prefix, r.Header, o, subprotocol, deflate, compress)
}

// newServerConn answers 101 on nc, a connection whose handshake request,
// with headers h, has been read and accepted, and returns its Conn. prefix,
// if not nil, holds input that arrived behind the request. On failure nc is
// closed.
func newServerConn(nc net.Conn, prefix *prefixConn, h http.Header, o *AcceptOptions, subprotocol string, deflate deflateParams, compress bool) (*Conn, error) {
	cfg := newConnConfig(o.ReadLimit, o.MaxFragments, o.CloseTimeout, o.ReadBufferSize, o.WriteBufferSize)
	if o.SendQueueLimit > 0 {
		cfg.sendLimit = o.SendQueueLimit
	}
	cfg.sendPolicy = o.SendQueueFull
	if err := writeUpgradeResponse(nc, h, o.HandshakeTimeout, cfg.writeBufferSize, subprotocol, deflate, compress); err != nil {
		_ = nc.Close()
		return nil, err
	}

	// An idle server connection holds no buffer: its read buffer is
	// borrowed while it reads and given back while it waits between
	// messages, its write buffer after each frame (both from pools sized
	// by the options).
	c := newPooledConn(nc, prefix, subprotocol, cfg) // reads go through prefix, if any; writes straight to nc (writev needs the real TCPConn)
	c.idleWait = true
	if compress {
		c.deflate = newDeflateState(deflate, false, o.Compression)
		c.deflate.extensions = deflate.String()
	}
	c.startKeepalive(o.Heartbeat)
	return c, nil
}

// hijackFailed answers a request whose connection net/http would not
// give up, and says why.
//
//go:noinline
func hijackFailed(w http.ResponseWriter, err error) error {
	err = fmt.Errorf("ws: cannot take over the connection from net/http (HTTP/2 and some middleware cannot be hijacked): %w", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
	return err
}

// writeUpgradeResponse writes the 101 answer to a handshake whose request
// headers are h, within timeout (zero: 10 seconds). The answer is made in
// a write buffer borrowed for the purpose.
func writeUpgradeResponse(nc net.Conn, h http.Header, timeout time.Duration, bufSize int, subprotocol string, deflate deflateParams, compress bool) error {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	wb := writeBufPool(bufSize).Get().(*writeBuf)
	resp := append(wb.b[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = appendAcceptKey(resp, headerFirst(h, hdrKey))
	if subprotocol != "" {
		resp = append(resp, "\r\nSec-WebSocket-Protocol: "...)
		resp = append(resp, subprotocol...)
	}
	if compress {
		resp = append(resp, "\r\nSec-WebSocket-Extensions: "...)
		resp = append(resp, deflate.String()...)
	}
	resp = append(resp, "\r\n\r\n"...)
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := nc.Write(resp)
	writeBufPool(bufSize).Put(wb) // resp is in wb.b, or in memory of its own if it outgrew it
	if err != nil {
		return fmt.Errorf("ws: writing the handshake response: %w", err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nil
}

// The request headers a server reads, spelled as net/http stores them
// (http.CanonicalHeaderKey): indexing the map with them directly costs no
// canonicalization, which allocates for the usual spelling
// "Sec-WebSocket-Key".
const (
	hdrKey        = "Sec-Websocket-Key"
	hdrVersion    = "Sec-Websocket-Version"
	hdrProtocol   = "Sec-Websocket-Protocol"
	hdrExtensions = "Sec-Websocket-Extensions"
)

// headerFirst is h.Get(key) for a key already in canonical form.
func headerFirst(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// checkRequest applies RFC 6455 §4.2.1 and the Origin policy.
func checkRequest(r *http.Request, o *AcceptOptions) *HandshakeError {
	if r.Method != http.MethodGet {
		return &HandshakeError{http.StatusMethodNotAllowed, fmt.Sprintf("a WebSocket handshake is a GET request, not %s", r.Method)}
	}
	if !r.ProtoAtLeast(1, 1) {
		return &HandshakeError{http.StatusBadRequest, fmt.Sprintf("a WebSocket handshake needs HTTP/1.1 or later, not %s", r.Proto)}
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return &HandshakeError{http.StatusUpgradeRequired, `this is a WebSocket endpoint: the request needs "Upgrade: websocket"`}
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return &HandshakeError{http.StatusUpgradeRequired, `this is a WebSocket endpoint: the request needs "Connection: Upgrade"`}
	}
	switch v := r.Header[hdrVersion]; {
	case len(v) == 0:
		return &HandshakeError{http.StatusUpgradeRequired, "missing Sec-WebSocket-Version header; this server speaks version 13"}
	case len(v) > 1 || strings.TrimSpace(v[0]) != "13":
		return &HandshakeError{http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q; this server speaks version 13", strings.Join(v, ", "))}
	}
	keys := r.Header[hdrKey]
	switch {
	case len(keys) == 0:
		return &HandshakeError{http.StatusBadRequest, "missing Sec-WebSocket-Key header"}
	case len(keys) > 1:
		return &HandshakeError{http.StatusBadRequest, "more than one Sec-WebSocket-Key header"}
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return &HandshakeError{http.StatusBadRequest, fmt.Sprintf("Sec-WebSocket-Key %q is not 16 bytes in base64", keys[0])}
	}
	if !o.InsecureSkipOriginCheck {
		if err := checkOrigin(r, o.OriginPatterns); err != nil {
			return err
		}
	}
	return nil
}

// CheckOrigin applies Accept's Origin rule to r, for endpoints beside a
// WebSocket (a long-polling transport, a form) that should admit the same
// browsers: a request without an Origin header is allowed (it is not from
// a browser page), as is one from r's own host, or one whose origin
// matches one of patterns (the syntax of AcceptOptions.OriginPatterns).
// Otherwise it returns a *HandshakeError with status 403 that says which
// origin was refused and how to allow it.
func CheckOrigin(r *http.Request, patterns []string) error {
	if err := checkOrigin(r, patterns); err != nil {
		return err
	}
	return nil
}

// checkOrigin allows a request without Origin, one from its own host, and
// one that matches a pattern.
func checkOrigin(r *http.Request, patterns []string) *HandshakeError {
	origin := headerFirst(r.Header, "Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		if matchOrigin(patterns, strings.ToLower(origin), "") {
			return nil
		}
		return &HandshakeError{http.StatusForbidden, fmt.Sprintf("Origin %q is not allowed; add it to OriginPatterns", origin)}
	}
	host := strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) {
		return nil
	}
	if matchOrigin(patterns, host, strings.ToLower(u.Scheme)+"://"+host) {
		return nil
	}
	return &HandshakeError{http.StatusForbidden, fmt.Sprintf("Origin %q is not allowed for host %q; add it to OriginPatterns", origin, r.Host)}
}

func matchOrigin(patterns []string, host, full string) bool {
	for _, p := range patterns {
		p = strings.ToLower(p)
		target := host
		if strings.Contains(p, "://") {
			target = full
		}
		if ok, err := path.Match(p, target); ok && err == nil {
			return true
		}
	}
	return false
}

// selectSubprotocol picks the server's most preferred subprotocol among
// those the client offers.
func selectSubprotocol(r *http.Request, supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	offered := headerTokens(r.Header, hdrProtocol)
	for _, s := range supported {
		for _, o := range offered {
			if o == s { // subprotocol names are case-sensitive (RFC 6455 §11.5)
				return s
			}
		}
	}
	return ""
}

// headerTokens returns the comma-separated tokens of every h[name] line.
func headerTokens(h http.Header, name string) []string {
	var tokens []string
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tokens = append(tokens, t)
			}
		}
	}
	return tokens
}

// headerHasToken reports whether a comma-separated header holds token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// keyGUID is the GUID of RFC 6455 §1.3.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	return string(appendAcceptKey(nil, key))
}

// appendAcceptKey appends Sec-WebSocket-Accept for a Sec-WebSocket-Key to
// dst. A valid key (24 characters) is hashed without an allocation.
func appendAcceptKey(dst []byte, key string) []byte {
	key = strings.TrimSpace(key)
	var buf [24 + len(keyGUID)]byte
	in := buf[:0]
	if len(key)+len(keyGUID) > len(buf) {
		in = make([]byte, 0, len(key)+len(keyGUID))
	}
	in = append(append(in, key...), keyGUID...)
	sum := sha1.Sum(in)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// prefixConn serves bytes read ahead by net/http before the connection's.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}
