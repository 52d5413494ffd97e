// Package interop tests package ws and the duplex command against peers
// written by others, all on 127.0.0.1:
//
//   - Node's ws from npm, both directions: Go servers with Node clients
//     (ws-client.mjs) and Node servers (ws-server.mjs) with Go clients,
//     plain (ws_test.go) and with permessage-deflate in every parameter
//     combination (deflate_test.go);
//   - a Go server behind nginx (nginx_test.go);
//   - headless Chromium, driven by playwright-core, against duplex serve
//     (browser_test.go, browser-ws.mjs).
//
// The tests need node (v20 or later), nginx and /usr/bin/chromium, and the
// npm dependencies:
//
//	cd test/interop && npm ci
//
// ./scripts/test installs all of them. Without them the tests skip, or fail
// when CI=true.
package interop
