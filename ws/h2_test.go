package ws_test

// WebSockets over HTTP/2 (RFC 8441): our client and our server over TLS
// with h2, many streams on one connection, a slow stream beside fast
// ones, and the fallbacks to HTTP/1.1.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
	_ "github.com/duplexrt/duplex/ws/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
)

// countingListener counts the connections accepted.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// h2Server starts an HTTPS server with HTTP/2 (and extended CONNECT, as
// this test binary imports ws/xconnect) and returns it, its listener and
// the dial options that trust it and share one pool.
func h2Server(t *testing.T, h http.Handler, http2On bool) (*httptest.Server, *countingListener, *ws.DialOptions) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	ln := &countingListener{Listener: srv.Listener}
	srv.Listener = ln
	srv.EnableHTTP2 = http2On
	srv.StartTLS()
	pool := &ws.HTTP2Pool{}
	t.Cleanup(func() {
		pool.CloseIdleConnections()
		srv.Close()
	})
	tr := srv.Client().Transport.(*http.Transport)
	return srv, ln, &ws.DialOptions{TLSConfig: tr.TLSClientConfig, HTTP2: pool}
}

func wssURL(srv *httptest.Server, path string) string {
	return "wss://" + srv.Listener.Addr().String() + path
}

func TestXConnectEnabled(t *testing.T) {
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		t.Fatalf("GODEBUG=%q: ws/xconnect did not set http2xconnect=1", os.Getenv("GODEBUG"))
	}
}

// TestH2ManyStreamsOneConnection opens several WebSockets over one HTTP/2
// connection, exchanges text and binary, compressed and not, and closes
// each with its own code.
func TestH2ManyStreamsOneConnection(t *testing.T) {
	t.Parallel()
	const n = 8
	type seen struct {
		proto int
		code  ws.StatusCode
	}
	results := make(chan seen, 2*n)
	srv, ln, opts := h2Server(t, &ws.Server{
		Options: &ws.AcceptOptions{Compression: &ws.Compression{Threshold: 1}, Subprotocols: []string{"chat"}},
		Handle: func(ctx context.Context, c *ws.Conn) {
			err := echo(ctx, c, false)
			results <- seen{code: ws.CloseStatus(err)}
		},
		OnAccept: func(r *http.Request, c *ws.Conn) { results <- seen{proto: r.ProtoMajor} },
	}, true)

	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *opts
			o.Subprotocols = []string{"chat"}
			if i%2 == 0 {
				o.Compression = &ws.Compression{Threshold: 1}
			}
			ctx := context.Background()
			c, resp, err := ws.Dial(ctx, wssURL(srv, "/echo"), &o)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
				t.Errorf("dial %d: answered %s over %s, want 200 over HTTP/2", i, resp.Status, resp.Proto)
			}
			if c.Subprotocol() != "chat" {
				t.Errorf("dial %d: subprotocol %q", i, c.Subprotocol())
			}
			if got := strings.HasPrefix(c.Extensions(), "permessage-deflate"); got != (i%2 == 0) {
				t.Errorf("dial %d: extensions %q", i, c.Extensions())
			}
			for j, m := range []struct {
				typ ws.MessageType
				p   []byte
			}{
				{ws.MessageText, []byte(fmt.Sprintf("hello %d", i))},
				{ws.MessageBinary, bytes.Repeat([]byte{byte(i), 0, 255}, 40000)},
				{ws.MessageText, []byte(strings.Repeat("compressible ", 1000))},
			} {
				if err := c.Write(ctx, m.typ, m.p); err != nil {
					t.Errorf("dial %d: write %d: %v", i, j, err)
					return
				}
				typ, p, err := c.Read(ctx)
				if err != nil || typ != m.typ || !bytes.Equal(p, m.p) {
					t.Errorf("dial %d: echo %d: %v %v (%d bytes), want %v (%d bytes)", i, j, err, typ, len(p), m.typ, len(m.p))
					return
				}
			}
			if err := c.Close(ws.StatusCode(4000+i), "bye"); err != nil {
				t.Errorf("dial %d: close: %v", i, err)
			}
		}()
		if i == 0 {
			wg.Wait() // the first dial makes the connection the others share
		}
	}
	wg.Wait()
	codes := map[ws.StatusCode]bool{}
	for range 2 * n {
		select {
		case s := <-results:
			if s.proto != 0 && s.proto != 2 {
				t.Errorf("server saw HTTP/%d, want HTTP/2", s.proto)
			}
			if s.proto == 0 {
				codes[s.code] = true
			}
		case <-time.After(ioTimeout):
			t.Fatal("server handlers did not all end")
		}
	}
	for i := range n {
		if !codes[ws.StatusCode(4000+i)] {
			t.Errorf("the server did not see close code %d (saw %v)", 4000+i, codes)
		}
	}
	if got := ln.n.Load(); got != 1 {
		t.Errorf("%d TCP connections accepted, want 1 for %d WebSockets", got, n)
	}
}

// TestH2SlowStream checks that a WebSocket nobody reads holds up only its
// own stream: the others on the same connection go on, and closing it
// leaves the connection up.
func TestH2SlowStream(t *testing.T) {
	t.Parallel()
	flooding := make(chan error, 1)
	srv, ln, opts := h2Server(t, &ws.Server{
		Handle: func(ctx context.Context, c *ws.Conn) {
			if strings.HasSuffix(c.Subprotocol(), "flood") {
				// Write until the client's window is full and beyond: the
				// client does not read.
				p := make([]byte, 64<<10)
				for {
					if err := c.Write(ctx, ws.MessageBinary, p); err != nil {
						flooding <- err
						return
					}
				}
			}
			_ = echo(ctx, c, false)
		},
		Options: &ws.AcceptOptions{Subprotocols: []string{"flood", "echo"}},
	}, true)
	ctx := context.Background()
	dial := func(proto string) *ws.Conn {
		o := *opts
		o.Subprotocols = []string{proto}
		c, _, err := ws.Dial(ctx, wssURL(srv, "/"), &o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fast := dial("echo")
	defer fast.CloseNow()
	slow := dial("flood")
	// The server now writes to slow until flow control stops it. A
	// stream's send window from net/http's client is 4 MiB: give it time
	// to fill, then check the neighbour.
	time.Sleep(300 * time.Millisecond)
	for i := range 20 {
		msg := []byte(fmt.Sprintf("ping %d", i))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := fast.Write(wctx, ws.MessageText, msg); err != nil {
			t.Fatalf("write beside a stalled stream: %v", err)
		}
		_, p, err := fast.Read(wctx)
		cancel()
		if err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("echo beside a stalled stream: %q, %v", p, err)
		}
	}
	// The client also writes 512 KiB to a server stream whose reader is
	// busy writing; within the server's stream window, that does not stop
	// the neighbour either.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := slow.Write(wctx, ws.MessageBinary, make([]byte, 512<<10)); err != nil {
		t.Fatalf("write to the flooding stream: %v", err)
	}
	cancel()
	if err := fast.Write(ctx, ws.MessageText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := fast.Read(ctx); err != nil || string(p) != "after" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	// Closing the slow stream ends the server's blocked write, and the
	// connection stays: the fast socket still echoes, and a new dial
	// reuses it.
	_ = slow.CloseNow()
	select {
	case err := <-flooding:
		if err == nil {
			t.Error("the flooding write returned nil")
		}
	case <-time.After(ioTimeout):
		t.Fatal("the server's write to a closed stream did not return")
	}
	if err := fast.Write(ctx, ws.MessageText, []byte("still")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := fast.Read(ctx); err != nil || string(p) != "still" {
		t.Fatalf("echo after closing the neighbour: %q, %v", p, err)
	}
	again := dial("echo")
	_ = again.Close(ws.StatusNormalClosure, "")
	if err := fast.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if got := ln.n.Load(); got != 1 {
		t.Errorf("%d TCP connections accepted, want 1", got)
	}
}

// TestH2ContextEnds checks that a read or a write whose context ends
// leaves an HTTP/2 stream usable, as it does a socket.
func TestH2ContextEnds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _, opts := h2Server(t, &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		<-release // read nothing for a while
		_ = echo(ctx, c, false)
	}}, true)
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, wssURL(srv, "/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, _, err := c.Read(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v, want the context's deadline", err)
	}
	cancel()
	// Fill the server's stream window (1 MiB) and the pipes: a write then
	// blocks until its context ends; the rest of its frame goes out ahead
	// of the next write, as over a socket.
	big := bytes.Repeat([]byte("x"), 512<<10)
	var sent [][]byte
	for i := range 16 {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		p := append([]byte{byte('a' + i)}, big...)
		err := c.Write(wctx, ws.MessageBinary, p)
		cancel()
		sent = append(sent, p)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(sent) == 16 {
		t.Fatal("8 MiB went out to a server that does not read: no flow control?")
	}
	close(release)
	sent = append(sent, []byte("next"))
	if err := c.Write(ctx, ws.MessageBinary, sent[len(sent)-1]); err != nil {
		t.Fatal(err)
	}
	for i, want := range sent {
		_, p, err := c.Read(ctx)
		if err != nil || !bytes.Equal(p, want) {
			t.Fatalf("echo %d after a write cut short: %d bytes, %v", i, len(p), err)
		}
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
}

// TestH2HandlerMode runs a Server with a Handler over HTTP/2: ServeHTTP
// must stay for the stream's life.
func TestH2HandlerMode(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	srv, _, opts := h2Server(t, &ws.Server{Handler: ws.HandlerFuncs{
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) { _ = c.Send(typ, data) },
		Close:   func(c *ws.Conn, err error) { closed <- err },
	}}, true)
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, wssURL(srv, "/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		msg := []byte(fmt.Sprint(i))
		if err := c.Write(ctx, ws.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("echo %d: %q, %v", i, p, err)
		}
	}
	if err := c.Close(4321, "done"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if ws.CloseStatus(err) != 4321 {
			t.Errorf("OnClose(%v), want 4321", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("OnClose not called")
	}
}

// TestH2ServerCloses checks the close handshake started by the server, and
// a server-side read limit.
func TestH2ServerCloses(t *testing.T) {
	t.Parallel()
	srv, _, opts := h2Server(t, &ws.Server{
		Options: &ws.AcceptOptions{ReadLimit: 1000},
		Handle: func(ctx context.Context, c *ws.Conn) {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if string(p) == "close" {
				_ = c.Close(ws.StatusGoingAway, "as asked")
			}
		},
	}, true)
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, wssURL(srv, "/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Write(ctx, ws.MessageText, []byte("close"))
	if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Fatalf("read: %v, want 1001", err)
	}
	c, _, err = ws.Dial(ctx, wssURL(srv, "/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Write(ctx, ws.MessageBinary, make([]byte, 2000))
	if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusMessageTooBig {
		t.Fatalf("read: %v, want 1009", err)
	}
}

// TestH2AcceptRefuses checks the answers to extended CONNECTs Accept
// refuses.
func TestH2AcceptRefuses(t *testing.T) {
	t.Parallel()
	srv, _, _ := h2Server(t, &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {}}, true)
	rt := h2RoundTripper(t, srv)
	for _, tc := range []struct {
		name     string
		protocol string
		header   http.Header
		status   int
	}{
		{"no version", "websocket", http.Header{}, http.StatusUpgradeRequired},
		{"version 8", "websocket", http.Header{"Sec-Websocket-Version": {"8"}}, http.StatusUpgradeRequired},
		{"other protocol", "webtransport", http.Header{"Sec-Websocket-Version": {"13"}}, http.StatusBadRequest},
		{"cross origin", "websocket", http.Header{"Sec-Websocket-Version": {"13"}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodConnect, srv.URL+"/", http.NoBody)
			req.Header = tc.header.Clone()
			req.Header.Set(":protocol", tc.protocol)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// TestH2FallbackNoHTTP2: a TLS server without h2 in ALPN gets the HTTP/1.1
// handshake on the connection the pool made.
func TestH2FallbackNoHTTP2(t *testing.T) {
	t.Parallel()
	srv, ln, opts := h2Server(t, &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) }}, false)
	checkEcho(t, wssURL(srv, "/"), opts, 1)
	if got := ln.n.Load(); got != 1 {
		t.Errorf("%d connections, want 1: the HTTP/1.1 handshake goes on the connection ALPN chose it on", got)
	}
}

// TestH2FallbackNoExtendedConnect: an HTTP/2 server whose SETTINGS do not
// enable extended CONNECT gets a second connection, over HTTP/1.1.
func TestH2FallbackNoExtendedConnect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) }})
	srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	var fakes sync.WaitGroup
	srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) {
			fakes.Add(1)
			defer fakes.Done()
			fakeH2WithoutXConnect(c)
		},
	}
	srv.StartTLS()
	pool := &ws.HTTP2Pool{}
	defer func() {
		pool.CloseIdleConnections()
		fakes.Wait()
		srv.Close()
	}()
	opts := &ws.DialOptions{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HTTP2: pool}
	checkEcho(t, wssURL(srv, "/"), opts, 1)
	checkEcho(t, wssURL(srv, "/"), opts, 1) // the pooled connection says no at once
}

// fakeH2WithoutXConnect speaks just enough HTTP/2 (RFC 9113 §3.4, §6.5)
// for a client to see SETTINGS without ENABLE_CONNECT_PROTOCOL, as servers
// before RFC 8441 do.
func fakeH2WithoutXConnect(c *tls.Conn) {
	defer c.Close()
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	const typeSettings, flagAck = 0x4, 0x1
	// An empty SETTINGS frame: length 0, type, flags, stream 0.
	if _, err := c.Write([]byte{0, 0, 0, typeSettings, 0, 0, 0, 0, 0}); err != nil {
		return
	}
	var hdr [9]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int64(hdr[0])<<16 | int64(hdr[1])<<8 | int64(hdr[2])
		if _, err := io.CopyN(io.Discard, c, n); err != nil {
			return
		}
		if hdr[3] == typeSettings && hdr[4]&flagAck == 0 {
			if _, err := c.Write([]byte{0, 0, 0, typeSettings, flagAck, 0, 0, 0, 0}); err != nil {
				return
			}
		}
	}
}

// h2RoundTripper returns net/http's HTTP/2 client on a new connection to
// srv, which lets a test send extended CONNECTs of its own.
func h2RoundTripper(t *testing.T, srv *httptest.Server) http.RoundTripper {
	t.Helper()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	tc, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t1 := &http.Transport{ForceAttemptHTTP2: true}
	t1.CloseIdleConnections() // sets up TLSNextProto
	t.Cleanup(t1.CloseIdleConnections)
	return t1.TLSNextProto["h2"](srv.Listener.Addr().String(), tc)
}

// TestH2FallbackRefusingEndpoint: an HTTP/2 server with extended CONNECT
// whose endpoint does not take it (gorilla/websocket answers a CONNECT
// with 405) gets the HTTP/1.1 handshake on a connection of its own.
func TestH2FallbackRefusingEndpoint(t *testing.T) {
	t.Parallel()
	echoSrv := &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) }}
	srv, ln, opts := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		echoSrv.ServeHTTP(w, r)
	}), true)
	checkEcho(t, wssURL(srv, "/"), opts, 1)
	if got := ln.n.Load(); got != 2 {
		t.Errorf("%d connections, want 2 (HTTP/2, then HTTP/1.1)", got)
	}
}

// checkEcho dials, checks the protocol the handshake went over, and
// echoes one message.
func checkEcho(t *testing.T, url string, opts *ws.DialOptions, proto int) {
	t.Helper()
	ctx := context.Background()
	c, resp, err := ws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != proto {
		t.Errorf("handshake over %s, want HTTP/%d", resp.Proto, proto)
	}
	if err := c.Write(ctx, ws.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
}

// benchServer starts an HTTPS server with HTTP/2 whose WebSockets wait for
// the client's close, and returns the dial options for mode: "h2" shares
// one HTTP/2 connection, "http1" opens a TLS connection per socket.
func benchServer(b *testing.B, mode string) (string, *ws.DialOptions) {
	srv := httptest.NewUnstartedServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		_, _, _ = c.Read(ctx)
	}})
	srv.EnableHTTP2 = true
	// The settings doc.go advises for WebSocket servers; a 1 MiB frame size
	// (the default) makes Go clients hold 512 KiB per stream.
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100000, MaxReadFrameSize: 16 << 10}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	opts := &ws.DialOptions{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	if mode == "h2" {
		pool := &ws.HTTP2Pool{}
		b.Cleanup(pool.CloseIdleConnections)
		opts.HTTP2 = pool
	}
	return wssURL(srv, "/"), opts
}

// BenchmarkH2Open opens and closes WebSockets, one after another: over
// one shared HTTP/2 connection, or each on a new TLS connection.
func BenchmarkH2Open(b *testing.B) {
	for _, mode := range []string{"h2", "http1"} {
		b.Run(mode, func(b *testing.B) {
			url, opts := benchServer(b, mode)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, _, err := ws.Dial(ctx, url, opts)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close(ws.StatusNormalClosure, "")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sockets/s")
		})
	}
}

// BenchmarkH2Held holds 1,000 open WebSockets, client and server in this
// process, and reports the heap, goroutine stacks and goroutines each
// costs (both ends together).
func BenchmarkH2Held(b *testing.B) {
	const n = 1000
	for _, mode := range []string{"h2", "http1"} {
		b.Run(mode, func(b *testing.B) {
			url, opts := benchServer(b, mode)
			ctx := context.Background()
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				g0 := runtime.NumGoroutine()
				conns := make([]*ws.Conn, 0, n)
				for range n {
					c, _, err := ws.Dial(ctx, url, opts)
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				time.Sleep(100 * time.Millisecond) // let the server's handlers settle
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/socket")
				b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/socket")
				b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/socket")
				for _, c := range conns {
					_ = c.CloseNow()
				}
			}
		})
	}
}
