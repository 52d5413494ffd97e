package ws_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/ws"
	"golang.org/x/net/nettest"
)

// TestNetConn runs the standard library's net.Conn conformance suite on
// NetConn, both ends over a real WebSocket.
func TestNetConn(t *testing.T) {
	t.Parallel()
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		accepted := make(chan *ws.Conn, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := ws.Accept(w, r, nil)
			if err != nil {
				return
			}
			accepted <- c
		}))
		ctx := context.Background()
		client, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			srv.Close()
			return nil, nil, nil, err
		}
		server := <-accepted
		c1 = ws.NetConn(ctx, client, ws.MessageBinary)
		c2 = ws.NetConn(ctx, server, ws.MessageBinary)
		stop = func() {
			done := make(chan struct{})
			go func() { c2.Close(); close(done) }()
			c1.Close()
			<-done
			srv.Close()
		}
		return c1, c2, stop, nil
	})
}
