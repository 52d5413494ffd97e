package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// startCoder serves with coder/websocket behind net/http, a goroutine per
// connection.
//
// Compression is disabled (its default, stated here). Reads and writes take
// context.Background(): coder arms a context.AfterFunc for a context that
// can be done, so a context without deadline costs nothing per message.
// Echo reads each message with Reader into a buffer the connection keeps,
// rather than with Read, which allocates one per message. coder has no
// prepared message, so broadcast queues the payload in a hub and the
// connection's writer goroutine writes it with Write, which frames it for
// that connection; coder serializes that with its own answers to pings.
func startCoder(ln net.Listener) error {
	opts := &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled}
	ctx := context.Background()
	type message struct {
		typ websocket.MessageType
		p   []byte
	}
	var h hub[message]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return // Accept has answered with an HTTP error
		}
		defer c.CloseNow()
		c.SetReadLimit(readLimit)
		var msg bytes.Buffer
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			msg.Reset()
			if _, err := msg.ReadFrom(rd); err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg.Bytes()); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /ws/broadcast", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(readLimit)
		m := h.join()
		var writer sync.WaitGroup
		writer.Go(func() {
			err := m.run(func(msg message) error { return c.Write(ctx, msg.typ, msg.p) })
			if err != nil {
				h.leave(m)
				_ = c.CloseNow() // ends the read below
			}
		})
		defer func() {
			h.leave(m)
			writer.Wait()
		}()
		for {
			// Read allocates: the queues share p until every connection
			// has written it.
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			h.publish(message{typ, p})
		}
	})
	go serveHTTP(ln, mux)
	return nil
}
