package interop

import (
	"context"
	"crypto/tls"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/ws"
)

// TestNodeServerHTTP2Fallback dials Node's ws server over TLS (https, an
// HTTP/1.1 server) with DialOptions.HTTP2: the pool offers h2 in ALPN, the
// server picks http/1.1 (Node's https default), or answers no ALPN at all
// (as servers without ALPN support do), and the WebSocket handshake goes
// over HTTP/1.1 on that same connection. Two dials each; text and binary echo, and a clean
// close. (gorilla/websocket, the other HTTP/1.1-only peer, is in
// internal/thirdparty/h2_fallback_test.go, where it is a dependency.)
func TestNodeServerHTTP2Fallback(t *testing.T) {
	node := requireNode(t)
	certFile, keyFile := selfSignedCert(t)
	roots := certPool(t, certFile)
	for _, tc := range []struct {
		name string
		alpn []string // nil: no ALPN extension in the server's answer
		want any      // the ALPN protocol Node reports
	}{
		{"alpn http/1.1", []string{"http/1.1"}, "http/1.1"},
		{"no alpn", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startNodePeer(t, node, map[string]any{"mode": "server", "cert": certFile, "key": keyFile, "alpn": tc.alpn})
			port := p.next(t, "listening")["port"].(float64)
			url := "wss://127.0.0.1:" + strconv.Itoa(int(port)) + "/"
			pool := &ws.HTTP2Pool{}
			t.Cleanup(pool.CloseIdleConnections)
			opts := &ws.DialOptions{TLSConfig: &tls.Config{RootCAs: roots}, HTTP2: pool, Compression: &ws.Compression{}}
			for i := range 2 {
				ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
				c, resp, err := ws.Dial(ctx, url, opts)
				if err != nil {
					cancel()
					t.Fatalf("dial %d: %v", i, err)
				}
				if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Errorf("dial %d: %s over %s, want 101 over HTTP/1.1", i, resp.Status, resp.Proto)
				}
				if !strings.HasPrefix(c.Extensions(), "permessage-deflate") {
					t.Errorf("dial %d: extensions %q", i, c.Extensions())
				}
				for _, m := range []struct {
					typ ws.MessageType
					p   string
				}{{ws.MessageText, "hello node " + strconv.Itoa(i)}, {ws.MessageBinary, strings.Repeat("\x01\x00\xfe", 30000)}} {
					if err := c.Write(ctx, m.typ, []byte(m.p)); err != nil {
						t.Fatal(err)
					}
					typ, got, err := c.Read(ctx)
					if err != nil || typ != m.typ || string(got) != m.p {
						t.Fatalf("dial %d: echo: %v %v of %d bytes, want %v of %d", i, err, typ, len(got), m.typ, len(m.p))
					}
				}
				if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
					t.Errorf("dial %d: close: %v", i, err)
				}
				cancel()
				req := p.next(t, "request")
				if req["httpVersion"] != "1.1" || req["method"] != "GET" || req["upgrade"] != true || req["alpn"] != tc.want {
					t.Errorf("dial %d: Node saw %v, want an HTTP/1.1 GET upgrade with ALPN %v", i, req, tc.want)
				}
			}
		})
	}
}
