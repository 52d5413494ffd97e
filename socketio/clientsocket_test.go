package socketio

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// newHTTPTestServer is newTestServer with the http:// URL the client
// takes.
func newHTTPTestServer(t *testing.T, opts *ServerOptions) (*Server, string) {
	t.Helper()
	if opts == nil {
		opts = &ServerOptions{}
	}
	if opts.Engine == nil {
		opts.Engine = &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: time.Second}
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, hs.URL
}

func dialClient(t *testing.T, url string, auth any, opts *ClientOptions) *ClientSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	s, err := Dial(ctx, url, auth, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Manager().Close() })
	return s
}

func TestClientEventsAndAcks(t *testing.T) {
	for _, transports := range [][]string{nil, {engineio.TransportWebSocket}, {engineio.TransportPolling}} {
		t.Run(strings.Join(transports, "+"), func(t *testing.T) {
			srv, url := newHTTPTestServer(t, nil)
			srv.OnConnection(func(s *Socket) {
				_ = s.Emit("hello", s.ID(), []byte{9, 8})
				s.On("sum", func(s *Socket, a, b int, ack func(...any)) { ack(a + b) })
				s.On("ask", func(s *Socket, ack func(...any)) {
					ctx, cancel := context.WithTimeout(context.Background(), step)
					defer cancel()
					r, err := s.EmitWithAck(ctx, "q", "ping")
					if err != nil {
						ack(err.Error())
						return
					}
					var v string
					_ = r.Decode(0, &v)
					ack("got " + v)
				})
			})
			hello := make(chan []byte, 1)
			ctx, cancel := context.WithTimeout(context.Background(), step)
			defer cancel()
			// NoAutoConnect: the handlers are in place before the
			// server's hello can arrive.
			m, err := NewManager(url, &ClientOptions{NoAutoConnect: true, Engine: &engineio.DialOptions{Transports: transports}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			c := m.Socket("/", nil)
			c.On("hello", func(c *ClientSocket, id string, b []byte) {
				if id != c.ID() {
					t.Errorf("hello for %q, I am %q", id, c.ID())
				}
				hello <- b
			})
			c.On("q", func(c *ClientSocket, q string, ack func(...any)) { ack(q + "ed") })
			c.Connect()
			select {
			case b := <-hello:
				if !bytes.Equal(b, []byte{9, 8}) {
					t.Fatalf("binary %v", b)
				}
			case <-ctx.Done():
				t.Fatal("no hello")
			}
			r, err := c.EmitWithAck(ctx, "sum", 20, 22)
			var n int
			if err != nil || r.Decode(0, &n) != nil || n != 42 {
				t.Fatalf("sum: %v %v", n, err)
			}
			r, err = c.EmitWithAck(ctx, "ask")
			var s string
			if err != nil || r.Decode(0, &s) != nil || s != "got pinged" {
				t.Fatalf("ask: %q %v", s, err)
			}
		})
	}
}

func TestClientConnectErrorAndNamespaces(t *testing.T) {
	srv, url := newHTTPTestServer(t, nil)
	srv.Of("/admin").Use(func(s *Socket) error {
		return &ConnectError{Message: "unauthorized", Data: map[string]any{"code": 401}}
	})
	srv.Of("/chat").OnConnection(func(s *Socket) { s.On("who", func(s *Socket, ack func(...any)) { ack(s.Namespace().Name()) }) })
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	_, err := Dial(ctx, url+"/admin", map[string]string{"token": "x"}, nil)
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Message != "unauthorized" || ce.Data.(map[string]any)["code"] != float64(401) {
		t.Fatalf("Dial to a refusing namespace: %v", err)
	}
	_, err = Dial(ctx, url+"/nope", nil, nil)
	if !errors.As(err, &ce) || ce.Message != "Invalid namespace" {
		t.Fatalf("Dial to an unknown namespace: %v", err)
	}
	main := dialClient(t, url, nil, nil)
	chat := main.Manager().Socket("/chat", nil)
	r, err := chat.EmitWithAck(ctx, "who") // buffered until connected
	var nsp string
	if err != nil || r.Decode(0, &nsp) != nil || nsp != "/chat" {
		t.Fatalf("who on /chat: %q %v", nsp, err)
	}
}

func TestClientReconnectsAndRecovers(t *testing.T) {
	srv, url := newHTTPTestServer(t, &ServerOptions{Recovery: &RecoveryOptions{}})
	srv.OnConnection(func(s *Socket) {
		s.On("join", func(s *Socket, room string, ack func(...any)) { s.Join(room); ack() })
		s.On("drop", func(s *Socket) { _ = s.Engine().Close() })
	})
	got := make(chan int, 10)
	connects := make(chan bool, 4)
	c := dialClient(t, url, nil, &ClientOptions{
		Engine:       &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
		Reconnection: &Reconnection{MinDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
	})
	c.On("n", func(c *ClientSocket, n int) { got <- n })
	c.OnConnect(func(c *ClientSocket) { connects <- c.Recovered() })
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	if _, err := c.EmitWithAck(ctx, "join", "news"); err != nil {
		t.Fatal(err)
	}
	id := c.ID()
	_ = srv.To("news").Emit("n", 1)
	if n := <-got; n != 1 {
		t.Fatalf("got %d", n)
	}
	disc := make(chan string, 1)
	c.OnDisconnect(func(c *ClientSocket, reason string) { disc <- reason })
	_ = c.Emit("drop")
	select {
	case r := <-disc:
		if r != "transport close" {
			t.Fatalf("disconnect reason %q", r)
		}
	case <-ctx.Done():
		t.Fatal("no disconnect")
	}
	_ = srv.To("news").Emit("n", 2) // missed, then recovered
	for {
		select {
		case rec := <-connects:
			if !rec {
				continue // the first connection
			}
		case <-ctx.Done():
			t.Fatal("not recovered")
		}
		break
	}
	if c.ID() != id {
		t.Fatalf("id %q after recovery, want %q", c.ID(), id)
	}
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("got %d after recovery, want the missed 2", n)
		}
	case <-ctx.Done():
		t.Fatal("the missed event did not come")
	}
}

// TestClientConcurrentBinaryEmits: a packet's attachments follow its text
// even when goroutines emit binary events at once.
func TestClientConcurrentBinaryEmits(t *testing.T) {
	srv, url := newHTTPTestServer(t, &ServerOptions{MaxPendingEvents: 1 << 16})
	got := make(chan int, 4096)
	srv.OnConnection(func(s *Socket) {
		s.On("bin", func(s *Socket, a, b []byte) { got <- len(a) + len(b) })
	})
	c := dialClient(t, url, nil, &ClientOptions{Engine: &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}}})
	const g, n = 8, 100
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range n {
				_ = c.Emit("bin", []byte{1, 2, 3}, []byte{4})
			}
		})
	}
	wg.Wait()
	for i := range g * n {
		select {
		case l := <-got:
			if l != 4 {
				t.Fatalf("event %d: %d bytes of attachments", i, l)
			}
		case <-time.After(step):
			t.Fatalf("%d of %d events arrived (was the connection closed for a parse error?)", i, g*n)
		}
	}
}

// TestClientDialFails: with reconnection off, Dial returns the connection's
// error instead of waiting for its context.
func TestClientDialFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, "http://127.0.0.1:1/", nil, &ClientOptions{Reconnection: &Reconnection{Disable: true}})
	if err == nil || ctx.Err() != nil || time.Since(start) > 10*time.Second {
		t.Fatalf("Dial to a closed port: %v after %v", err, time.Since(start))
	}
}

// TestClientLargePacket: the client takes a packet over the server's
// limit for clients (1 MB): the server is trusted more.
func TestClientLargePacket(t *testing.T) {
	srv, url := newHTTPTestServer(t, nil)
	big := strings.Repeat("x", 1_500_000)
	srv.OnConnection(func(s *Socket) { _ = s.Emit("big", big) })
	got := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	m, err := NewManager(url, &ClientOptions{NoAutoConnect: true, Engine: &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Socket("/", nil)
	c.On("big", func(c *ClientSocket, s string) { got <- len(s) })
	c.Connect()
	select {
	case n := <-got:
		if n != len(big) {
			t.Fatalf("got %d bytes", n)
		}
	case <-ctx.Done():
		t.Fatal("the large event did not arrive")
	}
}
