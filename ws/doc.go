// Package ws implements the WebSocket protocol of RFC 6455, server and
// client, on net/http.
//
// A server accepts connections in any net/http handler, behind any router,
// over TLS and behind reverse proxies such as nginx:
//
//	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
//		c, err := ws.Accept(w, r, nil) // on failure the HTTP error is written
//		if err != nil {
//			return
//		}
//		defer c.CloseNow()
//		for {
//			typ, msg, err := c.Read(r.Context())
//			if err != nil {
//				return // ws.CloseStatus(err) tells how the peer closed
//			}
//			if err := c.Write(r.Context(), typ, msg); err != nil {
//				return
//			}
//		}
//	})
//
// Server does the same as an http.Handler and adds a Shutdown that closes
// every connection with 1001 Going Away. A client dials:
//
//	c, _, err := ws.Dial(ctx, "wss://example.com/echo", nil)
//	...
//	err = c.Write(ctx, ws.MessageText, []byte("hello"))
//	typ, msg, err := c.Read(ctx)
//	c.Close(ws.StatusNormalClosure, "bye")
//
// # The browser's WebSocket, in Go
//
// Socket is a client shaped like the WebSocket object of the browser:
// NewSocket returns at once in StateConnecting, the open, message, error
// and close events run as callbacks on one goroutine per socket, in order,
// Send queues and never blocks, BufferedAmount counts what is queued, and
// Close takes the browser's codes and reasons. It adds what browsers lack:
// reconnection with exponential backoff and full jitter (Reconnect),
// heartbeats that find a dead peer (Heartbeat), a hook to refresh headers
// before each attempt (BeforeDial), an Events channel for code that prefers a
// loop, and a context whose end closes the socket with 1001:
//
//	s, err := ws.NewSocket(ctx, "wss://example.com/feed", &ws.SocketOptions{
//		OnOpen:    func(s *ws.Socket, e ws.OpenEvent) { s.SendText(`{"subscribe":"prices"}`) },
//		OnMessage: func(s *ws.Socket, e ws.MessageEvent) { fmt.Println(e.Text()) },
//		OnClose:   func(s *ws.Socket, e ws.CloseEvent) { log.Println("closed", e.Code, e.Reason) },
//		Reconnect: &ws.Reconnect{MaxDelay: 10 * time.Second},
//		Heartbeat: &ws.Heartbeat{Interval: 15 * time.Second},
//	})
//
// On the server side, AcceptOptions.Heartbeat pings a client that has been
// silent for a while and drops it (1006, ErrNoPong) if it does not answer:
// the half-open connections that TCP alone keeps for hours.
//
// # Event style, the poller, and sends that never block
//
// A Server with a Handler instead of Handle calls OnOpen, OnMessage, OnError
// and OnClose for each connection, one call at a time, and reads for them.
// With a Poller (Linux, epoll) a connection waiting for input holds no
// goroutine and no buffer: when input arrives a worker borrows a read
// buffer, delivers the messages that came, returns the buffer and gives the
// connection back to epoll; write buffers are borrowed per frame. Without a
// Poller, on other systems, and for TLS, the same Handler runs with a
// goroutine per connection.
//
//	p, err := ws.NewPoller(nil)
//	...
//	srv := &ws.Server{Poller: p, Handler: ws.HandlerFuncs{
//		Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
//			c.Send(typ, data) // queued: never blocks this connection's reads
//		},
//	}}
//
// Conn.Send and Conn.SendPrepared queue a message and return at once; a
// writer goroutine runs while the queue holds messages and writes several
// queued frames with one system call. The queue is bounded
// (AcceptOptions.SendQueueLimit); a peer that falls that far behind is
// closed with 1013 Try Again Later, or 1008, or its new messages are
// dropped (AcceptOptions.SendQueueFull).
//
// # Handshakes without net/http
//
// A Listener in front of the http.Server answers the handshakes of the
// paths it routes itself: it peeks at a new connection's first request,
// and when that is a plain handshake the route's Server accepts, the Server
// answers it without net/http's goroutine, buffers and hijack, and serves
// the connection on the goroutine that read it. Anything else reaches
// net/http as if the Listener were not there. It is for plain TCP (put TLS
// in the http.Server, not under the Listener).
//
//	fast := ws.NewListener(ln, &ws.ListenerOptions{Routes: map[string]*ws.Server{"/ws": srv}})
//	mux.Handle("/ws", srv)
//	http.Serve(fast, mux)
//
// # Concurrency
//
// Every Conn method may be called from many goroutines at once, except the
// reading ones (Read, ReadAppend, Reader and the reader it returns), which
// take turns. Writes never interleave: each Write and each Writer sends a
// whole message, and other writers wait; pongs and close frames go out
// between the frames of a long message. Concurrent writes are the commonest
// crash in Go WebSocket code; here they are simply safe.
//
// Control frames are handled by the goroutine that reads: pings are
// answered, pongs wake Ping, and the peer's close frame is answered and
// reported as a CloseError. A connection nobody reads answers no pings:
// read in a loop, or call CloseRead.
//
// Every blocking call takes a context, and a context that ends never
// breaks the stream: a read whose context ends before a message starts
// returns ctx.Err() and leaves the connection usable (halfway through a
// message, the rest of that message is skipped); a write whose context ends
// halfway through a frame returns ctx.Err() and the rest of the frame goes
// out ahead of the next one. Two cases cannot be resumed and close the
// connection: a Writer whose write fails (its message could not be
// finished), and a read cut short inside a compressed message when the
// peer takes over context (every later message depends on its data).
//
// NetConn wraps a Conn as a net.Conn with deadlines; it passes the
// golang.org/x/net/nettest conformance suite.
//
// # Limits
//
// Every buffer that grows with input is bounded:
//
//   - ReadLimit (default 1 MiB): a larger message fails the connection
//     with 1009 Message Too Big before its payload is read, and the read
//     returns an error wrapping ErrMessageTooBig that names the option.
//   - MaxFragments (default ReadLimit/32, at least 1,024): the frames one
//     message may span; more close with 1009. Frames cost no memory, so
//     this only bounds the work a flood of tiny fragments causes.
//   - Control frames carry at most 125 bytes (RFC 6455 §5.5).
//   - The handshake response is written within HandshakeTimeout; set
//     http.Server.ReadHeaderTimeout to bound slow requests.
//   - Close waits at most CloseTimeout (default 5 s) for the peer's close
//     frame, and keeps at most 64 messages (within ReadLimit) that arrive
//     meanwhile.
//
// # Protocol errors
//
// The reader is strict, as RFC 6455 requires: reserved bits without an
// extension, reserved opcodes, non-minimal length encodings, unmasked
// client frames or masked server frames, fragmented or oversized control
// frames, and continuation frames out of place fail the connection with
// 1002 Protocol Error; text that is not UTF-8 (checked incrementally, so a
// bad byte is refused as soon as it arrives, even inside a frame) fails it
// with 1007 Invalid Frame Payload Data. The error returned wraps ErrProtocol.
//
// # Security
//
// Accept refuses browser requests whose Origin is neither the request's
// host nor listed in AcceptOptions.OriginPatterns, with 403 Forbidden: a
// WebSocket carries the browser's cookies, so allowing every Origin lets
// any web page act as the logged-in user (cross-site WebSocket hijacking).
// Clients that send no Origin (programs, not browsers) are not affected.
//
// # Compatibility
//
// Behind a reverse proxy, forward the Upgrade and Connection headers and
// the client's Host header with its port (nginx: proxy_http_version 1.1,
// proxy_set_header Upgrade $http_upgrade, Connection "upgrade", Host
// $http_host — $host drops the port, and the same-origin check then
// refuses browsers on a non-default port).
//
// # HTTP/2 (RFC 8441)
//
// Over HTTP/1.1, Accept takes the connection over (hijack). Over HTTP/2 a
// WebSocket is one stream of the connection, opened by an extended CONNECT
// (:protocol websocket): Accept answers it with 200 and runs the same Conn
// on the request body and the ResponseWriter, flushing every frame, so that
// limits, deflate, the close handshake, contexts and Server's Handler all
// work as over HTTP/1.1. Three things differ:
//
//   - The stream belongs to the handler: the handler must not return before
//     the Conn is closed. Server does this by itself (its Handler then runs
//     on the request's goroutine); with Accept, close the Conn (defer
//     c.CloseNow()) before returning, and do not hand it to a goroutine
//     that outlives the handler.
//   - A Poller cannot hold a stream: Server serves it in the portable mode,
//     and a stream costs two goroutines and a read buffer more than a
//     hijacked connection (one reads the body, one writes, so that contexts
//     can interrupt reads and writes without resetting the stream).
//   - Flow control is HTTP/2's: a stream whose reader falls behind stops
//     at its window, and net/http's server gives the connection's window
//     back only as handlers read, so a stalled stream holds up to its
//     window of the connection's. Keep http.Server.HTTP2's
//     MaxReceiveBufferPerStream well below MaxReceiveBufferPerConnection
//     (both default to 1 MiB), e.g. 256 KiB and 4 MiB; and set its
//     MaxReadFrameSize to 16 KiB, or Go clients hold a 512 KiB send buffer
//     per stream (see HTTP2Pool).
//
// net/http's HTTP/2 server advertises extended CONNECT
// (SETTINGS_ENABLE_CONNECT_PROTOCOL) only when the environment holds
// GODEBUG=http2xconnect=1 at process start (Go 1.26; golang/go#71128): a
// //go:debug directive or os.Setenv in main comes too late. Either start
// the process with it, or import the package ws/xconnect from main, which
// sets it before net/http is initialized. Without it, browsers open
// WebSockets over HTTP/1.1 connections of their own, and Accept answers an
// HTTP/2 request that is not an extended CONNECT as before (426). A router
// that matches methods must let CONNECT through to the WebSocket handler
// ("GET /ws" does not match an extended CONNECT; register "/ws", or
// "CONNECT /ws" beside it). http.Server's ReadTimeout and WriteTimeout
// would reset the stream; Accept lifts them for it, as it clears a hijacked
// connection's deadlines.
//
// A client opts in with DialOptions.HTTP2, an HTTP2Pool shared between
// dials: wss:// WebSockets to one host then share one TCP and TLS
// connection, and a server without RFC 8441 gets the HTTP/1.1 handshake.
//
// # Compression
//
// permessage-deflate (RFC 7692) is negotiated when both sides' options set
// Compression (a nil Compression offers and accepts nothing), with all four
// parameters: server_no_context_takeover, client_no_context_takeover,
// server_max_window_bits and client_max_window_bits. A window smaller than
// 15 bits is honoured for real: every message is compressed with a window of
// that size, so the peer can inflate it with that much history. Several
// offers are tried in the client's order; an offer with an unknown,
// repeated or out-of-range parameter is declined, and a client fails the
// handshake if the server's answer is malformed or not what it offered.
//
// Messages shorter than Compression.Threshold (128 bytes by default) are
// sent as they are. Compressors and decompressors are pooled and borrowed
// for one message; with context takeover a connection keeps only the last
// 2^bits bytes it sent and received (32 KiB each at 15 bits), not a
// compressor. The read limit applies to the inflated size, so a
// compression bomb fails the connection with 1009 before it is inflated in
// full.
package ws
