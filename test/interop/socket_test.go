package interop

// ws.Socket, the client shaped like the browser's WebSocket, against
// Node's ws server: every state and the order of the events, close codes
// and reasons both ways, BufferedAmount against a reader that stops, a
// server process killed and started again on its port, a silent peer found
// by the heartbeat, the Close calls the browser refuses, and the
// subprotocol and extensions the server chose. ws/socket_test.go runs the
// same shapes against our own server.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/duplexrt/duplex/ws"
)

// snTimeout bounds every wait for a socket's event or state.
const snTimeout = 10 * time.Second

// snReason123 is the longest reason Close takes: 123 bytes of UTF-8, with
// two-byte runes up to the end.
var snReason123 = strings.Repeat("é", 61) + "x"

// snRecorder turns a socket's events into lines such as "open OPEN" or
// `close 4000 "bye" clean CLOSED`, each with the ReadyState read inside the
// callback, as a browser test reads readyState in its handlers. A close
// line gets the event's Err appended unless Err is set exactly when the
// close is not clean, so that no expected line matches it.
type snRecorder struct {
	lines  chan string
	errs   chan error                // each ErrorEvent's error
	closes chan ws.CloseEvent        // each CloseEvent
	recon  chan ws.ReconnectingEvent // each ReconnectingEvent
}

// snRecord installs recording callbacks in o and returns the recorder.
func snRecord(o *ws.SocketOptions) *snRecorder {
	r := &snRecorder{
		lines:  make(chan string, 1024),
		errs:   make(chan error, 256),
		closes: make(chan ws.CloseEvent, 256),
		recon:  make(chan ws.ReconnectingEvent, 256),
	}
	o.OnOpen = func(s *ws.Socket, e ws.OpenEvent) {
		r.lines <- "open " + s.ReadyState().String()
	}
	o.OnMessage = func(s *ws.Socket, e ws.MessageEvent) {
		r.lines <- fmt.Sprintf("message %v %s %v", e.Type, snData(e.Data), s.ReadyState())
	}
	o.OnError = func(s *ws.Socket, e ws.ErrorEvent) {
		r.errs <- e.Err
		r.lines <- "error " + s.ReadyState().String()
	}
	o.OnClose = func(s *ws.Socket, e ws.CloseEvent) {
		r.closes <- e
		l := snCloseLine(e, s.ReadyState())
		if e.WasClean != (e.Err == nil) {
			l += fmt.Sprintf(" with Err %v", e.Err) // Err must tell why exactly when not clean
		}
		r.lines <- l
	}
	o.OnReconnecting = func(s *ws.Socket, e ws.ReconnectingEvent) {
		r.recon <- e
		r.lines <- fmt.Sprintf("reconnecting %d %v", e.Attempt, s.ReadyState())
	}
	o.OnReconnected = func(s *ws.Socket, e ws.ReconnectedEvent) {
		r.lines <- fmt.Sprintf("reconnected %d %v", e.Attempts, s.ReadyState())
	}
	return r
}

// snData formats a payload for an event line: quoted if short, by length
// and hash if not.
func snData(p []byte) string {
	if len(p) <= 64 {
		return fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("%d bytes sha256 %.16s", len(p), sha(p))
}

func snCloseLine(e ws.CloseEvent, st ws.ReadyState) string {
	clean := "unclean"
	if e.WasClean {
		clean = "clean"
	}
	return fmt.Sprintf("close %d %q %s %v", int(e.Code), e.Reason, clean, st)
}

func (r *snRecorder) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-r.lines:
		return l
	case <-time.After(snTimeout):
		t.Fatalf("no socket event within %v", snTimeout)
		return ""
	}
}

// expect checks the next lines.
func (r *snRecorder) expect(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, r.next(t))
		if got[len(got)-1] != want[len(got)-1] {
			break
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("socket events (-want +got):\n%s", diff)
	}
}

// none checks that no event is waiting.
func (r *snRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case l := <-r.lines:
		t.Fatalf("unexpected socket event %q", l)
	default:
	}
}

// err returns the error of the ErrorEvent recorded first and not yet taken.
func (r *snRecorder) err(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.errs:
		return err
	default:
		t.Fatal("no ErrorEvent recorded")
		return nil
	}
}

// closeErr returns the Err of the CloseEvent recorded first and not yet
// taken.
func (r *snRecorder) closeErr(t *testing.T) error {
	t.Helper()
	select {
	case e := <-r.closes:
		return e.Err
	default:
		t.Fatal("no CloseEvent recorded")
		return nil
	}
}

// noErr checks that no ErrorEvent is recorded and not yet taken.
func (r *snRecorder) noErr(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.errs:
		t.Errorf("unexpected ErrorEvent: %v", err)
	default:
	}
}

// snDialOptions are the Dial options of the tests' sockets: no proxy, and
// the package's short close timeout.
func snDialOptions() *ws.DialOptions {
	return &ws.DialOptions{
		CloseTimeout: closeTimeout,
		Proxy:        func(*http.Request) (*url.URL, error) { return nil, nil },
	}
}

// snNewSocket makes a socket and, when the test ends, closes it and waits
// until it is done.
func snNewSocket(t *testing.T, ctx context.Context, u string, o *ws.SocketOptions) *ws.Socket {
	t.Helper()
	s, err := ws.NewSocket(ctx, u, o)
	if err != nil {
		t.Fatalf("NewSocket: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close(0, "")
		snWaitDone(t, s)
	})
	return s
}

// snWaitDone waits for the socket's last event, and checks it is CLOSED.
func snWaitDone(t *testing.T, s *ws.Socket) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(snTimeout):
		t.Fatalf("socket not done within %v (state %v)", snTimeout, s.ReadyState())
	}
	if st := s.ReadyState(); st != ws.StateClosed {
		t.Fatalf("state once done: %v, want CLOSED", st)
	}
}

// snEventually polls cond until it holds.
func snEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(snTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, snTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// snHoldFirstDial makes the socket's first connection attempt wait (in
// BeforeDial) until release is called, so that the test sees the socket
// CONNECTING for as long as it wants.
func snHoldFirstDial(o *ws.SocketOptions) (release func()) {
	ch := make(chan struct{})
	o.BeforeDial = func(ctx context.Context, attempt int, _ *ws.DialOptions) error {
		if attempt > 0 {
			return nil
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return sync.OnceFunc(func() { close(ch) })
}

// snExpectSkipping returns Node's next event of kind, skipping those of
// kind skip (pings from the heartbeat).
func snExpectSkipping(t *testing.T, n *nodeConn, kind, skip string) event {
	t.Helper()
	for {
		ev, ok := n.next()
		if !ok {
			t.Fatalf("%v: no %q event within %v; stderr: %s", n, kind, opTimeout, n.h.stderr.String())
		}
		if ev.Ev == skip {
			continue
		}
		if ev.Ev != kind {
			t.Fatalf("%v: got event %v, want %q", n, ev, kind)
		}
		return ev
	}
}

// snOpen makes a socket to a connection of ws-server.mjs (echoing if
// echo), and waits for the open on both sides.
func snOpen(t *testing.T, echo bool, o *ws.SocketOptions) (*ws.Socket, *nodeConn, *snRecorder) {
	t.Helper()
	query := ""
	if echo {
		query = "echo=1"
	}
	n, u := nodeServer(t, false, query)
	if o.Dial == nil {
		o.Dial = snDialOptions()
	}
	r := snRecord(o)
	s := snNewSocket(t, t.Context(), u, o)
	r.expect(t, "open OPEN")
	n.expect(t, "open")
	return s, n, r
}

// TestSocketNodeLifecycle runs a socket through its whole life against an
// echoing Node server: CONNECTING with messages queued (and counted in
// BufferedAmount) before the open, the open, text and binary messages
// each way, then Close(4000, "bye ✓"): CLOSING at once, Node gets the code
// and reason, and the close event reports Node's answer, clean, CLOSED.
// The Events channel gets the same events in the same order, and is closed.
func TestSocketNodeLifecycle(t *testing.T) {
	t.Parallel()
	n, u := nodeServer(t, false, "echo=1")
	o := ws.SocketOptions{Dial: snDialOptions()}
	r := snRecord(&o)
	release := snHoldFirstDial(&o)
	events := make(chan ws.Event)
	o.Events = events
	kinds := make(chan []string, 1)
	go func() {
		var k []string
		for ev := range events {
			k = append(k, fmt.Sprintf("%T", ev))
		}
		kinds <- k
	}()
	s := snNewSocket(t, t.Context(), u, &o)
	if st := s.ReadyState(); st != ws.StateConnecting {
		t.Fatalf("state after NewSocket: %v, want CONNECTING", st)
	}
	if s.URL() != u {
		t.Errorf("URL() = %q, want %q", s.URL(), u)
	}

	// Sent while connecting: queued, counted, sent in order once open.
	hello, bin := "hello ✓", []byte{0, 1, 2, 255}
	if err := s.SendText(hello); err != nil {
		t.Fatalf("SendText while connecting: %v", err)
	}
	if err := s.SendBinary(bin); err != nil {
		t.Fatalf("SendBinary while connecting: %v", err)
	}
	if got, want := s.BufferedAmount(), len(hello)+len(bin); got != want {
		t.Fatalf("BufferedAmount while connecting = %d, want %d", got, want)
	}
	if st := s.ReadyState(); st != ws.StateConnecting {
		t.Fatalf("state while the dial is held: %v, want CONNECTING", st)
	}
	release()

	open := n.expect(t, "open")
	if open.Protocol != "" || open.ReqProtocol != "" || open.ReqExtensions != "" {
		t.Errorf("Node's open event %v: want no subprotocol and no extension offered", open)
	}
	r.expect(t,
		"open OPEN",
		`message text "hello ✓" OPEN`,
		`message binary "\x00\x01\x02\xff" OPEN`,
	)
	n.expectMessage(t, false, []byte(hello))
	n.expectMessage(t, true, bin)
	snEventually(t, "BufferedAmount back to 0", func() bool { return s.BufferedAmount() == 0 })
	if s.Protocol() != "" || s.Extensions() != "" {
		t.Errorf("Protocol() %q, Extensions() %q: want none", s.Protocol(), s.Extensions())
	}

	// Node sends, text and a binary message over 64 KiB (the 8-byte length).
	big := binaryPayload(70000)
	n.send(t, []byte("from node ✓"), false, true)
	n.send(t, big, true, true)
	r.expect(t,
		`message text "from node ✓" OPEN`,
		"message binary "+snData(big)+" OPEN",
	)

	if err := s.Close(4000, "bye ✓"); err != nil {
		t.Fatalf("Close(4000, bye ✓): %v", err)
	}
	if st := s.ReadyState(); st != ws.StateClosing {
		t.Fatalf("state right after Close: %v, want CLOSING", st)
	}
	if err := s.SendText("late"); !errors.Is(err, ws.ErrSocketClosed) {
		t.Errorf("SendText while closing: %v, want ErrSocketClosed", err)
	}
	ev, errs := n.expectClose(t)
	if ev.Code != 4000 || ev.Reason != "bye ✓" {
		t.Errorf("Node saw close %d %q, want 4000 %q", ev.Code, ev.Reason, "bye ✓")
	}
	if len(errs) > 0 {
		t.Errorf("Node reported errors: %v", errs)
	}
	r.expect(t, `close 4000 "bye ✓" clean CLOSED`) // ws echoes code and reason
	snWaitDone(t, s)
	if err := s.SendText("later"); !errors.Is(err, ws.ErrSocketClosed) {
		t.Errorf("SendText once closed: %v, want ErrSocketClosed", err)
	}
	if err := s.Close(1000, ""); err != nil {
		t.Errorf("second Close: %v, want nil (it does nothing)", err)
	}
	r.none(t)

	select {
	case k := <-kinds:
		want := []string{"ws.OpenEvent", "ws.MessageEvent", "ws.MessageEvent",
			"ws.MessageEvent", "ws.MessageEvent", "ws.CloseEvent"}
		if diff := cmp.Diff(want, k); diff != "" {
			t.Errorf("Events channel (-want +got):\n%s", diff)
		}
	case <-time.After(snTimeout):
		t.Fatal("Events channel not closed once the socket was done")
	}
}

// TestSocketNodeCloseFromGo: each form of Close reaches Node as the browser
// sends it (no code: an empty close frame, read as 1005; a reason without
// a code: 1000), and the close event reports Node's answer.
func TestSocketNodeCloseFromGo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		code       ws.StatusCode
		reason     string
		wantCode   ws.StatusCode
		wantReason string
	}{
		{"none", 0, "", ws.StatusNoStatusRcvd, ""},
		{"reason only", 0, "why", ws.StatusNormalClosure, "why"},
		{"1000", ws.StatusNormalClosure, "", ws.StatusNormalClosure, ""},
		{"3000", 3000, "x", 3000, "x"},
		{"4999 123 bytes", 4999, snReason123, 4999, snReason123},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o ws.SocketOptions
			s, n, r := snOpen(t, false, &o)
			if err := s.Close(tc.code, tc.reason); err != nil {
				t.Fatalf("Close(%d, %d bytes): %v", tc.code, len(tc.reason), err)
			}
			if st := s.ReadyState(); st != ws.StateClosing {
				t.Fatalf("state right after Close: %v, want CLOSING", st)
			}
			ev, _ := n.expectClose(t)
			if ev.Code != int(tc.wantCode) || ev.Reason != tc.wantReason {
				t.Errorf("Node saw close %d %q, want %d %q", ev.Code, ev.Reason, tc.wantCode, tc.wantReason)
			}
			r.expect(t, snCloseLine(ws.CloseEvent{Code: tc.wantCode, Reason: tc.wantReason, WasClean: true}, ws.StateClosed))
			snWaitDone(t, s)
			r.none(t)
		})
	}
}

// TestSocketNodeServerCloses: Node closes with a code and reason, or none;
// the close event carries them (1005 for none), clean, with no error
// event, and Node gets the code back.
func TestSocketNodeServerCloses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		code   ws.StatusCode
		reason string
	}{
		{"1000", ws.StatusNormalClosure, ""},
		{"1001 going", ws.StatusGoingAway, "going"},
		{"4001 123 bytes", 4001, snReason123},
		{"no code", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o ws.SocketOptions
			s, n, r := snOpen(t, false, &o)
			n.command(t, map[string]any{"op": "close", "code": int(tc.code), "reason": tc.reason})
			want := tc.code
			if want == 0 {
				want = ws.StatusNoStatusRcvd
			}
			r.expect(t, snCloseLine(ws.CloseEvent{Code: want, Reason: tc.reason, WasClean: true}, ws.StateClosed))
			snWaitDone(t, s)
			r.none(t)
			ev, errs := n.expectClose(t)
			if ev.Code != int(want) {
				t.Errorf("Node saw close %d %q, want its code %d back", ev.Code, ev.Reason, want)
			}
			if len(errs) > 0 {
				t.Errorf("Node reported errors: %v", errs)
			}
			if err := s.SendText("x"); !errors.Is(err, ws.ErrSocketClosed) {
				t.Errorf("SendText once closed: %v, want ErrSocketClosed", err)
			}
		})
	}
}

// TestSocketNodeTerminate: Node drops the TCP connection without a close
// frame (ws's terminate()): close 1006, not clean. As in Chromium, and the
// WHATWG standard, no error event comes first: a connection that ends
// without a close frame is closed (RFC 6455 §7.1.5), not failed (§7.1.7).
func TestSocketNodeTerminate(t *testing.T) {
	t.Parallel()
	var o ws.SocketOptions
	s, n, r := snOpen(t, false, &o)
	n.command(t, map[string]any{"op": "terminate"})
	r.expect(t, `close 1006 "" unclean CLOSED`)
	t.Logf("CloseEvent.Err: %v", r.closeErr(t))
	snWaitDone(t, s)
	r.none(t)
	r.noErr(t)
}

// TestSocketNodeContext: the socket's context ending closes it with 1001
// Going Away, which Node gets.
func TestSocketNodeContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n, u := nodeServer(t, false, "")
	o := ws.SocketOptions{Dial: snDialOptions()}
	r := snRecord(&o)
	s := snNewSocket(t, ctx, u, &o)
	r.expect(t, "open OPEN")
	n.expect(t, "open")
	cancel()
	r.expect(t, `close 1001 "" clean CLOSED`)
	snWaitDone(t, s)
	if ev, _ := n.expectClose(t); ev.Code != int(ws.StatusGoingAway) {
		t.Errorf("Node saw close %d %q, want 1001", ev.Code, ev.Reason)
	}
}

// snSmallSendBuffer dials with a 64 KiB send buffer, which turns off the
// kernel's autotuning (up to 4 MiB here), so that a reader that stops
// soon stalls the writer.
func snSmallSendBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(64 << 10)
	}
	return nc, err
}

// snStalled waits until BufferedAmount has not moved for 200 ms, and
// returns it.
func snStalled(t *testing.T, s *ws.Socket) int {
	t.Helper()
	deadline := time.Now().Add(snTimeout)
	last, since := s.BufferedAmount(), time.Now()
	for {
		time.Sleep(10 * time.Millisecond)
		b := s.BufferedAmount()
		switch {
		case b != last:
			last, since = b, time.Now()
		case time.Since(since) >= 200*time.Millisecond:
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("BufferedAmount still moving after %v (now %d)", snTimeout, b)
		}
	}
}

// TestSocketNodeBufferedAmount throttles Node's reads: BufferedAmount
// rises with every Send and stays high while Node reads nothing, then
// falls, never rising, to 0 once Node reads again, every message arriving
// in order (Node checks each one's length and hash).
func TestSocketNodeBufferedAmount(t *testing.T) {
	t.Parallel()
	d := snDialOptions()
	d.NetDialContext = snSmallSendBuffer
	var o ws.SocketOptions
	o.Dial = d
	s, n, _ := snOpen(t, false, &o)
	n.command(t, map[string]any{"op": "pause"})
	n.expect(t, "paused")

	// 8 MiB: far more than the kernel's buffers take with Node not reading,
	// under the default send limit. Each message has its own size.
	const count, size = 128, 64 << 10
	total := 0
	for i := range count {
		p := binaryPayload(size + i)
		if err := s.SendBinary(p); err != nil {
			t.Fatalf("SendBinary #%d: %v", i, err)
		}
		total += len(p)
		if got := s.BufferedAmount(); got > total {
			t.Fatalf("BufferedAmount after %d sends = %d, more than the %d bytes sent", i+1, got, total)
		}
	}
	high := snStalled(t, s)
	t.Logf("BufferedAmount with Node paused: %d of %d bytes", high, total)
	if high <= 0 || high > total {
		t.Fatalf("BufferedAmount with Node paused = %d, want in (0, %d]", high, total)
	}
	if high < total/2 {
		t.Errorf("BufferedAmount with Node paused = %d: the kernel took more than half of %d bytes", high, total)
	}

	n.command(t, map[string]any{"op": "resume"})
	n.expect(t, "resumed")
	last := high
	for i := range count {
		n.expectMessage(t, true, binaryPayload(size+i))
		b := s.BufferedAmount()
		if b > last {
			t.Fatalf("BufferedAmount rose from %d to %d with nothing sent", last, b)
		}
		last = b
	}
	snEventually(t, "BufferedAmount back to 0", func() bool { return s.BufferedAmount() == 0 })
	if err := s.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	if ev, _ := n.expectClose(t); ev.Code != 1000 {
		t.Errorf("Node saw close %d %q, want 1000", ev.Code, ev.Reason)
	}
	snWaitDone(t, s)
}

// TestSocketNodeCloseThenContextEnds calls Close and then ends the
// socket's context at once, on a connection to Node, forty times: each
// socket reports one close event, and is done within the bound.
//
// Under -race it catches the data race of ws/socket.go at 1e6208e, where
// requestClose, run by the context's end, set goAway on the closeRequest
// that Close had published while writeLoop read it without s.mu (seen
// when the context ends while the writer runs the close handshake).
func TestSocketNodeCloseThenContextEnds(t *testing.T) {
	t.Parallel()
	for i := range 40 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			n, u := nodeServer(t, false, "")
			o := ws.SocketOptions{Dial: snDialOptions()}
			r := snRecord(&o)
			s := snNewSocket(t, ctx, u, &o)
			r.expect(t, "open OPEN")
			n.expect(t, "open")
			if err := s.Close(4000, "bye"); err != nil {
				t.Fatal(err)
			}
			// A varied pause: the context ends before, during or after
			// the writer's close handshake.
			time.Sleep(time.Duration(i%4) * 100 * time.Microsecond)
			cancel()
			l := r.next(t)
			if !strings.HasPrefix(l, "close") || !strings.HasSuffix(l, " CLOSED") {
				t.Errorf("first event after Close and the context's end: %q, want a close", l)
			}
			t.Log(l)
			snWaitDone(t, s)
			r.none(t)
		})
	}
}

// TestSocketNodeCloseUnanswered: Close on a connection whose Node server
// reads nothing, so that no answer comes: the socket cuts the connection
// after the close timeout and reports close 1006, not clean, and no error
// event (the connection was closed, not failed), as the browser does when
// its closing handshake times out.
func TestSocketNodeCloseUnanswered(t *testing.T) {
	t.Parallel()
	var o ws.SocketOptions
	s, n, r := snOpen(t, false, &o)
	n.command(t, map[string]any{"op": "pause"})
	n.expect(t, "paused")
	if err := s.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.expect(t, `close 1006 "" unclean CLOSED`)
	t.Logf("closed %v after Close; CloseEvent.Err: %v", time.Since(start), r.closeErr(t))
	snWaitDone(t, s)
	r.noErr(t)
}

// snProcess is a socket-server.mjs of one test's own, which the test may
// kill with SIGKILL and start again on the same port. Its events go to one
// connection number, registered before it starts.
type snProcess struct {
	h      *hub
	n      *nodeConn
	port   int
	killed bool
}

// snStartProcess starts socket-server.mjs on port (0 for a free one) and
// waits until it listens. The process is stopped when the test ends.
func snStartProcess(t *testing.T, port, connID int) *snProcess {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), hubLifetime)
	h := &hub{
		name:     fmt.Sprintf("socket-server.mjs(%d)", port),
		cmd:      exec.CommandContext(ctx, node, "socket-server.mjs", strconv.Itoa(port)),
		cancel:   cancel,
		readDone: make(chan struct{}),
		conns:    map[int]*queue{},
		own:      newQueue(),
	}
	p := &snProcess{h: h, n: &nodeConn{h: h, id: connID, q: newQueue()}}
	h.conns[connID] = p.n.q
	h.cmd.WaitDelay = time.Second
	h.cmd.Stderr = &h.stderr
	stdin, err := h.cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.stdin = stdin
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting socket-server.mjs: %v", err)
	}
	go h.readEvents(stdout)
	t.Cleanup(p.stop)
	ev, ok := h.own.next(h.readDone)
	if !ok || ev.Ev != "listening" {
		t.Fatalf("socket-server.mjs on port %d: got %v instead of listening; stderr: %s", port, ev, h.stderr.String())
	}
	p.port = ev.Port
	return p
}

// kill kills the process with SIGKILL: the kernel closes its connections
// without a close frame, and its port.
func (p *snProcess) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.h.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing socket-server.mjs: %v", err)
	}
	p.wait()
}

// stop ends the process by closing its stdin, or kills it after 3 s.
func (p *snProcess) stop() {
	if p.killed {
		return
	}
	p.killed = true
	_ = p.h.stdin.Close()
	p.wait()
}

func (p *snProcess) wait() {
	select {
	case <-p.h.readDone:
	case <-time.After(3 * time.Second):
		p.h.cancel()
		<-p.h.readDone
	}
	_ = p.h.cmd.Wait()
	p.h.cancel()
}

// TestSocketNodeServerKilled kills the Node server's process mid-stream
// and starts it again on the same port. The socket reports close 1006
// (without an error event, as the browser) and reconnecting 1, retries while the port is closed, then open and
// reconnected, in order, with the state each event announces; the messages
// sent while it was disconnected go out, in order, on the new connection.
func TestSocketNodeServerKilled(t *testing.T) {
	t.Parallel()
	id := int(nextConnID.Add(1))
	p1 := snStartProcess(t, 0, id)
	u := fmt.Sprintf("ws://127.0.0.1:%d/?conn=%d&echo=1", p1.port, id)
	o := ws.SocketOptions{
		Dial:      snDialOptions(),
		Reconnect: &ws.Reconnect{MinDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
	}
	r := snRecord(&o)
	s := snNewSocket(t, t.Context(), u, &o)
	r.expect(t, "open OPEN")
	p1.n.expect(t, "open")
	for i := range 3 {
		m := fmt.Sprintf("before %d", i)
		if err := s.SendText(m); err != nil {
			t.Fatal(err)
		}
		p1.n.expectMessage(t, false, []byte(m))
		r.expect(t, fmt.Sprintf("message text %q OPEN", m))
	}

	p1.kill(t)
	// Lost, not failed: no error event before the close, as in the browser.
	r.expect(t, `close 1006 "" unclean CLOSED`, "reconnecting 1 CONNECTING")
	if err := r.closeErr(t); err == nil {
		t.Error("CloseEvent.Err of the lost connection is nil")
	}
	if e := <-r.recon; e.Err == nil {
		t.Errorf("ReconnectingEvent %+v: want the loss as Err", e)
	} else {
		t.Logf("ReconnectingEvent.Err: %v", e.Err)
	}
	if st := s.ReadyState(); st != ws.StateConnecting {
		t.Fatalf("state while reconnecting: %v, want CONNECTING", st)
	}
	// Sent while disconnected: kept, and sent after the reconnection.
	meanwhile, bin := "meanwhile ✓", binaryPayload(3000)
	if err := s.SendText(meanwhile); err != nil {
		t.Fatalf("SendText while reconnecting: %v", err)
	}
	if err := s.SendBinary(bin); err != nil {
		t.Fatalf("SendBinary while reconnecting: %v", err)
	}
	if got, want := s.BufferedAmount(), len(meanwhile)+len(bin); got != want {
		t.Fatalf("BufferedAmount while disconnected = %d, want %d", got, want)
	}

	p2 := snStartProcess(t, p1.port, id)
	var lines []string
	for {
		l := r.next(t)
		lines = append(lines, l)
		if !strings.HasPrefix(l, "error") && !strings.HasPrefix(l, "reconnecting") {
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
			t.Fatalf("events while reconnecting: %q; #%d: want %q", lines, i, want)
		}
	}
	if lines[len(lines)-1] != "open OPEN" {
		t.Fatalf("events while reconnecting: %q, want open OPEN last", lines)
	}
	attempts := len(lines)/2 + 1
	t.Logf("reconnected in %d attempts", attempts)
	for range attempts - 1 {
		t.Logf("a failed attempt: %v", r.err(t))
	}
	r.expect(t,
		fmt.Sprintf("reconnected %d OPEN", attempts),
		fmt.Sprintf("message text %q OPEN", meanwhile),
		"message binary "+snData(bin)+" OPEN",
	)
	p2.n.expect(t, "open")
	p2.n.expectMessage(t, false, []byte(meanwhile))
	p2.n.expectMessage(t, true, bin)
	snEventually(t, "BufferedAmount back to 0", func() bool { return s.BufferedAmount() == 0 })

	if err := s.Close(1000, "done"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, `close 1000 "done" clean CLOSED`)
	snWaitDone(t, s)
	if ev, _ := p2.n.expectClose(t); ev.Code != 1000 || ev.Reason != "done" {
		t.Errorf("Node saw close %d %q, want 1000 done", ev.Code, ev.Reason)
	}
	r.none(t)
}

// TestSocketNodeReconnectAfterServerClose: a close from the Node server
// (1012 Service Restart) is reported clean, then the socket reconnects at
// once to the same server, and the ReconnectingEvent carries the close.
func TestSocketNodeReconnectAfterServerClose(t *testing.T) {
	t.Parallel()
	o := ws.SocketOptions{
		Reconnect: &ws.Reconnect{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
	}
	s, n, r := snOpen(t, true, &o)
	n.command(t, map[string]any{"op": "close", "code": 1012, "reason": "restart"})
	r.expect(t,
		`close 1012 "restart" clean CLOSED`,
		"reconnecting 1 CONNECTING",
		"open OPEN",
		"reconnected 1 OPEN",
	)
	e := <-r.recon
	if ce := closeError(t, e.Err); ce.Code != 1012 || ce.Reason != "restart" {
		t.Errorf("ReconnectingEvent.Err = %v, want the server's close 1012 restart", e.Err)
	}
	// The new connection echoes too (Node numbers it as the first: the
	// URL is the same).
	if err := s.SendText("again"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, `message text "again" OPEN`)
	if err := s.Close(1000, ""); err != nil {
		t.Fatal(err)
	}
	r.expect(t, `close 1000 "" clean CLOSED`)
	snWaitDone(t, s)
}

// TestSocketNodeHeartbeat: the heartbeat's pings reach Node, which answers
// them (nothing happens); once Node stops reading, the socket finds the
// silent peer within Interval + Timeout (plus 2 s of slack) and reports an
// ErrorEvent wrapping ErrNoPong, then close 1006. The Node server is a
// process of the test's own, so that the shared one's load from other
// tests cannot hold a pong back for the 200 ms timeout.
func TestSocketNodeHeartbeat(t *testing.T) {
	t.Parallel()
	const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
	id := int(nextConnID.Add(1))
	p := snStartProcess(t, 0, id)
	n := p.n
	o := ws.SocketOptions{
		Dial:      snDialOptions(),
		Heartbeat: &ws.Heartbeat{Interval: interval, Timeout: timeout},
	}
	r := snRecord(&o)
	s := snNewSocket(t, t.Context(), fmt.Sprintf("ws://127.0.0.1:%d/?conn=%d", p.port, id), &o)
	r.expect(t, "open OPEN")
	n.expect(t, "open")
	for range 3 {
		n.expect(t, "ping")
	}
	r.none(t)

	n.command(t, map[string]any{"op": "pause"})
	snExpectSkipping(t, n, "paused", "ping")
	start := time.Now()
	r.expect(t, "error CLOSED", `close 1006 "" unclean CLOSED`)
	took, bound := time.Since(start), interval+timeout+2*time.Second
	t.Logf("silent peer found %v after Node paused", took)
	if took > bound {
		t.Errorf("silent peer found after %v, want within %v", took, bound)
	}
	if err := r.err(t); !errors.Is(err, ws.ErrNoPong) {
		t.Errorf("error event %v: want one wrapping ErrNoPong", err)
	}
	if err := r.closeErr(t); !errors.Is(err, ws.ErrNoPong) {
		t.Errorf("CloseEvent.Err %v: want the ErrorEvent's, wrapping ErrNoPong", err)
	}
	snWaitDone(t, s)
	r.none(t)
}

// TestSocketNodeCloseRefused: Close with a code the browser refuses, a
// reason over 123 bytes or not UTF-8 returns ErrCloseCode or
// ErrCloseReason and changes nothing: the socket stays OPEN, messages
// still flow, and Node sees no close. Then a 123-byte reason goes through.
func TestSocketNodeCloseRefused(t *testing.T) {
	t.Parallel()
	var o ws.SocketOptions
	s, n, r := snOpen(t, true, &o)
	for _, code := range []ws.StatusCode{999, 1001, 1004, 1005, 1006, 1015, 2999, 5000} {
		if err := s.Close(code, ""); !errors.Is(err, ws.ErrCloseCode) {
			t.Errorf("Close(%d): %v, want ErrCloseCode", code, err)
		}
		if st := s.ReadyState(); st != ws.StateOpen {
			t.Fatalf("state after Close(%d) was refused: %v, want OPEN", code, st)
		}
	}
	for _, reason := range []string{
		strings.Repeat("x", 124),
		strings.Repeat("é", 62),
		snReason123 + "y",
		"\xff",
		"ok\xc3\x28",
	} {
		for _, code := range []ws.StatusCode{0, 1000, 4000} {
			if err := s.Close(code, reason); !errors.Is(err, ws.ErrCloseReason) {
				t.Errorf("Close(%d, %d bytes %q): %v, want ErrCloseReason", code, len(reason), reason, err)
			}
		}
		if st := s.ReadyState(); st != ws.StateOpen {
			t.Fatalf("state after Close with a %d-byte reason was refused: %v, want OPEN", len(reason), st)
		}
	}
	if err := s.SendText("still open"); err != nil {
		t.Fatalf("SendText after refused Close calls: %v", err)
	}
	n.expectMessage(t, false, []byte("still open")) // the next event: no close came first
	r.expect(t, `message text "still open" OPEN`)

	if err := s.Close(1000, snReason123); err != nil {
		t.Fatalf("Close(1000, 123 bytes): %v", err)
	}
	if ev, _ := n.expectClose(t); ev.Code != 1000 || ev.Reason != snReason123 {
		t.Errorf("Node saw close %d %q, want 1000 and the 123-byte reason", ev.Code, ev.Reason)
	}
	r.expect(t, snCloseLine(ws.CloseEvent{Code: 1000, Reason: snReason123, WasClean: true}, ws.StateClosed))
	snWaitDone(t, s)
}

// TestSocketNodeProtocol: the subprotocol Node picks among those offered
// (Dial.Subprotocols) is OpenEvent.Protocol and Protocol(), which is ""
// before the open.
func TestSocketNodeProtocol(t *testing.T) {
	t.Parallel()
	offered := []string{"chat.v1", "chat.v2"}
	for _, tc := range []struct {
		name, query, want string
	}{
		{"ws default: the first", "", "chat.v1"},
		{"the second", "select=chat.v2", "chat.v2"},
		{"none", "select=", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, u := nodeServer(t, false, tc.query)
			d := snDialOptions()
			d.Subprotocols = offered
			o := ws.SocketOptions{Dial: d}
			release := snHoldFirstDial(&o)
			got := make(chan ws.OpenEvent, 1)
			o.OnOpen = func(_ *ws.Socket, e ws.OpenEvent) { got <- e }
			s := snNewSocket(t, t.Context(), u, &o)
			if s.Protocol() != "" {
				t.Errorf("Protocol() before the open = %q, want none", s.Protocol())
			}
			release()
			var e ws.OpenEvent
			select {
			case e = <-got:
			case <-time.After(snTimeout):
				t.Fatalf("no open event within %v (state %v)", snTimeout, s.ReadyState())
			}
			open := n.expect(t, "open")
			if open.ReqProtocol != "chat.v1, chat.v2" || open.Protocol != tc.want {
				t.Errorf("Node's open event %v: want chat.v1, chat.v2 offered and %q chosen", open, tc.want)
			}
			if e.Protocol != tc.want || s.Protocol() != tc.want {
				t.Errorf("OpenEvent.Protocol %q, Protocol() %q: want %q", e.Protocol, s.Protocol(), tc.want)
			}
		})
	}
}

// TestSocketNodeExtensions: with Dial.Compression set and a Node server
// with perMessageDeflate, OpenEvent.Extensions and Extensions() report
// permessage-deflate and compressed messages flow both ways; without
// either, no extension.
func TestSocketNodeExtensions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		nodeDeflate   bool
		offer         bool
		wantNegotiate bool
	}{
		{"both", true, true, true},
		{"not offered", true, false, false},
		{"not accepted", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, u := nodeServer(t, tc.nodeDeflate, "echo=1")
			d := snDialOptions()
			if tc.offer {
				d.Compression = &ws.Compression{}
			}
			o := ws.SocketOptions{Dial: d}
			r := snRecord(&o)
			got := make(chan ws.OpenEvent, 1)
			onOpen := o.OnOpen
			o.OnOpen = func(s *ws.Socket, e ws.OpenEvent) {
				got <- e
				onOpen(s, e)
			}
			s := snNewSocket(t, t.Context(), u, &o)
			r.expect(t, "open OPEN")
			e := <-got
			open := n.expect(t, "open")
			t.Logf("Extensions() %q; Node's %q", s.Extensions(), open.Extensions)
			if e.Extensions != s.Extensions() {
				t.Errorf("OpenEvent.Extensions %q, Extensions() %q: want the same", e.Extensions, s.Extensions())
			}
			negotiated := strings.HasPrefix(s.Extensions(), "permessage-deflate")
			if negotiated != tc.wantNegotiate || (open.Extensions == "permessage-deflate") != tc.wantNegotiate {
				t.Errorf("Extensions() %q, Node's %q: want permessage-deflate %v", s.Extensions(), open.Extensions, tc.wantNegotiate)
			}
			if !tc.offer && s.Extensions() != "" {
				t.Errorf("Extensions() = %q without Compression", s.Extensions())
			}
			// A compressible message each way (Node echoes it, compressed
			// when negotiated).
			msg := strings.Repeat("compress me ✓ ", 5000)
			if err := s.SendText(msg); err != nil {
				t.Fatal(err)
			}
			n.expectMessage(t, false, []byte(msg))
			r.expect(t, "message text "+snData([]byte(msg))+" OPEN")
		})
	}
}
