// Package interop tests package ws against the ws package from npm, the
// WebSocket library of Node.js, in both directions: Go servers with Node
// clients (ws-client.mjs) and Node servers (ws-server.mjs) with Go clients.
//
// The tests need node (v20 or later) in PATH and the npm dependencies:
//
//	cd test/interop && npm ci
//
// Without them the tests skip, or fail when CI=true. All traffic stays on
// 127.0.0.1.
package interop
