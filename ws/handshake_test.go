package ws_test

// The opening handshake (RFC 6455 §4): what Accept refuses and with which
// status, what Dial accepts from a server, and the transports around it
// (TLS, an HTTP CONNECT proxy, deadlines).

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/duplexrt/duplex/ws"
)

const sampleKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

// echoServer starts a Server that echoes every message.
func echoServer(t *testing.T, opts *ws.AcceptOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(&ws.Server{Options: opts, Handle: func(ctx context.Context, c *ws.Conn) {
		_ = echo(ctx, c, false)
	}})
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// rawRequest sends a request as written and returns the response and body.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body)
}

func TestAcceptHandshake(t *testing.T) {
	t.Parallel()
	const (
		get     = "GET /chat HTTP/1.1\r\nHost: HOST\r\n"
		upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		key     = "Sec-WebSocket-Key: " + sampleKey + "\r\n"
		version = "Sec-WebSocket-Version: 13\r\n"
		good    = get + upgrade + key + version
	)
	cases := []struct {
		name        string
		opts        *ws.AcceptOptions
		req         string // HOST is replaced with the server's address
		status      int
		header      map[string]string // headers the response must have
		bodyHas     string
		subprotocol string
	}{
		{name: "ok", req: good + "\r\n", status: 101,
			header: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
		{name: "method/POST", req: strings.Replace(good, "GET", "POST", 1) + "Content-Length: 0\r\n\r\n", status: 405,
			header: map[string]string{"Allow": "GET"}, bodyHas: "GET"},
		{name: "method/HEAD", req: strings.Replace(good, "GET", "HEAD", 1) + "\r\n", status: 405},
		{name: "http/1.0", req: strings.Replace(good, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n", status: 400, bodyHas: "HTTP/1.1"},
		{name: "upgrade/missing", req: get + "Connection: Upgrade\r\n" + key + version + "\r\n", status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"}, bodyHas: "Upgrade: websocket"},
		{name: "upgrade/other", req: get + "Upgrade: h2c\r\nConnection: Upgrade\r\n" + key + version + "\r\n", status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "connection/missing", req: get + "Upgrade: websocket\r\n" + key + version + "\r\n", status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13"}, bodyHas: "Connection: Upgrade"},
		{name: "connection/keep-alive-only", req: get + "Upgrade: websocket\r\nConnection: keep-alive\r\n" + key + version + "\r\n", status: 426},
		{name: "tokens/case-and-lists", req: get + "upgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n" + key + version + "\r\n", status: 101},
		{name: "tokens/upper", req: get + "UPGRADE: WEBSOCKET\r\nCONNECTION: UPGRADE\r\n" + key + version + "\r\n", status: 101},
		{name: "tokens/connection-on-two-lines", req: get + "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" + key + version + "\r\n", status: 101},
		{name: "key/missing", req: get + upgrade + version + "\r\n", status: 400, bodyHas: "Sec-WebSocket-Key"},
		{name: "key/not-base64", req: get + upgrade + "Sec-WebSocket-Key: not base64!\r\n" + version + "\r\n", status: 400, bodyHas: "Sec-WebSocket-Key"},
		{name: "key/15-bytes", req: get + upgrade + "Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(make([]byte, 15)) + "\r\n" + version + "\r\n", status: 400},
		{name: "key/17-bytes", req: get + upgrade + "Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(make([]byte, 17)) + "\r\n" + version + "\r\n", status: 400},
		{name: "key/duplicate", req: good + key + "\r\n", status: 400, bodyHas: "Sec-WebSocket-Key"},
		{name: "version/8", req: get + upgrade + key + "Sec-WebSocket-Version: 8\r\n\r\n", status: 426,
			header: map[string]string{"Sec-WebSocket-Version": "13"}, bodyHas: "13"},
		{name: "version/missing", req: get + upgrade + key + "\r\n", status: 426, header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "version/two", req: get + upgrade + key + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n\r\n", status: 426},
		{name: "origin/same-host", req: good + "Origin: http://HOST\r\n\r\n", status: 101},
		{name: "origin/same-host-case", req: good + "Origin: HTTP://" + "HOST" + "\r\n\r\n", status: 101},
		{name: "origin/other-host", req: good + "Origin: http://evil.example\r\n\r\n", status: 403, bodyHas: "OriginPatterns"},
		{name: "origin/null", req: good + "Origin: null\r\n\r\n", status: 403},
		{name: "origin/pattern", opts: &ws.AcceptOptions{OriginPatterns: []string{"*.example.com"}},
			req: good + "Origin: https://app.Example.com\r\n\r\n", status: 101},
		{name: "origin/pattern-no-match", opts: &ws.AcceptOptions{OriginPatterns: []string{"*.example.com"}},
			req: good + "Origin: https://example.org\r\n\r\n", status: 403},
		{name: "origin/pattern-with-scheme", opts: &ws.AcceptOptions{OriginPatterns: []string{"https://*.example.com"}},
			req: good + "Origin: https://app.example.com\r\n\r\n", status: 101},
		{name: "origin/pattern-with-wrong-scheme", opts: &ws.AcceptOptions{OriginPatterns: []string{"https://*.example.com"}},
			req: good + "Origin: http://app.example.com\r\n\r\n", status: 403},
		{name: "origin/insecure-skip", opts: &ws.AcceptOptions{InsecureSkipOriginCheck: true},
			req: good + "Origin: http://evil.example\r\n\r\n", status: 101},
		{name: "subprotocol/server-preference", opts: &ws.AcceptOptions{Subprotocols: []string{"v2.chat", "v1.chat"}},
			req: good + "Sec-WebSocket-Protocol: v1.chat, v2.chat\r\n\r\n", status: 101, subprotocol: "v2.chat"},
		{name: "subprotocol/two-lines", opts: &ws.AcceptOptions{Subprotocols: []string{"b", "a"}},
			req: good + "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n\r\n", status: 101, subprotocol: "b"},
		{name: "subprotocol/none-common", opts: &ws.AcceptOptions{Subprotocols: []string{"a"}},
			req: good + "Sec-WebSocket-Protocol: c\r\n\r\n", status: 101},
		{name: "subprotocol/case-sensitive", opts: &ws.AcceptOptions{Subprotocols: []string{"chat"}},
			req: good + "Sec-WebSocket-Protocol: Chat\r\n\r\n", status: 101},
		{name: "subprotocol/server-has-none", req: good + "Sec-WebSocket-Protocol: chat\r\n\r\n", status: 101},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			subc := make(chan string, 1)
			srv := httptest.NewServer(&ws.Server{Options: tc.opts, Handle: func(ctx context.Context, c *ws.Conn) {
				subc <- c.Subprotocol()
			}})
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			resp, body := rawRequest(t, addr, strings.ReplaceAll(tc.req, "HOST", addr))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d; body: %s", resp.Status, tc.status, body)
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(body, tc.bodyHas) {
				t.Errorf("body %q does not say %q", body, tc.bodyHas)
			}
			if tc.status != 101 {
				return
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.subprotocol {
				t.Errorf("Sec-WebSocket-Protocol %q, want %q", got, tc.subprotocol)
			}
			select {
			case got := <-subc:
				if got != tc.subprotocol {
					t.Errorf("Conn.Subprotocol() = %q, want %q", got, tc.subprotocol)
				}
			case <-time.After(ioTimeout):
				t.Fatal("handler not called")
			}
		})
	}
}

// The HandshakeError that Accept returns says what the client got.
func TestAcceptHandshakeError(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := ws.Accept(w, r, nil)
		errc <- err
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var he *ws.HandshakeError
	if err := <-errc; !errors.As(err, &he) || he.Status != resp.StatusCode || he.Status != http.StatusUpgradeRequired {
		t.Fatalf("Accept returned %v (response %s), want a *HandshakeError with 426", err, resp.Status)
	}
}

// Frames the client sends right behind its request, in the same TCP
// segment, reach the Conn.
func TestAcceptEarlyFrames(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, nil)
	addr := srv.Listener.Addr().String()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + sampleKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	b := []byte(req)
	for _, s := range []string{"first", "second", strings.Repeat("third", 1000)} {
		b = append(b, p.encode(text(s))...)
	}
	p.write(b)
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for _, s := range []string{"first", "second", strings.Repeat("third", 1000)} {
		p.expectMessage(opText, []byte(s))
	}
	p.closeHandshake(1000)
}

func TestDialTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) { _ = echo(ctx, c, false) }})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate below
	srv.StartTLS()
	defer srv.Close()
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	ctx := context.Background()
	c, resp, err := ws.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https"), &ws.DialOptions{TLSConfig: tlsConfig})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.TLS == nil && resp.StatusCode != 101 {
		t.Errorf("response %v", resp.Status)
	}
	roundTrip(t, c, "over TLS")
	if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	// Without the test CA the certificate is refused, and the error says so.
	_, _, err = ws.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https"), nil)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("Dial without the CA: %v, want a TLS handshake error", err)
	}
}

func roundTrip(t *testing.T, c *ws.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != ws.MessageText || string(p) != msg {
		t.Fatalf("echo: %v %q %v, want text %q", typ, p, err, msg)
	}
}

// rawServer accepts one connection, reads the handshake request and
// answers with what respond returns for it.
func rawServer(t *testing.T, respond func(req *http.Request) string) (url string, reqc <-chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *http.Request, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(ioTimeout))
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		ch <- req
		_, _ = io.WriteString(nc, respond(req))
		_, _ = io.Copy(io.Discard, nc) // until the client hangs up
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String(), ch
}

func switching(extra string) func(*http.Request) string {
	return func(req *http.Request) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + referenceAccept(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" + extra + "\r\n"
	}
}

func TestDialRequest(t *testing.T) {
	t.Parallel()
	u, reqc := rawServer(t, switching("Sec-WebSocket-Protocol: superchat\r\n"))
	h := http.Header{"Origin": {"http://example.com"}, "Authorization": {"Bearer x"}, "Sec-Websocket-Version": {"8"}, "Host": {"virtual.example"}}
	c, resp, err := ws.Dial(context.Background(), u+"/path?q=1", &ws.DialOptions{Header: h, Subprotocols: []string{"chat", "superchat"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 || c.Subprotocol() != "superchat" {
		t.Errorf("status %d subprotocol %q", resp.StatusCode, c.Subprotocol())
	}
	req := <-reqc
	key, err := base64.StdEncoding.DecodeString(req.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		t.Errorf("Sec-WebSocket-Key %q is not 16 bytes of base64", req.Header.Get("Sec-WebSocket-Key"))
	}
	got := map[string]string{
		"method": req.Method, "proto": req.Proto, "uri": req.RequestURI, "host": req.Host,
		"upgrade": req.Header.Get("Upgrade"), "connection": req.Header.Get("Connection"),
		"version":  strings.Join(req.Header.Values("Sec-WebSocket-Version"), ","),
		"protocol": req.Header.Get("Sec-WebSocket-Protocol"), "origin": req.Header.Get("Origin"),
		"authorization": req.Header.Get("Authorization"),
	}
	want := map[string]string{
		"method": "GET", "proto": "HTTP/1.1", "uri": "/path?q=1", "host": "virtual.example",
		"upgrade": "websocket", "connection": "Upgrade", "version": "13",
		"protocol": "chat, superchat", "origin": "http://example.com", "authorization": "Bearer x",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func TestDialBadResponse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		respond func(*http.Request) string
		offer   []string
		status  int
		reason  string // in the error
		body    string // in DialError.Body and the error
	}{
		{name: "bad-accept", respond: func(*http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
		}, status: 101, reason: "Sec-WebSocket-Accept"},
		{name: "no-accept", respond: func(*http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		}, status: 101, reason: "Sec-WebSocket-Accept"},
		{name: "no-upgrade", respond: func(req *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + referenceAccept(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		}, status: 101, reason: "Upgrade"},
		{name: "no-connection", respond: func(req *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + referenceAccept(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		}, status: 101, reason: "Connection"},
		{name: "unoffered-subprotocol", respond: switching("Sec-WebSocket-Protocol: other\r\n"), offer: []string{"chat"}, status: 101, reason: `"other"`},
		{name: "subprotocol-none-offered", respond: switching("Sec-WebSocket-Protocol: chat\r\n"), status: 101, reason: "not offered"},
		{name: "two-subprotocols", respond: switching("Sec-WebSocket-Protocol: chat, superchat\r\n"), offer: []string{"chat", "superchat"}, status: 101, reason: "subprotocol"},
		{name: "unoffered-extension", respond: switching("Sec-WebSocket-Extensions: permessage-deflate\r\n"), status: 101, reason: "permessage-deflate"},
		{name: "forbidden-with-body", respond: func(*http.Request) string {
			return "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\ntoken expired, log in\n"
		}, status: 403, reason: "403 Forbidden", body: "token expired, log in\n"},
		{name: "ok-instead-of-101", respond: func(*http.Request) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
		}, status: 200, reason: "200 OK", body: "hello"},
		{name: "long-body-cut", respond: func(*http.Request) string {
			return "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("e", 5000)
		}, status: 500, reason: "500", body: strings.Repeat("e", 1024)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, _ := rawServer(t, tc.respond)
			c, resp, err := ws.Dial(context.Background(), u, &ws.DialOptions{Subprotocols: tc.offer})
			if err == nil {
				c.CloseNow()
				t.Fatal("Dial succeeded")
			}
			var de *ws.DialError
			if !errors.As(err, &de) {
				t.Fatalf("Dial returned %T %v, want a *DialError", err, err)
			}
			if resp == nil || resp.StatusCode != tc.status || de.StatusCode != tc.status {
				t.Errorf("response %v, DialError.StatusCode %d, want %d", resp, de.StatusCode, tc.status)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
			if tc.body != "" {
				if string(de.Body) != tc.body {
					t.Errorf("DialError.Body = %q, want %q", de.Body, tc.body)
				}
				if !strings.Contains(err.Error(), tc.body[:min(len(tc.body), 20)]) {
					t.Errorf("error %q does not quote the body", err)
				}
			}
		})
	}
}

// The handshake is bounded by ctx and by HandshakeTimeout when the server
// never answers.
func TestDialTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() { // accepts and reads, never answers
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_, _ = io.Copy(io.Discard, nc)
			}()
		}
	}()
	u := "ws://" + ln.Addr().String()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		opts *ws.DialOptions
	}{
		{"ctx", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, nil},
		{"HandshakeTimeout", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, &ws.DialOptions{HandshakeTimeout: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			c, _, err := ws.Dial(ctx, u, tc.opts)
			if err == nil {
				c.CloseNow()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Dial returned %v, want an error wrapping context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Dial took %v", d)
			}
		})
	}
}

// connectProxy is a tiny HTTP CONNECT proxy that records the requests it
// tunnels.
type connectProxy struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	reqs []*http.Request
	auth string // required Proxy-Authorization, if set
}

func startProxy(t *testing.T, auth string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, auth: auth}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer nc.Close()
			br := bufio.NewReader(nc)
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.reqs = append(p.reqs, req)
			p.mu.Unlock()
			if req.Method != http.MethodConnect {
				_, _ = io.WriteString(nc, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
				return
			}
			if p.auth != "" && req.Header.Get("Proxy-Authorization") != p.auth {
				_, _ = io.WriteString(nc, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
				return
			}
			up, err := net.Dial("tcp", req.Host)
			if err != nil {
				_, _ = io.WriteString(nc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
				return
			}
			defer up.Close()
			_, _ = io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n\r\n")
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(up, br)
				_ = up.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(nc, up)
			_ = nc.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

func TestDialProxy(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, nil)
	target := srv.Listener.Addr().String()
	t.Run("tunnel", func(t *testing.T) {
		t.Parallel()
		proxy := startProxy(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("user:secret")))
		pu := &url.URL{Scheme: "http", Host: proxy.ln.Addr().String(), User: url.UserPassword("user", "secret")}
		c, _, err := ws.Dial(context.Background(), wsURL(srv), &ws.DialOptions{Proxy: http.ProxyURL(pu)})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "through the proxy")
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		if len(proxy.reqs) != 1 || proxy.reqs[0].Method != http.MethodConnect || proxy.reqs[0].Host != target {
			t.Fatalf("proxy saw %v, want one CONNECT %s", proxy.reqs, target)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		proxy := startProxy(t, "Basic bm9ib2R5")
		pu := &url.URL{Scheme: "http", Host: proxy.ln.Addr().String()}
		_, _, err := ws.Dial(context.Background(), wsURL(srv), &ws.DialOptions{Proxy: http.ProxyURL(pu)})
		if err == nil || !strings.Contains(err.Error(), "407") {
			t.Fatalf("Dial through a refusing proxy: %v, want the 407", err)
		}
	})
}

// A server closing the TLS or TCP connection mid-handshake is an error
// that says where it happened.
func TestDialServerHangsUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = http.ReadRequest(bufio.NewReader(nc))
		_, _ = io.WriteString(nc, "HTTP/1.1 101 Switch")
		nc.Close()
	}()
	defer func() { <-done }()
	_, _, err = ws.Dial(context.Background(), "ws://"+ln.Addr().String(), nil)
	if err == nil || !strings.Contains(err.Error(), "response") {
		t.Fatalf("Dial: %v, want an error about reading the response", err)
	}
}

// A malformed origin pattern is a server error that names the option, not a
// silent refusal of every browser.
func TestAcceptBadOriginPattern(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := ws.Accept(w, r, &ws.AcceptOptions{OriginPatterns: []string{"example.com", "[bad"}})
		errc <- err
	}))
	defer srv.Close()
	_, resp, _ := ws.Dial(context.Background(), wsURL(srv), nil)
	if resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("response %v, want 500", resp)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "OriginPatterns[1]") {
		t.Fatalf("Accept: %v, want an error naming OriginPatterns[1]", err)
	}
}
