package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// startApp serves newServer's endpoints on an httptest server until the
// test ends.
func startApp(t *testing.T, cfg serveConfig, log *slog.Logger) (*httptest.Server, *server) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	app, err := newServer(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(app)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = app.echo.Shutdown(ctx)
		_ = app.broadcast.Shutdown(ctx)
		_ = app.chatWS.Shutdown(ctx)
		_ = app.sio.Shutdown(ctx)
		hs.Close()
		app.close()
		http.DefaultClient.CloseIdleConnections()
	})
	return hs, app
}

// chatClient is a /ws/chat connection whose events arrive on a channel.
type chatClient struct {
	c      *ws.Conn
	events chan chatEvent
	closed chan error
}

func dialChat(t *testing.T, base string) *chatClient {
	t.Helper()
	return dialChatQuery(t, base, "")
}

func dialChatQuery(t *testing.T, base, query string) *chatClient {
	t.Helper()
	c, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(base, "http")+"/ws/chat"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := &chatClient{c: c, events: make(chan chatEvent, 100), closed: make(chan error, 1)}
	go func() {
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				cc.closed <- err
				close(cc.events)
				return
			}
			var ev chatEvent
			if err := json.Unmarshal(p, &ev); err != nil {
				cc.closed <- err
				close(cc.events)
				return
			}
			cc.events <- ev
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return cc
}

func (cc *chatClient) send(t *testing.T, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	if err := cc.c.Write(context.Background(), ws.MessageText, data); err != nil {
		t.Fatal(err)
	}
}

// next returns the next event of type typ, skipping others, or fails
// after 10 s.
func (cc *chatClient) next(t *testing.T, typ string) chatEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var skipped []string
	for {
		select {
		case ev, ok := <-cc.events:
			if !ok {
				t.Fatalf("connection closed waiting for %q: %v", typ, <-cc.closed)
			}
			if ev.Type == typ {
				return ev
			}
			skipped = append(skipped, fmt.Sprintf("%+v", ev))
		case <-timeout:
			t.Fatalf("no %q event in 10 s; skipped %s", typ, skipped)
		}
	}
}

func TestServeChat(t *testing.T) {
	hs, _ := startApp(t, serveConfig{maxMessage: 16 << 20}, nil)
	ann := dialChat(t, hs.URL)
	w := ann.next(t, "welcome")
	if w.Room != "lobby" || !strings.HasPrefix(w.Nick, "guest-") || w.Online != 1 {
		t.Fatalf("welcome %+v, want a guest in lobby alone", w)
	}
	ann.send(t, map[string]string{"type": "join", "room": "go", "nick": "ann"})
	if w := ann.next(t, "welcome"); w.Room != "go" || w.Nick != "ann" || w.Online != 1 {
		t.Fatalf("welcome after join %+v", w)
	}
	if j := ann.next(t, "join"); j.Nick != "ann" || j.Online != 1 {
		t.Fatalf("after her welcome, ann saw %+v, want her own join", j)
	}
	bob := dialChat(t, hs.URL)
	bob.next(t, "welcome")
	bob.send(t, map[string]string{"type": "join", "room": "go", "nick": "bob"})
	if j := ann.next(t, "join"); j.Nick != "bob" || j.Online != 2 || j.Room != "go" {
		t.Fatalf("ann saw join %+v, want bob, 2 online", j)
	}
	bob.send(t, map[string]string{"type": "say", "text": "  hello, ann  "})
	for _, c := range []*chatClient{ann, bob} {
		m := c.next(t, "message")
		if m.Text != "hello, ann" || m.Nick != "bob" || m.Room != "go" || m.Time == 0 {
			t.Fatalf("message %+v", m)
		}
	}
	// Refusals are events, and the connection stays.
	for _, bad := range []string{`{"type":"say","text":""}`, `{"type":"join","room":"no spaces"}`, `{"type":"shout"}`, `not json`, `{"type":"nick","nick":"\u0007"}`} {
		if err := bob.c.Write(context.Background(), ws.MessageText, []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if e := bob.next(t, "error"); e.Message == "" {
			t.Fatalf("%s: error event without a message", bad)
		}
	}
	bob.send(t, map[string]string{"type": "nick", "nick": "robert"})
	if n := ann.next(t, "nick"); n.Old != "bob" || n.Nick != "robert" {
		t.Fatalf("nick event %+v", n)
	}
	_ = bob.c.Close(ws.StatusNormalClosure, "")
	if l := ann.next(t, "leave"); l.Nick != "robert" || l.Online != 1 {
		t.Fatalf("leave event %+v", l)
	}
	// A burst over the rate limit is refused, not queued.
	refused := 0
	for range chatBurst + 10 {
		ann.send(t, map[string]string{"type": "say", "text": "x"})
	}
	for got := 0; got+refused < chatBurst+10; {
		select {
		case ev := <-ann.events:
			switch ev.Type {
			case "message":
				got++
			case "error":
				refused++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d messages and %d refusals of %d", got, refused, chatBurst+10)
		}
	}
	if refused == 0 {
		t.Error("a burst of 50 messages was not rate limited")
	}
	// Binary is not the chat's: 1003.
	if err := ann.c.Write(context.Background(), ws.MessageBinary, []byte{1}); err != nil {
		t.Fatal(err)
	}
	for range ann.events {
	}
	if err := <-ann.closed; ws.CloseStatus(err) != ws.StatusUnsupportedData {
		t.Fatalf("after a binary message: %v, want close 1003", err)
	}
}

// TestServeChatQuery checks that a client joins the room and takes the
// nickname of its URL, or gets an error and the lobby.
func TestServeChatQuery(t *testing.T) {
	hs, _ := startApp(t, serveConfig{maxMessage: 16 << 20}, nil)
	zed := dialChatQuery(t, hs.URL, "?room=q1&nick=zed")
	if w := zed.next(t, "welcome"); w.Room != "q1" || w.Nick != "zed" {
		t.Fatalf("welcome %+v, want zed in q1", w)
	}
	if j := zed.next(t, "join"); j.Room != "q1" || j.Nick != "zed" {
		t.Fatalf("first join %+v, want zed's own in q1 (no stop in the lobby)", j)
	}
	bad := dialChatQuery(t, hs.URL, "?room=no+spaces&nick=x")
	if w := bad.next(t, "welcome"); w.Room != "lobby" || !strings.HasPrefix(w.Nick, "guest-") {
		t.Fatalf("welcome %+v, want a guest in the lobby", w)
	}
	if e := bad.next(t, "error"); !strings.Contains(e.Message, "no spaces") {
		t.Fatalf("error %+v, want the bad room named", e)
	}
}

// TestServeChatSocketIO checks that Socket.IO clients of /chat and
// /ws/chat clients share the rooms.
func TestServeChatSocketIO(t *testing.T) {
	hs, _ := startApp(t, serveConfig{maxMessage: 16 << 20}, nil)
	raw := dialChat(t, hs.URL)
	raw.next(t, "welcome")
	raw.send(t, map[string]string{"type": "join", "room": "mixed", "nick": "raw"})
	raw.next(t, "welcome")
	raw.next(t, "join") // its own

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sio, err := socketio.Dial(ctx, hs.URL+"/chat", map[string]string{"nick": "sio", "room": "mixed"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sio.Manager().Close()
	got := make(chan chatEvent, 10)
	sio.On("message", func(_ *socketio.ClientSocket, ev chatEvent) { got <- ev })
	if j := raw.next(t, "join"); j.Nick != "sio" || j.Online != 2 {
		t.Fatalf("raw client saw %+v, want sio joining, 2 online", j)
	}
	ack, err := sio.EmitWithAck(ctx, "say", "from socket.io")
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := ack.Decode(0, &ok); err != nil || !ok {
		t.Fatalf("say ack: %v %v", ok, err)
	}
	if m := raw.next(t, "message"); m.Text != "from socket.io" || m.Nick != "sio" {
		t.Fatalf("raw client got %+v", m)
	}
	raw.send(t, map[string]string{"type": "say", "text": "from ws"})
	for want := 2; want > 0; {
		select {
		case m := <-got:
			if m.Text == "from ws" && m.Nick == "raw" {
				want = 0
			}
		case <-ctx.Done():
			t.Fatal("the Socket.IO client did not get the raw client's line")
		}
	}
	// A refused request answers with {error}.
	ack, err = sio.EmitWithAck(ctx, "join", map[string]string{"room": "bad room"})
	if err != nil {
		t.Fatal(err)
	}
	var refusal struct{ Error string }
	if err := ack.Decode(0, &refusal); err != nil || refusal.Error == "" {
		t.Fatalf("join ack %+v %v, want an error", refusal, err)
	}
}

func TestServeIndexAndMetrics(t *testing.T) {
	hs, _ := startApp(t, serveConfig{maxMessage: 16 << 20, origins: []string{"https://ok.example"}}, nil)
	body := get(t, hs.URL+"/", 200)
	for _, want := range []string{`id="message"`, `id="messages"`, `id="status"`, "/ws/chat"} {
		if !strings.Contains(body, want) {
			t.Errorf("the chat page has no %s", want)
		}
	}
	get(t, hs.URL+"/nope", 404)

	c, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Write(context.Background(), ws.MessageText, []byte("12345"))
	if _, _, err := c.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws/echo",
		&ws.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil {
		t.Fatal("a foreign origin was accepted")
	}
	metrics := get(t, hs.URL+"/metrics", 200)
	for _, want := range []string{
		`duplex_connections{endpoint="echo"} 1`,
		`duplex_messages_received_total{endpoint="echo"} 1`,
		`duplex_message_bytes_sent_total{endpoint="echo"} 5`,
		`duplex_handshake_failures_total{endpoint="echo",reason="origin"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if strings.Contains(metrics, "duplex_broker_up") {
		t.Error("/metrics shows a broker without --redis or --nats")
	}
	_ = c.Close(ws.StatusNormalClosure, "")

	// Socket.IO refuses the foreign origin too, and takes the good one.
	req, _ := http.NewRequest("GET", hs.URL+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://evil.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("Socket.IO handshake from a foreign origin: %v, want 403", res.Status)
	}
	req.Header.Set("Origin", "https://ok.example")
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Fatalf("Socket.IO handshake from an allowed origin: %v %v %q", res.Status, err, res.Header.Get("Access-Control-Allow-Origin"))
	}
	res.Body.Close()
}

func get(t *testing.T, url string, status int) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d", url, res.Status, status)
	}
	return string(b)
}

// TestServeHTTPLimits checks the limits of serve's http.Server that
// test/adversarial attacks with the same values, shortened: a slow
// handshake, a header flood, and a keep-alive connection left idle.
func TestServeHTTPLimits(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > 30*time.Second {
		t.Errorf("ReadHeaderTimeout %v", srv.ReadHeaderTimeout)
	}
	if srv.IdleTimeout <= 0 || srv.IdleTimeout > 5*time.Minute {
		t.Errorf("IdleTimeout %v: an idle keep-alive connection would stay open", srv.IdleTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
}
