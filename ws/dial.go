package ws

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DialOptions configures Dial. A nil *DialOptions is the zero value, and
// Dial never changes the caller's struct.
type DialOptions struct {
	// Header holds extra request headers, such as Origin, Cookie or
	// Authorization. The handshake's own headers (Upgrade, Connection,
	// Sec-WebSocket-*) cannot be overridden; Host can.
	Header http.Header

	// Subprotocols lists the subprotocols to offer, most preferred first.
	Subprotocols []string

	// Compression offers permessage-deflate (RFC 7692) with these
	// settings; nil offers nothing. Conn.Extensions tells whether the
	// server accepted.
	Compression *Compression

	// NetDialContext dials the TCP connection (to the proxy, if one is
	// used). Nil means a net.Dialer with a 30-second keep-alive.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSConfig is used for wss:// (and https:// proxies). Nil means the
	// defaults of crypto/tls; ServerName defaults to the URL's host, and
	// NextProtos is set to http/1.1.
	TLSConfig *tls.Config

	// Proxy returns the HTTP proxy for a request, or nil for none. Nil
	// means http.ProxyFromEnvironment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY;
	// ws:// counts as http, wss:// as https). The connection goes through
	// the proxy with an HTTP CONNECT request.
	Proxy func(*http.Request) (*url.URL, error)

	// HandshakeTimeout bounds the whole handshake (dial, proxy, TLS and
	// HTTP) when ctx has no earlier deadline. Zero means 30 seconds.
	HandshakeTimeout time.Duration

	// HTTP2, if not nil, runs wss:// dials over HTTP/2 streams (RFC 8441)
	// on the pool's connections, many WebSockets to a host sharing one,
	// and falls back to HTTP/1.1 when the server does not take them (see
	// HTTP2Pool). Nil means HTTP/1.1, a connection per WebSocket.
	HTTP2 *HTTP2Pool

	// ReadLimit, MaxFragments, CloseTimeout, ReadBufferSize and
	// WriteBufferSize are as in AcceptOptions.
	ReadLimit                       int64
	MaxFragments                    int
	CloseTimeout                    time.Duration
	ReadBufferSize, WriteBufferSize int
}

// DialError is a handshake the server refused or answered wrongly. It
// carries the HTTP status and the start of the response body, which is
// where servers say why.
type DialError struct {
	StatusCode int         // the response's status; 101 if the upgrade was malformed
	Header     http.Header // the response's headers
	Body       []byte      // up to 1 KiB of the response body
	Reason     string      // what was wrong with the response
}

func (e *DialError) Error() string {
	msg := fmt.Sprintf("ws: handshake failed: %s", e.Reason)
	if body := strings.TrimSpace(string(e.Body)); body != "" {
		msg += ": " + body
	}
	return msg
}

// Dial opens a WebSocket connection to a ws:// or wss:// URL (http:// and
// https:// are taken as the same). The handshake must finish before ctx is
// done; ctx does not govern the connection after Dial returns.
//
// The response is returned whenever the server answered, also with an
// error, which is then a *DialError for a refused or malformed handshake.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if err := o.Compression.check(); err != nil {
		return nil, nil, fmt.Errorf("%w (in DialOptions.Compression)", err)
	}
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	if o.NetDialContext == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		o.NetDialContext = d.DialContext
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("ws: dial: %w", err)
	}
	secure := false
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		secure = true
	default:
		return nil, nil, fmt.Errorf("ws: dial %q: the scheme must be ws or wss", rawURL)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("ws: dial %q: no host", rawURL)
	}
	for _, p := range o.Subprotocols {
		if p == "" || strings.ContainsAny(p, ", \t\r\n") {
			return nil, nil, fmt.Errorf("ws: dial: subprotocol %q is not a valid token", p)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, o.HandshakeTimeout)
	defer cancel()

	if o.HTTP2 != nil && secure {
		c, resp, err := o.HTTP2.dial(ctx, u, &o)
		if !errors.Is(err, errUseHTTP1) {
			return c, resp, err
		}
	}
	nc, err := dialTransport(ctx, u, secure, &o, []string{"http/1.1"})
	if err != nil {
		return nil, nil, err
	}
	return handshakeOn(ctx, nc, u, &o)
}

// handshakeOn runs the HTTP/1.1 handshake on nc, bounded by ctx, and
// closes nc if it fails.
func handshakeOn(ctx context.Context, nc net.Conn, u *url.URL, o *DialOptions) (*Conn, *http.Response, error) {
	// Bound every read and write of the handshake by ctx.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	c, resp, err := handshake(ctx, nc, u, o)
	if !stop() || err != nil {
		_ = nc.Close()
		// A deadline error here is ours, set when ctx ended: report ctx's
		// cause instead (unless the deadline came from elsewhere).
		if cause := context.Cause(ctx); cause != nil && (err == nil || isTimeout(err)) {
			err = fmt.Errorf("ws: dial %s: handshake: %w", u.Redacted(), cause)
		}
		return nil, resp, err
	}
	return c, resp, nil
}

// dialTransport connects to the server, through a proxy if one applies, and
// runs TLS for wss://, offering protos in ALPN.
func dialTransport(ctx context.Context, u *url.URL, secure bool, o *DialOptions, protos []string) (net.Conn, error) {
	addr := hostPort(u, secure)
	proxyReq := &http.Request{URL: &url.URL{Scheme: "http", Host: u.Host}}
	if secure {
		proxyReq.URL.Scheme = "https"
	}
	proxy, err := o.Proxy(proxyReq)
	if err != nil {
		return nil, fmt.Errorf("ws: dial %s: choosing a proxy: %w", u.Redacted(), err)
	}
	var nc net.Conn
	if proxy != nil {
		nc, err = dialProxy(ctx, proxy, addr, o)
	} else {
		nc, err = o.NetDialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ws: dial %s: %w", u.Redacted(), err)
	}
	if secure {
		tc, err := tlsClient(ctx, nc, u.Hostname(), o.TLSConfig, protos)
		if err != nil {
			return nil, fmt.Errorf("ws: dial %s: %w", u.Redacted(), err)
		}
		nc = tc
	}
	return nc, nil
}

func hostPort(u *url.URL, secure bool) string {
	if u.Port() != "" {
		return u.Host
	}
	if secure {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func tlsClient(ctx context.Context, nc net.Conn, host string, cfg *tls.Config, protos []string) (*tls.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	// Only HTTP/1.1 can carry the handshake of RFC 6455; h2 is offered
	// only by an HTTP2Pool, which runs RFC 8441 when the server picks it.
	cfg.NextProtos = protos
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// dialProxy opens a tunnel to addr through an HTTP proxy with CONNECT.
func dialProxy(ctx context.Context, proxy *url.URL, addr string, o *DialOptions) (net.Conn, error) {
	switch proxy.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("proxy %s: only http and https proxies are supported", proxy.Redacted())
	}
	nc, err := o.NetDialContext(ctx, "tcp", hostPort(proxy, proxy.Scheme == "https"))
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	if proxy.Scheme == "https" {
		tc, err := tlsClient(ctx, nc, proxy.Hostname(), o.TLSConfig, []string{"http/1.1"})
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		nc = tc
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if proxy.User != nil {
		pw, _ := proxy.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(proxy.User.Username()+":"+pw)))
	}
	if err := req.Write(nc); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT: %w", proxy.Redacted(), err)
	}
	// Read the answer a byte at a time past the headers would be slow; a
	// proxy sends nothing after its 2xx until we speak, so a buffered
	// reader loses nothing, which is checked.
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT: %w", proxy.Redacted(), err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_ = nc.Close()
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", proxy.Redacted(), addr, resp.Status)
	}
	if br.Buffered() > 0 {
		_ = nc.Close()
		return nil, fmt.Errorf("proxy %s sent data before the tunnel was used", proxy.Redacted())
	}
	return nc, nil
}

// handshake sends the upgrade request and checks the answer
// (RFC 6455 §4.1).
func handshake(ctx context.Context, nc net.Conn, u *url.URL, o *DialOptions) (*Conn, *http.Response, error) {
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])

	ru := *u
	switch ru.Scheme {
	case "ws":
		ru.Scheme = "http"
	case "wss":
		ru.Scheme = "https"
	}
	header, host, offer := requestHeader(u, o)
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &ru,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	req = req.WithContext(ctx)

	cfg := newConnConfig(o.ReadLimit, o.MaxFragments, o.CloseTimeout, o.ReadBufferSize, o.WriteBufferSize)
	bw := bufio.NewWriterSize(nc, cfg.writeBufferSize)
	if err := req.Write(bw); err != nil {
		return nil, nil, fmt.Errorf("ws: dial %s: writing the request: %w", u.Redacted(), err)
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, fmt.Errorf("ws: dial %s: writing the request: %w", u.Redacted(), err)
	}
	// The same reader serves the connection afterwards: frames the server
	// sends right behind its response are already in it.
	br := bufio.NewReaderSize(nc, cfg.readBufferSize)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("ws: dial %s: reading the response: %w", u.Redacted(), err)
	}
	params, derr := checkResponse(resp, key, o.Subprotocols, offer)
	if derr != nil {
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			derr.Body = body
		}
		_ = resp.Body.Close()
		return nil, resp, derr
	}
	c := newConn(nc, br, true, resp.Header.Get("Sec-WebSocket-Protocol"), cfg)
	if params != nil {
		c.deflate = newDeflateState(*params, true, o.Compression)
		// As a browser's WebSocket.extensions: the server's answer as sent.
		c.deflate.extensions = strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	}
	return c, resp, nil
}

// requestHeader builds the handshake's headers shared by HTTP/1.1 and
// HTTP/2: the caller's, the offers, and a User-Agent. It returns them, the
// Host to send, and the permessage-deflate offer (nil if none).
func requestHeader(u *url.URL, o *DialOptions) (http.Header, string, *deflateParams) {
	header := make(http.Header)
	host := u.Host
	for k, vs := range o.Header {
		if strings.EqualFold(k, "Host") {
			if len(vs) > 0 {
				host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	for _, k := range []string{"Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"} {
		header.Del(k)
	}
	var offer *deflateParams
	if o.Compression != nil {
		p := offerDeflate(o.Compression)
		offer = &p
		header.Set("Sec-WebSocket-Extensions", p.String())
	}
	if len(o.Subprotocols) > 0 {
		header.Set("Sec-WebSocket-Protocol", strings.Join(o.Subprotocols, ", "))
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", "duplex-ws")
	}
	return header, host, offer
}

// checkResponse checks the server's answer to the handshake. With a
// permessage-deflate offer, it returns the negotiated parameters, or nil
// if the server declined.
func checkResponse(resp *http.Response, key string, offered []string, offer *deflateParams) (*deflateParams, *DialError) {
	fail := func(format string, args ...any) (*deflateParams, *DialError) {
		return nil, &DialError{StatusCode: resp.StatusCode, Header: resp.Header, Reason: fmt.Sprintf(format, args...)}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail("server answered %s instead of 101 Switching Protocols", resp.Status)
	}
	if !headerHasToken(resp.Header, "Upgrade", "websocket") {
		return fail("response has no \"Upgrade: websocket\" (got %q)", resp.Header.Get("Upgrade"))
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return fail("response has no \"Connection: Upgrade\" (got %q)", resp.Header.Get("Connection"))
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(key); got != want {
		return fail("Sec-WebSocket-Accept is %q, want %q", got, want)
	}
	return checkNegotiation(resp, offered, offer)
}

// checkNegotiation checks the extensions and subprotocol the server chose,
// over HTTP/1.1 or HTTP/2.
func checkNegotiation(resp *http.Response, offered []string, offer *deflateParams) (*deflateParams, *DialError) {
	fail := func(format string, args ...any) (*deflateParams, *DialError) {
		return nil, &DialError{StatusCode: resp.StatusCode, Header: resp.Header, Reason: fmt.Sprintf(format, args...)}
	}
	var params *deflateParams
	if offer == nil {
		if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) > 0 {
			return fail("server chose extensions %q that were not offered", strings.Join(ext, ", "))
		}
	} else {
		p, ok, err := checkDeflateResponse(resp.Header, *offer)
		if err != nil {
			return fail("%v", err)
		}
		if ok {
			params = &p
		}
	}
	protos := resp.Header.Values("Sec-WebSocket-Protocol")
	switch {
	case len(protos) > 1:
		return fail("server chose more than one subprotocol: %q", strings.Join(protos, ", "))
	case len(protos) == 1 && !slices.Contains(offered, protos[0]):
		return fail("server chose subprotocol %q, which was not offered", protos[0])
	}
	return params, nil
}
