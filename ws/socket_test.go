package ws_test

// Socket against our own server and raw peers: the browser's states and
// event order, Send and BufferedAmount, Close's rules, reconnection and
// heartbeats. test/interop runs the same shapes against Node's ws and
// side by side with Chromium's own WebSocket.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/duplexrt/duplex/ws"
)

// socketTimeout bounds every wait of these tests.
const socketTimeout = 10 * time.Second

// recorder turns a socket's events into lines such as "open OPEN" or
// "close 4000 \"bye\" clean CLOSED", each with the ReadyState read inside
// the callback, as a browser test reads readyState in its handlers.
type recorder struct {
	lines     chan string
	errs      chan error // of the error events
	closeErrs chan error // CloseEvent.Err of the close events
}

// record installs recording callbacks in o (keeping none of its own) and
// returns the recorder.
func record(o *ws.SocketOptions) *recorder {
	r := &recorder{lines: make(chan string, 1024), errs: make(chan error, 64), closeErrs: make(chan error, 64)}
	o.OnOpen = func(s *ws.Socket, e ws.OpenEvent) {
		r.lines <- "open " + s.ReadyState().String()
	}
	o.OnMessage = func(s *ws.Socket, e ws.MessageEvent) {
		r.lines <- fmt.Sprintf("message %v %q %v", e.Type, e.Data, s.ReadyState())
	}
	o.OnError = func(s *ws.Socket, e ws.ErrorEvent) {
		r.errs <- e.Err
		r.lines <- "error " + s.ReadyState().String()
	}
	o.OnClose = func(s *ws.Socket, e ws.CloseEvent) {
		r.closeErrs <- e.Err
		r.lines <- closeLine(e, s.ReadyState())
	}
	o.OnReconnecting = func(s *ws.Socket, e ws.ReconnectingEvent) {
		r.lines <- fmt.Sprintf("reconnecting %d %v", e.Attempt, s.ReadyState())
	}
	o.OnReconnected = func(s *ws.Socket, e ws.ReconnectedEvent) {
		r.lines <- fmt.Sprintf("reconnected %d %v", e.Attempts, s.ReadyState())
	}
	return r
}

func closeLine(e ws.CloseEvent, st ws.ReadyState) string {
	clean := "unclean"
	if e.WasClean {
		clean = "clean"
	}
	return fmt.Sprintf("close %d %q %s %v", int(e.Code), e.Reason, clean, st)
}

// next returns the next line.
func (r *recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-r.lines:
		return l
	case <-time.After(socketTimeout):
		t.Fatalf("no event within %v", socketTimeout)
		return ""
	}
}

// expect checks the next lines.
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, r.next(t))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

// none checks that no event is waiting.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case l := <-r.lines:
		t.Fatalf("unexpected event %q", l)
	default:
	}
}

// newSocket makes a socket and closes it at the end of the test.
func newSocket(t *testing.T, ctx context.Context, url string, o *ws.SocketOptions) *ws.Socket {
	t.Helper()
	s, err := ws.NewSocket(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close(0, "")
		waitDone(t, s)
	})
	return s
}

func waitDone(t *testing.T, s *ws.Socket) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(socketTimeout):
		t.Fatalf("socket not done within %v (state %v)", socketTimeout, s.ReadyState())
	}
	if st := s.ReadyState(); st != ws.StateClosed {
		t.Fatalf("state after Done: %v, want CLOSED", st)
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(socketTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, socketTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// handlerServer runs handle for each connection, and waits for the
// handlers when the test ends.
func handlerServer(t *testing.T, handle func(ctx context.Context, c *ws.Conn)) *httptest.Server {
	t.Helper()
	return handlerServerWith(t, nil, handle)
}

// handlerServerWith is handlerServer with its listener wrapped by wrap, if
// not nil.
func handlerServerWith(t *testing.T, wrap func(net.Listener) net.Listener, handle func(ctx context.Context, c *ws.Conn)) *httptest.Server {
	t.Helper()
	// The handlers are counted before the upgrade: httptest's Close waits
	// for connections until they are hijacked, so by the time it returns
	// every handler that will run has been added.
	var wg sync.WaitGroup
	server := &ws.Server{Handle: handle}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		server.ServeHTTP(w, r)
	}))
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return srv
}

// gatedListener hands out accepted connections once gate is closed.
type gatedListener struct {
	net.Listener
	gate <-chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		<-l.gate
	}
	return c, err
}

// echoUntilClose echoes messages and reports the close it got.
func echoUntilClose(closes chan<- ws.CloseError) func(ctx context.Context, c *ws.Conn) {
	return func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				var ce ws.CloseError
				if errors.As(err, &ce) && closes != nil {
					closes <- ce
				}
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	}
}

func TestSocketLifecycle(t *testing.T) {
	closes := make(chan ws.CloseError, 1)
	// The server accepts the connection only once the test has seen the
	// socket CONNECTING; otherwise a busy machine may run the whole
	// exchange before the test looks.
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate)
	srv := handlerServerWith(t, func(l net.Listener) net.Listener { return gatedListener{l, gate} }, echoUntilClose(closes))
	var o ws.SocketOptions
	r := record(&o)
	afterClose := make(chan ws.ReadyState, 1)
	onMessage := o.OnMessage
	n := 0
	o.OnOpen = func(s *ws.Socket, e ws.OpenEvent) {
		r.lines <- "open " + s.ReadyState().String()
		if err := s.SendText("hello ✓"); err != nil {
			t.Error(err)
		}
		if err := s.SendBinary([]byte{0, 1, 2, 255}); err != nil {
			t.Error(err)
		}
	}
	o.OnMessage = func(s *ws.Socket, e ws.MessageEvent) {
		onMessage(s, e)
		if n++; n == 2 {
			if err := s.Close(4000, "bye"); err != nil {
				t.Error(err)
			}
			afterClose <- s.ReadyState()
		}
	}
	s := newSocket(t, context.Background(), wsURL(srv), &o)
	if st := s.ReadyState(); st != ws.StateConnecting {
		t.Fatalf("state after NewSocket: %v", st)
	}
	openGate()
	r.expect(t,
		"open OPEN",
		`message text "hello ✓" OPEN`,
		`message binary "\x00\x01\x02\xff" OPEN`,
		`close 4000 "" clean CLOSED`, // our server echoes the code, not the reason
	)
	if st := <-afterClose; st != ws.StateClosing {
		t.Fatalf("state right after Close: %v, want CLOSING", st)
	}
	waitDone(t, s)
	if ce := <-closes; ce.Code != 4000 || ce.Reason != "bye" {
		t.Fatalf("server got close %v, want 4000 bye", ce)
	}
	if err := s.SendText("late"); !errors.Is(err, ws.ErrSocketClosed) {
		t.Fatalf("Send after close: %v, want ErrSocketClosed", err)
	}
	if err := s.Close(1000, ""); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r.none(t)
}

func TestSocketServerCloses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   ws.StatusCode
		reason string
		want   string
	}{
		{"code and reason", 4001, "from the server ✓", `close 4001 "from the server ✓" clean CLOSED`},
		{"going away", ws.StatusGoingAway, "", `close 1001 "" clean CLOSED`},
		{"no code", ws.StatusNoStatusRcvd, "", `close 1005 "" clean CLOSED`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := handlerServer(t, func(ctx context.Context, c *ws.Conn) {
				_ = c.Close(tc.code, tc.reason)
			})
			var o ws.SocketOptions
			r := record(&o)
			s := newSocket(t, context.Background(), wsURL(srv), &o)
			r.expect(t, "open OPEN", tc.want)
			waitDone(t, s)
		})
	}
}

// TestSocketConnectionLost: a server that goes without a close frame is
// reported as the browser reports it: 1006, not clean, and no error event
// (the connection was closed, not failed); CloseEvent.Err says why.
func TestSocketConnectionLost(t *testing.T) {
	srv := handlerServer(t, func(ctx context.Context, c *ws.Conn) {
		_ = c.CloseNow()
	})
	var o ws.SocketOptions
	r := record(&o)
	s := newSocket(t, context.Background(), wsURL(srv), &o)
	r.expect(t, "open OPEN", `close 1006 "" unclean CLOSED`)
	if err := <-r.closeErrs; ws.CloseStatus(err) != ws.StatusAbnormalClosure {
		t.Fatalf("CloseEvent.Err %v: want one that reads as 1006", err)
	}
	if len(r.errs) != 0 {
		t.Fatalf("an error event: %v", <-r.errs)
	}
	waitDone(t, s)
}

func TestSocketRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	t.Run("404", func(t *testing.T) {
		var o ws.SocketOptions
		r := record(&o)
		s := newSocket(t, context.Background(), wsURL(srv)+"/nope", &o)
		r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
		var de *ws.DialError
		if err := <-r.errs; !errors.As(err, &de) || de.StatusCode != http.StatusNotFound {
			t.Fatalf("error %v: want a *DialError with 404", err)
		}
		waitDone(t, s)
		if s.Protocol() != "" || s.Extensions() != "" {
			t.Fatalf("Protocol %q Extensions %q after a refused handshake", s.Protocol(), s.Extensions())
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		var o ws.SocketOptions
		r := record(&o)
		s := newSocket(t, context.Background(), "ws://"+closedAddr, &o)
		r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
		if err := <-r.errs; !strings.Contains(err.Error(), "refused") {
			t.Fatalf("error %v: want connection refused", err)
		}
		waitDone(t, s)
	})
}

// silentListener accepts connections and never answers them.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String()
}

// TestSocketCloseWhileConnecting: the browser's "closed before the
// connection is established": CLOSING at once, then error and 1006.
func TestSocketCloseWhileConnecting(t *testing.T) {
	url := silentListener(t)
	var o ws.SocketOptions
	r := record(&o)
	s := newSocket(t, context.Background(), url, &o)
	if err := s.Close(4000, "never mind"); err != nil {
		t.Fatal(err)
	}
	if st := s.ReadyState(); st != ws.StateClosing {
		t.Fatalf("state after Close while connecting: %v, want CLOSING", st)
	}
	r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
	waitDone(t, s)
}

func TestSocketCloseArguments(t *testing.T) {
	srv := handlerServer(t, echoUntilClose(nil))
	s := newSocket(t, context.Background(), wsURL(srv), nil)
	for _, code := range []ws.StatusCode{-1, 999, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 5000} {
		if err := s.Close(code, ""); !errors.Is(err, ws.ErrCloseCode) {
			t.Errorf("Close(%d): %v, want ErrCloseCode", code, err)
		}
	}
	for _, reason := range []string{strings.Repeat("x", 124), strings.Repeat("é", 62), "\xff"} {
		if err := s.Close(1000, reason); !errors.Is(err, ws.ErrCloseReason) {
			t.Errorf("Close(1000, %d bytes): %v, want ErrCloseReason", len(reason), err)
		}
	}
	if st := s.ReadyState(); st == ws.StateClosing || st == ws.StateClosed {
		t.Fatalf("refused Close calls changed the state to %v", st)
	}
	// The limits themselves are fine.
	for _, c := range []struct {
		code   ws.StatusCode
		reason string
	}{{1000, strings.Repeat("x", 123)}, {3000, ""}, {4999, "é"}} {
		s := newSocket(t, context.Background(), wsURL(srv), nil)
		if err := s.Close(c.code, c.reason); err != nil {
			t.Errorf("Close(%d, %d bytes): %v", c.code, len(c.reason), err)
		}
	}
}

// TestSocketCloseFrames checks what the server receives for each form of
// Close, as the browser sends them.
func TestSocketCloseFrames(t *testing.T) {
	for _, tc := range []struct {
		code     ws.StatusCode
		reason   string
		wantCode ws.StatusCode
	}{
		{0, "", ws.StatusNoStatusRcvd},
		{0, "why", ws.StatusNormalClosure},
		{1000, "", ws.StatusNormalClosure},
		{4999, "r", 4999},
	} {
		t.Run(fmt.Sprintf("%d %q", tc.code, tc.reason), func(t *testing.T) {
			closes := make(chan ws.CloseError, 1)
			srv := handlerServer(t, echoUntilClose(closes))
			opened := make(chan struct{})
			s := newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{
				OnOpen: func(*ws.Socket, ws.OpenEvent) { close(opened) },
			})
			<-opened
			if err := s.Close(tc.code, tc.reason); err != nil {
				t.Fatal(err)
			}
			waitDone(t, s)
			if ce := <-closes; ce.Code != tc.wantCode || ce.Reason != tc.reason {
				t.Fatalf("server got %v, want %d %q", ce, tc.wantCode, tc.reason)
			}
		})
	}
}

func TestSocketURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:1":          "ws://127.0.0.1:1/",
		"http://example.test/x?y=1": "ws://example.test/x?y=1",
		"https://example.test":      "wss://example.test/",
		"wss://example.test/a/b":    "wss://example.test/a/b",
	} {
		s, err := ws.NewSocket(context.Background(), in, nil)
		if err != nil {
			t.Fatalf("NewSocket(%q): %v", in, err)
		}
		if got := s.URL(); got != want {
			t.Errorf("URL of %q = %q, want %q", in, got, want)
		}
		_ = s.Close(0, "")
		<-s.Done()
	}
	for _, bad := range []string{"ftp://x/", "ws://x/#frag", "ws:///path", "::"} {
		if _, err := ws.NewSocket(context.Background(), bad, nil); err == nil {
			t.Errorf("NewSocket(%q) succeeded", bad)
		}
	}
}

// TestSocketSendWhileConnecting: Send queues before the open, the queue
// goes out in order once open, and SendLimit bounds it.
func TestSocketSendWhileConnecting(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			got <- string(p)
		}
	}))
	defer srv.Close()
	s := newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{SendLimit: 11})
	for _, m := range []string{"one", "two", "three"} {
		if err := s.SendText(m); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.BufferedAmount(); n != 11 {
		t.Fatalf("BufferedAmount = %d, want 11", n)
	}
	if err := s.SendText("x"); !errors.Is(err, ws.ErrSendQueueFull) {
		t.Fatalf("Send over SendLimit: %v, want ErrSendQueueFull", err)
	}
	if err := s.SendText("\xff"); err == nil {
		t.Fatal("SendText accepted invalid UTF-8")
	}
	if err := s.Send(ws.MessageText, []byte{0xff}); err == nil {
		t.Fatal("Send accepted invalid UTF-8 text")
	}
	close(release)
	for _, want := range []string{"one", "two", "three"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("server got %q, want %q", m, want)
			}
		case <-time.After(socketTimeout):
			t.Fatal("queued messages not sent after the open")
		}
	}
	eventually(t, "BufferedAmount back to 0", func() bool { return s.BufferedAmount() == 0 })
}

// TestSocketBufferedAmount throttles the server's reads: BufferedAmount
// rises while the kernel's buffers are full, and falls to 0 once the
// server reads again, every message arriving in order.
func TestSocketBufferedAmount(t *testing.T) {
	// 12 MiB: more than the sender's socket buffer (at most 4 MiB here)
	// and the server's (fixed small below) take, under the default send
	// limit.
	const n, size = 192, 64 << 10
	release := make(chan struct{})
	received := make(chan []byte, n)
	srv := handlerServerWith(t, func(l net.Listener) net.Listener { return smallReadBuffer{l} }, func(ctx context.Context, c *ws.Conn) {
		<-release
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			received <- p
		}
	})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // runs before the server's cleanup, even on Fatal
	opened := make(chan struct{})
	s := newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{
		OnOpen: func(*ws.Socket, ws.OpenEvent) { close(opened) },
	})
	<-opened
	var sent [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, size)
		sent = append(sent, p)
		if err := s.SendBinary(p); err != nil {
			t.Fatal(err)
		}
		if got, max := s.BufferedAmount(), (i+1)*size; got <= 0 || got > max {
			t.Fatalf("BufferedAmount after %d sends = %d, want in (0, %d]", i+1, got, max)
		}
	}
	// The writer drains what the kernel takes, then stalls.
	eventually(t, "the writer to start", func() bool { return s.BufferedAmount() < n*size })
	time.Sleep(50 * time.Millisecond)
	if high := s.BufferedAmount(); high <= 0 {
		t.Fatalf("BufferedAmount with a stalled reader = %d, want > 0", high)
	}
	unblock()
	for i := range n {
		select {
		case p := <-received:
			if !bytes.Equal(p, sent[i]) {
				t.Fatalf("message %d: got %d bytes of %d, want %d of %d", i, len(p), p[0], size, i)
			}
		case <-time.After(socketTimeout):
			t.Fatalf("message %d not received", i)
		}
	}
	eventually(t, "BufferedAmount back to 0", func() bool { return s.BufferedAmount() == 0 })
}

// smallReadBuffer fixes its connections' receive buffers at 64 KiB, which
// turns off the kernel's autotuning (up to tens of MiB on loopback).
type smallReadBuffer struct{ net.Listener }

func (l smallReadBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	return c, err
}

// TestSocketMessagesAfterClose: messages that arrive once Close was called
// are dropped, as the browser drops them.
func TestSocketMessagesAfterClose(t *testing.T) {
	srv := handlerServer(t, func(ctx context.Context, c *ws.Conn) {
		for i := range 50 {
			if err := c.Write(ctx, ws.MessageText, []byte(fmt.Sprint(i))); err != nil {
				return
			}
		}
		_, _, _ = c.Read(ctx)
	})
	var o ws.SocketOptions
	r := record(&o)
	onMessage := o.OnMessage
	o.OnMessage = func(s *ws.Socket, e ws.MessageEvent) {
		onMessage(s, e)
		_ = s.Close(1000, "")
	}
	s := newSocket(t, context.Background(), wsURL(srv), &o)
	r.expect(t, "open OPEN", `message text "0" OPEN`, `close 1000 "" clean CLOSED`)
	waitDone(t, s)
	r.none(t)
}

// TestSocketProtocolError: a server breaking the protocol makes the socket
// fail the connection (1007 on the wire) and report error and 1006, as
// the browser does.
func TestSocketProtocolError(t *testing.T) {
	url, _ := rawServer(t, func(req *http.Request) string {
		return switching("")(req) + "\x81\x02\xc3\x28" // text frame, invalid UTF-8
	})
	var o ws.SocketOptions
	r := record(&o)
	s := newSocket(t, context.Background(), url, &o)
	r.expect(t, "open OPEN", "error CLOSED", `close 1006 "" unclean CLOSED`)
	if err := <-r.errs; !errors.Is(err, ws.ErrProtocol) {
		t.Fatalf("error %v: want ErrProtocol", err)
	}
	waitDone(t, s)
}

// TestSocketSlowCallback: a callback that blocks holds back its own
// socket's events only.
func TestSocketSlowCallback(t *testing.T) {
	srv := handlerServer(t, echoUntilClose(nil))
	block := make(chan struct{})
	slowGot := make(chan string, 4)
	slow := newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{
		OnOpen: func(s *ws.Socket, _ ws.OpenEvent) { _ = s.SendText("a") },
		OnMessage: func(s *ws.Socket, e ws.MessageEvent) {
			<-block
			slowGot <- e.Text()
		},
	})
	_ = slow
	fastGot := make(chan string, 4)
	newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{
		OnOpen:    func(s *ws.Socket, _ ws.OpenEvent) { _ = s.SendText("b") },
		OnMessage: func(s *ws.Socket, e ws.MessageEvent) { fastGot <- e.Text() },
	})
	select {
	case m := <-fastGot:
		if m != "b" {
			t.Fatalf("fast socket got %q", m)
		}
	case <-time.After(socketTimeout):
		t.Fatal("a blocked callback of another socket held this one back")
	}
	close(block)
	if m := <-slowGot; m != "a" {
		t.Fatalf("slow socket got %q", m)
	}
}

func TestSocketEventsChannel(t *testing.T) {
	srv := handlerServer(t, echoUntilClose(nil))
	events := make(chan ws.Event)
	s := newSocket(t, context.Background(), wsURL(srv), &ws.SocketOptions{Events: events})
	var got []string
	for ev := range events {
		switch ev := ev.(type) {
		case ws.OpenEvent:
			got = append(got, "open "+s.ReadyState().String())
			_ = s.SendText("ping")
		case ws.MessageEvent:
			got = append(got, "message "+ev.Text())
			_ = s.Close(3000, "done")
		case ws.CloseEvent:
			got = append(got, closeLine(ev, s.ReadyState()))
		default:
			got = append(got, fmt.Sprintf("%T", ev))
		}
	}
	want := []string{"open OPEN", "message ping", `close 3000 "" clean CLOSED`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	waitDone(t, s)
}

// TestSocketContext: the socket's context ending closes it with 1001.
func TestSocketContext(t *testing.T) {
	closes := make(chan ws.CloseError, 1)
	srv := handlerServer(t, echoUntilClose(closes))
	ctx, cancel := context.WithCancel(context.Background())
	var o ws.SocketOptions
	r := record(&o)
	s := newSocket(t, ctx, wsURL(srv), &o)
	r.expect(t, "open OPEN")
	cancel()
	r.expect(t, `close 1001 "" clean CLOSED`)
	waitDone(t, s)
	if ce := <-closes; ce.Code != ws.StatusGoingAway {
		t.Fatalf("server got %v, want 1001", ce)
	}
	if err := s.SendText("x"); !errors.Is(err, ws.ErrSocketClosed) {
		t.Fatalf("Send after the context ended: %v", err)
	}
}

// TestSocketContextCutsClose: a context that ends while Close's handshake
// waits for a silent server cuts it short, and sends no 1001 in place of
// Close's code.
func TestSocketContextCutsClose(t *testing.T) {
	release := make(chan struct{})
	got := make(chan error, 1)
	srv := handlerServer(t, func(ctx context.Context, c *ws.Conn) {
		<-release // silent: the close frame waits unread
		_, _, err := c.Read(ctx)
		got <- err
	})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	ctx, cancel := context.WithCancel(context.Background())
	var o ws.SocketOptions
	o.Dial = &ws.DialOptions{CloseTimeout: time.Minute}
	r := record(&o)
	s := newSocket(t, ctx, wsURL(srv), &o)
	r.expect(t, "open OPEN")
	if err := s.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Without the cut, the close would wait its minute.
	r.expect(t, `close 1006 "" unclean CLOSED`)
	waitDone(t, s)
	unblock()
	// Close's frame went out before the cut, or nothing did; never 1001.
	if err := <-got; ws.CloseStatus(err) != 4000 && ws.CloseStatus(err) != ws.StatusAbnormalClosure {
		t.Fatalf("the server read %v, want Close's 4000 or the connection lost", err)
	}
}

// restartable is a WebSocket echo server that can be killed (listener and
// connections, without close frames) and started again on the same port.
type restartable struct {
	t      *testing.T
	addr   string
	tokens chan string // each handshake's Authorization header
	stall  bool        // set before start: handlers read nothing until killed

	mu     sync.Mutex
	srv    *http.Server // nil while killed
	killed chan struct{}
	conns  map[*ws.Conn]bool
	wg     sync.WaitGroup // the handlers of the servers started
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{t: t, conns: map[*ws.Conn]bool{}, tokens: make(chan string, 100)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *restartable) start() {
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	if r.stall {
		ln = smallReadBuffer{ln}
	}
	srv := &http.Server{}
	killed := make(chan struct{})
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.tokens <- req.Header.Get("Authorization")
		c, err := ws.Accept(w, req, nil)
		if err != nil {
			return
		}
		// Registered under the lock, or refused if kill came first:
		// kill's Wait then counts every handler.
		r.mu.Lock()
		if r.srv != srv {
			r.mu.Unlock()
			_ = c.CloseNow()
			return
		}
		r.conns[c] = true
		r.wg.Add(1)
		r.mu.Unlock()
		defer r.wg.Done()
		if r.stall {
			<-killed
			return
		}
		echoUntilClose(nil)(context.Background(), c)
	})
	r.mu.Lock()
	r.srv, r.killed = srv, killed
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// kill stops listening and drops every connection without a close frame.
func (r *restartable) kill() {
	r.mu.Lock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
		close(r.killed)
	}
	for c := range r.conns {
		_ = c.CloseNow()
	}
	clear(r.conns)
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *restartable) url() string { return "ws://" + r.addr }

// TestSocketReconnect kills the server mid-stream and starts it again: the
// socket reports the loss, reconnects with backoff, refreshes its token
// through BeforeDial, and sends what was queued meanwhile.
func TestSocketReconnect(t *testing.T) {
	srv := newRestartable(t)
	var o ws.SocketOptions
	r := record(&o)
	var attempts []int
	var amu sync.Mutex
	o.Reconnect = &ws.Reconnect{MinDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	o.BeforeDial = func(ctx context.Context, attempt int, d *ws.DialOptions) error {
		amu.Lock()
		attempts = append(attempts, attempt)
		amu.Unlock()
		d.Header.Set("Authorization", fmt.Sprintf("Bearer %d", attempt))
		return nil
	}
	down := make(chan struct{})
	var reconnecting atomic.Int32
	onReconnecting := o.OnReconnecting
	o.OnReconnecting = func(s *ws.Socket, e ws.ReconnectingEvent) {
		onReconnecting(s, e)
		if reconnecting.Add(1) == 1 {
			close(down)
		}
	}
	s := newSocket(t, context.Background(), srv.url(), &o)
	r.expect(t, "open OPEN")
	if tok := <-srv.tokens; tok != "Bearer 0" {
		t.Fatalf("first handshake's token %q", tok)
	}
	if err := s.SendText("before"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, `message text "before" OPEN`)

	srv.kill()
	r.expect(t, `close 1006 "" unclean CLOSED`, "reconnecting 1 CONNECTING")
	<-down
	// Sent while disconnected: kept, and sent after the reconnection.
	if err := s.SendText("meanwhile"); err != nil {
		t.Fatalf("Send while reconnecting: %v", err)
	}
	// Let an attempt or two fail before the server is back.
	eventually(t, "a failed attempt", func() bool { return reconnecting.Load() >= 2 })
	srv.start()
	var lines []string
	for {
		l := r.next(t)
		lines = append(lines, l)
		if strings.HasPrefix(l, "open") {
			break
		}
	}
	// Each failed attempt is an error, then the next attempt's announce.
	for i, l := range lines[:len(lines)-1] {
		want := "error CONNECTING"
		if i%2 == 1 {
			want = fmt.Sprintf("reconnecting %d CONNECTING", i/2+2)
		}
		if l != want {
			t.Fatalf("events while reconnecting: %q; #%d want %q", lines, i, want)
		}
	}
	if lines[len(lines)-1] != "open OPEN" {
		t.Fatalf("events while reconnecting: %q", lines)
	}
	n := len(lines)/2 + 1
	r.expect(t, fmt.Sprintf("reconnected %d OPEN", n), `message text "meanwhile" OPEN`)
	var tok string
	for len(srv.tokens) > 0 {
		tok = <-srv.tokens
	}
	if want := fmt.Sprintf("Bearer %d", n); tok != want {
		t.Fatalf("token of the handshake that got through: %q, want %q", tok, want)
	}
	amu.Lock()
	for i, a := range attempts {
		if a != i {
			t.Errorf("BeforeDial attempts %v: want 0, 1, 2, …", attempts)
			break
		}
	}
	amu.Unlock()
	if err := s.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	r.expect(t, `close 1000 "" clean CLOSED`)
	waitDone(t, s)
}

// TestSocketReconnectDrop: with DropWhileDisconnected, the messages not
// written when the connection is lost are dropped and counted, Send fails
// while the socket is down, and works again once it reconnected.
func TestSocketReconnectDrop(t *testing.T) {
	srv := &restartable{t: t, conns: map[*ws.Conn]bool{}, tokens: make(chan string, 100), stall: true}
	srv.start()
	t.Cleanup(srv.kill)
	hold := make(chan struct{})
	dropped := make(chan int, 1)
	opts := &ws.SocketOptions{
		Reconnect: &ws.Reconnect{MinDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond, DropWhileDisconnected: true},
		OnClose: func(*ws.Socket, ws.CloseEvent) {
			<-hold
		},
		OnReconnecting: func(_ *ws.Socket, e ws.ReconnectingEvent) {
			if e.Attempt == 1 {
				dropped <- e.Dropped
			}
		},
	}
	opened := make(chan struct{}, 2)
	opts.OnOpen = func(*ws.Socket, ws.OpenEvent) { opened <- struct{}{} }
	s := newSocket(t, context.Background(), srv.url(), opts)
	<-opened
	// 12 MiB to a server that reads nothing: most of it stays queued.
	const n, size = 192, 64 << 10
	for range n {
		if err := s.SendBinary(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the writer to stall", func() bool { return s.BufferedAmount() < n*size })
	srv.kill()
	// OnClose holds the events; the loss is seen once the connection's
	// reader ends, and Send then fails.
	extra := 0
	eventually(t, "Send refused while disconnected", func() bool {
		err := s.SendText("x")
		if err != nil && !errors.Is(err, ws.ErrNotConnected) {
			t.Fatalf("Send while disconnected: %v, want ErrNotConnected", err)
		}
		if err == nil {
			extra++ // queued behind the stalled messages: dropped too
		}
		return err != nil
	})
	close(hold)
	if d := <-dropped; d <= extra || d > n+extra {
		t.Fatalf("Dropped = %d, want the messages still queued (%d to %d)", d, extra+1, n+extra)
	}
	if b := s.BufferedAmount(); b != 0 {
		t.Fatalf("BufferedAmount after the drop = %d, want 0", b)
	}
	srv.start()
	<-opened
	if err := s.SendText("y"); err != nil {
		t.Fatalf("Send after reconnecting: %v", err)
	}
}

// TestSocketGivesUp: MaxAttempts failed attempts in a row close the socket
// for good; ShouldReconnect can stop at once.
func TestSocketGivesUp(t *testing.T) {
	status := http.StatusServiceUnavailable
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		http.Error(w, "not now", status)
	}))
	defer srv.Close()
	t.Run("max attempts", func(t *testing.T) {
		var o ws.SocketOptions
		r := record(&o)
		o.Reconnect = &ws.Reconnect{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxAttempts: 2}
		s := newSocket(t, context.Background(), wsURL(srv), &o)
		r.expect(t,
			"error CONNECTING", "reconnecting 1 CONNECTING",
			"error CONNECTING", "reconnecting 2 CONNECTING",
			"error CLOSED", `close 1006 "" unclean CLOSED`)
		waitDone(t, s)
	})
	t.Run("should not reconnect", func(t *testing.T) {
		mu.Lock()
		status = http.StatusForbidden
		mu.Unlock()
		var o ws.SocketOptions
		r := record(&o)
		var seen error
		o.Reconnect = &ws.Reconnect{ShouldReconnect: func(err error) bool {
			seen = err
			var de *ws.DialError
			return !errors.As(err, &de) || de.StatusCode != http.StatusForbidden
		}}
		s := newSocket(t, context.Background(), wsURL(srv), &o)
		r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
		waitDone(t, s)
		if seen == nil {
			t.Fatal("ShouldReconnect not called")
		}
	})
}

// TestSocketCloseStopsReconnecting: Close during the backoff wait ends the
// socket with the browser's events for a close while connecting.
func TestSocketCloseStopsReconnecting(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var o ws.SocketOptions
	r := record(&o)
	o.Reconnect = &ws.Reconnect{MinDelay: time.Hour, MaxDelay: time.Hour}
	s := newSocket(t, context.Background(), wsURL(srv), &o)
	r.expect(t, "error CONNECTING", "reconnecting 1 CONNECTING")
	if err := s.Close(0, ""); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
	waitDone(t, s)
}

// TestSocketHeartbeat: a peer that stops answering is found within
// Interval + Timeout (plus scheduling slack), reported as a lost
// connection; a live one is never disturbed.
func TestSocketHeartbeat(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 150 * time.Millisecond
	t.Run("silent peer", func(t *testing.T) {
		stop := make(chan struct{})
		srv := handlerServer(t, func(ctx context.Context, c *ws.Conn) {
			<-stop // never reads: pings go unanswered
		})
		t.Cleanup(func() { close(stop) })
		var o ws.SocketOptions
		r := record(&o)
		o.Heartbeat = &ws.Heartbeat{Interval: interval, Timeout: timeout}
		s := newSocket(t, context.Background(), wsURL(srv), &o)
		r.expect(t, "open OPEN")
		start := time.Now()
		r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
		if took, bound := time.Since(start), interval+timeout+2*time.Second; took > bound {
			t.Fatalf("dead peer found after %v, want within %v", took, bound)
		}
		if err := <-r.errs; !errors.Is(err, ws.ErrNoPong) {
			t.Fatalf("error %v: want ErrNoPong", err)
		}
		waitDone(t, s)
	})
	t.Run("live peer", func(t *testing.T) {
		srv := handlerServer(t, echoUntilClose(nil))
		var o ws.SocketOptions
		r := record(&o)
		o.Heartbeat = &ws.Heartbeat{Interval: 10 * time.Millisecond, Timeout: time.Second}
		s := newSocket(t, context.Background(), wsURL(srv), &o)
		r.expect(t, "open OPEN")
		time.Sleep(200 * time.Millisecond) // some twenty pings
		r.none(t)
		if err := s.Close(1000, ""); err != nil {
			t.Fatal(err)
		}
		r.expect(t, `close 1000 "" clean CLOSED`)
	})
}
