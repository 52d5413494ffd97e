package engineio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
	"github.com/google/go-cmp/cmp"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 5 * time.Second

// event is what the recording handler saw.
type event struct {
	kind   string // open, message, close
	typ    MessageType
	data   string
	reason CloseReason
	err    error
}

// recorder is a Handler that records events and, if echo is set, sends
// every message back.
type recorder struct {
	echo     bool
	sessions chan *Session
	events   chan event
}

func newRecorder(echo bool) *recorder {
	return &recorder{echo: echo, sessions: make(chan *Session, 16), events: make(chan event, 256)}
}

func (r *recorder) OnOpen(s *Session) {
	r.sessions <- s
	r.events <- event{kind: "open"}
}

func (r *recorder) OnMessage(s *Session, typ MessageType, data []byte) {
	r.events <- event{kind: "message", typ: typ, data: string(data)}
	if r.echo {
		_ = s.Send(typ, data)
	}
}

func (r *recorder) OnClose(s *Session, reason CloseReason, err error) {
	r.events <- event{kind: "close", reason: reason, err: err}
}

func (r *recorder) session(t *testing.T) *Session {
	t.Helper()
	select {
	case s := <-r.sessions:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("no session opened")
		return nil
	}
}

// next returns the next event of kind, skipping the others.
func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev := <-r.events:
			if ev.kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within %v", kind, waitTimeout)
		}
	}
}

type testServer struct {
	*Server
	URL string // http://127.0.0.1:port/engine.io/
	rec *recorder
}

func startServer(t *testing.T, opts *ServerOptions) *testServer {
	t.Helper()
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	rec := newRecorder(true)
	if o.Handler == nil {
		o.Handler = rec
	}
	srv, err := NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		hs.CloseClientConnections()
		hs.Close()
	})
	return &testServer{Server: srv, URL: hs.URL + "/engine.io/", rec: rec}
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, body string, header ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// handshake opens a long-polling session and returns its sid.
func (ts *testServer) handshake(t *testing.T) string {
	t.Helper()
	r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", "")
	if r.status != 200 || !strings.HasPrefix(r.body, "0{") {
		t.Fatalf("handshake: %d %q", r.status, r.body)
	}
	var hs struct{ SID string }
	if err := json.Unmarshal([]byte(r.body[1:]), &hs); err != nil {
		t.Fatal(err)
	}
	return hs.SID
}

func (ts *testServer) pollURL(sid string) string {
	return ts.URL + "?EIO=4&transport=polling&sid=" + sid
}

func (ts *testServer) poll(t *testing.T, sid string) response {
	t.Helper()
	return do(t, "GET", ts.pollURL(sid), "")
}

func (ts *testServer) post(t *testing.T, sid, payload string) response {
	t.Helper()
	return do(t, "POST", ts.pollURL(sid), payload, "Content-Type", "text/plain;charset=UTF-8")
}

// pollAsync starts a poll and returns its future response.
func (ts *testServer) pollAsync(t *testing.T, sid string) <-chan response {
	ch := make(chan response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.pollURL(sid), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- response{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- response{resp.StatusCode, resp.Header, string(b)}
	}()
	return ch
}

func await(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("no response")
		return response{}
	}
}

// waitParked waits until the session has a poll parked.
func waitParked(t *testing.T, s *Session) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s.mu.Lock()
		parked := s.poll != nil
		s.mu.Unlock()
		if parked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the poll was not parked")
		}
		time.Sleep(time.Millisecond)
	}
}

func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "?" + query
}

func dialWS(t *testing.T, url string) *ws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, url, &ws.DialOptions{CloseTimeout: time.Second})
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func readWS(t *testing.T, c *ws.Conn) (ws.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return typ, string(p)
}

func writeWS(t *testing.T, c *ws.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, ws.MessageText, []byte(s)); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// readWSErr reads until an error and returns it.
func readWSErr(t *testing.T, c *ws.Conn) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the connection was not closed")
			}
			return err
		}
	}
}

func handshakeKeys(t *testing.T, body string) map[string]any {
	t.Helper()
	if !strings.HasPrefix(body, "0") {
		t.Fatalf("handshake %q does not start with 0", body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body[1:]), &m); err != nil {
		t.Fatalf("handshake %q: %v", body, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff([]string{"maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"}, keys); diff != "" {
		t.Errorf("handshake keys (-want +got):\n%s", diff)
	}
	if sid, _ := m["sid"].(string); len(sid) != 20 {
		t.Errorf("sid %q: want 20 characters", sid)
	}
	return m
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	t.Run("polling", func(t *testing.T) {
		r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", "")
		if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
			t.Errorf("Content-Type %q", ct)
		}
		m := handshakeKeys(t, r.body)
		want := map[string]any{"upgrades": []any{"websocket"}, "pingInterval": 300.0, "pingTimeout": 200.0, "maxPayload": 1e6}
		delete(m, "sid")
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("handshake (-want +got):\n%s", diff)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		typ, body := readWS(t, c)
		if typ != ws.MessageText {
			t.Errorf("handshake in a %v message", typ)
		}
		m := handshakeKeys(t, body)
		if diff := cmp.Diff([]any{}, m["upgrades"]); diff != "" {
			t.Errorf("upgrades over websocket (-want +got):\n%s", diff)
		}
		writeWS(t, c, "4hello")
		if _, got := readWS(t, c); got != "4hello" {
			t.Errorf("echo: %q", got)
		}
	})
	t.Run("no upgrades", func(t *testing.T) {
		ts := startServer(t, &ServerOptions{DisableUpgrades: true})
		m := handshakeKeys(t, do(t, "GET", ts.URL+"?EIO=4&transport=polling", "").body)
		if diff := cmp.Diff([]any{}, m["upgrades"]); diff != "" {
			t.Errorf("upgrades (-want +got):\n%s", diff)
		}
	})
}

func TestRejections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{Transports: []string{TransportPolling, TransportWebSocket}})
	sid := ts.handshake(t)
	tests := []struct {
		name, method, query string
		status              int
		code                ErrorCode
	}{
		{"no transport", "GET", "EIO=4", 400, CodeUnknownTransport},
		{"unknown transport", "GET", "EIO=4&transport=abc", 400, CodeUnknownTransport},
		{"no EIO", "GET", "transport=polling", 400, CodeUnsupportedProtocolVersion},
		{"EIO abc", "GET", "EIO=abc&transport=polling", 400, CodeUnsupportedProtocolVersion},
		{"EIO 3", "GET", "EIO=3&transport=polling", 400, CodeUnsupportedProtocolVersion},
		{"POST without sid", "POST", "EIO=4&transport=polling", 400, CodeBadHandshakeMethod},
		{"PUT without sid", "PUT", "EIO=4&transport=polling", 400, CodeBadHandshakeMethod},
		{"GET unknown sid", "GET", "EIO=4&transport=polling&sid=nope", 400, CodeUnknownSID},
		{"POST unknown sid", "POST", "EIO=4&transport=polling&sid=nope", 400, CodeUnknownSID},
		{"websocket unknown sid", "GET", "EIO=4&transport=websocket&sid=nope", 400, CodeUnknownSID},
		{"PUT with sid", "PUT", "EIO=4&transport=polling&sid=" + sid, 400, CodeBadRequest},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", 400, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, ts.URL+"?"+tt.query, "4x")
			if r.status != tt.status {
				t.Errorf("status %d, want %d", r.status, tt.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			want := `{"code":` + string(rune('0'+tt.code)) + `,"message":"` + tt.code.String() + `"}`
			if r.body != want {
				t.Errorf("body %s, want %s", r.body, want)
			}
		})
	}
}

func TestPollingMessages(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	sid := ts.handshake(t)
	for _, payload := range []string{"4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "4€ and 😀"} {
		if r := ts.post(t, sid, payload); r.status != 200 || r.body != "ok" {
			t.Fatalf("POST %q: %d %q", payload, r.status, r.body)
		}
		if r := ts.poll(t, sid); r.status != 200 || r.body != payload {
			t.Fatalf("poll after POST %q: %d %q", payload, r.status, r.body)
		}
	}
	s := ts.rec.session(t)
	if got := s.Transport(); got != TransportPolling {
		t.Errorf("Transport() = %q", got)
	}
	if got := s.Request().URL.Query().Get("transport"); got != "polling" {
		t.Errorf("Request() query transport = %q", got)
	}
}

func TestPollBatching(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	sid := ts.handshake(t)
	s := ts.rec.session(t)
	for _, m := range []string{"a", "b", "c"} {
		if err := s.SendText(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendBinary([]byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if r := ts.poll(t, sid); r.body != "4a\x1e4b\x1e4c\x1ebAQIDBA==" {
		t.Fatalf("poll: %q, want the four messages in one payload", r.body)
	}
	// A parked poll is answered by the next send.
	ch := ts.pollAsync(t, sid)
	waitParked(t, s)
	_ = s.SendText("d")
	if r := await(t, ch); r.body != "4d" {
		t.Fatalf("parked poll: %q", r.body)
	}
}

func TestDuplicatePoll(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	sid := ts.handshake(t)
	s := ts.rec.session(t)
	first := ts.pollAsync(t, sid)
	waitParked(t, s)
	second := ts.poll(t, sid)
	if second.status != 400 || second.body != `{"code":3,"message":"Bad request"}` {
		t.Errorf("second poll: %d %s", second.status, second.body)
	}
	if r := await(t, first); r.status != 200 || r.body != "1" {
		t.Errorf("first poll: %d %q, want 200 \"1\"", r.status, r.body)
	}
	if r := ts.poll(t, sid); r.status != 400 {
		t.Errorf("poll after: %d", r.status)
	}
	if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportError {
		t.Errorf("close reason %q", ev.reason)
	}
}

func TestClientClosePolling(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	t.Run("poll pending", func(t *testing.T) {
		sid := ts.handshake(t)
		s := ts.rec.session(t)
		pending := ts.pollAsync(t, sid)
		waitParked(t, s)
		if r := ts.post(t, sid, "1"); r.status != 200 || r.body != "ok" {
			t.Errorf("POST 1: %d %q", r.status, r.body)
		}
		if r := await(t, pending); r.status != 200 || r.body != "6" {
			t.Errorf("pending poll: %d %q, want 200 \"6\"", r.status, r.body)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after close: %d", r.status)
		}
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportClose {
			t.Errorf("close reason %q", ev.reason)
		}
		<-s.Done()
	})
	t.Run("poll racing the close", func(t *testing.T) {
		// The close packet arrives before the poll sent with it: the
		// poll gets a noop, the next one 400.
		sid := ts.handshake(t)
		_ = ts.rec.session(t)
		ts.post(t, sid, "1")
		if r := ts.poll(t, sid); r.status != 200 || r.body != "6" {
			t.Errorf("poll right after close: %d %q", r.status, r.body)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("second poll after close: %d", r.status)
		}
		if r := ts.post(t, sid, "4x"); r.status != 400 {
			t.Errorf("POST after close: %d", r.status)
		}
	})
}

func TestInvalidPacketClosesSession(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	t.Run("polling", func(t *testing.T) {
		sid := ts.handshake(t)
		if r := ts.post(t, sid, "abc"); r.status != 400 || r.body != `{"code":3,"message":"Bad request"}` {
			t.Errorf("POST abc: %d %s", r.status, r.body)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after: %d", r.status)
		}
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonParseError || !errors.Is(ev.err, ErrInvalidPacket) {
			t.Errorf("close: %q %v", ev.reason, ev.err)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readWS(t, c)
		writeWS(t, c, "abc")
		readWSErr(t, c)
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonParseError {
			t.Errorf("close: %q %v", ev.reason, ev.err)
		}
	})
}

func TestMaxPayload(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{MaxPayload: 100})
	t.Run("polling", func(t *testing.T) {
		sid := ts.handshake(t)
		if r := ts.post(t, sid, "4"+strings.Repeat("x", 99)); r.status != 200 {
			t.Fatalf("POST of 100 bytes: %d", r.status)
		}
		if r := ts.post(t, sid, "4"+strings.Repeat("x", 100)); r.status != 413 {
			t.Errorf("POST of 101 bytes: %d, want 413", r.status)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after: %d", r.status)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readWS(t, c)
		writeWS(t, c, "4"+strings.Repeat("x", 99))
		if _, got := readWS(t, c); len(got) != 100 {
			t.Fatalf("echo of 100 bytes: %d", len(got))
		}
		writeWS(t, c, "4"+strings.Repeat("x", 100))
		if code := ws.CloseStatus(readWSErr(t, c)); code != ws.StatusMessageTooBig {
			t.Errorf("close code %v, want 1009", code)
		}
	})
}

func TestCORS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		cors                 *CORS
		origin               string
		wantOrigin, wantCred string
	}{
		{"any", &CORS{Origins: []string{"*"}}, "https://a.example", "*", ""},
		{"listed", &CORS{Origins: []string{"https://a.example"}}, "https://A.example", "https://A.example", ""},
		{"not listed", &CORS{Origins: []string{"https://a.example"}}, "https://b.example", "", ""},
		{"func", &CORS{AllowOrigin: func(o string) bool { return o == "https://c.example" }}, "https://c.example", "https://c.example", ""},
		{"credentials", &CORS{Origins: []string{"*"}, Credentials: true}, "https://a.example", "https://a.example", "true"},
		{"none", nil, "https://a.example", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, &ServerOptions{CORS: tt.cors})
			pre := do(t, "OPTIONS", ts.URL+"?EIO=4&transport=polling", "",
				"Origin", tt.origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
			get := do(t, "GET", ts.URL+"?EIO=4&transport=polling", "", "Origin", tt.origin)
			if get.status != 200 {
				t.Fatalf("GET: %d", get.status)
			}
			for _, r := range []response{pre, get} {
				if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
					t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.wantOrigin)
				}
				if got := r.header.Get("Access-Control-Allow-Credentials"); got != tt.wantCred {
					t.Errorf("Access-Control-Allow-Credentials %q, want %q", got, tt.wantCred)
				}
			}
			if tt.cors != nil {
				if pre.status != 204 {
					t.Errorf("preflight: %d, want 204", pre.status)
				}
				if tt.wantOrigin != "" && pre.header.Get("Access-Control-Allow-Headers") != "content-type" {
					t.Errorf("preflight allows headers %q", pre.header.Get("Access-Control-Allow-Headers"))
				}
			}
		})
	}
}

func TestAllowRequest(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{AllowRequest: func(r *http.Request) error {
		if c, err := r.Cookie("token"); err == nil && c.Value == "secret" {
			return nil
		}
		return errors.New("no token")
	}})
	r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", "")
	if r.status != 403 || r.body != `{"code":4,"message":"no token"}` {
		t.Errorf("refused: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, resp, err := ws.Dial(ctx, ts.wsURL("EIO=4&transport=websocket"), nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("websocket without token: %v", err)
	}
	r = do(t, "GET", ts.URL+"?EIO=4&transport=polling", "", "Cookie", "token=secret")
	if r.status != 200 {
		t.Errorf("with the token: %d %s", r.status, r.body)
	}
	if got := ts.rec.session(t).Request().Header.Get("Cookie"); got != "token=secret" {
		t.Errorf("Request().Header Cookie = %q", got)
	}
}

func TestMaxSessions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{MaxSessions: 2})
	ts.handshake(t)
	sid := ts.handshake(t)
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", ""); r.status != 503 {
		t.Errorf("third session: %d %s, want 503", r.status, r.body)
	}
	if ts.Len() != 2 {
		t.Errorf("Len() = %d", ts.Len())
	}
	ts.post(t, sid, "1") // closing one makes room, after the linger
	deadline := time.Now().Add(waitTimeout)
	for ts.Len() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", ""); r.status != 200 {
		t.Errorf("after a close: %d", r.status)
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	// A timeout long enough for a loaded machine to answer in time.
	const interval, timeout = 100 * time.Millisecond, 300 * time.Millisecond
	ts := startServer(t, &ServerOptions{PingInterval: interval, PingTimeout: timeout})
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		sid := ts.handshake(t)
		for range 3 {
			if r := ts.poll(t, sid); r.body != "2" {
				t.Fatalf("poll: %q, want a ping", r.body)
			}
			ts.post(t, sid, "3")
		}
		if el := time.Since(start); el < 3*interval {
			t.Errorf("three pings in %v, want at least %v", el, 3*interval)
		}
		// No pong: the session is closed PingInterval+PingTimeout later.
		time.Sleep(interval + timeout + 200*time.Millisecond)
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after the ping timeout: %d %q", r.status, r.body)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		start := time.Now()
		readWS(t, c)
		for range 2 {
			if _, m := readWS(t, c); m != "2" {
				t.Fatalf("got %q, want a ping", m)
			}
			writeWS(t, c, "3")
		}
		if _, m := readWS(t, c); m != "2" {
			t.Fatalf("got %q, want a ping", m)
		}
		err := readWSErr(t, c)
		el := time.Since(start)
		// start is taken after the handshake was sent, when the timers
		// started: allow a little less.
		if el < 3*interval+timeout-30*time.Millisecond || el > 3*interval+timeout+time.Second {
			t.Errorf("closed after %v, want about %v", el, 3*interval+timeout)
		}
		if code := ws.CloseStatus(err); code != ws.StatusNormalClosure {
			t.Errorf("close code %v", code)
		}
	})
}

func TestPingTimeoutReason(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{PingInterval: 20 * time.Millisecond, PingTimeout: 20 * time.Millisecond})
	ts.handshake(t)
	if ev := ts.rec.next(t, "close"); ev.reason != ReasonPingTimeout {
		t.Errorf("close reason %q", ev.reason)
	}
}

// TestUpgrade checks the probe upgrade and that messages sent before,
// during and after it arrive in order, both ways.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{PingInterval: 5 * time.Second})
	ts.rec.echo = false
	sid := ts.handshake(t)
	s := ts.rec.session(t)

	_ = s.SendText("before")
	if r := ts.poll(t, sid); r.body != "4before" {
		t.Fatalf("poll: %q", r.body)
	}
	ts.post(t, sid, "4c1\x1e4c2")
	pending := ts.pollAsync(t, sid)
	waitParked(t, s)

	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
	writeWS(t, c, "2probe")
	if _, m := readWS(t, c); m != "3probe" {
		t.Fatalf("probe answer %q", m)
	}
	if r := await(t, pending); r.status != 200 || r.body != "6" {
		t.Fatalf("pending poll during the upgrade: %d %q, want a noop", r.status, r.body)
	}
	_ = s.SendText("during1")
	_ = s.SendBinary([]byte{1, 2, 3})
	_ = s.SendText("during2")
	if got := s.Transport(); got != TransportPolling {
		t.Errorf("Transport() before the upgrade packet: %q", got)
	}
	writeWS(t, c, "5")
	writeWS(t, c, "4c3")
	_ = s.SendText("after")
	want := []struct {
		typ ws.MessageType
		m   string
	}{{ws.MessageText, "4during1"}, {ws.MessageBinary, "\x01\x02\x03"}, {ws.MessageText, "4during2"}, {ws.MessageText, "4after"}}
	for _, w := range want {
		typ, m := readWS(t, c)
		if typ != w.typ || m != w.m {
			t.Fatalf("got %v %q, want %v %q", typ, m, w.typ, w.m)
		}
	}
	for _, w := range []string{"c1", "c2", "c3"} {
		if ev := ts.rec.next(t, "message"); ev.data != w {
			t.Fatalf("server got %q, want %q", ev.data, w)
		}
	}
	if got := s.Transport(); got != TransportWebSocket {
		t.Errorf("Transport() after the upgrade: %q", got)
	}
	if r := ts.poll(t, sid); r.status != 400 || r.body != `{"code":3,"message":"Bad request"}` {
		t.Errorf("poll after the upgrade: %d %s", r.status, r.body)
	}
	if r := ts.post(t, sid, "4x"); r.status != 400 {
		t.Errorf("POST after the upgrade: %d", r.status)
	}
	c2 := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
	readWSErr(t, c2)
	// The session lives on.
	writeWS(t, c, "4c4")
	if ev := ts.rec.next(t, "message"); ev.data != "c4" {
		t.Fatalf("server got %q", ev.data)
	}
	writeWS(t, c, "1")
	if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportClose {
		t.Errorf("close reason %q", ev.reason)
	}
}

// TestUpgradeRaces: a poll that arrives during the probe gets a noop after
// a short while; one still parked when the upgrade completes gets 400.
func TestUpgradeRaces(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{PingInterval: 5 * time.Second})
	t.Run("noop", func(t *testing.T) {
		sid := ts.handshake(t)
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		writeWS(t, c, "2probe")
		readWS(t, c)
		if r := ts.poll(t, sid); r.status != 200 || r.body != "6" {
			t.Errorf("poll during the probe: %d %q", r.status, r.body)
		}
		writeWS(t, c, "5")
		writeWS(t, c, "4hello")
		if _, m := readWS(t, c); m != "4hello" {
			t.Errorf("echo %q", m)
		}
	})
	t.Run("upgrade packet at once", func(t *testing.T) {
		sid := ts.handshake(t)
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		writeWS(t, c, "2probe")
		writeWS(t, c, "5")
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll: %d %q, want 400", r.status, r.body)
		}
		writeWS(t, c, "4hello")
		for {
			if _, m := readWS(t, c); m == "4hello" {
				break
			}
		}
	})
	t.Run("bad probe", func(t *testing.T) {
		sid := ts.handshake(t)
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		writeWS(t, c, "4nope")
		readWSErr(t, c)
		// The session goes on over polling.
		ts.post(t, sid, "4still")
		if r := ts.poll(t, sid); r.body != "4still" {
			t.Errorf("poll after a failed upgrade: %d %q", r.status, r.body)
		}
	})
}

func TestSessionClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	t.Run("polling", func(t *testing.T) {
		sid := ts.handshake(t)
		s := ts.rec.session(t)
		_ = s.SendText("last")
		_ = s.Close()
		if err := s.SendText("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("SendText after Close: %v", err)
		}
		if r := ts.poll(t, sid); r.body != "4last\x1e1" {
			t.Errorf("poll: %q, want the message and a close packet", r.body)
		}
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonForcedClose {
			t.Errorf("reason %q", ev.reason)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after: %d", r.status)
		}
	})
	t.Run("polling nothing queued", func(t *testing.T) {
		// No poll waiting and nothing queued: the next poll still gets a
		// close packet (as Node's engine.io), not a 400 for an unknown
		// session, so that the client reads a close.
		sid := ts.handshake(t)
		s := ts.rec.session(t)
		_ = s.Close()
		if r := ts.poll(t, sid); r.status != 200 || r.body != "1" {
			t.Errorf("poll: %d %q, want 200 and a close packet", r.status, r.body)
		}
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonForcedClose {
			t.Errorf("reason %q", ev.reason)
		}
		if r := ts.poll(t, sid); r.status != 400 {
			t.Errorf("poll after: %d", r.status)
		}
	})
	t.Run("polling pending", func(t *testing.T) {
		sid := ts.handshake(t)
		s := ts.rec.session(t)
		pending := ts.pollAsync(t, sid)
		waitParked(t, s)
		_ = s.Close()
		if r := await(t, pending); r.body != "1" {
			t.Errorf("pending poll: %q", r.body)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readWS(t, c)
		s := ts.rec.session(t)
		_ = s.SendText("last")
		_ = s.Close()
		if _, m := readWS(t, c); m != "4last" {
			t.Errorf("got %q", m)
		}
		if code := ws.CloseStatus(readWSErr(t, c)); code != ws.StatusNormalClosure {
			t.Errorf("close code %v", code)
		}
		<-s.Done()
	})
}

func TestServerShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	sid := ts.handshake(t)
	s1 := ts.rec.session(t)
	pending := ts.pollAsync(t, sid)
	waitParked(t, s1)
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	readWS(t, c)
	_ = ts.rec.session(t)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if r := await(t, pending); r.body != "1" {
		t.Errorf("pending poll: %q", r.body)
	}
	for range 2 {
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonServerShutdown {
			t.Errorf("reason %q", ev.reason)
		}
	}
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", ""); r.status != 503 {
		t.Errorf("handshake after Close: %d", r.status)
	}
}

// TestServerShutdownGraceful checks that Shutdown lets each client have
// what was queued for it and a close it understands: a polling client
// between two polls gets them with its next poll (not an unknown
// session), a WebSocket client before its 1001; and that a client that
// never polls again is closed at once when ctx ends.
func TestServerShutdownGraceful(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	between := ts.handshake(t) // polling, no poll waiting
	sBetween := ts.rec.session(t)
	gone := ts.handshake(t) // polling, and it never polls again
	_ = ts.rec.session(t)
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	readWS(t, c)
	sWS := ts.rec.session(t)
	_ = sBetween.SendText("last words")
	_ = sWS.SendText("last words")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ts.Shutdown(ctx) }()
	if typ, p, err := c.Read(context.Background()); err != nil || typ != ws.MessageText || string(p) != "4last words" {
		t.Errorf("WebSocket: %v %q %v, want the queued message", typ, p, err)
	}
	if _, _, err := c.Read(context.Background()); ws.CloseStatus(err) != ws.StatusGoingAway {
		t.Errorf("WebSocket: %v, want close 1001", err)
	}
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling&sid="+between, ""); r.status != 200 || r.body != "4last words\x1e1" {
		t.Errorf("next poll: %d %q, want the queued message and a close packet", r.status, r.body)
	}
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling", ""); r.status != 503 {
		t.Errorf("handshake during Shutdown: %d, want 503", r.status)
	}
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline (one client never polled)", err)
	}
	if r := do(t, "GET", ts.URL+"?EIO=4&transport=polling&sid="+gone, ""); r.status != 400 {
		t.Errorf("poll after Shutdown gave up: %d, want 400 (the session was closed)", r.status)
	}
	for range 3 {
		if ev := ts.rec.next(t, "close"); ev.reason != ReasonServerShutdown {
			t.Errorf("reason %q", ev.reason)
		}
	}
}

func TestSendBufferFull(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{SendBufferLimit: 10})
	ts.handshake(t)
	s := ts.rec.session(t)
	if err := s.SendText("12345678"); err != nil {
		t.Fatal(err)
	}
	if err := s.SendText("12345"); !errors.Is(err, ErrSendBufferFull) {
		t.Errorf("second send: %v, want ErrSendBufferFull", err)
	}
	if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrSendBufferFull) {
		t.Errorf("close: %q %v", ev.reason, ev.err)
	}
}

func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	rec := newRecorder(false)
	var once sync.Once
	ts := startServer(t, &ServerOptions{Handler: HandlerFuncs{
		Open:    rec.OnOpen,
		Message: func(*Session, MessageType, []byte) { once.Do(func() { panic("boom") }) },
		Close:   rec.OnClose,
	}})
	sid := ts.handshake(t)
	ts.post(t, sid, "4x")
	if ev := rec.next(t, "close"); ev.reason != ReasonTransportError || !strings.Contains(ev.err.Error(), "boom") {
		t.Errorf("close: %q %v", ev.reason, ev.err)
	}
}

func TestNewServerErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []ServerOptions{
		{PingInterval: -1},
		{Transports: []string{"flash"}},
		{Transports: []string{}},
		{MaxPayload: -1},
	} {
		if _, err := NewServer(&o); err == nil {
			t.Errorf("NewServer(%+v): no error", o)
		}
	}
}

func TestSessionAccessors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	sid := ts.handshake(t)
	s := ts.rec.session(t)
	if s.ID() != sid {
		t.Errorf("ID() = %q, want %q", s.ID(), sid)
	}
	if ts.Session(sid) != s || ts.Session("nope") != nil {
		t.Error("Server.Session does not find the session")
	}
	s.SetValue(42)
	if v, _ := s.Value().(int); v != 42 {
		t.Errorf("Value() = %v", s.Value())
	}
	_ = s.SendText("abc")
	if n := s.Buffered(); n != 3 {
		t.Errorf("Buffered() = %d, want 3", n)
	}
	if s.Context().Err() != nil {
		t.Error("the context of an open session is done")
	}
	ts.post(t, sid, "1")
	<-s.Done()
	if s.Context().Err() == nil {
		t.Error("the context of a closed session is not done")
	}
	if ts.Session(sid) != nil {
		t.Error("Server.Session returns a closed session")
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		CodeUnknownSID.String():    "Session ID unknown",
		ErrorCode(9).String():      "ErrorCode(9)",
		ReasonPingTimeout.String(): "ping timeout",
		MessageBinary.String():     "binary",
		MessageType(7).String():    "MessageType(7)",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	err := (&RequestError{Status: 400, Code: CodeBadRequest, Message: "Bad request"}).Error()
	if err != "engineio: request refused with HTTP 400, code 3: Bad request" {
		t.Errorf("RequestError: %q", err)
	}
}
