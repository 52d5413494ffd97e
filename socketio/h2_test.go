package socketio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/ws"
	_ "github.com/duplexrt/duplex/ws/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
)

// TestClientHTTP2 runs our Socket.IO client against our server over
// HTTPS with HTTP/2: the WebSocket is an extended CONNECT (RFC 8441)
// stream, opened directly or by an upgrade from long-polling, reached
// through ClientOptions.Engine.WebSocket.HTTP2.
func TestClientHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling+upgrade", nil},
		{"websocket", []string{engineio.TransportWebSocket}},
	} {
		transports := tc.transports
		t.Run(tc.name, func(t *testing.T) {
			srv, err := NewServer(&ServerOptions{Engine: &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			type seen struct {
				proto  int
				method string
			}
			var mu sync.Mutex
			var wsRequests []seen
			hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("transport") == engineio.TransportWebSocket {
					mu.Lock()
					wsRequests = append(wsRequests, seen{r.ProtoMajor, r.Method})
					mu.Unlock()
				}
				srv.ServeHTTP(w, r)
			}))
			hs.EnableHTTP2 = true
			hs.StartTLS()
			pool := &ws.HTTP2Pool{}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), step)
				defer cancel()
				_ = srv.Shutdown(ctx)
				pool.CloseIdleConnections()
				hs.Close()
			})
			transportOf := make(chan string, 1)
			srv.OnConnection(func(s *Socket) {
				s.On("sum", func(s *Socket, a, b int, ack func(...any)) {
					select {
					case transportOf <- s.Transport():
					default:
					}
					ack(a + b)
				})
			})
			upgraded := make(chan struct{})
			client := hs.Client()
			c := dialClient(t, hs.URL, nil, &ClientOptions{Engine: &engineio.DialOptions{
				Transports: transports,
				HTTPClient: client,
				WebSocket:  &ws.DialOptions{TLSConfig: client.Transport.(*http.Transport).TLSClientConfig, HTTP2: pool},
				OnUpgrade:  func(*engineio.Client) { close(upgraded) },
			}})
			if transports == nil {
				select {
				case <-upgraded:
				case <-time.After(step):
					t.Fatal("no upgrade to WebSocket")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), step)
			defer cancel()
			for i := range 10 {
				r, err := c.EmitWithAck(ctx, "sum", i, 1000)
				var n int
				if err != nil || r.Decode(0, &n) != nil || n != i+1000 {
					t.Fatalf("sum %d: %v %v", i, n, err)
				}
			}
			if got := <-transportOf; got != engineio.TransportWebSocket {
				t.Errorf("server socket transport %q, want websocket", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(wsRequests) != 1 || wsRequests[0] != (seen{2, http.MethodConnect}) {
				t.Errorf("the server saw WebSocket requests %+v, want one CONNECT over HTTP/2", wsRequests)
			}
		})
	}
}
