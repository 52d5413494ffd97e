// Package socketio is a Socket.IO protocol v5 server, wire-compatible with
// socket.io 4.x: the official JavaScript socket.io-client connects to it
// unchanged, over long-polling with an upgrade to WebSocket or over
// WebSocket alone (it runs on package engineio).
//
// A Server is an http.Handler, mounted at "/socket.io/":
//
//	srv, _ := socketio.NewServer(nil)
//	srv.OnConnection(func(s *socketio.Socket) {
//		s.On("chat", func(s *socketio.Socket, text string, ack func(...any)) {
//			s.Broadcast().Emit("chat", text)
//			ack("ok")
//		})
//	})
//	http.Handle("/socket.io/", srv)
//
// Event handlers are Go functions whose parameters after the *Socket are
// decoded from the event's arguments (JSON, and []byte for binary
// attachments), with an optional acknowledgement function last; see
// Socket.On. A socket's handlers run one at a time, in the order its
// events arrived, on a goroutine of their own: a handler may block, even
// on EmitWithAck to the same client.
//
// Namespaces (Server.Of, and dynamic ones with Server.OfFunc), middleware
// (Namespace.Use, Socket.Use), rooms (Socket.Join) and broadcasts
// (Namespace.To, Socket.Broadcast and the BroadcastOperator's Emit,
// EmitWithAck, SocketsJoin, DisconnectSockets…) work as in the JavaScript
// server. Broadcasts go through an Adapter: in memory by default; the
// interface lets adapters share rooms across processes.
package socketio
