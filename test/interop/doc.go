// Package interop tests package ws and the duplex command against peers
// written by others, all on 127.0.0.1:
//
//   - Node's ws from npm, both directions: Go servers with Node clients
//     (ws-client.mjs) and Node servers (ws-server.mjs) with Go clients,
//     plain (ws_test.go) and with permessage-deflate in every parameter
//     combination (deflate_test.go);
//   - ws.Socket, the browser-shaped client, against Node ws servers: every
//     state transition, close codes both ways, BufferedAmount with a paused
//     reader, a server killed and restarted, a silent peer
//     (socket_test.go, socket-server.mjs);
//   - a Go server behind nginx (nginx_test.go);
//   - headless Chromium, driven by playwright-core, against duplex serve
//     (browser_test.go, browser-ws.mjs), and side by side with ws.Socket:
//     the same scenarios give the same readyStates and events in both
//     (socket_browser_test.go, socket-browser.mjs); the chat page with
//     WebSocket and Socket.IO clients (chat_browser_test.go);
//   - duplex serve over TLS: its TLS profile, duplex connect and Node ws
//     over wss:// (tls_test.go, tls-peer.mjs); WebSockets over HTTP/2 (RFC
//     8441) from Chromium and socket.io-client (h2_browser_test.go,
//     h2-browser.mjs), and the HTTP/1.1 fallback with Node ws and gorilla
//     (h2_fallback_test.go);
//   - Engine.IO with the npm engine.io-client and engine.io server
//     (engineio_test.go, eio-client.mjs, eio-server.mjs);
//   - Socket.IO: the official socket.io-client against our server
//     (socketio_test.go, sio-scenarios.mjs), our client against the
//     official server and ours (socketio_client_test.go, sio-server.mjs),
//     and clusters of conformance servers with a Node server on Redis, in
//     every adapter variant, Streams recovery across servers included
//     (socketio_redis_test.go, socketio-redis.mjs), and on NATS, core and
//     JetStream (socketio_nats_test.go).
//
// The tests need node (v20 or later), nginx and /usr/bin/chromium, Redis
// and NATS on 127.0.0.1, and the npm dependencies:
//
//	cd test/interop && npm ci
//
// ./scripts/test installs all of them. Without them the tests skip, or fail
// when CI=true.
package interop
