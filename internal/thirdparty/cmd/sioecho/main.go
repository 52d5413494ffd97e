// Command sioecho is the Socket.IO side of the comparison with the
// official Node server (peers/sio-echo.mjs): one namespace, one "echo"
// event acknowledged with its arguments, the heartbeat and limits of
// socket.io's defaults (pingInterval 25 s, pingTimeout 20 s, maxPayload
// 1e6), no CORS. Load it with duplex bench socketio.
//
//	sioecho --addr 127.0.0.1:3100
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/duplexrt/duplex/socketio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3100", "listen address")
	flag.Parse()
	srv, err := socketio.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("echo", func(s *socketio.Socket, e *socketio.Event) { _ = e.Ack(e.Values()...) })
	})
	log.Fatal(http.ListenAndServe(*addr, srv))
}
