package ws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/duplexrt/duplex/ws"
)

// WebSockets over HTTP/2 (RFC 8441). The server side needs
// GODEBUG=http2xconnect=1 at process start, or the blank import of
// ws/xconnect in main (this test binary has it); the client needs an
// HTTP2Pool, which several sockets share one connection through.
func ExampleHTTP2Pool() {
	srv := httptest.NewUnstartedServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		typ, msg, err := c.Read(ctx)
		if err == nil {
			_ = c.Write(ctx, typ, msg)
		}
		_ = c.Close(ws.StatusNormalClosure, "")
	}})
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	pool := &ws.HTTP2Pool{}
	defer pool.CloseIdleConnections()
	opts := &ws.DialOptions{
		HTTP2:     pool,
		TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, // trusts the test certificate
	}
	ctx := context.Background()
	for i := range 2 {
		c, resp, err := ws.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https"), opts)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = c.Write(ctx, ws.MessageText, fmt.Appendf(nil, "hello %d", i))
		_, msg, _ := c.Read(ctx)
		fmt.Printf("%s %s: %s\n", resp.Proto, resp.Status, msg)
		_, _, err = c.Read(ctx)
		fmt.Println(ws.CloseStatus(err))
	}
	// Output:
	// HTTP/2.0 200 OK: hello 0
	// 1000 normal closure
	// HTTP/2.0 200 OK: hello 1
	// 1000 normal closure
}
