package ws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/duplexrt/duplex/ws"
)

// With a Poller, a Handler's idle connections wait in epoll, without a
// goroutine or a buffer each.
func ExampleNewPoller() {
	p, err := ws.NewPoller(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	srv := httptest.NewServer(&ws.Server{Poller: p, Handler: ws.HandlerFuncs{
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
			_ = c.Send(typ, data) // a copy, queued: never blocks the worker
		},
	}})
	defer srv.Close()

	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	for _, m := range []string{"one", "two"} {
		_ = c.Write(ctx, ws.MessageText, []byte(m))
		_, msg, _ := c.Read(ctx)
		fmt.Println(string(msg))
	}
	fmt.Println("held by the poller:", p.Len())
	// Output:
	// one
	// two
	// held by the poller: 1
}
