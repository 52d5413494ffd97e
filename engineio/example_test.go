package engineio_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/duplexrt/duplex/engineio"
)

// An echo server, and a client that connects over long-polling, upgrades
// to WebSocket and gets its message back.
func Example() {
	srv, err := engineio.NewServer(&engineio.ServerOptions{
		Handler: engineio.HandlerFuncs{
			Message: func(s *engineio.Session, typ engineio.MessageType, data []byte) {
				_ = s.Send(typ, data)
			},
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	got := make(chan string, 1)
	upgraded := make(chan struct{})
	c, err := engineio.Dial(context.Background(), hs.URL+"/engine.io/", &engineio.DialOptions{
		OnUpgrade: func(c *engineio.Client) { close(upgraded) },
		OnMessage: func(c *engineio.Client, typ engineio.MessageType, data []byte) {
			got <- fmt.Sprintf("%v message %q over %s", typ, data, c.Transport())
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("connected over", c.Transport())
	<-upgraded
	_ = c.SendText("hello")
	fmt.Println(<-got)
	_ = c.Close()
	<-c.Done()
	// Output:
	// connected over polling
	// text message "hello" over websocket
}
