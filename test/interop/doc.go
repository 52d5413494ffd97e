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
//     (socket_browser_test.go, socket-browser.mjs).
//
// The tests need node (v20 or later), nginx and /usr/bin/chromium, and the
// npm dependencies:
//
//	cd test/interop && npm ci
//
// ./scripts/test installs all of them. Without them the tests skip, or fail
// when CI=true.
package interop
