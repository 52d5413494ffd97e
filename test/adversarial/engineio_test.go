package adversarial

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/ws"
)

// eioServer is an Engine.IO server at /engine.io/ on 127.0.0.1, with the
// reasons its sessions closed for.
type eioServer struct {
	*engineio.Server
	addr   string
	base   string // http://addr/engine.io/
	closes chan engineio.CloseReason
	client *http.Client
}

func startEIO(t *testing.T, o engineio.ServerOptions) *eioServer {
	t.Helper()
	es := &eioServer{closes: make(chan engineio.CloseReason, 64)}
	open := o.Handler
	o.Handler = engineio.HandlerFuncs{
		Open: func(s *engineio.Session) {
			if open != nil {
				open.OnOpen(s)
			}
		},
		Close: func(s *engineio.Session, reason engineio.CloseReason, err error) {
			select {
			case es.closes <- reason:
			default:
			}
		},
	}
	srv, err := engineio.NewServer(&o)
	must(t, err)
	es.Server = srv
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	ts := startHTTP(t, mux, 2*time.Second)
	t.Cleanup(func() { _ = srv.Close() })
	es.addr = addrOf(ts)
	es.base = ts.URL + "/engine.io/"
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	es.client = &http.Client{Transport: tr, Timeout: step}
	t.Cleanup(tr.CloseIdleConnections)
	return es
}

// do sends a request and returns the status and body.
func (es *eioServer) do(t *testing.T, method, query, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(method, es.base+"?"+query, strings.NewReader(body))
		must(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err = es.client.Do(req)
		if err == nil {
			break
		}
		// A POST on a keep-alive connection that the server's (short)
		// IdleTimeout closed at the same moment: HTTP's own race, which
		// net/http retries by itself for GETs only. Send it again.
		if attempt < 3 && strings.Contains(err.Error(), "server closed idle connection") {
			continue
		}
		t.Fatalf("%s %s: %v", method, query, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header
}

// handshake opens a long-polling session and returns its sid.
func (es *eioServer) handshake(t *testing.T) string {
	t.Helper()
	status, body, _ := es.do(t, "GET", "EIO=4&transport=polling", "")
	if status != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake: %d %q", status, body)
	}
	var open struct{ SID string }
	must(t, json.Unmarshal([]byte(body[1:]), &open))
	return open.SID
}

// wsSession opens a WebSocket session and reads its open packet.
func (es *eioServer) wsSession(t *testing.T) *rawConn {
	t.Helper()
	c := dialWSRaw(t, es.addr, "/engine.io/?EIO=4&transport=websocket")
	_ = c.nc.SetReadDeadline(time.Now().Add(step))
	f, err := c.readFrame(1024)
	if err != nil || f.op != opText || !strings.HasPrefix(string(f.payload), "0{") {
		t.Fatalf("open packet: %+v %v", f, err)
	}
	return c
}

func (es *eioServer) expectClose(t *testing.T, want engineio.CloseReason) {
	t.Helper()
	select {
	case r := <-es.closes:
		if r != want {
			t.Fatalf("session closed with %q, want %q", r, want)
		}
	case <-time.After(step):
		t.Fatalf("session not closed, want %q", want)
	}
}

// TestEIOUnknownSIDFlood: 10,000 polls and posts naming sids that do not
// exist are each answered 400 {"code":1}, and leave no session and no
// memory behind.
func TestEIOUnknownSIDFlood(t *testing.T) {
	const n = 10_000
	es := startEIO(t, engineio.ServerOptions{})
	es.do(t, "GET", "EIO=4&transport=polling&sid=warmup", "")
	var bad atomic.Int64
	_, grown := measure(func() {
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					method, body := "GET", ""
					if i%2 == 1 {
						method, body = "POST", "4hello"
					}
					status, got, _ := es.do(t, method, fmt.Sprintf("EIO=4&transport=polling&sid=bogus%d", i), body)
					if status != 400 || got != `{"code":1,"message":"Session ID unknown"}` {
						if bad.Add(1) == 1 {
							t.Errorf("%s sid=bogus%d: %d %q", method, i, status, got)
						}
					}
				}
			})
		}
		wg.Wait()
	})
	t.Logf("%d requests, heap in use grew %d KiB", n, grown>>10)
	if es.Len() != 0 {
		t.Errorf("%d sessions after the flood", es.Len())
	}
	if grown > 2<<20 {
		t.Errorf("heap in use grew by %d KiB", grown>>10)
	}
}

// TestEIOGarbagePackets: long-polling payloads and WebSocket messages
// that are not Engine.IO packets (unknown types, bad base64, invalid
// UTF-8, empty records) are refused and close the session; the server
// goes on serving others.
func TestEIOGarbagePackets(t *testing.T) {
	es := startEIO(t, engineio.ServerOptions{})
	for _, body := range []string{"9", "x", "\x00", "7hello", "b!!!", "bAAA=A", "4\xff\xfe", "4ok\x1e", "\x1e\x1e\x1e", "4a\x1e9", strings.Repeat("\x1e", 1000)} {
		t.Run(fmt.Sprintf("polling/%q", body), func(t *testing.T) {
			sid := es.handshake(t)
			if status, got, _ := es.do(t, "POST", "EIO=4&transport=polling&sid="+sid, body); status != 400 {
				t.Fatalf("POST %q: %d %q, want 400", body, status, got)
			}
			if status, _, _ := es.do(t, "GET", "EIO=4&transport=polling&sid="+sid, ""); status != 400 {
				t.Errorf("poll after the garbage: %d, want 400", status)
			}
			es.expectClose(t, engineio.ReasonParseError)
		})
	}
	for _, tc := range []struct {
		msg  string
		code ws.StatusCode // the WebSocket's close code
	}{
		{"9", ws.StatusNormalClosure},
		{"", ws.StatusNormalClosure},
		{"x", ws.StatusNormalClosure},
		{"4\xff", ws.StatusInvalidPayloadData}, // refused by package ws
	} {
		t.Run(fmt.Sprintf("websocket/%q", tc.msg), func(t *testing.T) {
			c := es.wsSession(t)
			c.write(appendFrame(nil, true, false, opText, []byte(tc.msg), -1))
			c.expectClose(tc.code, step)
			if tc.code == ws.StatusInvalidPayloadData {
				es.expectClose(t, engineio.ReasonTransportError)
			} else {
				es.expectClose(t, engineio.ReasonParseError)
			}
		})
	}
	if es.Len() != 0 {
		t.Errorf("%d sessions left", es.Len())
	}
}

// TestEIOHalfOpen: a client that stops answering without closing its TCP
// connection (no FIN: a vanished laptop, a dead NAT mapping) is expired by
// the heartbeat, PingInterval+PingTimeout after its last pong, over
// either transport.
func TestEIOHalfOpen(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
	es := startEIO(t, engineio.ServerOptions{PingInterval: interval, PingTimeout: timeout,
		// The expired WebSocket's close waits this long for the silent peer.
		WebSocket: &ws.AcceptOptions{CloseTimeout: 300 * time.Millisecond}})
	t.Run("polling", func(t *testing.T) {
		start := time.Now()
		es.handshake(t) // and never poll again
		es.expectClose(t, engineio.ReasonPingTimeout)
		t.Logf("expired after %v", time.Since(start).Round(time.Millisecond))
	})
	t.Run("websocket", func(t *testing.T) {
		c := es.wsSession(t) // and never read or answer again
		start := time.Now()
		es.expectClose(t, engineio.ReasonPingTimeout)
		t.Logf("expired after %v", time.Since(start).Round(time.Millisecond))
		c.expectEOF(step) // the WebSocket is closed too
	})
	eventually(t, "no session left", func() bool { return es.Len() == 0 })
}

// TestEIOSendBufferLimit: the server sends to a client that never polls
// (or never reads its WebSocket). The session's queue stays within
// SendBufferLimit, the send that would pass it fails with
// ErrSendBufferFull, and the session is closed.
func TestEIOSendBufferLimit(t *testing.T) {
	const limit = 1 << 20
	const msgSize = 16 << 10
	var maxBuffered atomic.Int64
	refused := make(chan error, 1)
	es := startEIO(t, engineio.ServerOptions{
		SendBufferLimit: limit,
		Handler: engineio.HandlerFuncs{Open: func(s *engineio.Session) {
			go func() {
				msg := strings.Repeat("x", msgSize)
				for sent := 0; sent < 64<<20; sent += msgSize {
					time.Sleep(20 * time.Microsecond)
					if err := s.SendText(msg); err != nil {
						refused <- err
						return
					}
					if b := int64(s.Buffered()); b > maxBuffered.Load() {
						maxBuffered.Store(b)
					}
				}
				refused <- errors.New("64 MiB sent, never refused")
			}()
		}},
	})
	for _, transport := range []string{"polling", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			maxBuffered.Store(0)
			if transport == "polling" {
				es.handshake(t)
			} else {
				es.wsSession(t)
			}
			select {
			case err := <-refused:
				if !errors.Is(err, engineio.ErrSendBufferFull) {
					t.Fatalf("send: %v, want ErrSendBufferFull", err)
				}
			case <-time.After(step):
				t.Fatal("the server kept queueing for a client that never reads")
			}
			if b := maxBuffered.Load(); b > limit {
				t.Errorf("%d bytes buffered, over SendBufferLimit %d", b, limit)
			}
			es.expectClose(t, engineio.ReasonTransportError)
		})
	}
}

// TestEIOReconnectStorm: 2,000 long-polling handshakes and 300 WebSocket
// handshakes in bursts against MaxSessions 500 (and 100): the sessions
// beyond the bound are refused with 503 and Retry-After (a WebSocket that
// raced the last free place: 101, then 1013 Try Again Later), the server
// answers other requests meanwhile, and once it closes every goroutine is
// gone.
func TestEIOReconnectStorm(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, tc := range []struct {
		transport     string
		handshakes    int
		maxSessions   int
		concurrency   int
		handshakeOnce func(es *eioServer, t *testing.T) int
	}{
		{"polling", 2000, 500, 32, func(es *eioServer, t *testing.T) int {
			status, _, h := es.do(t, "GET", "EIO=4&transport=polling", "")
			if status == 503 && h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			return status
		}},
		{"websocket", 300, 100, 16, func(es *eioServer, t *testing.T) int {
			c, status := wsHandshake(t, es.addr, "/engine.io/?EIO=4&transport=websocket")
			if status != 101 {
				return status
			}
			// A handshake that passed the check while the last free
			// session was being taken is upgraded, then closed with 1013.
			_ = c.nc.SetReadDeadline(time.Now().Add(step))
			f, err := c.readFrame(125)
			switch {
			case err == nil && f.op == opText && strings.HasPrefix(string(f.payload), "0{"):
				return 101
			case err == nil && f.op == opClose && len(f.payload) >= 2 && ws.StatusCode(binary.BigEndian.Uint16(f.payload)) == ws.StatusTryAgainLater:
				return 1013
			}
			t.Errorf("after 101: %+v %v", f, err)
			return 0
		}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			// Close waits CloseTimeout for each silent raw client.
			es := startEIO(t, engineio.ServerOptions{MaxSessions: tc.maxSessions, WebSocket: &ws.AcceptOptions{CloseTimeout: 300 * time.Millisecond}})
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			next := atomic.Int64{}
			start := time.Now()
			for range tc.concurrency {
				wg.Go(func() {
					for next.Add(1) <= int64(tc.handshakes) {
						s := tc.handshakeOnce(es, t)
						mu.Lock()
						counts[s]++
						mu.Unlock()
					}
				})
			}
			// The server stays responsive during the storm.
			t0 := time.Now()
			if status, _, _ := es.do(t, "GET", "EIO=4&transport=polling&sid=nope", ""); status != 400 {
				t.Errorf("during the storm: %d", status)
			}
			during := time.Since(t0)
			wg.Wait()
			t.Logf("%d handshakes in %v: %v; a request during the storm took %v", tc.handshakes, time.Since(start).Round(time.Millisecond), counts, during.Round(time.Millisecond))
			ok := counts[200] + counts[101]
			if ok != tc.maxSessions || counts[503]+counts[1013] != tc.handshakes-tc.maxSessions {
				t.Errorf("statuses %v, want %d accepted and %d refused with 503 (or 101 then 1013)", counts, tc.maxSessions, tc.handshakes-tc.maxSessions)
			}
			if es.Len() != tc.maxSessions {
				t.Errorf("Len() = %d, want %d", es.Len(), tc.maxSessions)
			}
			if during > 2*time.Second {
				t.Errorf("a request during the storm took %v", during)
			}
			_ = es.Close()
			es.client.CloseIdleConnections()
		})
	}
	waitGoroutines(t, base, 4)
}

// TestEIOOrigin: the Origin policy of duplex serve with --origin
// https://example.com: AllowRequest refuses a foreign browser's
// handshake (polling or WebSocket) with 403 code 4, CORS answers no
// Access-Control-Allow-Origin to it, and an upgrade of an existing session
// from a foreign Origin is refused by the WebSocket's own check.
func TestEIOOrigin(t *testing.T) {
	origins := []string{"https://example.com"}
	es := startEIO(t, engineio.ServerOptions{
		AllowRequest: func(r *http.Request) error { return ws.CheckOrigin(r, origins) },
		WebSocket:    &ws.AcceptOptions{OriginPatterns: origins},
		CORS: &engineio.CORS{AllowOrigin: func(origin string) bool {
			return ws.CheckOrigin(&http.Request{Header: http.Header{"Origin": {origin}}}, origins) == nil
		}},
	})
	foreign := []string{"https://evil.test", "https://example.com.evil.test", "https://example.com@evil.test", "http://example.com", "null", "https://example.com:444", "https://evil.test/https://example.com"}
	for _, o := range foreign {
		t.Run(strings.ReplaceAll(o, "/", "∕"), func(t *testing.T) {
			status, body, h := es.do(t, "GET", "EIO=4&transport=polling", "", "Origin", o)
			if status != 403 || !strings.HasPrefix(body, `{"code":4,`) {
				t.Errorf("polling handshake: %d %q, want 403 code 4", status, body)
			}
			if a := h.Get("Access-Control-Allow-Origin"); a != "" {
				t.Errorf("Access-Control-Allow-Origin: %q", a)
			}
			status, _, h = es.do(t, "OPTIONS", "EIO=4&transport=polling", "", "Origin", o, "Access-Control-Request-Method", "POST")
			if a := h.Get("Access-Control-Allow-Origin"); a != "" {
				t.Errorf("preflight: %d, Access-Control-Allow-Origin %q", status, a)
			}
			if _, status := wsHandshake(t, es.addr, "/engine.io/?EIO=4&transport=websocket", "Origin: "+o); status != 403 {
				t.Errorf("WebSocket handshake: %d, want 403", status)
			}
			sid := es.handshake(t) // a session opened without Origin
			if _, status := wsHandshake(t, es.addr, "/engine.io/?EIO=4&transport=websocket&sid="+sid, "Origin: "+o); status != 403 {
				t.Errorf("WebSocket upgrade of a session: %d, want 403", status)
			}
		})
	}
	t.Run("allowed", func(t *testing.T) {
		status, _, h := es.do(t, "GET", "EIO=4&transport=polling", "", "Origin", "https://example.com")
		if status != 200 || h.Get("Access-Control-Allow-Origin") != "https://example.com" {
			t.Errorf("allowed origin: %d, Access-Control-Allow-Origin %q", status, h.Get("Access-Control-Allow-Origin"))
		}
		if _, status := wsHandshake(t, es.addr, "/engine.io/?EIO=4&transport=websocket", "Origin: https://example.com"); status != 101 {
			t.Errorf("WebSocket from the allowed origin: %d", status)
		}
	})
}
