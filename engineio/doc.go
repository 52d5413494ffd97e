// Package engineio implements Engine.IO protocol v4, the transport under
// Socket.IO v5: a server, as an http.Handler, and a client, both speaking
// HTTP long-polling and WebSocket (package ws), with the upgrade from one
// to the other, heartbeats and the protocol's close reasons. It is
// wire-compatible with Node's engine.io 6.x and engine.io-client 6.x, and
// knows nothing of Socket.IO.
//
// A server hands each session to a Handler:
//
//	srv, err := engineio.NewServer(&engineio.ServerOptions{
//		Handler: engineio.HandlerFuncs{
//			Message: func(s *engineio.Session, typ engineio.MessageType, data []byte) {
//				s.Send(typ, data) // echo; never blocks
//			},
//		},
//	})
//	...
//	http.Handle("/engine.io/", srv)
//
// and a client dials it:
//
//	c, err := engineio.Dial(ctx, "http://localhost:8080/engine.io/", &engineio.DialOptions{
//		OnMessage: func(c *engineio.Client, typ engineio.MessageType, data []byte) { ... },
//	})
//	...
//	c.SendText("hello")
//
// # The protocol
//
// A session starts with a handshake, the open packet
// 0{"sid":…,"upgrades":…,"pingInterval":…,"pingTimeout":…,"maxPayload":…},
// over long-polling (GET with EIO=4&transport=polling) or WebSocket
// (transport=websocket). Packets are close 1, ping 2, pong 3, message 4,
// upgrade 5 and noop 6 (Packet, PacketType). Over WebSocket each packet is
// a message: text packets as text frames ("4hello"), binary messages as
// binary frames of their raw data. Over long-polling the server answers
// each GET with the packets queued for the client, joined with the record
// separator 0x1e, binary as "b" and base64 (AppendPayload,
// DecodePayload); the client sends its packets with POSTs, answered "ok".
//
// A long-polling session upgrades when the client opens a WebSocket with
// its sid and sends 2probe: the server answers 3probe, ends the pending
// poll with a noop, and the client's upgrade packet 5 moves the session.
// Messages the server sends meanwhile are held and follow on the
// WebSocket, in order; polls after the upgrade are refused (400), and so is
// a second WebSocket for the session (it is closed).
//
// The server pings every PingInterval and closes a session whose pong has
// not come PingTimeout later (ReasonPingTimeout); the timers start when the
// handshake is sent. The client closes when no ping came within
// pingInterval+pingTimeout.
//
// # Refusals
//
// The server refuses a bad request with HTTP 400 and the JSON body Node's
// engine.io sends, {"code":N,"message":"…"} (ErrorCode): 0 for a missing
// or unknown transport, 1 for an unknown or closed sid, 2 for a handshake
// that is not a GET, 3 for anything else, 5 for an EIO other than 4; 403
// with code 4 when ServerOptions.AllowRequest refuses; 503 beyond
// MaxSessions. These also close the session: a second GET while one is
// parked (the parked one gets a close packet, the second 400), a second
// concurrent POST, a POST over MaxPayload (413), a payload that does not
// parse (400, ReasonParseError). A POST with a close packet ends the parked
// GET with a noop.
//
// # Concurrency
//
// Server, Session and Client methods are safe for concurrent use. A
// Session's Handler calls come one at a time and in order (see Handler);
// so do a Client's callbacks. Sends queue and never block. Each session's
// goroutines (the WebSocket reader, parked polls, timers) end when it
// closes; Server.Close and Server.Shutdown close every session and wait
// for them, and a Client's Done channel is closed once its goroutines have
// ended.
//
// # Limits
//
//   - MaxPayload (default 1,000,000 bytes): the largest POST body and
//     WebSocket message the server reads; over it a POST is answered 413
//     and a WebSocket closed with 1009, and the session closes. The client
//     splits its POSTs to stay within the server's maxPayload.
//   - SendBufferLimit (default 4 MiB): the bytes of message data a session
//     or client holds queued (waiting for a poll, held during an upgrade,
//     or in the WebSocket's send queue). A send over it returns an error
//     wrapping ErrSendBufferFull and closes the session with
//     ReasonTransportError: a peer that reads too slowly is let go rather
//     than buffered without end.
//   - MaxSessions (default 100,000): open sessions per Server.
//   - A session whose client disappears is expired by the heartbeat,
//     within PingInterval+PingTimeout.
//
// ServerOptions.OnError is told of each request refused and each session
// closed for one of these limits or a protocol error, with an error that
// says which (errors.Is, errors.As), e.g. to count them by reason.
//
// # Compression
//
// WebSocket transports negotiate permessage-deflate as package ws does:
// set ServerOptions.WebSocket.Compression (or DialOptions.WebSocket's) to
// offer or accept it; nil, the default, compresses nothing. Long-polling
// responses are not compressed by this package; put a compressing
// middleware in front of the handler if wanted.
//
// # Compatibility
//
// Protocol v4 only (EIO=4): Engine.IO v3 clients (socket.io-client 2.x)
// are refused with code 5. JSONP polling (the j parameter) is not
// supported. Long-polling needs every request of a session to reach the
// same process: behind a load balancer with several processes, use sticky
// sessions (for example nginx's ip_hash or a cookie), or WebSocket only.
// Browsers on another origin need ServerOptions.CORS, which also admits
// their WebSockets (package ws refuses cross-origin browser WebSockets by
// default).
//
// The WebSocket transport also runs over HTTP/2 (RFC 8441). On a server
// whose net/http enables extended CONNECT (see package ws, "HTTP/2 (RFC
// 8441)"), a browser opens it as a stream of the page's HTTP/2
// connection; the server reads that stream on the request's goroutine, as
// it ends when ServeHTTP returns, and a router in front of the Server must
// let CONNECT through. The client does the same with
// DialOptions.WebSocket.HTTP2, and falls back to HTTP/1.1 when the server
// does not take it.
package engineio
