package ws_test

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/duplexrt/duplex/ws"
)

// A Listener answers the handshakes of /echo itself; the same Server
// serves /echo in the mux for what the Listener leaves to net/http, and
// the mux serves everything else.
func ExampleNewListener() {
	echo := &ws.Server{Handler: ws.HandlerFuncs{
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
			_ = c.Write(context.Background(), typ, data)
		},
	}}
	mux := http.NewServeMux()
	mux.Handle("/echo", echo)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	fast := ws.NewListener(ln, &ws.ListenerOptions{Routes: map[string]*ws.Server{"/echo": echo}})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(fast) }()
	defer func() {
		_ = echo.Shutdown(context.Background())
		_ = srv.Shutdown(context.Background())
	}()

	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	_ = c.Write(ctx, ws.MessageText, []byte("hello"))
	_, msg, err := c.Read(ctx)
	fmt.Println(string(msg), err)
	_ = c.Close(ws.StatusNormalClosure, "")
	// Output: hello <nil>
}
