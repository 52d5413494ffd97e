// Package thirdparty benchmarks github.com/duplexrt/duplex/ws against other
// WebSocket libraries in the same run. It is a module of its own so that
// the comparison dependencies stay out of the library's go.mod; everything
// is in its _test.go files. BENCH.md has the commands and the results.
package thirdparty
