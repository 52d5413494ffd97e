package ws_test

// Conn behaviour beyond the wire format: concurrency, pings, the close
// handshake from either side, contexts, CloseRead.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/duplexrt/duplex/ws"
)

// connPair runs handle for the server side of a connection and returns the
// client side.
func connPair(t *testing.T, opts *ws.AcceptOptions, dopts *ws.DialOptions, handle func(ctx context.Context, c *ws.Conn)) *ws.Conn {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	srv := httptest.NewServer(&ws.Server{Options: opts, Handle: func(ctx context.Context, c *ws.Conn) {
		defer wg.Done()
		handle(ctx, c)
	}})
	c, _, err := ws.Dial(context.Background(), wsURL(srv), dopts)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseNow()
		wg.Wait()
		srv.Close()
	})
	return c
}

// rawPair dials our client to a raw server and returns both.
func rawPair(t *testing.T) (*ws.Conn, *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   *ws.Conn
		err error
	}
	rc := make(chan result, 1)
	go func() {
		c, _, err := ws.Dial(context.Background(), "ws://"+ln.Addr().String(), &ws.DialOptions{CloseTimeout: time.Second})
		rc <- result{c, err}
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: false}
	p.serverHandshake()
	r := <-rc
	if r.err != nil {
		nc.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		r.c.CloseNow()
		nc.Close()
	})
	return r.c, p
}

// msgFor is the message goroutine g sends as its i-th: a header naming it,
// then a length that varies across the buffer size, of one repeated byte.
func msgFor(g, i int) []byte {
	n := 10 + (g*7919+i*104729)%20000
	return append([]byte(fmt.Sprintf("g%02d-i%03d:", g, i)), bytes.Repeat([]byte{byte('a' + g%26)}, n)...)
}

// Fifty goroutines write at once, half with Write and half with a Writer in
// pieces, while pings go out: every message arrives whole and in each
// writer's order.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 50, 20
	verdict := make(chan error, 1)
	c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) {
		next := make([]int, writers)
		for n := 0; n < writers*perWriter; n++ {
			typ, p, err := c.Read(ctx)
			if err != nil {
				verdict <- fmt.Errorf("after %d messages: %w", n, err)
				return
			}
			var g, i int
			if _, err := fmt.Sscanf(string(p), "g%02d-i%03d:", &g, &i); err != nil || g >= writers {
				verdict <- fmt.Errorf("message %d starts with %q", n, p[:min(len(p), 20)])
				return
			}
			if want := msgFor(g, i); typ != ws.MessageBinary || !bytes.Equal(p, want) {
				verdict <- fmt.Errorf("message %d from writer %d is mangled: %s", i, g, payloadDiff(want, p))
				return
			}
			if i != next[g] {
				verdict <- fmt.Errorf("writer %d: message %d arrived, want %d", g, i, next[g])
				return
			}
			next[g]++
		}
		verdict <- nil
		_ = c.Write(ctx, ws.MessageText, []byte("done"))
		_, _, _ = c.Read(ctx) // until the client closes
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gotDone := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() { // reads the pongs and the server's "done", until Close
		defer close(readerDone)
		_, p, err := c.Read(ctx)
		if err == nil && string(p) != "done" {
			err = fmt.Errorf("got %q", p)
		}
		gotDone <- err
		for err == nil {
			_, _, err = c.Read(ctx)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				msg := msgFor(g, i)
				if g%2 == 0 {
					if err := c.Write(ctx, ws.MessageBinary, msg); err != nil {
						errs <- err
						return
					}
					continue
				}
				w, err := c.Writer(ctx, ws.MessageBinary)
				if err != nil {
					errs <- err
					return
				}
				for _, part := range [][]byte{msg[:len(msg)/3], msg[len(msg)/3 : len(msg)/2], msg[len(msg)/2:]} {
					if _, err := w.Write(part); err != nil {
						errs <- err
						return
					}
				}
				if err := w.Close(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	pingsDone := make(chan struct{})
	go func() {
		defer close(pingsDone)
		for range 20 {
			if err := c.Ping(ctx); err != nil {
				errs <- fmt.Errorf("ping: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	<-pingsDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-verdict; err != nil {
		t.Fatal(err)
	}
	if err := <-gotDone; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	<-readerDone
}

// A message streamed through a Writer leaves room for control frames: a
// Ping sent halfway returns before the message ends.
func TestWriterAllowsPing(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	c := connPair(t, &ws.AcceptOptions{ReadLimit: size}, nil, func(ctx context.Context, c *ws.Conn) {
		_, r, err := c.Reader(ctx)
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, r)
		_ = c.Write(ctx, ws.MessageText, []byte(fmt.Sprint(n)))
		_, _, _ = c.Read(ctx) // until the client closes
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply := make(chan string, 1)
	go func() {
		_, p, _ := c.Read(ctx)
		reply <- string(p)
	}()
	w, err := c.Writer(ctx, ws.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0x42}, 32<<10)
	for i := 0; i < size/len(chunk); i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if i == size/len(chunk)/2 {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Ping(pctx)
			pcancel()
			if err != nil {
				t.Fatalf("Ping halfway through a message: %v", err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-reply; got != fmt.Sprint(size) {
		t.Fatalf("server read %s bytes, want %d", got, size)
	}
}

// Ping returns when its own pong arrives, not before, and not for another
// pong; without a pong it gives up with ctx.
func TestPingWaitsForPong(t *testing.T) {
	t.Parallel()
	c, p := rawPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	go func() { _, _, _ = c.Read(ctx) }() // delivers the pongs

	var answered atomic.Bool
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.Ping(ctx) }()
	ping := p.mustRead("a ping")
	if ping.b0 != finBit|opPing {
		t.Fatalf("got %s, want a ping", describe(ping))
	}
	p.send(fin(opPong, "not yours"), fin(opPong, ""))
	select {
	case err := <-pingErr:
		t.Fatalf("Ping returned %v before its pong", err)
	case <-time.After(50 * time.Millisecond):
	}
	answered.Store(true)
	p.send(frame{b0: finBit | opPong, payload: ping.payload})
	if err := <-pingErr; err != nil || !answered.Load() {
		t.Fatalf("Ping: %v", err)
	}

	short, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	err := c.Ping(short)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping without a pong returned %v, want context.DeadlineExceeded", err)
	}
	_ = p.mustRead("the unanswered ping")
	// The connection is still fine.
	p.send(fin(opPing, "still there?"))
	p.expectFrame(fin(opPong, "still there?"))
}

// The close handshake started by either side: the closer's Close returns
// nil once the peer answered, and the peer's read returns the code and
// reason.
func TestCloseHandshake(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		code   ws.StatusCode
		reason string
	}{
		{"normal", ws.StatusNormalClosure, ""},
		{"going-away-with-reason", ws.StatusGoingAway, "restarting"},
		{"application-code", 4000, "bye: κόσμε"},
		{"no-code", ws.StatusNoStatusRcvd, ""},
		{"longest-reason", 3000, strings.Repeat("r", 123)},
	}
	for _, tc := range cases {
		want := ws.CloseError{Code: tc.code, Reason: tc.reason}
		t.Run("client-closes/"+tc.name, func(t *testing.T) {
			t.Parallel()
			seen := make(chan error, 1)
			c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) {
				_, _, err := c.Read(ctx)
				seen <- err
			})
			if err := c.Close(tc.code, tc.reason); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkCloseError(t, <-seen, want)
			if err := c.Write(context.Background(), ws.MessageText, []byte("late")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v, want net.ErrClosed", err)
			}
		})
		t.Run("server-closes/"+tc.name, func(t *testing.T) {
			t.Parallel()
			closed := make(chan error, 1)
			c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) {
				closed <- c.Close(tc.code, tc.reason)
			})
			_, _, err := c.Read(context.Background())
			checkCloseError(t, err, want)
			if err := <-closed; err != nil {
				t.Fatalf("server's Close: %v", err)
			}
			if _, _, err := c.Read(context.Background()); ws.CloseStatus(err) != tc.code {
				t.Errorf("second Read: %v, want the same CloseError", err)
			}
			err = c.Write(context.Background(), ws.MessageText, []byte("late"))
			if ws.CloseStatus(err) != tc.code || !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after the peer closed: %v, want its CloseError and net.ErrClosed", err)
			}
		})
	}
}

func checkCloseError(t *testing.T, err error, want ws.CloseError) {
	t.Helper()
	var got ws.CloseError
	if !errors.As(err, &got) {
		t.Fatalf("read returned %v, want %v", err, want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("CloseError (-want +got):\n%s", diff)
	}
	if ws.CloseStatus(err) != want.Code {
		t.Fatalf("CloseStatus = %v, want %v", ws.CloseStatus(err), want.Code)
	}
}

func TestCloseArguments(t *testing.T) {
	t.Parallel()
	c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) })
	for _, tc := range []struct {
		code   ws.StatusCode
		reason string
	}{
		{999, ""}, {1004, ""}, {1006, ""}, {1015, ""}, {5000, ""},
		{ws.StatusNoStatusRcvd, "a reason without a code"},
		{1000, strings.Repeat("r", 124)},
		{1000, "\xff"},
	} {
		if err := c.Close(tc.code, tc.reason); err == nil {
			t.Errorf("Close(%d, %q) succeeded", tc.code, tc.reason)
		}
	}
	roundTrip(t, c, "still open") // refused arguments close nothing
}

// A Read whose context ends before a message leaves the connection usable,
// also when it ends between a frame's header and its payload.
func TestReadContextCancel(t *testing.T) {
	t.Parallel()
	c, p := rawPair(t)
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 30*time.Millisecond)
	}

	ctx, cancel := short()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with nothing to read: %v, want context.DeadlineExceeded", err)
	}
	cancel()
	p.send(text("first"))
	readExpect(t, c, "first")

	// Cancelled explicitly while blocked.
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read cancelled: %v, want context.Canceled", err)
	}
	p.send(text("second"))
	readExpect(t, c, "second")

	// Half a ping, then the deadline: the ping is handled whole later.
	ping := p.encode(fin(opPing, "split"))
	p.write(ping[:3])
	ctx, cancel = short()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read during half a ping: %v", err)
	}
	cancel()
	p.write(ping[3:])
	p.send(text("third"))
	readExpect(t, c, "third")
	p.expectFrame(fin(opPong, "split"))

	// Half a text frame's header.
	msg := p.encode(text(strings.Repeat("h", 300)))
	p.write(msg[:1])
	ctx, cancel = short()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read during half a header: %v", err)
	}
	cancel()
	p.write(msg[1:])
	readExpect(t, c, strings.Repeat("h", 300))

	// Halfway through a payload: that message is given up, as documented,
	// and the next one is read.
	msg = p.encode(text(strings.Repeat("p", 300)))
	p.write(msg[:100])
	ctx, cancel = short()
	if _, _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read during half a payload: %v", err)
	}
	cancel()
	p.write(msg[100:])
	p.send(text("after the cut"))
	readExpect(t, c, "after the cut")
}

func readExpect(t *testing.T, c *ws.Conn, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	_, p, err := c.Read(ctx)
	if err != nil || string(p) != want {
		t.Fatalf("Read: %q, %v; want %q", p, err, want)
	}
}

// CloseRead answers pings and the close frame for a connection that only
// writes, and its context ends with the connection.
func TestCloseRead(t *testing.T) {
	t.Parallel()
	serverDone := make(chan error, 1)
	c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) {
		go func() { _, _, _ = c.Read(ctx) }() // the server reads: pongs, and the client's messages
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := c.Ping(pctx); err != nil {
			serverDone <- fmt.Errorf("server Ping: %w", err)
			return
		}
		for range 3 {
			if err := c.Write(ctx, ws.MessageText, []byte("ignored")); err != nil {
				serverDone <- err
				return
			}
		}
		serverDone <- c.Close(ws.StatusNormalClosure, "done")
	})
	rctx := c.CloseRead(context.Background())
	if err := <-serverDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-rctx.Done():
	case <-time.After(ioTimeout):
		t.Fatal("CloseRead's context not done after the peer closed")
	}
}

// Reading and writing with a reused buffer allocates nothing per message.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count: skipped in -short mode")
	}
	if raceEnabled {
		// The server's buffers come from pools (an idle server connection
		// holds none).
		t.Skip("allocation count of pooled buffers: meaningless under -race (scripts/test runs it without)")
	}
	c := connPair(t, nil, nil, func(ctx context.Context, c *ws.Conn) {
		buf := make([]byte, 0, 64<<10)
		for {
			typ, p, err := c.ReadAppend(ctx, buf[:0])
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	})
	ctx := context.Background()
	msg := bytes.Repeat([]byte("x"), 10000)
	buf := make([]byte, 0, 64<<10)
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		if err = c.Write(ctx, ws.MessageText, msg); err != nil {
			return
		}
		_, buf, err = c.ReadAppend(ctx, buf[:0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs > 0 {
		t.Errorf("%.1f allocations per echoed message, want 0", allocs)
	}
}

// A Read whose context ends returns even while the pong it owes waits for
// a write side held up by a peer that does not read.
func TestReadContextWhilePongBlocked(t *testing.T) {
	t.Parallel()
	c, p := rawPair(t)
	wctx, wcancel := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() { // fills the socket buffers: the raw server reads nothing
		defer close(writerDone)
		big := make([]byte, 256<<10)
		for c.Write(wctx, ws.MessageBinary, big) == nil {
		}
	}()
	defer func() {
		wcancel()
		<-writerDone
	}()
	time.Sleep(100 * time.Millisecond)
	p.send(fin(opPing, "answer me"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Read returned after %v", d)
		}
	case <-time.After(ioTimeout):
		c.CloseNow()
		<-done
		t.Fatal("Read blocked past its context while the pong could not be written")
	}
}

// Shutdown closes open connections with 1001 Going Away, waits for their
// handlers, and refuses new ones.
func TestServerShutdown(t *testing.T) {
	t.Parallel()
	s := &ws.Server{Handle: func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) }}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _, err := ws.Dial(context.Background(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	roundTrip(t, c, "before shutdown")
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-readErr; ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Fatalf("client read %v, want 1001 Going Away", err)
	}
	_, resp, err := ws.Dial(context.Background(), wsURL(srv), nil)
	var de *ws.DialError
	if !errors.As(err, &de) || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("Dial after Shutdown: %v, want a DialError with 503", err)
	}
}

// A peer that never answers the close frame: Close gives up after
// CloseTimeout, says so, and closes the connection.
func TestCloseTimeout(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{CloseTimeout: 100 * time.Millisecond},
		Handle: func(ctx context.Context, c *ws.Conn) {
			closed <- c.Close(ws.StatusGoingAway, "bye")
		},
	})
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true}
	p.clientHandshake(srv.Listener.Addr().String())
	p.expectClose(ws.StatusGoingAway)
	start := time.Now()
	p.expectTCPClose() // without answering
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("connection closed after %v, want about the 100ms CloseTimeout", d)
	}
	if err := <-closed; err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("Close: %v, want an error saying the peer did not answer", err)
	}
}

// A closed Conn is not kept alive by a long-lived context its reads and
// writes used: their registrations with the context end with the Conn.
func TestClosedConnReleasesContext(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, nil)
	appCtx, cancel := context.WithCancel(context.Background()) // lives on
	defer cancel()
	collected := make(chan struct{})
	func() {
		c, _, err := ws.Dial(context.Background(), wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(appCtx, ws.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(appCtx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		runtime.SetFinalizer(c, func(*ws.Conn) { close(collected) })
	}()
	for range 50 {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("a closed Conn is still reachable from the context it read and wrote with")
}
