package ws

// WebSockets over HTTP/2 (RFC 8441): the server side in acceptH2, the
// client side in HTTP2Pool. Both run the usual Conn over an h2Stream.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"time"
)

// isH2Connect reports whether r is an HTTP/2 (or later) CONNECT, the
// request of RFC 8441 §4.
func isH2Connect(r *http.Request) bool {
	return r.ProtoMajor >= 2 && r.Method == http.MethodConnect
}

// checkRequestH2 applies RFC 8441 §5 and the Origin policy to an HTTP/2
// extended CONNECT.
func checkRequestH2(r *http.Request, o *AcceptOptions) *HandshakeError {
	switch p := r.Header.Get(":protocol"); {
	case p == "":
		return &HandshakeError{http.StatusBadRequest, "an HTTP/2 CONNECT to a WebSocket endpoint needs :protocol websocket (RFC 8441)"}
	case !strings.EqualFold(p, "websocket"):
		return &HandshakeError{http.StatusBadRequest, fmt.Sprintf("HTTP/2 CONNECT with :protocol %q; this endpoint speaks websocket", p)}
	}
	switch v := r.Header[hdrVersion]; {
	case len(v) == 0:
		return &HandshakeError{http.StatusUpgradeRequired, "missing Sec-WebSocket-Version header; this server speaks version 13"}
	case len(v) > 1 || strings.TrimSpace(v[0]) != "13":
		return &HandshakeError{http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q; this server speaks version 13", strings.Join(v, ", "))}
	}
	if !o.InsecureSkipOriginCheck {
		if err := checkOrigin(r, o.OriginPatterns); err != nil {
			return err
		}
	}
	return nil
}

// acceptH2 answers an extended CONNECT with 200 and runs the connection on
// the stream: the request body and the ResponseWriter, flushed after each
// write. Nothing is hijacked, so the handler must stay in ServeHTTP until
// the connection is closed.
func acceptH2(w http.ResponseWriter, r *http.Request, o *AcceptOptions) (*Conn, error) {
	if herr := checkRequestH2(r, o); herr != nil {
		if herr.Status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, herr.Message, herr.Status)
		return nil, herr
	}
	subprotocol := selectSubprotocol(r, o.Subprotocols)
	deflate, compress := acceptDeflate(r.Header, o.Compression)

	rc := http.NewResponseController(w)
	// http.Server's ReadTimeout and WriteTimeout would reset the stream;
	// the connection's life is the application's now.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	if subprotocol != "" {
		h.Set("Sec-WebSocket-Protocol", subprotocol)
	}
	if compress {
		h.Set("Sec-WebSocket-Extensions", deflate.String())
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("ws: writing the HTTP/2 handshake response: %w", err)
	}

	cfg := newConnConfig(o.ReadLimit, o.MaxFragments, o.CloseTimeout, o.ReadBufferSize, o.WriteBufferSize)
	if o.SendQueueLimit > 0 {
		cfg.sendLimit = o.SendQueueLimit
	}
	cfg.sendPolicy = o.SendQueueFull
	var laddr net.Addr = h2Addr("")
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		laddr = a
	}
	stop := func(abort bool) {
		if !abort {
			return // the handler's return ends the stream
		}
		// A write blocked on flow control: a deadline in the past resets
		// the stream, which ends the write. (It panics if the handler has
		// returned already; then there is nothing left to reset.)
		defer func() { _ = recover() }()
		_ = rc.SetWriteDeadline(aLongTimeAgo)
	}
	s := newH2Stream(r.Body, w, rc.Flush, stop, laddr, h2Addr(r.RemoteAddr), cfg.readBufferSize)
	c := newConn(s, nil, false, subprotocol, cfg)
	c.pooled.Store(true)
	if compress {
		c.deflate = newDeflateState(deflate, false, o.Compression)
		c.deflate.extensions = deflate.String()
	}
	c.startKeepalive(o.Heartbeat)
	return c, nil
}

// HTTP2Pool holds the HTTP/2 connections that Dial runs WebSockets over
// (RFC 8441), so that many WebSockets to one server share one TCP and TLS
// connection, as a browser's do. Set it in DialOptions.HTTP2 and share it
// between dials; the zero value is ready to use.
//
// A wss:// dial with a pool offers h2 in TLS ALPN, then sends an extended
// CONNECT on a pooled connection to that host and port, or on a new one.
// It falls back to HTTP/1.1 when the server does not speak HTTP/2 (the
// new connection then carries the HTTP/1.1 handshake), when the server's
// SETTINGS do not enable extended CONNECT, or when the server answers the
// CONNECT with 400, 405, 426 or 501 (a server that knows RFC 8441 but not
// on this endpoint); the HTTP/1.1 dial uses a connection of its own. ws://
// URLs always use HTTP/1.1.
//
// The connection is made with the first dial's TLSConfig, NetDialContext
// and Proxy; dials that need other settings need a pool of their own.
// HTTP/2 flow control applies per stream: a WebSocket whose reader falls
// behind holds up its own stream once the window (4 MiB from the server)
// is full, not its neighbours. Each stream costs the client two goroutines
// and a read buffer of its own, plus net/http's send buffer of the
// server's largest frame size, at most 512 KiB (a Go server advertises
// 1 MiB unless its HTTP2Config.MaxReadFrameSize is lower: 16 KiB suits
// WebSockets). The pool uses net/http's HTTP/2
// implementation; the GODEBUG setting http2client=0 turns it off, and
// every dial then uses HTTP/1.1.
//
// Its methods are safe for concurrent use.
type HTTP2Pool struct {
	// IdleTimeout closes a pooled connection that has carried no stream
	// for this long. Zero means 90 seconds.
	IdleTimeout time.Duration

	once    sync.Once
	t1      *http.Transport // only its HTTP/2 half is used: it holds the connections
	upgrade func(authority string, c *tls.Conn) http.RoundTripper

	mu      sync.Mutex
	rt      http.RoundTripper        // the HTTP/2 half, once a connection was made
	dialing map[string]chan struct{} // authority → closed when its dial is done
}

func (p *HTTP2Pool) init() {
	p.once.Do(func() {
		idle := p.IdleTimeout
		if idle == 0 {
			idle = 90 * time.Second
		}
		p.t1 = &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true, IdleConnTimeout: idle}
		// This sets up the Transport's HTTP/2 half; TLSNextProto["h2"] then
		// takes a connection that negotiated h2 and returns the
		// RoundTripper that serves requests on it (its documented use).
		p.t1.CloseIdleConnections()
		p.upgrade = p.t1.TLSNextProto["h2"]
	})
}

// CloseIdleConnections closes the pooled connections that carry no
// WebSocket. Connections in use stay open.
func (p *HTTP2Pool) CloseIdleConnections() {
	p.init()
	p.t1.CloseIdleConnections()
}

// errUseHTTP1 says the server does not take WebSockets over HTTP/2.
var errUseHTTP1 = errors.New("ws: the server does not take WebSockets over HTTP/2")

// isNoExtendedConnect reports net/http's refusal to send an extended
// CONNECT to a server whose SETTINGS do not enable it. It has no exported
// error: its text is matched.
func isNoExtendedConnect(err error) bool {
	return err != nil && strings.Contains(err.Error(), "extended connect not supported by peer")
}

// isNoCachedConn reports that the pool has no HTTP/2 connection to the
// request's host able to take a stream (net/http's ErrNoCachedConn, which
// net/http itself detects by this method).
func isNoCachedConn(err error) bool {
	var e interface{ IsHTTP2NoCachedConnError() }
	return errors.As(err, &e)
}

// fallbackStatus reports whether a refused extended CONNECT should be
// tried again over HTTP/1.1: these are the answers of a server that speaks
// HTTP/2 but does not take WebSockets over it on this endpoint.
func fallbackStatus(code int) bool {
	switch code {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUpgradeRequired, http.StatusNotImplemented:
		return true
	}
	return false
}

// dial opens a WebSocket on an HTTP/2 stream. It returns errUseHTTP1
// (wrapped) when the caller should dial over HTTP/1.1 instead.
func (p *HTTP2Pool) dial(ctx context.Context, u *url.URL, o *DialOptions) (*Conn, *http.Response, error) {
	p.init()
	if p.upgrade == nil {
		return nil, nil, errUseHTTP1
	}
	key := hostPort(u, true)
	for {
		p.mu.Lock()
		rt := p.rt
		p.mu.Unlock()
		if rt != nil {
			c, resp, err := p.connect(ctx, rt, u, o)
			if !isNoCachedConn(err) {
				return c, resp, err
			}
		}
		// No connection can take the stream: make one, one dial per host
		// at a time, so that dials that start together share it.
		p.mu.Lock()
		wait, busy := p.dialing[key]
		if !busy {
			if p.dialing == nil {
				p.dialing = make(map[string]chan struct{})
			}
			p.dialing[key] = make(chan struct{})
		}
		p.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("ws: dial %s: %w", u.Redacted(), context.Cause(ctx))
			}
		}
		c, resp, retry, err := p.dialConn(ctx, u, o)
		p.mu.Lock()
		close(p.dialing[key])
		delete(p.dialing, key)
		p.mu.Unlock()
		if !retry {
			return c, resp, err
		}
	}
}

// dialConn makes a new connection for the pool. If the server chose
// HTTP/1.1 in ALPN, it runs the HTTP/1.1 handshake on it and returns its
// result; if it chose h2, it returns retry, and the connection is pooled.
func (p *HTTP2Pool) dialConn(ctx context.Context, u *url.URL, o *DialOptions) (c *Conn, resp *http.Response, retry bool, err error) {
	nc, err := dialTransport(ctx, u, true, o, []string{"h2", "http/1.1"})
	if err != nil {
		return nil, nil, false, err
	}
	tc, ok := nc.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
		c, resp, err := handshakeOn(ctx, nc, u, o)
		return c, resp, false, err
	}
	// The stream's pooled connection lives beyond this dial's context:
	// the HTTP/2 half of the Transport owns it now.
	rt := p.upgrade(u.Host, tc)
	p.mu.Lock()
	p.rt = rt
	p.mu.Unlock()
	return nil, nil, true, nil
}

// connect sends the extended CONNECT of RFC 8441 §4 through rt and checks
// the answer.
func (p *HTTP2Pool) connect(ctx context.Context, rt http.RoundTripper, u *url.URL, o *DialOptions) (*Conn, *http.Response, error) {
	header, host, offer := requestHeader(u, o)
	header.Set(":protocol", "websocket")
	header.Set("Sec-WebSocket-Version", "13")

	// The stream lives as long as its request's context: make one that
	// outlives ctx, and let ctx cancel it only until the handshake is done.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var laddr, raddr net.Addr = h2Addr(""), h2Addr("")
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		laddr, raddr = ci.Conn.LocalAddr(), ci.Conn.RemoteAddr()
	}}
	pr, pw := io.Pipe()
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Scheme: "https", Host: u.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Header:        header,
		Host:          host,
		Body:          pr,
		ContentLength: -1,
	}).WithContext(httptrace.WithClientTrace(streamCtx, trace))
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	stopWatch := context.AfterFunc(ctx, cancel)
	resp, err := rt.RoundTrip(req)
	fail := func() {
		cancel()
		_ = pw.Close()
		if resp != nil {
			_ = resp.Body.Close()
		}
	}
	if !stopWatch() {
		fail()
		return nil, nil, fmt.Errorf("ws: dial %s: handshake: %w", u.Redacted(), context.Cause(ctx))
	}
	switch {
	case isNoCachedConn(err):
		fail()
		return nil, nil, err
	case isNoExtendedConnect(err):
		fail()
		return nil, nil, fmt.Errorf("%w: its HTTP/2 SETTINGS do not enable extended CONNECT (RFC 8441)", errUseHTTP1)
	case err != nil:
		fail()
		return nil, nil, fmt.Errorf("ws: dial %s over HTTP/2: %w", u.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		fail()
		if fallbackStatus(resp.StatusCode) {
			return nil, resp, fmt.Errorf("%w: it answered the extended CONNECT with %s", errUseHTTP1, resp.Status)
		}
		return nil, resp, &DialError{StatusCode: resp.StatusCode, Header: resp.Header, Body: body,
			Reason: fmt.Sprintf("server answered the HTTP/2 extended CONNECT with %s instead of 200", resp.Status)}
	}
	params, derr := checkNegotiation(resp, o.Subprotocols, offer)
	if derr != nil {
		fail()
		return nil, resp, derr
	}
	cfg := newConnConfig(o.ReadLimit, o.MaxFragments, o.CloseTimeout, o.ReadBufferSize, o.WriteBufferSize)
	stop := func(abort bool) {
		if abort {
			cancel() // resets the stream
			_ = pw.CloseWithError(net.ErrClosed)
			return
		}
		_ = pw.Close() // END_STREAM
	}
	body := &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	s := newH2Stream(body, pw, nil, stop, laddr, raddr, cfg.readBufferSize)
	c := newConn(s, nil, true, resp.Header.Get("Sec-WebSocket-Protocol"), cfg)
	if params != nil {
		c.deflate = newDeflateState(*params, true, o.Compression)
		c.deflate.extensions = strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	}
	return c, resp, nil
}

// cancelBody is a response body whose Close also ends its request's
// context.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
