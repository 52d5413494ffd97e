package ws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/duplexrt/duplex/ws"
)

// A Server with a Handler reads for the application and calls it for
// each event of each connection.
func ExampleHandlerFuncs() {
	closed := make(chan struct{})
	srv := httptest.NewServer(&ws.Server{Handler: ws.HandlerFuncs{
		Open: func(c *ws.Conn) { fmt.Println("server: open") },
		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
			// data is reused after this call: Write (or Send, which
			// copies) before returning.
			_ = c.Write(context.Background(), typ, []byte(strings.ToUpper(string(data))))
		},
		Close: func(c *ws.Conn, err error) {
			fmt.Println("server: closed with", ws.CloseStatus(err))
			close(closed)
		},
	}})
	defer srv.Close()

	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = c.Write(ctx, ws.MessageText, []byte("hello"))
	_, msg, _ := c.Read(ctx)
	fmt.Println("client:", string(msg))
	_ = c.Close(ws.StatusNormalClosure, "")
	<-closed
	// Output:
	// server: open
	// client: HELLO
	// server: closed with 1000 normal closure
}

// Send queues and returns at once: a broadcast to many connections is not
// held up by the slowest. A PreparedMessage is framed once for all.
func ExampleConn_SendPrepared() {
	conns := make(chan *ws.Conn, 3)
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{SendQueueLimit: 1 << 20, SendQueueFull: ws.SendQueueClose},
		Handler: ws.HandlerFuncs{Open: func(c *ws.Conn) { conns <- c }},
	})
	defer srv.Close()

	ctx := context.Background()
	var clients []*ws.Conn
	for range 3 {
		c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer c.CloseNow()
		clients = append(clients, c)
	}
	pm, _ := ws.NewPreparedMessage(ws.MessageText, []byte("to everyone"))
	for range 3 {
		if err := (<-conns).SendPrepared(pm); err != nil {
			fmt.Println(err)
		}
	}
	for i, c := range clients {
		_, msg, _ := c.Read(ctx)
		fmt.Println(i, string(msg))
	}
	// Output:
	// 0 to everyone
	// 1 to everyone
	// 2 to everyone
}
