package thirdparty

// ws.Dial with DialOptions.HTTP2 against a real gorilla/websocket server,
// which speaks HTTP/1.1 only: the dial must fall back to HTTP/1.1 however
// the server's TLS and HTTP/2 are set up.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexrt/duplex/ws"
)

// gorillaEcho is a gorilla/websocket echo handler that records the
// requests it gets (protocol and method) and what it answered.
type gorillaEcho struct {
	mu       sync.Mutex
	requests []string
	report   func(string) // if not nil, also told each request
}

func (g *gorillaEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var up websocket.Upgrader
	rec := &statusRecorder{ResponseWriter: w}
	c, err := up.Upgrade(rec, r, nil)
	line := fmt.Sprintf("%s %s %d", r.Proto, r.Method, rec.status)
	if err == nil {
		line = fmt.Sprintf("%s %s 101", r.Proto, r.Method)
	}
	g.mu.Lock()
	g.requests = append(g.requests, line)
	g.mu.Unlock()
	if g.report != nil {
		g.report(line)
	}
	if err != nil {
		return // gorilla has answered
	}
	defer c.Close()
	for {
		typ, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, p); err != nil {
			return
		}
	}
}

func (g *gorillaEcho) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

// statusRecorder keeps the status of a refused upgrade, and still lets
// gorilla hijack the connection.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Hijack is gorilla's way in: it asserts http.Hijacker.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// countListener counts the TCP connections accepted.
type countListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// dialEcho dials url with opts, checks the handshake went over HTTP/1.1,
// echoes a text and a binary message, and closes.
func dialEcho(t *testing.T, url string, opts *ws.DialOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := ws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("handshake answered %s over %s, want 101 over HTTP/1.1", resp.Status, resp.Proto)
	}
	for _, m := range []struct {
		typ ws.MessageType
		p   string
	}{{ws.MessageText, "hello gorilla"}, {ws.MessageBinary, strings.Repeat("\x00\xff", 40000)}} {
		if err := c.Write(ctx, m.typ, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil || typ != m.typ || string(p) != m.p {
			t.Fatalf("echo: %v %v of %d bytes, want %v of %d", err, typ, len(p), m.typ, len(m.p))
		}
	}
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestGorillaHTTP2Fallback dials gorilla/websocket servers with an
// HTTP2Pool, twice each (the second dial finds what the first learnt):
//
//   - TLS without h2 in ALPN: the HTTP/1.1 handshake goes on the
//     connection the pool made, one connection per dial;
//   - TLS with HTTP/2 (net/http's default for a TLS server) but without
//     extended CONNECT, as every Go server before RFC 8441 and without
//     GODEBUG=http2xconnect=1: the pool sees SETTINGS without
//     ENABLE_CONNECT_PROTOCOL and dials HTTP/1.1 on a connection of its
//     own; the second dial learns it from the pooled connection at once;
//   - HTTP/2 with extended CONNECT (a process with http2xconnect=1, run as
//     a helper process): gorilla gets the CONNECT and refuses it with 400,
//     and the pool dials HTTP/1.1.
func TestGorillaHTTP2Fallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		http2     bool
		wantConns int32
	}{
		{"tls http/1.1 only", false, 2},
		{"h2 without extended CONNECT", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gorillaEcho{}
			srv := httptest.NewUnstartedServer(g)
			ln := &countListener{Listener: srv.Listener}
			srv.Listener = ln
			srv.EnableHTTP2 = tc.http2
			srv.StartTLS()
			pool := &ws.HTTP2Pool{}
			defer func() {
				pool.CloseIdleConnections()
				srv.Close()
			}()
			opts := &ws.DialOptions{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HTTP2: pool}
			url := "wss://" + srv.Listener.Addr().String() + "/"
			dialEcho(t, url, opts)
			dialEcho(t, url, opts)
			if got := g.seen(); strings.Join(got, ",") != "HTTP/1.1 GET 101,HTTP/1.1 GET 101" {
				t.Errorf("gorilla saw %q, want two HTTP/1.1 upgrades and nothing else", got)
			}
			if got := ln.n.Load(); got != tc.wantConns {
				t.Errorf("%d TCP connections, want %d", got, tc.wantConns)
			}
		})
	}
	t.Run("h2 with extended CONNECT", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGorillaHTTP2Helper$")
		cmd.Env = append(os.Environ(), "GODEBUG=http2xconnect=1", "DUPLEX_GORILLA_HELPER=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = stdin.Close() // the helper stops at EOF
			if err := cmd.Wait(); err != nil {
				t.Errorf("helper: %v", err)
			}
		}()
		lines := make(chan string, 16)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func() string {
			t.Helper()
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the helper ended")
				}
				return l
			case <-ctx.Done():
				t.Fatal("the helper said nothing")
			}
			return ""
		}
		addr, ok := strings.CutPrefix(next(), "listening ")
		if !ok {
			t.Fatalf("helper: want its address first")
		}
		pool := &ws.HTTP2Pool{}
		defer pool.CloseIdleConnections()
		// The helper's certificate is httptest's; the test is about the
		// protocol, not the certificate.
		opts := &ws.DialOptions{TLSConfig: &tls.Config{InsecureSkipVerify: true}, HTTP2: pool}
		url := "wss://" + addr + "/"
		var got []string
		for range 2 {
			dialEcho(t, url, opts)
			got = append(got, next(), next())
		}
		if want := "HTTP/2.0 CONNECT 400,HTTP/1.1 GET 101,HTTP/2.0 CONNECT 400,HTTP/1.1 GET 101"; strings.Join(got, ",") != want {
			t.Errorf("gorilla saw %q, want %q", got, want)
		}
	})
}

// TestGorillaHTTP2Helper is the helper process of TestGorillaHTTP2Fallback:
// with DUPLEX_GORILLA_HELPER=1 and GODEBUG=http2xconnect=1 it serves
// gorilla over TLS and HTTP/2 with extended CONNECT, prints "listening
// ADDR" and one line per request, and stops at the end of its input.
func TestGorillaHTTP2Helper(t *testing.T) {
	if os.Getenv("DUPLEX_GORILLA_HELPER") != "1" {
		t.Skip("the helper process of TestGorillaHTTP2Fallback")
	}
	var mu sync.Mutex
	g := &gorillaEcho{report: func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(line)
	}}
	srv := httptest.NewUnstartedServer(g)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	mu.Lock()
	fmt.Println("listening", srv.Listener.Addr().String())
	mu.Unlock()
	_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until EOF
}
