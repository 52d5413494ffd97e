package engineio

// Engine.IO over HTTP/2: the WebSocket transport as an extended CONNECT
// (RFC 8441), opened directly or by an upgrade from long-polling, which
// itself runs over HTTP/2.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
	_ "github.com/duplexrt/duplex/ws/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
)

// h2Request is what the server saw of a request for the WebSocket
// transport.
type h2Request struct {
	proto  int
	method string
}

// h2TestServer is an Engine.IO server on HTTPS with HTTP/2 and extended
// CONNECT, and the client options that reach it over HTTP/2 only.
type h2TestServer struct {
	*Server
	URL  string
	rec  *recorder
	opts *DialOptions

	mu       sync.Mutex
	requests []h2Request // transport=websocket requests, in order
}

func (ts *h2TestServer) wsRequests() []h2Request {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]h2Request(nil), ts.requests...)
}

func startH2Server(t *testing.T, opts *ServerOptions) *h2TestServer {
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
	ts := &h2TestServer{Server: srv, rec: rec}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("transport") == TransportWebSocket {
			ts.mu.Lock()
			ts.requests = append(ts.requests, h2Request{r.ProtoMajor, r.Method})
			ts.mu.Unlock()
		}
		srv.ServeHTTP(w, r)
	}))
	hs.EnableHTTP2 = true
	hs.StartTLS()
	pool := &ws.HTTP2Pool{}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		pool.CloseIdleConnections()
		hs.Close()
	})
	client := hs.Client() // HTTP/2 for the long-polling requests too
	ts.URL = hs.URL + "/engine.io/"
	ts.opts = &DialOptions{
		HTTPClient: client,
		WebSocket:  &ws.DialOptions{TLSConfig: client.Transport.(*http.Transport).TLSClientConfig, HTTP2: pool},
	}
	return ts
}

// TestHTTP2 runs sessions whose WebSocket is an HTTP/2 stream: the
// server must read it on the request's goroutine, as the stream ends when
// ServeHTTP returns. Messages go both ways before and after the upgrade,
// and each side closes a session.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		transports []string
	}{
		{"polling+upgrade", nil},
		{"websocket", []string{TransportWebSocket}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startH2Server(t, nil)
			rec := newClientRecorder()
			o := *ts.opts
			o.Transports = tc.transports
			c := dialClient(t, ts.URL, rec.options(&o))
			echo := func(typ MessageType, data string) {
				t.Helper()
				if typ == MessageBinary {
					_ = c.SendBinary([]byte(data))
				} else {
					_ = c.SendText(data)
				}
				if ev := rec.message(t); ev.typ != typ || ev.data != data {
					t.Fatalf("echo: %v of %d bytes, want %v of %d bytes", ev.typ, len(ev.data), typ, len(data))
				}
			}
			echo(MessageText, "before")
			if tc.transports == nil {
				select {
				case <-rec.upgrades:
				case <-time.After(waitTimeout):
					t.Fatal("no upgrade")
				}
			}
			if got := c.Transport(); got != TransportWebSocket {
				t.Fatalf("Transport() = %q", got)
			}
			for i := range 20 {
				echo(MessageText, strings.Repeat("é", i*1000))
				echo(MessageBinary, string([]byte{byte(i), 0, 255}))
			}
			// With the messages above, more than a stream's window (1 MiB
			// from net/http's server) each way: the windows must be given
			// back as the stream is read.
			echo(MessageText, strings.Repeat("x", 500_000))
			echo(MessageBinary, strings.Repeat("y", 500_000))

			reqs := ts.wsRequests()
			if len(reqs) != 1 || reqs[0] != (h2Request{2, http.MethodConnect}) {
				t.Errorf("the server saw WebSocket requests %+v, want one CONNECT over HTTP/2", reqs)
			}
			s := ts.rec.session(t)
			if got := s.Transport(); got != TransportWebSocket {
				t.Errorf("server Transport() = %q", got)
			}
			_ = c.Close()
			if ev := rec.close(t); ev.reason != ReasonForcedClose {
				t.Errorf("client close reason %q (%v)", ev.reason, ev.err)
			}
			if ev := ts.rec.next(t, "close"); ev.reason != ReasonTransportClose {
				t.Errorf("server close reason %q (%v)", ev.reason, ev.err)
			}

			// A session the server closes: the client sees it, and the
			// server's handler for the stream returns (goleak and
			// Server.Close's wait check it).
			rec2 := newClientRecorder()
			c2 := dialClient(t, ts.URL, rec2.options(&o))
			echo2 := func() {
				_ = c2.SendText("hi")
				if ev := rec2.message(t); ev.data != "hi" {
					t.Fatalf("echo: %q", ev.data)
				}
			}
			echo2()
			if tc.transports == nil {
				select {
				case <-rec2.upgrades:
				case <-time.After(waitTimeout):
					t.Fatal("no upgrade")
				}
			}
			echo2()
			s2 := ts.rec.session(t)
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			if ev := rec2.close(t); ev.reason != ReasonTransportClose {
				t.Errorf("client close reason %q (%v)", ev.reason, ev.err)
			}
			if ev := ts.rec.next(t, "close"); ev.reason != ReasonForcedClose {
				t.Errorf("server close reason %q (%v)", ev.reason, ev.err)
			}
		})
	}
}

// TestHTTP2Refusals checks the HTTP/2 requests for the WebSocket
// transport that are not extended CONNECTs for a WebSocket.
func TestHTTP2Refusals(t *testing.T) {
	t.Parallel()
	ts := startH2Server(t, nil)
	client := ts.opts.HTTPClient
	for _, tc := range []struct {
		name, method, query string
		status              int
	}{
		{"GET without upgrade", http.MethodGet, "EIO=4&transport=websocket", http.StatusBadRequest},
		{"POST", http.MethodPost, "EIO=4&transport=websocket", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, ts.URL+"?"+tc.query, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != tc.status {
				t.Errorf("%s over %s, want %d over HTTP/2", resp.Status, resp.Proto, tc.status)
			}
		})
	}
}
