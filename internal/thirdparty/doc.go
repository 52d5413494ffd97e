// Package thirdparty benchmarks github.com/duplexrt/duplex/ws against other
// WebSocket libraries in the same run. It is a module of its own so that
// the comparison dependencies stay out of the library's go.mod. The
// in-process benchmarks are in its _test.go files; cmd/peerserve serves
// duplex serve's /ws/echo and /ws/broadcast on gorilla, gws, nbio, gobwas
// and coder, peers/ws-server.mjs on Node's ws, and compare.sh loads them
// and duplex serve with duplex bench. BENCH.md has the commands and the
// results.
package thirdparty
