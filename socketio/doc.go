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
//
// The Go client (Dial, NewManager) multiplexes namespaces on one
// connection, reconnects with backoff, buffers emits while disconnected
// and recovers its session when the server keeps state
// (ServerOptions.Recovery).
//
// # Concurrency
//
// Every exported method is safe for concurrent use. A socket's event
// handlers, connection handlers and disconnect handlers run one at a time
// on the socket's own goroutine, in the order the packets arrived;
// acknowledgements are read while a handler blocks. Handlers of different
// sockets run concurrently. Emits never wait for the network: they queue
// on the connection (Engine.IO) and return.
//
// # Limits
//
// Every buffer that grows with a peer's input is bounded: Engine.IO
// payloads and send buffers (engineio.ServerOptions), binary attachments
// per packet (MaxAttachments, 10), JSON nesting (32) and a packet's text
// (the Engine.IO maxPayload), events waiting for a socket's handlers
// (MaxPendingEvents, 1024; more closes the connection), dynamic namespaces
// (MaxDynamicNamespaces, 10,000), namespaces joined by one connection
// (MaxNamespacesPerConnection, 100; more are refused with a
// CONNECT_ERROR), the recovery log (RecoveryOptions:
// packets, bytes, sessions) and, in the client, buffered emits
// (ClientOptions.MaxBufferedEmits) and pending events. Acknowledgements a
// broadcast waited for in vain are forgotten when its context ends.
//
// # Compatibility
//
// The wire format is Socket.IO protocol v5 over Engine.IO v4: the
// official socket.io-client 4.x connects unchanged, and the Go client
// connects to socket.io 4.x servers. The official protocol test suites
// pass (see the repository's conformance notes). Not supported: protocol
// v4 and older (socket.io 2.x clients), and the msgpack parser.
package socketio
