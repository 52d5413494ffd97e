package ws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/duplexrt/duplex/ws"
)

// echoHandler answers every message with the same message.
var echoHandler = ws.HandlerFuncs{Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
	_ = c.Write(context.Background(), typ, data)
}}

// BenchmarkServerEcho is one round trip per op over loopback TCP: a client
// writes a message and reads the echo, from a Server in each of its modes
// (Handle with a read loop, Handler in the portable mode, Handler held by
// the Poller). Allocations count both ends: the bar is zero.
func BenchmarkServerEcho(b *testing.B) {
	for _, size := range []int{32, 16 << 10} {
		for _, mode := range []string{"handle", "portable", "poller"} {
			b.Run(fmt.Sprintf("size=%d/mode=%s", size, mode), func(b *testing.B) {
				s := echoServerMode(b, mode)
				srv := httptest.NewServer(s)
				defer srv.Close()
				ctx := context.Background()
				c, _, err := ws.Dial(ctx, wsURL(srv), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.CloseNow()
				msg := benchPayload(size)
				buf := make([]byte, 0, size)
				echo := func() {
					if err := c.Write(ctx, ws.MessageBinary, msg); err != nil {
						b.Fatal(err)
					}
					if _, buf, err = c.ReadAppend(ctx, buf[:0]); err != nil || len(buf) != size {
						b.Fatal(len(buf), err)
					}
				}
				for range 100 { // warm the pools
					echo()
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					echo()
				}
				b.StopTimer()
				_ = c.Close(ws.StatusNormalClosure, "")
			})
		}
	}
}

// echoServerMode returns an echo Server in the mode named: "handle" (a
// read loop), "portable" (Handler) or "poller" (Handler and a Poller).
func echoServerMode(tb testing.TB, mode string) *ws.Server {
	s := &ws.Server{}
	switch mode {
	case "handle":
		s.Handle = func(ctx context.Context, c *ws.Conn) {
			var buf []byte
			for {
				typ, p, err := c.ReadAppend(ctx, buf[:0])
				if err != nil {
					return
				}
				if c.Write(ctx, typ, p) != nil {
					return
				}
				buf = p
			}
		}
	case "portable":
		s.Handler = echoHandler
	case "poller":
		p, err := ws.NewPoller(nil)
		if err != nil {
			tb.Skip(err)
		}
		tb.Cleanup(func() { _ = p.Close() })
		s.Handler, s.Poller = echoHandler, p
	}
	return s
}

// TestServerEchoAllocs: a round trip allocates nothing, at either end, in
// every mode of the Server, once the pools are warm.
func TestServerEchoAllocs(t *testing.T) {
	for _, mode := range []string{"handle", "portable", "poller"} {
		t.Run(mode, func(t *testing.T) {
			srv := httptest.NewServer(echoServerMode(t, mode))
			defer srv.Close()
			ctx := context.Background()
			c, _, err := ws.Dial(ctx, wsURL(srv), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			msg := benchPayload(1000)
			buf := make([]byte, 0, len(msg))
			echo := func() {
				if err := c.Write(ctx, ws.MessageText, msg); err != nil {
					t.Fatal(err)
				}
				if _, buf, err = c.ReadAppend(ctx, buf[:0]); err != nil || len(buf) != len(msg) {
					t.Fatal(len(buf), err)
				}
			}
			for range 100 {
				echo()
			}
			if raceEnabled {
				t.Skip("allocation count of pooled buffers: meaningless under -race (scripts/test runs it without)")
			}
			if n := testing.AllocsPerRun(1000, echo); n != 0 {
				t.Errorf("%v allocations per round trip, want 0", n)
			}
			_ = c.Close(ws.StatusNormalClosure, "")
		})
	}
}

func benchPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}
