package adversarial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// startEchoHTTP serves a ws.Server behind the net/http limits of duplex
// serve, with a short ReadHeaderTimeout for the test.
func startEchoHTTP(t *testing.T, readHeaderTimeout time.Duration) string {
	t.Helper()
	srv := &ws.Server{Handler: ws.HandlerFuncs{}}
	ts := startHTTP(t, srv, readHeaderTimeout)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return addrOf(ts)
}

// TestHeaderFlood: handshakes with thousands of header fields, or one
// header line of 1 MB, are answered 431 Request Header Fields Too Large by
// net/http's MaxHeaderBytes (16 KiB in duplex serve) after reading little
// more than the limit, and the connection is closed: no hang, no 1 MB
// buffered.
func TestHeaderFlood(t *testing.T) {
	addr := startEchoHTTP(t, 2*time.Second)
	var many strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&many, "X-Flood-%d: %d\r\n", i, i)
	}
	for _, tc := range []struct{ name, header string }{
		{"5000-headers", many.String()},
		{"1MB-line", "X-Big: " + strings.Repeat("a", 1<<20) + "\r\n"},
		{"1MB-cookie", "Cookie: " + strings.Repeat("a=b; ", 200_000) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := dialTCP(t, addr)
			req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + tc.header + "\r\n"
			go func() { _, _ = io.WriteString(nc, req) }() // the server stops reading
			_ = nc.SetReadDeadline(time.Now().Add(step))
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431", resp.StatusCode)
			}
		})
	}
}

// TestSlowloris: a handshake trickled one byte at a time never completes
// its header; net/http's ReadHeaderTimeout (duplex serve: 10 s, here
// 300 ms) closes the connection, so the server's goroutine and buffers
// for it go away.
func TestSlowloris(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := startEchoHTTP(t, timeout)
	nc := dialTCP(t, addr)
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + strings.Repeat("X-Slow: a\r\n", 1000)
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		// The server answers nothing, or 408, then closes.
		_ = nc.SetReadDeadline(time.Now().Add(step))
		_, err := io.Copy(io.Discard, nc)
		closed <- err
	}()
	for i := 0; i < len(req); i++ {
		if _, err := nc.Write([]byte{req[i]}); err != nil {
			break // cut
		}
		select {
		case err := <-closed:
			el := time.Since(start)
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("not closed: %v", err)
			}
			t.Logf("cut after %v and %d bytes", el.Round(time.Millisecond), i+1)
			if el > timeout+2*time.Second {
				t.Errorf("cut after %v, want about %v", el, timeout)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the whole request was trickled in %v without the server cutting it", time.Since(start))
}

// TestIdleKeepAlive: a client that makes one request and then keeps its
// keep-alive connection idle, forever. ReadHeaderTimeout does not apply
// between requests (net/http waits for the next request's first bytes
// before starting it); only http.Server.IdleTimeout (or ReadTimeout) cuts
// such a connection. duplex serve sets 2 minutes (checked by
// cmd/duplex's TestServeHTTPLimits); the test server, 300 ms.
func TestIdleKeepAlive(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := startEchoHTTP(t, timeout)
	nc := dialTCP(t, addr)
	br := bufio.NewReader(nc)
	for i := range 3 { // keep-alive works
		_, _ = io.WriteString(nc, "GET /x HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
		_ = nc.SetReadDeadline(time.Now().Add(step))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	start := time.Now()
	_ = nc.SetReadDeadline(time.Now().Add(timeout + 2*time.Second))
	_, err := br.ReadByte()
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("an idle keep-alive connection was still open after %v (http.Server.IdleTimeout did not cut it)", time.Since(start).Round(time.Millisecond))
	}
	t.Logf("idle connection closed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
