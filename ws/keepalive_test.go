package ws_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// The server's heartbeat, in each way a Server serves: Handle, Handler on
// a goroutine, Handler held by a Poller.
var heartbeatModes = []struct {
	name string
	poll bool
	fn   bool
}{{"Handle", false, true}, {"Handler", false, false}, {"Poller", true, false}}

// heartbeatServer runs an echo server with hb and reports how each
// connection ended.
func heartbeatServer(t *testing.T, handle, poll bool, hb *ws.Heartbeat) (addr string, ended <-chan error) {
	t.Helper()
	errc := make(chan error, 4)
	s := &ws.Server{Options: &ws.AcceptOptions{Heartbeat: hb}}
	if handle {
		s.Handle = func(ctx context.Context, c *ws.Conn) { errc <- echo(ctx, c, false) }
	} else {
		s.Handler = ws.HandlerFuncs{
			Message: func(c *ws.Conn, typ ws.MessageType, data []byte) { _ = c.Write(context.Background(), typ, data) },
			Close:   func(c *ws.Conn, err error) { errc <- err },
		}
		if poll {
			s.Poller = newPoller(t)
		}
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), errc
}

// rawClient opens a WebSocket as a raw peer that answers nothing by
// itself.
func rawClient(t *testing.T, addr string) *peer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true}
	p.clientHandshake(addr)
	return p
}

func waitEnded(t *testing.T, ended <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(within):
		t.Fatalf("the server did not end the connection within %v", within)
		return nil
	}
}

// A peer that is gone without a word (it answers nothing, sends nothing)
// gets a ping after Interval, and is cut off Timeout later; the server's
// side ends with an error wrapping ErrNoPong that reads as 1006. Without
// the heartbeat the connection would wait for ever.
func TestHeartbeatHalfOpen(t *testing.T) {
	for _, m := range heartbeatModes {
		t.Run(m.name, func(t *testing.T) {
			hb := &ws.Heartbeat{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond}
			addr, ended := heartbeatServer(t, m.fn, m.poll, hb)
			p := rawClient(t, addr)
			start := time.Now()
			if f := p.mustRead("the heartbeat's ping"); f.b0 != finBit|opPing {
				t.Fatalf("first frame from the server: %s, want a ping", describe(f))
			}
			if d := time.Since(start); d < hb.Interval/2 {
				t.Errorf("ping after %v; want it after about Interval (%v) of silence", d, hb.Interval)
			}
			// No pong: the server closes the TCP connection, without a
			// close frame (nobody is there to read one).
			if f, err := p.read(); err == nil {
				t.Fatalf("after the unanswered ping the server sent %s; want the connection closed", describe(f))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Fatalf("after the unanswered ping: %v; want the connection closed", err)
			}
			err := waitEnded(t, ended, ioTimeout)
			if !errors.Is(err, ws.ErrNoPong) || ws.CloseStatus(err) != ws.StatusAbnormalClosure {
				t.Fatalf("the connection ended with %v (code %d); want ErrNoPong and 1006", err, ws.CloseStatus(err))
			}
			t.Logf("ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

// A quiet peer that answers pings lives on; a busy one is not pinged.
func TestHeartbeatAlive(t *testing.T) {
	for _, m := range heartbeatModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			hb := &ws.Heartbeat{Interval: 200 * time.Millisecond, Timeout: time.Second}
			addr, ended := heartbeatServer(t, m.fn, m.poll, hb)
			p := rawClient(t, addr)

			// Quiet: answer two pings.
			for range 2 {
				f := p.mustRead("a ping")
				if f.b0 != finBit|opPing {
					t.Fatalf("got %s, want a ping", describe(f))
				}
				p.send(frame{b0: finBit | opPong, payload: f.payload})
			}
			// Busy: a message every 10 ms for 10 intervals, each echoed.
			// A timer that pinged every Interval regardless would ping
			// about 10 times; allow one, for a machine so loaded that
			// the messages paused for a whole interval.
			pings := 0
			deadline := time.Now().Add(10 * hb.Interval)
			for time.Now().Before(deadline) {
				p.send(text("tick"))
				for {
					f := p.mustRead("the echo")
					if f.b0 == finBit|opText {
						break
					}
					if f.b0 != finBit|opPing {
						t.Fatalf("got %s, want the echo or a ping", describe(f))
					}
					pings++
					p.send(frame{b0: finBit | opPong, payload: f.payload})
				}
				time.Sleep(10 * time.Millisecond)
			}
			if pings > 1 {
				t.Errorf("%d pings while the peer sent every 10 ms; want none (one on a loaded machine)", pings)
			}
			select {
			case err := <-ended:
				t.Fatalf("the connection ended: %v", err)
			default:
			}
			p.closeHandshake(1000)
			if err := waitEnded(t, ended, ioTimeout); ws.CloseStatus(err) != 1000 {
				t.Fatalf("ended with %v; want the peer's 1000", err)
			}
		})
	}
}

// A peer that sends nothing and reads nothing while the server writes to
// it: the heartbeat's ping cannot even be written, and the connection is
// cut off within Interval + Timeout instead of holding a writer blocked
// for ever.
func TestHeartbeatNeverReads(t *testing.T) {
	hb := &ws.Heartbeat{Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond}
	wrote := make(chan error, 1)
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{Heartbeat: hb},
		Handle: func(ctx context.Context, c *ws.Conn) {
			msg := make([]byte, 1<<20)
			for {
				if err := c.Write(context.Background(), ws.MessageBinary, msg); err != nil {
					wrote <- err
					return
				}
			}
		},
	})
	t.Cleanup(srv.Close)
	p := rawClient(t, srv.Listener.Addr().String())
	_ = p // it never reads
	select {
	case err := <-wrote:
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, ws.ErrNoPong) {
			t.Logf("write error: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the writer is still blocked: the heartbeat did not cut off a peer that reads nothing")
	}
}
