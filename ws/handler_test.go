package ws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// handlerModes are the two ways a Server runs a Handler: a goroutine per
// connection, and held by a Poller while idle.
var handlerModes = []struct {
	name string
	poll bool
}{{"portable", false}, {"poller", true}}

// newPoller returns a poller closed when the test ends, or skips the test
// where there is none (not Linux).
func newPoller(t *testing.T) *ws.Poller {
	t.Helper()
	p, err := ws.NewPoller(nil)
	if err != nil {
		t.Skipf("no poller here: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// handlerLog records a Handler's calls, in order, and checks that they
// never overlap for one connection.
type handlerLog struct {
	t      *testing.T
	mu     sync.Mutex
	busy   map[*ws.Conn]bool
	events chan string
	closed chan error
}

func newHandlerLog(t *testing.T) *handlerLog {
	return &handlerLog{t: t, busy: map[*ws.Conn]bool{}, events: make(chan string, 4096), closed: make(chan error, 1024)}
}

func (l *handlerLog) enter(c *ws.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[c] {
		l.t.Error("two Handler calls at once for one connection")
	}
	l.busy[c] = true
}

func (l *handlerLog) leave(c *ws.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.busy[c] = false
}

// handler echoes, and runs onMessage (if not nil) after each echo.
func (l *handlerLog) handler(onMessage func(c *ws.Conn, data []byte)) ws.Handler {
	return ws.HandlerFuncs{
		Open: func(c *ws.Conn) {
			l.enter(c)
			defer l.leave(c)
			l.events <- "open"
		},
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
			l.enter(c)
			defer l.leave(c)
			l.events <- fmt.Sprintf("message %v %q", typ, data)
			_ = c.Write(context.Background(), typ, data)
			if onMessage != nil {
				onMessage(c, data)
			}
		},
		Error: func(c *ws.Conn, err error) {
			l.enter(c)
			defer l.leave(c)
			l.events <- "error"
		},
		Close: func(c *ws.Conn, err error) {
			l.enter(c)
			defer l.leave(c)
			l.events <- fmt.Sprintf("close %d", ws.CloseStatus(err))
			l.closed <- err
		},
	}
}

func (l *handlerLog) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-l.events:
			if got != w {
				t.Fatalf("handler event %q, want %q", got, w)
			}
		case <-time.After(ioTimeout):
			t.Fatalf("no handler event within %v; want %q", ioTimeout, w)
		}
	}
}

func handlerTestServer(t *testing.T, poll bool, h ws.Handler) (*httptest.Server, *ws.Server, *ws.Poller) {
	t.Helper()
	var p *ws.Poller
	if poll {
		p = newPoller(t)
	}
	s := &ws.Server{Handler: h, Poller: p}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, s, p
}

func dialT(t *testing.T, url string) *ws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func echoTrip(t *testing.T, c *ws.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != ws.MessageText || string(p) != msg {
		t.Fatalf("echo of %q: %v %q %v", msg, typ, p, err)
	}
}

// TestHandlerLifecycle: open, messages, and the client's close, in order,
// one call at a time.
func TestHandlerLifecycle(t *testing.T) {
	for _, m := range handlerModes {
		t.Run(m.name, func(t *testing.T) {
			l := newHandlerLog(t)
			srv, _, p := handlerTestServer(t, m.poll, l.handler(nil))
			c := dialT(t, wsURL(srv))
			for i := range 20 {
				echoTrip(t, c, fmt.Sprint("msg ", i))
			}
			l.expect(t, "open")
			for i := range 20 {
				l.expect(t, fmt.Sprintf("message text %q", fmt.Sprint("msg ", i)))
			}
			if p != nil && p.Len() != 1 {
				t.Fatalf("poller holds %d connections, want 1", p.Len())
			}
			if err := c.Close(4000, "bye"); err != nil {
				t.Fatal(err)
			}
			l.expect(t, "close 4000")
			var ce ws.CloseError
			if err := <-l.closed; !errors.As(err, &ce) || ce.Reason != "bye" {
				t.Fatalf("OnClose(%v), want the client's CloseError", err)
			}
			if p != nil {
				eventually(t, "the poller to let go", func() bool { return p.Len() == 0 })
			}
		})
	}
}

// TestHandlerServerCloses: Close from OnMessage, and from another
// goroutine while the connection is idle, each reach the client and end
// with OnClose.
func TestHandlerServerCloses(t *testing.T) {
	for _, m := range handlerModes {
		t.Run(m.name+"/in OnMessage", func(t *testing.T) {
			l := newHandlerLog(t)
			srv, _, _ := handlerTestServer(t, m.poll, l.handler(func(c *ws.Conn, data []byte) {
				if string(data) == "close please" {
					_ = c.Close(4001, "as asked")
				}
			}))
			c := dialT(t, wsURL(srv))
			echoTrip(t, c, "close please")
			_, _, err := c.Read(context.Background())
			if ce := (ws.CloseError{}); !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "as asked" {
				t.Fatalf("client read %v, want 4001 as asked", err)
			}
			l.expect(t, "open", `message text "close please"`, "close 4001")
		})
		t.Run(m.name+"/while idle", func(t *testing.T) {
			l := newHandlerLog(t)
			conns := make(chan *ws.Conn, 1)
			srv, _, p := handlerTestServer(t, m.poll, l.handler(func(c *ws.Conn, data []byte) { conns <- c }))
			c := dialT(t, wsURL(srv))
			echoTrip(t, c, "hello")
			sc := <-conns
			if p != nil {
				// Idle in the poller: nobody reads it now.
				eventually(t, "the connection to go idle", func() bool { return p.Len() == 1 })
			}
			readErr := make(chan error, 1)
			go func() {
				_, _, err := c.Read(context.Background())
				readErr <- err
			}()
			if err := sc.Close(4002, "idle"); err != nil {
				t.Fatalf("server Close: %v", err)
			}
			if err := <-readErr; ws.CloseStatus(err) != 4002 {
				t.Fatalf("client read %v, want 4002", err)
			}
			l.expect(t, "open", `message text "hello"`, "close 4002")
		})
	}
}

// TestHandlerProtocolError: a violation is reported by OnError, then
// OnClose, and the client gets 1002.
func TestHandlerProtocolError(t *testing.T) {
	for _, m := range handlerModes {
		t.Run(m.name, func(t *testing.T) {
			l := newHandlerLog(t)
			srv, _, _ := handlerTestServer(t, m.poll, l.handler(nil))
			nc, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true}
			p.clientHandshake(srv.Listener.Addr().String())
			p.send(frame{b0: finBit | 0x3}) // a reserved opcode
			p.expectFail(ws.StatusProtocolError)
			l.expect(t, "open", "error", "close -1")
			if err := <-l.closed; !errors.Is(err, ws.ErrProtocol) {
				t.Fatalf("OnClose(%v), want ErrProtocol", err)
			}
		})
	}
}

// TestHandlerPingWhileIdle: pings are answered by a connection the poller
// holds, and it goes back to idle.
func TestHandlerPingWhileIdle(t *testing.T) {
	for _, m := range handlerModes {
		t.Run(m.name, func(t *testing.T) {
			l := newHandlerLog(t)
			srv, _, _ := handlerTestServer(t, m.poll, l.handler(nil))
			c := dialT(t, wsURL(srv))
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			c.CloseRead(ctx)
			for range 5 {
				if err := c.Ping(ctx); err != nil {
					t.Fatalf("ping: %v", err)
				}
			}
		})
	}
}

// TestHandlerShutdown: Server.Shutdown closes every connection with 1001,
// each handler sees OnClose, and Shutdown returns.
func TestHandlerShutdown(t *testing.T) {
	const n = 20
	for _, m := range handlerModes {
		t.Run(m.name, func(t *testing.T) {
			l := newHandlerLog(t)
			srv, s, p := handlerTestServer(t, m.poll, l.handler(nil))
			var clients []*ws.Conn
			for range n {
				c := dialT(t, wsURL(srv))
				echoTrip(t, c, "x")
				clients = append(clients, c)
			}
			errs := make(chan error, n)
			for _, c := range clients {
				go func() {
					_, _, err := c.Read(context.Background())
					errs <- err
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			for range n {
				if err := <-errs; ws.CloseStatus(err) != ws.StatusGoingAway {
					t.Fatalf("client read %v, want 1001", err)
				}
			}
			for range n {
				select {
				case <-l.closed:
				case <-time.After(ioTimeout):
					t.Fatal("OnClose not called for every connection")
				}
			}
			if p != nil && p.Len() != 0 {
				t.Fatalf("the poller holds %d connections after Shutdown", p.Len())
			}
		})
	}
}

// TestPollerClose closes the connections it holds, and OnClose sees it.
func TestPollerClose(t *testing.T) {
	l := newHandlerLog(t)
	srv, _, p := handlerTestServer(t, true, l.handler(nil))
	c := dialT(t, wsURL(srv))
	echoTrip(t, c, "x")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "open", `message text "x"`, "close -1") // cut by the server: no close code
	if _, _, err := c.Read(context.Background()); ws.CloseStatus(err) != ws.StatusAbnormalClosure {
		t.Fatalf("client read %v, want the connection lost", err)
	}
	// New connections are served in the portable mode.
	c2 := dialT(t, wsURL(srv))
	echoTrip(t, c2, "after the poller")
}

// TestPollerIdleGoroutines: connections held idle by the poller cost no
// goroutine each, and all of them still answer.
func TestPollerIdleGoroutines(t *testing.T) {
	const n = 200
	l := newHandlerLog(t)
	srv, _, p := handlerTestServer(t, true, ws.HandlerFuncs{
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) { _ = c.Write(context.Background(), typ, data) },
		Close:   func(c *ws.Conn, err error) { l.closed <- err },
	})
	// Our own clients would hold a goroutine each if they read; they
	// only write and read in turn here.
	before := runtime.NumGoroutine()
	var clients []*ws.Conn
	for i := range n {
		c := dialT(t, wsURL(srv))
		echoTrip(t, c, fmt.Sprint(i))
		clients = append(clients, c)
	}
	eventually(t, "every connection held", func() bool { return p.Len() == n })
	// A few workers may linger, and net/http's connection goroutines
	// end after the upgrade; a goroutine per connection would be +200.
	eventually(t, "the goroutines to settle", func() bool { return runtime.NumGoroutine()-before < n/4 })
	for i, c := range clients {
		echoTrip(t, c, fmt.Sprint("again ", i))
	}
	for _, c := range clients {
		_ = c.Close(ws.StatusNormalClosure, "")
	}
	for range n {
		<-l.closed
	}
}

// TestPollerEarlyData: frames the client sent right behind its handshake
// request are served before the connection first waits in epoll.
func TestPollerEarlyData(t *testing.T) {
	l := newHandlerLog(t)
	srv, _, _ := handlerTestServer(t, true, l.handler(nil))
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true}
	host := srv.Listener.Addr().String()
	req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	p.write(append([]byte(req), append(p.encode(text("early one")), p.encode(text("early two"))...)...))
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	p.expectMessage(opText, []byte("early one"))
	p.expectMessage(opText, []byte("early two"))
	p.closeHandshake(1000)
	l.expect(t, "open", `message text "early one"`, `message text "early two"`, "close 1000")
}

// TestPollerTLS: a TLS connection cannot be held by the poller; it is
// served in the portable mode.
func TestPollerTLS(t *testing.T) {
	l := newHandlerLog(t)
	p := newPoller(t)
	srv := httptest.NewTLSServer(&ws.Server{Handler: l.handler(nil), Poller: p})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https"), &ws.DialOptions{
		TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	echoTrip(t, c, "over TLS")
	if p.Len() != 0 {
		t.Fatalf("the poller holds %d TLS connections", p.Len())
	}
	_ = c.Close(ws.StatusNormalClosure, "")
	l.expect(t, "open", `message text "over TLS"`, "close 1000")
}
