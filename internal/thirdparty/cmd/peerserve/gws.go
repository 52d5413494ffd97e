package main

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/lxzan/gws"
)

// startGWS serves with lxzan/gws on its own gws.Server, which reads the
// HTTP request itself, without net/http, as its Quick Start and its
// benchmarks do; OnRequest picks the endpoint's Upgrader by path. Each
// connection's goroutine runs ReadLoop, which calls the event handler.
//
// The options are gws's defaults (4 KiB read buffer, no compression, no
// UTF-8 check) but the read limit. Pings are answered with their payload,
// as its examples/echo does (the built-in handler sends an empty pong).
// Echo writes back with WriteMessage. Broadcast uses gws.Broadcaster, which
// frames a message once and queues the frame on each connection's write
// queue, drained by at most one goroutine per connection, started on
// demand.
func startGWS(ln net.Listener) error {
	options := func() *gws.ServerOption {
		return &gws.ServerOption{ReadMaxPayloadSize: readLimit}
	}
	echo := gws.NewUpgrader(gwsEcho{}, options())
	broadcast := gws.NewUpgrader(&gwsBroadcast{members: make(map[*gws.Conn]*gwsMember)}, options())
	srv := gws.NewServer(gwsEcho{}, options()) // its own upgrader stays unused
	srv.OnError = func(net.Conn, error) {}     // failed handshakes are the client's business
	srv.OnRequest = func(conn net.Conn, br *bufio.Reader, r *http.Request) {
		var up *gws.Upgrader
		switch r.URL.Path {
		case "/ws/echo":
			up = echo
		case "/ws/broadcast":
			up = broadcast
		default:
			_, _ = conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			_ = conn.Close()
			return
		}
		socket, err := up.UpgradeFromConn(conn, br, r)
		if err != nil {
			return // UpgradeFromConn has answered and closed conn
		}
		socket.ReadLoop()
	}
	go func() { _ = srv.RunListener(ln) }()
	return nil
}

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (gwsEcho) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	_ = socket.WriteMessage(message.Opcode, message.Bytes())
}

// gwsBroadcast is the /ws/broadcast event handler.
//
// gws does not bound a connection's write queue, so each connection counts
// its unwritten messages: a Broadcast adds one, and an Async job queued
// behind it (the queue is FIFO) takes it off once the frame is written. A
// connection with queueLimit messages unwritten is closed.
type gwsBroadcast struct {
	gwsEcho

	mu      sync.Mutex // held while a message is queued for everyone: one order for all
	members map[*gws.Conn]*gwsMember
}

type gwsMember struct {
	unwritten atomic.Int64
	written   func() // unwritten.Add(-1), made once per connection
}

func (b *gwsBroadcast) OnOpen(socket *gws.Conn) {
	m := &gwsMember{}
	m.written = func() { m.unwritten.Add(-1) }
	b.mu.Lock()
	b.members[socket] = m
	b.mu.Unlock()
}

func (b *gwsBroadcast) OnClose(socket *gws.Conn, _ error) {
	b.mu.Lock()
	delete(b.members, socket)
	b.mu.Unlock()
}

func (b *gwsBroadcast) OnMessage(_ *gws.Conn, message *gws.Message) {
	defer message.Close()
	// The Broadcaster frames the payload at the first Broadcast, so the
	// message's pooled buffer may go back when OnMessage returns.
	br := gws.NewBroadcaster(message.Opcode, message.Bytes())
	defer br.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for socket, m := range b.members {
		if m.unwritten.Load() >= queueLimit {
			delete(b.members, socket)
			_ = socket.NetConn().Close() // ends its ReadLoop
			continue
		}
		m.unwritten.Add(1)
		_ = br.Broadcast(socket)
		socket.Async(m.written)
	}
}
