package main

import (
	"net"
	"net/http"
	"sync"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// startNbio serves with lesismal/nbio: an nbhttp.Engine in
// IOModNonBlocking (epoll poller goroutines read every connection, parse
// HTTP and WebSocket frames, and hand messages to a goroutine pool that
// calls OnMessage, in order per connection), with a websocket.Upgrader
// per endpoint: its default mode, as in its README, its examples and its
// benchmark server. ReleaseWebsocketPayload gives each message's buffer
// back to nbio's pool after OnMessage, as that benchmark server does.
//
// The Upgrader's KeepaliveTime is 0: by default nbio resets a 120 s read
// deadline after every message, and none of the other servers here sets a
// deadline. Writes never block: nbio writes what the socket takes and
// keeps the rest, closing a connection that has more than
// MaxWriteBufferSize waiting. So broadcast calls WriteMessage, which
// frames the message for that connection, on every connection in turn.
func startNbio(ln net.Listener) error {
	newUpgrader := func() *websocket.Upgrader {
		u := websocket.NewUpgrader()
		u.KeepaliveTime = 0
		u.MessageLengthLimit = readLimit
		return u
	}

	echo := newUpgrader()
	echo.OnMessage(func(c *websocket.Conn, typ websocket.MessageType, p []byte) {
		_ = c.WriteMessage(typ, p)
	})

	var mu sync.Mutex // held while a message is written to everyone: one order for all
	members := make(map[*websocket.Conn]struct{})
	broadcast := newUpgrader()
	broadcast.OnOpen(func(c *websocket.Conn) {
		mu.Lock()
		members[c] = struct{}{}
		mu.Unlock()
	})
	broadcast.OnClose(func(c *websocket.Conn, _ error) {
		mu.Lock()
		delete(members, c)
		mu.Unlock()
	})
	broadcast.OnMessage(func(_ *websocket.Conn, typ websocket.MessageType, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		for c := range members {
			_ = c.WriteMessage(typ, p)
		}
	})

	upgrade := func(u *websocket.Upgrader) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = u.Upgrade(w, r, nil) // on failure, Upgrade has answered with an HTTP error
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws/echo", upgrade(echo))
	mux.Handle("GET /ws/broadcast", upgrade(broadcast))

	engine := nbhttp.NewEngine(nbhttp.Config{
		Network: "tcp",
		Addrs:   []string{ln.Addr().String()},
		// nbio takes the accepted connections over from ln.
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      writeBufferLimit,
	})
	return engine.Start()
}
