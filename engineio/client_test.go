package engineio

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// clientRecorder collects a Client's events.
type clientRecorder struct {
	messages chan event
	closes   chan event
	upgrades chan struct{}
}

func newClientRecorder() *clientRecorder {
	return &clientRecorder{messages: make(chan event, 256), closes: make(chan event, 1), upgrades: make(chan struct{}, 1)}
}

func (r *clientRecorder) options(o *DialOptions) *DialOptions {
	if o == nil {
		o = &DialOptions{}
	}
	o.OnMessage = func(c *Client, typ MessageType, data []byte) {
		r.messages <- event{kind: "message", typ: typ, data: string(data)}
	}
	o.OnClose = func(c *Client, reason CloseReason, err error) {
		r.closes <- event{kind: "close", reason: reason, err: err}
	}
	o.OnUpgrade = func(c *Client) { r.upgrades <- struct{}{} }
	return o
}

func (r *clientRecorder) message(t *testing.T) event {
	t.Helper()
	select {
	case ev := <-r.messages:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no message")
		return event{}
	}
}

func (r *clientRecorder) close(t *testing.T) event {
	t.Helper()
	select {
	case ev := <-r.closes:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no close")
		return event{}
	}
}

func dialClient(t *testing.T, url string, o *DialOptions) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		select {
		case <-c.Done():
		case <-time.After(waitTimeout):
			t.Error("the client did not finish")
		}
	})
	return c
}

func TestClientTransports(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	big := strings.Repeat("é", 300_000) // 600,000 bytes: with the next message, over one POST
	for _, tc := range []struct {
		name       string
		transports []string
		final      string
	}{
		{"polling+upgrade", nil, TransportWebSocket},
		{"websocket", []string{TransportWebSocket}, TransportWebSocket},
		{"polling", []string{TransportPolling}, TransportPolling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newClientRecorder()
			c := dialClient(t, ts.URL, rec.options(&DialOptions{Transports: tc.transports}))
			if len(c.ID()) != 20 {
				t.Errorf("ID() = %q", c.ID())
			}
			var want []event
			send := func(i int) {
				switch i % 3 {
				case 0:
					_ = c.Send(MessageText, []byte("m"+string(rune('a'+i))))
					want = append(want, event{kind: "message", typ: MessageText, data: "m" + string(rune('a'+i))})
				case 1:
					_ = c.SendBinary([]byte{byte(i), 0, 255})
					want = append(want, event{kind: "message", typ: MessageBinary, data: string([]byte{byte(i), 0, 255})})
				case 2:
					_ = c.SendText(big)
					want = append(want, event{kind: "message", typ: MessageText, data: big})
				}
			}
			for i := range 6 {
				send(i)
			}
			if tc.name == "polling+upgrade" {
				select {
				case <-rec.upgrades:
				case <-time.After(waitTimeout):
					t.Fatal("no upgrade")
				}
			}
			for i := 6; i < 9; i++ {
				send(i)
			}
			for i, w := range want {
				got := rec.message(t)
				if got.typ != w.typ || got.data != w.data {
					t.Fatalf("message %d: %v of %d bytes, want %v of %d bytes", i, got.typ, len(got.data), w.typ, len(w.data))
				}
			}
			if got := c.Transport(); got != tc.final {
				t.Errorf("Transport() = %q, want %q", got, tc.final)
			}
			_ = c.Close()
			if ev := rec.close(t); ev.reason != ReasonForcedClose {
				t.Errorf("client close reason %q (%v)", ev.reason, ev.err)
			}
			if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportClose {
				t.Errorf("server close reason %q (%v)", ev.reason, ev.err)
			}
		})
	}
}

func TestClientServerClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, transports := range [][]string{{TransportPolling}, {TransportWebSocket}} {
		t.Run(transports[0], func(t *testing.T) {
			rec := newClientRecorder()
			dialClient(t, ts.URL, rec.options(&DialOptions{Transports: transports}))
			s := ts.rec.session(t)
			_ = s.SendText("bye")
			_ = s.Close()
			if ev := rec.message(t); ev.data != "bye" {
				t.Errorf("message %q", ev.data)
			}
			if ev := rec.close(t); ev.reason != ReasonTransportClose {
				t.Errorf("close reason %q (%v)", ev.reason, ev.err)
			}
		})
	}
}

func TestClientHeartbeat(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{PingInterval: 30 * time.Millisecond, PingTimeout: 500 * time.Millisecond})
	for _, transports := range [][]string{{TransportPolling}, {TransportWebSocket}} {
		t.Run(transports[0], func(t *testing.T) {
			rec := newClientRecorder()
			c := dialClient(t, ts.URL, rec.options(&DialOptions{Transports: transports}))
			time.Sleep(300 * time.Millisecond) // ten pings, answered
			if err := c.SendText("alive"); err != nil {
				t.Fatal(err)
			}
			if ev := rec.message(t); ev.data != "alive" {
				t.Errorf("message %q", ev.data)
			}
		})
	}
}

// silentServer answers the handshake with short heartbeat values and then
// never pings.
func silentServer(t *testing.T) string {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const open = `0{"sid":"abcdefghijklmnopqrst","upgrades":[],"pingInterval":50,"pingTimeout":50,"maxPayload":1000000}`
		q := r.URL.Query()
		if q.Get("transport") == TransportWebSocket {
			c, err := ws.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(r.Context(), ws.MessageText, []byte(open))
			ctx := c.CloseRead(context.Background())
			select {
			case <-ctx.Done():
			case <-release:
			}
			return
		}
		if q.Get("sid") == "" {
			_, _ = w.Write([]byte(open))
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs.URL
}

func TestClientPingTimeout(t *testing.T) {
	t.Parallel()
	url := silentServer(t)
	for _, transports := range [][]string{{TransportPolling}, {TransportWebSocket}} {
		t.Run(transports[0], func(t *testing.T) {
			rec := newClientRecorder()
			start := time.Now()
			dialClient(t, url, rec.options(&DialOptions{Transports: transports}))
			if ev := rec.close(t); ev.reason != ReasonPingTimeout {
				t.Errorf("close reason %q (%v)", ev.reason, ev.err)
			}
			if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
				t.Errorf("closed after %v, want about 100ms", el)
			}
		})
	}
}

func TestClientRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, &ServerOptions{AllowRequest: func(*http.Request) error { return errors.New("go away") }})
	_, err := Dial(t.Context(), ts.URL, &DialOptions{Transports: []string{TransportPolling}})
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 403 || re.Code != CodeForbidden || re.Message != "go away" {
		t.Errorf("Dial: %v", err)
	}
	if _, err := Dial(t.Context(), "ftp://x", nil); err == nil {
		t.Error("Dial of ftp://: no error")
	}
}

func TestClientMaxPayloadBatches(t *testing.T) {
	t.Parallel()
	// With maxPayload 1,000, queued messages go out in POSTs of at most
	// 1,000 bytes, none refused.
	ts := startServer(t, &ServerOptions{MaxPayload: 1000})
	rec := newClientRecorder()
	c := dialClient(t, ts.URL, rec.options(&DialOptions{Transports: []string{TransportPolling}}))
	msg := bytes.Repeat([]byte("x"), 300)
	for range 10 {
		_ = c.SendText(string(msg))
	}
	for range 10 {
		if ev := rec.message(t); len(ev.data) != 300 {
			t.Fatalf("echo of %d bytes", len(ev.data))
		}
	}
}
