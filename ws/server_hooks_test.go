package ws_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// TestServerHooks checks that OnAccept sees the request before OnOpen
// sees the connection, and that OnAcceptError gets each refused handshake
// with its reason, in both modes.
func TestServerHooks(t *testing.T) {
	for _, mode := range handlerModes {
		t.Run(mode.name, func(t *testing.T) {
			var mu sync.Mutex
			names := map[*ws.Conn]string{}
			var refused []error
			opened := make(chan string, 1)
			srv := &ws.Server{
				OnAccept: func(r *http.Request, c *ws.Conn) {
					mu.Lock()
					names[c] = r.URL.Query().Get("name")
					mu.Unlock()
				},
				OnAcceptError: func(r *http.Request, err error) {
					mu.Lock()
					refused = append(refused, err)
					mu.Unlock()
				},
				Handler: ws.HandlerFuncs{Open: func(c *ws.Conn) {
					mu.Lock()
					defer mu.Unlock()
					opened <- names[c]
				}},
			}
			if mode.poll {
				srv.Poller = newPoller(t)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			url := "ws" + strings.TrimPrefix(hs.URL, "http")
			c, _, err := ws.Dial(context.Background(), url+"/?name=ann", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := <-opened; got != "ann" {
				t.Errorf("OnOpen saw name %q, want the query's ann", got)
			}
			_ = c.Close(ws.StatusNormalClosure, "")

			// A plain GET and a foreign Origin are refused, and reported.
			res, err := http.Get(hs.URL)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			_, _, err = ws.Dial(context.Background(), url, &ws.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
			if err == nil {
				t.Fatal("a foreign origin was accepted")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			res, err = http.Get(hs.URL)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			http.DefaultClient.CloseIdleConnections()
			mu.Lock()
			defer mu.Unlock()
			var statuses []int
			for _, err := range refused {
				var he *ws.HandshakeError
				switch {
				case errors.As(err, &he):
					statuses = append(statuses, he.Status)
				case errors.Is(err, ws.ErrServerClosed):
					statuses = append(statuses, 503)
				default:
					t.Errorf("OnAcceptError got %v", err)
				}
			}
			if len(statuses) != 3 || statuses[0] != 426 || statuses[1] != 403 || statuses[2] != 503 {
				t.Errorf("OnAcceptError saw statuses %v, want [426 403 503]", statuses)
			}
		})
	}
}
