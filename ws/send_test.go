package ws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// sendServer accepts connections with opts and hands each to conns.
func sendServer(t *testing.T, opts *ws.AcceptOptions, wrap func(net.Listener) net.Listener) (*httptest.Server, <-chan *ws.Conn) {
	t.Helper()
	conns := make(chan *ws.Conn, 16)
	srv := httptest.NewUnstartedServer(&ws.Server{Options: opts, Handle: func(ctx context.Context, c *ws.Conn) {
		conns <- c
		_, _, _ = c.Read(ctx) // until the client closes, answering its pings and close
	}})
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

// TestSendOrder: messages queued by Send and SendPrepared arrive whole and
// in order, text and binary, from empty to 70 KB.
func TestSendOrder(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprint("deflate=", deflate), func(t *testing.T) {
			var comp *ws.Compression
			if deflate {
				comp = &ws.Compression{}
			}
			srv, conns := sendServer(t, &ws.AcceptOptions{Compression: comp, SendQueueLimit: 16 << 20}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			c, _, err := ws.Dial(ctx, wsURL(srv), &ws.DialOptions{Compression: comp, ReadLimit: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			sc := <-conns
			type msg struct {
				typ ws.MessageType
				p   []byte
			}
			var want []msg
			for i := range 300 {
				size := []int{0, 1, 125, 126, 1000, 65535, 70000}[i%7]
				typ := ws.MessageBinary
				p := bytes.Repeat([]byte{byte(i)}, size)
				if i%2 == 0 {
					typ = ws.MessageText
					p = bytes.Repeat([]byte{'a' + byte(i%26)}, size)
				}
				want = append(want, msg{typ, p})
				if i%2 == 0 {
					err = sc.Send(typ, p)
				} else {
					pm, perr := ws.NewPreparedMessage(typ, p)
					if perr != nil {
						t.Fatal(perr)
					}
					err = sc.SendPrepared(pm)
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			// About 6 MB, under the limit: all queued before
			// the client reads.
			for i, w := range want {
				typ, p, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if typ != w.typ || !bytes.Equal(p, w.p) {
					t.Fatalf("message %d: got %v of %d bytes, want %v of %d", i, typ, len(p), w.typ, len(w.p))
				}
			}
			eventually(t, "the queue to empty", func() bool { return sc.SendQueued() == 0 })
			_ = c.Close(ws.StatusNormalClosure, "")
		})
	}
}

// TestSendQueueFull: a peer that does not read fills the queue; the
// policy then closes with 1013 or 1008, or drops the message and keeps
// the connection, and what was queued arrives in order.
func TestSendQueueFull(t *testing.T) {
	const limit = 256 << 10
	for _, tc := range []struct {
		policy ws.SendQueuePolicy
		code   ws.StatusCode // 0: the connection stays
	}{
		{ws.SendQueueClose, ws.StatusTryAgainLater},
		{ws.SendQueueClosePolicy, ws.StatusPolicyViolation},
		{ws.SendQueueDrop, 0},
	} {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			srv, conns := sendServer(t, &ws.AcceptOptions{SendQueueLimit: limit, SendQueueFull: tc.policy}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*ioTimeout)
			defer cancel()
			c, _, err := ws.Dial(ctx, wsURL(srv), &ws.DialOptions{
				ReadLimit: 1 << 20,
				NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if tc, ok := nc.(*net.TCPConn); ok {
						_ = tc.SetReadBuffer(32 << 10) // no autotuning: the kernel takes little
					}
					return nc, err
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			sc := <-conns
			// The client reads nothing yet: the queue fills.
			msg := bytes.Repeat([]byte("x"), 16<<10)
			sent := 0
			var full error
			for sent < 10000 {
				if err := sc.Send(ws.MessageBinary, msg); err != nil {
					full = err
					break
				}
				sent++
			}
			if !errors.Is(full, ws.ErrSendQueueFull) {
				t.Fatalf("after %d sends: %v, want ErrSendQueueFull", sent, full)
			}
			if q := sc.SendQueued(); q > limit {
				t.Fatalf("SendQueued = %d, over the limit %d", q, limit)
			}
			if tc.code != 0 {
				// Now read: messages, then the close, which goes ahead
				// of what is still queued (that is lost).
				for i := 0; ; i++ {
					_, p, err := c.Read(ctx)
					if err != nil {
						if ws.CloseStatus(err) != tc.code {
							t.Fatalf("after %d of %d messages: %v, want close %d", i, sent, err, tc.code)
						}
						return
					}
					if i >= sent || len(p) != len(msg) {
						t.Fatalf("message %d of %d: %d bytes", i, sent, len(p))
					}
				}
			}
			// Dropped: every message accepted arrives, in order, and the
			// connection stays.
			for i := range sent {
				_, p, err := c.Read(ctx)
				if err != nil || len(p) != len(msg) {
					t.Fatalf("message %d of %d: %d bytes, %v", i, sent, len(p), err)
				}
			}
			// The client has every message, but the writer may not have
			// returned from its last write yet: queued bytes count until
			// it has.
			for deadline := time.Now().Add(5 * time.Second); sc.SendQueued() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if err := sc.Send(ws.MessageText, []byte("still open")); err != nil {
				t.Fatalf("Send after the drop: %v", err)
			}
			if _, p, err := c.Read(ctx); err != nil || string(p) != "still open" {
				t.Fatalf("after the drop: %q %v", p, err)
			}
			_ = c.Close(ws.StatusNormalClosure, "")
		})
	}
}

// TestSendAfterClose: Send on a closed connection returns an error and
// queues nothing.
func TestSendAfterClose(t *testing.T) {
	srv, conns := sendServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-conns
	_ = c.Close(ws.StatusNormalClosure, "")
	eventually(t, "Send to fail", func() bool { return sc.Send(ws.MessageText, []byte("late")) != nil })
	if q := sc.SendQueued(); q != 0 {
		t.Fatalf("SendQueued = %d after close", q)
	}
}

// countingConn counts the bytes read from the network.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestSendUncompressed: with permessage-deflate negotiated, Send
// compresses a compressible message and SendUncompressed does not; both
// arrive as sent.
func TestSendUncompressed(t *testing.T) {
	srv, conns := sendServer(t, &ws.AcceptOptions{Compression: &ws.Compression{}}, nil)
	var read atomic.Int64
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+srv.URL[len("http"):], &ws.DialOptions{
		Compression: &ws.Compression{},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{nc, &read}, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	sc := <-conns
	msg := bytes.Repeat([]byte("compress me please "), 500) // 9,500 bytes
	for _, uncompressed := range []bool{false, true} {
		before := read.Load()
		send := sc.Send
		if uncompressed {
			send = sc.SendUncompressed
		}
		if err := send(ws.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		n := read.Load() - before
		if uncompressed && n < int64(len(msg)) || !uncompressed && n > int64(len(msg))/4 {
			t.Errorf("uncompressed %v: %d bytes on the wire for a %d-byte message", uncompressed, n, len(msg))
		}
	}
}

// TestSendInlineAndQueued: messages of many sizes sent to a slow reader
// (a small receive buffer, pauses), some written alone and some batched,
// all arrive whole and in order, and the stream stays in step.
func TestSendInlineAndQueued(t *testing.T) {
	srv, conns := sendServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*ioTimeout)
	defer cancel()
	dialer := &net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		// Small, so that writes fill it and split. Set before connect:
		// see setRecvBuffer.
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = setRecvBuffer(fd, 16<<10) }); cerr != nil {
			return cerr
		}
		return err
	}}
	c, _, err := ws.Dial(ctx, wsURL(srv), &ws.DialOptions{ReadLimit: 1 << 20, NetDialContext: dialer.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	sc := <-conns
	const n = 600
	message := func(i int) []byte {
		msg := bytes.Repeat([]byte{byte(i)}, (i*7919)%(40<<10))
		return append(msg, fmt.Sprintf("#%d", i)...)
	}
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			for sc.SendQueued() > 1<<20 { // stay under SendQueueLimit
				if ctx.Err() != nil {
					sent <- ctx.Err()
					return
				}
				time.Sleep(time.Millisecond)
			}
			if err := sc.Send(ws.MessageBinary, message(i)); err != nil {
				sent <- fmt.Errorf("Send %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	defer func() { cancel(); <-sent }() // the sender ends: all sent, an error, or ctx
	for i := range n {
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // let the socket fill
		}
		_, p, err := c.Read(ctx)
		if want := message(i); err != nil || !bytes.Equal(p, want) {
			t.Fatalf("message %d: %d bytes (want %d), %v", i, len(p), len(want), err)
		}
	}
	// Pongs arrive through reads (see Ping): read on while Ping waits.
	c.CloseRead(ctx)
	if err := c.Ping(ctx); err != nil { // the stream is still in step
		t.Fatal(err)
	}
}

// TestSendBeforePeerClose: what a server queued with Send before it read
// the client's close frame reaches the client before the server's close
// frame, as a Write would have: a client that sends a message and closes
// at once still gets its echo.
func TestSendBeforePeerClose(t *testing.T) {
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			for range 3 {
				if c.Send(typ, p) != nil {
					return
				}
			}
		}
	}})
	t.Cleanup(srv.Close)
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		c, _, err := ws.Dial(ctx, wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hi %d", i)
		if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Fatalf("round %d: Close: %v", i, err)
		}
		// Close kept what arrived before the server's close frame.
		for k := range 3 {
			_, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("round %d: echo %d of 3 lost: %v", i, k+1, err)
			}
			if string(p) != msg {
				t.Fatalf("round %d: got %q, want %q", i, p, msg)
			}
		}
		if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusNormalClosure {
			t.Fatalf("round %d: after the echoes: %v, want the close (1000)", i, err)
		}
		cancel()
	}
}
