// Package xconnect turns on HTTP/2 extended CONNECT (RFC 8441) in
// net/http's HTTP/2 server when it is imported, so that browsers open
// WebSockets as streams of their HTTP/2 connection and ws.Accept takes them:
//
//	import _ "github.com/duplexrt/duplex/ws/xconnect"
//
// net/http (and golang.org/x/net/http2) read the setting from the GODEBUG
// environment variable, http2xconnect=1, once, when they are initialized;
// a //go:debug directive does not reach them, and setting the variable
// from main is too late. This package sets it before: it imports nothing
// that imports net/http, and its import path sorts before "net/http" and
// "golang.org/x/net/http2", so Go initializes it first (the order the Go
// specification fixes since Go 1.21: the first package in import path
// order whose imports are initialized). A GODEBUG that already mentions
// http2xconnect is left as it is, so http2xconnect=0 still turns it off.
//
// Setting GODEBUG=http2xconnect=1 in the process environment does the same
// without this package. Once Go has a field for it in http.HTTP2Config or
// http.Server, prefer that.
package xconnect

import (
	"os"
	"strings"
)

func init() {
	v := os.Getenv("GODEBUG")
	if strings.Contains(v, "http2xconnect=") {
		return
	}
	if v != "" {
		v += ","
	}
	_ = os.Setenv("GODEBUG", v+"http2xconnect=1")
}
