package ws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// listenerServer is an http.Server behind a ws.Listener whose one route,
// /ws, is s; the mux serves /ws with s too, counting the requests that
// reached it through net/http, and /plain with "hello".
type listenerServer struct {
	*httptest.Server
	ln      *ws.Listener
	viaHTTP atomic.Int64 // /ws requests net/http served
}

func newListenerServer(t *testing.T, s *ws.Server, opts *ws.ListenerOptions) *listenerServer {
	t.Helper()
	ls := &listenerServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ls.viaHTTP.Add(1)
		s.ServeHTTP(w, r)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})
	if opts == nil {
		opts = &ws.ListenerOptions{}
	}
	opts.Routes = map[string]*ws.Server{"/ws": s}
	ls.Server = httptest.NewUnstartedServer(mux)
	ls.ln = ws.NewListener(ls.Server.Listener, opts)
	ls.Server.Listener = ls.ln
	ls.Server.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
		ls.Server.Close()
	})
	return ls
}

func (ls *listenerServer) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(ls.URL, "http") + path
}

// TestListenerFastPath: a handshake for a route is answered by the
// Listener, not net/http, and the connection works in both modes.
func TestListenerFastPath(t *testing.T) {
	for _, mode := range handlerModes {
		t.Run(mode.name, func(t *testing.T) {
			l := newHandlerLog(t)
			s := &ws.Server{Handler: l.handler(nil)}
			if mode.poll {
				s.Poller = newPoller(t)
			}
			ls := newListenerServer(t, s, nil)
			for i := range 3 {
				c := dialT(t, ls.wsURL("/ws?n=1"))
				l.expect(t, "open")
				echoTrip(t, c, fmt.Sprint("hello ", i))
				l.expect(t, fmt.Sprintf("message text %q", fmt.Sprint("hello ", i)))
				_ = c.Close(ws.StatusNormalClosure, "")
				l.expect(t, "close 1000")
			}
			if n := ls.viaHTTP.Load(); n != 0 {
				t.Errorf("net/http served %d handshakes for the route, want 0", n)
			}
			resp, err := http.Get(ls.URL + "/plain")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(body) != "hello" {
				t.Errorf("GET /plain through the Listener: %q", body)
			}
		})
	}
}

// rawHandshake is a valid handshake request for path, with extra header
// lines.
func rawHandshake(path, extra string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// sendRaw writes req on a new connection to addr and returns the status
// line of the answer and the connection, with its reader.
func sendRaw(t *testing.T, addr, req string) (string, net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	return strings.TrimSpace(line), nc, br
}

// TestListenerFallback: whatever the fast path does not take reaches
// net/http unchanged, and is answered as without a Listener.
func TestListenerFallback(t *testing.T) {
	s := &ws.Server{Handler: newHandlerLog(t).handler(nil)}
	ls := newListenerServer(t, s, nil)
	addr := ls.Listener.Addr().String()
	bigCookie := "Cookie: " + strings.Repeat("a", 5000) + "\r\n"
	for _, tc := range []struct {
		name, req, status string
		viaHTTP           int64
	}{
		{"plain request", "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK", 0},
		{"other path", rawHandshake("/other", ""), "HTTP/1.1 404 Not Found", 0},
		{"no upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required", 1},
		{"bad version", strings.Replace(rawHandshake("/ws", ""), "Version: 13", "Version: 8", 1), "HTTP/1.1 426 Upgrade Required", 1},
		{"POST", strings.Replace(rawHandshake("/ws", ""), "GET", "POST", 1), "HTTP/1.1 405 Method Not Allowed", 1},
		{"HTTP/1.0", strings.Replace(rawHandshake("/ws", ""), "HTTP/1.1", "HTTP/1.0", 1), "HTTP/1.0 400 Bad Request", 1},
		{"folded header", rawHandshake("/ws", "X-A: 1\r\n b\r\n"), "HTTP/1.1 101 Switching Protocols", 1},
		{"no host", strings.Replace(rawHandshake("/ws", ""), "Host: example.com\r\n", "", 1), "HTTP/1.1 400 Bad Request", 0},
		{"body", rawHandshake("/ws", "Content-Length: 0\r\n"), "HTTP/1.1 101 Switching Protocols", 1},
		{"a head over 4 KiB", rawHandshake("/ws", bigCookie), "HTTP/1.1 101 Switching Protocols", 1},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", "HTTP/1.1 400 Bad Request", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ls.viaHTTP.Load()
			status, nc, _ := sendRaw(t, addr, tc.req)
			_ = nc.Close()
			if !strings.HasPrefix(status, tc.status) {
				t.Errorf("answer %q, want %q", status, tc.status)
			}
			if got := ls.viaHTTP.Load() - before; got != tc.viaHTTP {
				t.Errorf("net/http served %d /ws requests, want %d", got, tc.viaHTTP)
			}
		})
	}
}

// TestListenerKeepAlive: a handshake after a plain request on the same
// connection is net/http's, and succeeds.
func TestListenerKeepAlive(t *testing.T) {
	s := &ws.Server{Handler: newHandlerLog(t).handler(nil)}
	ls := newListenerServer(t, s, nil)
	nc, err := net.DialTimeout("tcp", ls.Listener.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(nc)
	for i, req := range []string{"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", rawHandshake("/ws", "")} {
		if _, err := io.WriteString(nc, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := []int{200, 101}[i]; resp.StatusCode != want {
			t.Fatalf("request %d: %s, want %d", i, resp.Status, want)
		}
		if i == 0 {
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	}
	if ls.viaHTTP.Load() != 1 {
		t.Errorf("net/http served %d /ws requests, want 1", ls.viaHTTP.Load())
	}
}

// TestListenerSplitHead: a head that arrives in pieces, with frames
// right behind it in the last piece, is taken by the fast path and the
// frames are read.
func TestListenerSplitHead(t *testing.T) {
	l := newHandlerLog(t)
	s := &ws.Server{Handler: l.handler(nil)}
	ls := newListenerServer(t, s, nil)
	nc, err := net.DialTimeout("tcp", ls.Listener.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	req := rawHandshake("/ws", "")
	// A masked text frame "hi" (RFC 6455 §5.7's example key).
	frame := []byte{0x81, 0x82, 0x37, 0xfa, 0x21, 0x3d, 'h' ^ 0x37, 'i' ^ 0xfa}
	for _, part := range []string{req[:3], req[3:20], req[20 : len(req)-3], req[len(req)-3:] + string(frame)} {
		if _, err := io.WriteString(nc, part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v; want 101", resp, err)
	}
	l.expect(t, "open", `message text "hi"`)
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "\x81\x02hi" {
		t.Fatalf("echo %q, %v", echo, err)
	}
	if n := ls.viaHTTP.Load(); n != 0 {
		t.Errorf("net/http served %d handshakes, want 0", n)
	}
}

// TestListenerHeadTimeout: a connection that does not finish its first
// head in time is closed, and Close closes those still being read.
func TestListenerHeadTimeout(t *testing.T) {
	s := &ws.Server{Handler: newHandlerLog(t).handler(nil)}
	ls := newListenerServer(t, s, &ws.ListenerOptions{HeadTimeout: 200 * time.Millisecond})
	addr := ls.Listener.Addr().String()
	for _, sent := range []string{"", "GET /ws HTTP/1.1\r\nHost: x\r\n"} {
		nc, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(nc, sent)
		_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
		start := time.Now()
		n, err := nc.Read(make([]byte, 1))
		_ = nc.Close()
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after %q: read %d, %v; want the server to close", sent, n, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %v", d)
		}
	}

	// Close ends the wait of a connection that has sent nothing.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := ws.NewListener(ln2, &ws.ListenerOptions{Routes: map[string]*ws.Server{"/ws": s}})
	nc, err := net.DialTimeout("tcp", ln2.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	time.Sleep(50 * time.Millisecond) // accepted, and waiting for a head
	if err := fast.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a connection waiting for its head after Close: read %d, %v; want closed", n, err)
	}
}

// TestListenerRequest: OnAccept sees the request as net/http would make
// it, and Handle's context ends when Handle returns.
func TestListenerRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	ctxs := make(chan context.Context, 1)
	s := &ws.Server{
		OnAccept: func(r *http.Request, c *ws.Conn) { got <- r },
		Handle: func(ctx context.Context, c *ws.Conn) {
			ctxs <- ctx
			_, _, _ = c.Read(ctx)
		},
	}
	ls := newListenerServer(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, ls.wsURL("/ws?room=a%20b"), &ws.DialOptions{Header: http.Header{"Authorization": {"Bearer x"}, "X-Two": {"1", "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	hctx := <-ctxs
	if r.Method != "GET" || r.URL.Path != "/ws" || r.URL.Query().Get("room") != "a b" || r.RequestURI != "/ws?room=a%20b" {
		t.Errorf("request %s %v %q", r.Method, r.URL, r.RequestURI)
	}
	if r.Header.Get("Authorization") != "Bearer x" || strings.Join(r.Header.Values("X-Two"), ",") != "1,2" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("headers %v", r.Header)
	}
	if r.Host != strings.TrimPrefix(ls.URL, "http://") || r.RemoteAddr != c.LocalAddr().String() || r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		t.Errorf("Host %q RemoteAddr %q (client %v) proto %d.%d", r.Host, r.RemoteAddr, c.LocalAddr(), r.ProtoMajor, r.ProtoMinor)
	}
	if ls.viaHTTP.Load() != 0 {
		t.Error("the handshake went through net/http")
	}
	if hctx.Err() != nil {
		t.Error("Handle's context ended while Handle runs")
	}
	_ = c.Close(ws.StatusNormalClosure, "")
	select {
	case <-hctx.Done():
	case <-time.After(ioTimeout):
		t.Error("Handle's context did not end after Handle returned")
	}
}

// TestListenerShutdown: Shutdown closes connections the Listener took
// with 1001, and later handshakes fall to net/http, which answers 503.
func TestListenerShutdown(t *testing.T) {
	l := newHandlerLog(t)
	s := &ws.Server{Handler: l.handler(nil)}
	ls := newListenerServer(t, s, nil)
	c := dialT(t, ls.wsURL("/ws"))
	l.expect(t, "open")
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Errorf("read during Shutdown: %v, want 1001", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	status, nc, _ := sendRaw(t, ls.Listener.Addr().String(), rawHandshake("/ws", ""))
	_ = nc.Close()
	if status != "HTTP/1.1 503 Service Unavailable" || ls.viaHTTP.Load() != 1 {
		t.Errorf("a handshake after Shutdown: %q (net/http served %d)", status, ls.viaHTTP.Load())
	}
}
