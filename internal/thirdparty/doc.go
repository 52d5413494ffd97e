// Package thirdparty benchmarks github.com/duplexrt/duplex/ws against other
// WebSocket libraries in the same run. It is a module of its own so that
// the comparison dependencies stay out of the library's go.mod. The
// in-process benchmarks are in its _test.go files; cmd/peerserve serves
// duplex serve's /ws/echo and /ws/broadcast on gorilla, gws, nbio, gobwas
// and coder, peers/ws-server.mjs on Node's ws, and compare.sh loads them
// and duplex serve with duplex bench. BENCH.md has the commands and the
// results.
//
// Its tests check the benchmarks' harnesses (each library reads and
// writes what the benchmarks claim), interoperate with gorilla/websocket
// where Duplex's HTTP/2 dialer must fall back to HTTP/1.1
// (h2_fallback_test.go), and, with DUPLEX_MEMBENCH=1, measure the memory
// of idle compressed connections (idlemem_test.go).
package thirdparty
