package ws

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseHead checks the Listener's request-head parser against
// net/http's: whatever parseHead takes, http.ReadRequest reads as the
// same GET request (target, Host, every header), with nothing after the
// head taken for it; whatever it calls incomplete is a beginning that
// could still become a head for its route; and no input makes it panic.
//
//	go test -run '^$' -fuzz '^FuzzParseHead$' -fuzztime 5m ./ws
func FuzzParseHead(f *testing.F) {
	for _, seed := range []string{
		"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /ws?a=b&c=%20 HTTP/1.1\r\nHost: [::1]:80\r\nX-Two: 1\r\nx-two: 2\r\nCookie: a=b; c=d\r\n\r\n\x81\x82abcdef",
		"GET /ws HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n b\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /ws HTTP/1.1\r\nHost:x\r\nX-Tab:\tv\t\r\nX-Empty:\r\n\r\n",
		"GET /ws HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET /ws#frag HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /w",
		"POST /ws HTTP/1.1\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
		"GET /ws HTTP/1.1\nHost: x\n\n",
	} {
		f.Add([]byte(seed))
	}
	routes := func(p []byte) bool { return string(p) == "/ws" || string(p) == "/" }
	f.Fuzz(func(t *testing.T, b []byte) {
		h, st := parseHead(b, routes)
		switch st {
		case headMore:
			if len(b) >= maxHeadBytes {
				t.Fatalf("%d bytes still incomplete, past the %d-byte limit", len(b), maxHeadBytes)
			}
			if bytes.Contains(b, []byte("\r\n\r\n")) {
				t.Fatalf("a complete head called incomplete: %q", b)
			}
			return
		case headOther:
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:h.len])))
		if err != nil {
			t.Fatalf("parseHead took %q, net/http refuses it: %v", b[:h.len], err)
		}
		if r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.RequestURI != h.target || r.Host != h.host || r.ContentLength != 0 {
			t.Fatalf("parseHead: %q %q; net/http: %s %q %q proto %d.%d length %d", h.target, h.host, r.Method, r.RequestURI, r.Host, r.ProtoMajor, r.ProtoMinor, r.ContentLength)
		}
		if diff := cmp.Diff(r.Header, h.header); diff != "" {
			t.Fatalf("headers differ from net/http's (-net/http +ours):\n%s", diff)
		}
		if !strings.HasPrefix(h.target, h.path) || !routes([]byte(h.path)) {
			t.Fatalf("path %q of target %q is not a route", h.path, h.target)
		}
		if _, err := h.request(); err != nil && r.URL != nil {
			t.Fatalf("net/http parsed %q as %v, request() failed: %v", h.target, r.URL, err)
		}
	})
}

// BenchmarkParseHead is the Listener's reading of a browser's handshake
// head, against net/http's reading of the same head (which the Listener
// saves): allocations and time per head.
//
//	go test -run '^$' -bench ParseHead -benchmem ./ws
func BenchmarkParseHead(b *testing.B) {
	head := []byte("GET /ws/echo?room=lobby HTTP/1.1\r\nHost: example.com:8080\r\nConnection: Upgrade\r\nPragma: no-cache\r\n" +
		"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\n" +
		"Upgrade: websocket\r\nOrigin: http://example.com:8080\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
	routes := func(p []byte) bool { return string(p) == "/ws/echo" }
	b.Run("impl=duplex", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, st := parseHead(head, routes); st != headOK {
				b.Fatal(st)
			}
		}
	})
	b.Run("impl=net-http", func(b *testing.B) {
		b.ReportAllocs()
		br := bufio.NewReaderSize(nil, 4096)
		rd := bytes.NewReader(nil)
		for b.Loop() {
			rd.Reset(head)
			br.Reset(rd)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}
