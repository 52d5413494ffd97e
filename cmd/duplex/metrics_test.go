package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// waitMetric waits until the /metrics text of h has line, a sample such
// as `duplex_refusals_total{endpoint="socketio",reason="unknown_sid"} 1`.
func waitMetric(t *testing.T, h http.Handler, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), "\n"+line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			var got []string
			name, _, _ := strings.Cut(line, "{")
			for l := range strings.SplitSeq(rec.Body.String(), "\n") {
				if strings.HasPrefix(l, name) {
					got = append(got, l)
				}
			}
			t.Fatalf("/metrics has no %s; it has:\n%s", line, strings.Join(got, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMetricAtLeast waits until series (a name and its labels) has a
// value of at least min.
func waitMetricAtLeast(t *testing.T, h http.Handler, series string, min float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		got := "none"
		for l := range strings.SplitSeq(rec.Body.String(), "\n") {
			if v, ok := strings.CutPrefix(l, series+" "); ok {
				got = v
				if f, err := strconv.ParseFloat(v, 64); err == nil && f >= min {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %s is %s, want at least %v", series, got, min)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialRawWS opens a WebSocket to path by hand, so that the test can send
// frames a real client would not.
func dialRawWS(t *testing.T, base, path string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	nc, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, host, base64.StdEncoding.EncodeToString(key[:]))
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake to %s: %v %v", path, res, err)
	}
	return nc
}

// writeRawFrame writes a masked frame (mask key 0, so the payload goes
// as it is) whose first byte is b0.
func writeRawFrame(t *testing.T, nc net.Conn, b0 byte, payload string) {
	t.Helper()
	if len(payload) > 125 {
		t.Fatal("payload too long for writeRawFrame")
	}
	frame := append([]byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusalMetrics provokes, against duplex serve's endpoints,
// each refusal and each close for a client's fault that /metrics counts,
// and checks that its counter moved.
func TestServeRefusalMetrics(t *testing.T) {
	hs, app := startApp(t, serveConfig{maxMessage: 1 << 20, origins: []string{"https://ok.example"}}, nil)
	metrics := app.metrics.handler()
	ctx := context.Background()
	wsBase := "ws" + strings.TrimPrefix(hs.URL, "http")

	t.Run("websocket", func(t *testing.T) {
		// 1009: a message over --max-message.
		c, _, err := ws.Dial(ctx, wsBase+"/ws/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		_ = c.Write(ctx, ws.MessageBinary, make([]byte, 1<<20+1))
		if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusMessageTooBig {
			t.Fatalf("read %v, want close 1009", err)
		}
		waitMetric(t, metrics, `duplex_websocket_closes_total{code="1009",endpoint="echo"} 1`)
		// 1007: text that is not UTF-8; 1002: reserved bits.
		writeRawFrame(t, dialRawWS(t, hs.URL, "/ws/chat"), 0x81, "\xff")
		waitMetric(t, metrics, `duplex_websocket_closes_total{code="1007",endpoint="chat"} 1`)
		writeRawFrame(t, dialRawWS(t, hs.URL, "/ws/broadcast"), 0xf1, "x")
		waitMetric(t, metrics, `duplex_websocket_closes_total{code="1002",endpoint="broadcast"} 1`)
	})

	t.Run("broadcast-1013", func(t *testing.T) {
		dial := func() *ws.Conn {
			c, _, err := ws.Dial(ctx, wsBase+"/ws/broadcast", &ws.DialOptions{ReadLimit: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.CloseNow() })
			return c
		}
		pub, stalled := dial(), dial()
		_ = stalled // reads nothing: its queue fills
		waitFor(t, "2 subscribers", func() bool { return app.hub.len() == 2 })
		go func() {
			for {
				if _, _, err := pub.Read(ctx); err != nil {
					return
				}
			}
		}()
		msg := make([]byte, 64<<10)
		for sent := 0; app.hub.len() == 2; sent++ {
			if sent == 2000 {
				t.Fatalf("sent %d MiB and the stalled subscriber is still there", sent*len(msg)>>20)
			}
			if err := pub.Write(ctx, ws.MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
		}
		// At least the stalled one: on a loaded machine the publisher, a
		// subscriber too, may fall as far behind and be closed as well.
		waitMetricAtLeast(t, metrics, `duplex_websocket_closes_total{code="1013",endpoint="broadcast"}`, 1)
		waitMetricAtLeast(t, metrics, `duplex_slow_clients_closed_total{endpoint="broadcast"}`, 1)
	})

	t.Run("engineio", func(t *testing.T) {
		eio := hs.URL + "/socket.io/?EIO=4&transport="
		request := func(method, url, body string, header ...string) int {
			t.Helper()
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		handshake := func() string {
			t.Helper()
			res, err := http.Get(eio + "polling")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b [64]byte
			n, _ := res.Body.Read(b[:])
			_, sid, _ := strings.Cut(string(b[:n]), `"sid":"`)
			sid, _, _ = strings.Cut(sid, `"`)
			if len(sid) != 20 {
				t.Fatalf("handshake %q", b[:n])
			}
			return sid
		}
		for _, tc := range []struct {
			method, url, body string
			header            []string
			status            int
			reason            string
		}{
			{"GET", eio + "carrier-pigeon", "", nil, 400, "unknown_transport"},
			{"GET", strings.Replace(eio, "EIO=4", "EIO=3", 1) + "polling", "", nil, 400, "unsupported_protocol"},
			{"POST", eio + "polling", "", nil, 400, "bad_handshake_method"},
			{"GET", eio + "polling&sid=nope", "", nil, 400, "unknown_sid"},
			{"GET", eio + "polling", "", []string{"Origin", "https://evil.example"}, 403, "forbidden"},
			{"POST", eio + "polling&sid=" + handshake(), strings.Repeat("x", 1_000_001), nil, 413, "payload_too_large"},
			{"POST", eio + "polling&sid=" + handshake(), "zzz", nil, 400, "parse_error"},
		} {
			if got := request(tc.method, tc.url, tc.body, tc.header...); got != tc.status {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.url, got, tc.status)
			}
			waitMetric(t, metrics, fmt.Sprintf(`duplex_refusals_total{endpoint="socketio",reason=%q} 1`, tc.reason))
		}
		// A WebSocket handshake that ws.Accept refuses.
		if got := request("GET", eio+"websocket", "", "Connection", "Upgrade", "Upgrade", "websocket",
			"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "8"); got != http.StatusUpgradeRequired {
			t.Errorf("WebSocket version 8: %d, want 426", got)
		}
		waitMetric(t, metrics, `duplex_handshake_failures_total{endpoint="socketio",reason="upgrade_required"} 1`)

		// 1008: a second WebSocket for a session upgraded already.
		sid := handshake()
		up, _, err := ws.Dial(ctx, wsBase+"/socket.io/?EIO=4&transport=websocket&sid="+sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer up.CloseNow()
		_ = up.Write(ctx, ws.MessageText, []byte("2probe"))
		if _, p, err := up.Read(ctx); err != nil || string(p) != "3probe" {
			t.Fatalf("probe: %q %v", p, err)
		}
		_ = up.Write(ctx, ws.MessageText, []byte("5"))
		second, _, err := ws.Dial(ctx, wsBase+"/socket.io/?EIO=4&transport=websocket&sid="+sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer second.CloseNow()
		if _, _, err := second.Read(ctx); ws.CloseStatus(err) != ws.StatusPolicyViolation {
			t.Errorf("second WebSocket: %v, want close 1008", err)
		}
		waitMetric(t, metrics, `duplex_websocket_closes_total{code="1008",endpoint="socketio"} 1`)

		// A namespace that does not exist, then 1009: a message over
		// maxPayload on the WebSocket transport.
		c, _, err := ws.Dial(ctx, wsBase+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if _, p, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(p), "0{") {
			t.Fatalf("open packet %q %v", p, err)
		}
		_ = c.Write(ctx, ws.MessageText, []byte("40/nope,"))
		if _, p, err := c.Read(ctx); err != nil || string(p) != `44/nope,{"message":"Invalid namespace"}` {
			t.Fatalf("CONNECT /nope: %q %v", p, err)
		}
		waitMetric(t, metrics, `duplex_refusals_total{endpoint="socketio",reason="invalid_namespace"} 1`)
		_ = c.Write(ctx, ws.MessageText, []byte("4"+strings.Repeat("x", 1_000_000)))
		for {
			if _, _, err := c.Read(ctx); err != nil {
				break
			}
		}
		waitMetric(t, metrics, `duplex_websocket_closes_total{code="1009",endpoint="socketio"} 1`)

		// 503 while shutting down.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = app.sio.Shutdown(sctx)
		if got := request("GET", eio+"polling", ""); got != http.StatusServiceUnavailable {
			t.Errorf("handshake during shutdown: %d, want 503", got)
		}
		waitMetric(t, metrics, `duplex_refusals_total{endpoint="socketio",reason="shutting_down"} 1`)
	})
}

// TestSocketIORefusalMetrics checks the refusals that duplex serve's
// Socket.IO setup cannot reach in a test (its MaxSessions is 100,000,
// it has no middleware and 2 namespaces) on a Socket.IO server with
// small limits and the same hooks.
func TestSocketIORefusalMetrics(t *testing.T) {
	m := newMetrics()
	opts := &socketio.ServerOptions{
		Engine:                     &engineio.ServerOptions{MaxSessions: 1, SendBufferLimit: 64 << 10},
		MaxNamespacesPerConnection: 2,
	}
	m.countSocketIORefusals(opts)
	srv, err := socketio.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Of("/a")
	srv.Of("/b")
	srv.Of("/mw").Use(func(*socketio.Socket) error { return errors.New("no entry") })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	h := m.handler()
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	exchange := func(send, want string) {
		t.Helper()
		_ = c.Write(ctx, ws.MessageText, []byte(send))
		if _, p, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(p), want) {
			t.Fatalf("%s: got %q %v, want %s…", send, p, err, want)
		}
	}
	if _, p, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(p), "0{") {
		t.Fatalf("open packet %q %v", p, err)
	}
	exchange("40", `40{"sid":`)
	exchange("40/mw,", `44/mw,{"message":"no entry"}`)
	waitMetric(t, h, `duplex_refusals_total{endpoint="socketio",reason="middleware"} 1`)
	exchange("40/a,", `40/a,{"sid":`)
	exchange("40/b,", `44/b,{"message":"Too many namespaces on this connection (at most 2)"}`)
	waitMetric(t, h, `duplex_refusals_total{endpoint="socketio",reason="namespace_limit"} 1`)

	res, err := http.Get(hs.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a session over MaxSessions: %d, want 503", res.StatusCode)
	}
	waitMetric(t, h, `duplex_refusals_total{endpoint="socketio",reason="too_many_sessions"} 1`)

	// A client that does not read what it is sent, over WebSocket: once
	// the kernel's buffers and SendBufferLimit are full, the WebSocket is
	// closed with 1013.
	socks := srv.Of("/").Sockets()
	if len(socks) != 1 {
		t.Fatalf("%d sockets in /", len(socks))
	}
	big := strings.Repeat("x", 32<<10)
	for i := 0; socks[0].Emit("big", big) == nil; i++ {
		if i == 4000 {
			t.Fatal("128 MiB sent to a client that reads nothing, and it is still connected")
		}
	}
	waitMetric(t, h, `duplex_websocket_closes_total{code="1013",endpoint="socketio"} 1`)
}

// TestCountEngineIOError maps each kind of error engineio reports to its
// counter, send_buffer_full (a long-polling client that does not poll)
// included.
func TestCountEngineIOError(t *testing.T) {
	m := newMetrics()
	for _, err := range []error{
		fmt.Errorf("%w: 10 bytes queued", engineio.ErrSendBufferFull),
		fmt.Errorf("record 1: %w", engineio.ErrInvalidPacket),
		&engineio.RequestError{Status: 400, Code: engineio.CodeBadRequest},
		&ws.HandshakeError{Status: http.StatusForbidden},
	} {
		m.countEngineIOError("socketio", err)
	}
	h := m.handler()
	for _, line := range []string{
		`duplex_refusals_total{endpoint="socketio",reason="send_buffer_full"} 1`,
		`duplex_refusals_total{endpoint="socketio",reason="parse_error"} 1`,
		`duplex_refusals_total{endpoint="socketio",reason="bad_request"} 1`,
		`duplex_handshake_failures_total{endpoint="socketio",reason="origin"} 1`,
	} {
		waitMetric(t, h, line)
	}
}
