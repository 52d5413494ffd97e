package main

import (
	"bytes"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// startGorilla serves with gorilla/websocket behind net/http, a goroutine
// per connection, as its examples/echo and examples/chat do.
//
// The zero Upgrader reuses the 4 KiB read and write buffers net/http has
// already allocated for the connection. Echo reads each message with
// NextReader into a buffer the connection keeps, rather than with
// ReadMessage, which allocates one per message; WriteMessage sends header
// and payload together. Broadcast frames each message once
// (PreparedMessage) and queues it in a hub; the connection's writer
// goroutine sends it with WritePreparedMessage. gorilla answers pings and
// close frames from the reader through WriteControl, which may run
// concurrently with that writer.
func startGorilla(ln net.Listener) error {
	var up websocket.Upgrader
	var h hub[*websocket.PreparedMessage]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		defer c.Close()
		c.SetReadLimit(readLimit)
		var msg bytes.Buffer
		for {
			typ, rd, err := c.NextReader()
			if err != nil {
				return
			}
			msg.Reset()
			if _, err := msg.ReadFrom(rd); err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg.Bytes()); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /ws/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(readLimit)
		m := h.join()
		var writer sync.WaitGroup
		writer.Go(func() {
			if err := m.run(c.WritePreparedMessage); err != nil {
				h.leave(m)
				_ = c.Close() // ends the read below
			}
		})
		defer func() {
			h.leave(m)
			writer.Wait()
		}()
		for {
			// ReadMessage allocates: the queues share p until every
			// connection has written it.
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			pm, err := websocket.NewPreparedMessage(typ, p)
			if err != nil {
				return
			}
			h.publish(pm)
		}
	})
	go serveHTTP(ln, mux)
	return nil
}
