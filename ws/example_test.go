package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// Accept upgrades a request in an ordinary net/http handler. This one
// echoes every message.
func ExampleAccept() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return // Accept has written the HTTP error
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = c.Write(ctx, ws.MessageText, []byte("hello"))
	typ, msg, _ := c.Read(ctx)
	fmt.Println(typ, string(msg))
	fmt.Println(c.Close(ws.StatusNormalClosure, "bye"))
	// Output:
	// text hello
	// <nil>
}

// Dial connects to a server; a refused handshake is a *DialError that
// carries the HTTP status and the server's reason.
func ExampleDial() {
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{Subprotocols: []string{"chat.v2", "chat.v1"}},
		Handle: func(ctx context.Context, c *ws.Conn) {
			_ = c.Write(ctx, ws.MessageText, []byte("welcome, you speak "+c.Subprotocol()))
			_, _, _ = c.Read(ctx) // until the client closes
		},
	})
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx := context.Background()

	c, _, err := ws.Dial(ctx, url, &ws.DialOptions{Subprotocols: []string{"chat.v1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))
	_ = c.Close(ws.StatusNormalClosure, "")

	// A browser on another site is refused.
	_, resp, err := ws.Dial(ctx, url, &ws.DialOptions{
		Header: http.Header{"Origin": {"https://evil.example"}},
	})
	var de *ws.DialError
	fmt.Println(errors.As(err, &de), resp.StatusCode)
	// Output:
	// welcome, you speak chat.v1
	// true 403
}

// A chat-style broadcast: every message a client sends goes to every
// connected client. Each connection is written by many goroutines at once,
// which Conn allows, and each message is prepared once for all of them.
func Example_broadcast() {
	var (
		mu    sync.Mutex
		conns = map[*ws.Conn]bool{}
	)
	broadcast := func(ctx context.Context, typ ws.MessageType, msg []byte) {
		mu.Lock()
		targets := make([]*ws.Conn, 0, len(conns))
		for c := range conns {
			targets = append(targets, c)
		}
		mu.Unlock()
		// Prepared once: compressed at most once per set of parameters,
		// the same bytes for every connection.
		pm, _ := ws.NewPreparedMessage(typ, msg)
		for _, c := range targets {
			_ = c.WritePrepared(ctx, pm) // a failed peer is dropped by its own loop
		}
	}
	joined := make(chan struct{}, 2)
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
		joined <- struct{}{}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			broadcast(ctx, typ, msg)
		}
	}})
	defer srv.Close()

	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	alice, _, _ := ws.Dial(ctx, url, nil)
	bob, _, _ := ws.Dial(ctx, url, nil)
	<-joined
	<-joined

	_ = alice.Write(ctx, ws.MessageText, []byte("alice: hi"))
	_ = bob.Write(ctx, ws.MessageText, []byte("bob: hello"))
	var got []string
	for _, c := range []*ws.Conn{alice, bob} {
		for range 2 {
			_, msg, _ := c.Read(ctx)
			got = append(got, string(msg))
		}
	}
	slices.Sort(got)
	fmt.Println(strings.Join(got, " | "))
	_ = alice.Close(ws.StatusNormalClosure, "")
	_ = bob.Close(ws.StatusNormalClosure, "")
	// Output:
	// alice: hi | alice: hi | bob: hello | bob: hello
}

// CloseStatus tells how the peer closed the connection.
func ExampleCloseStatus() {
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		_ = c.Close(4000, "game over")
	}})
	defer srv.Close()
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _, err = c.Read(ctx)
	var ce ws.CloseError
	fmt.Println(ws.CloseStatus(err), errors.As(err, &ce), ce.Reason)
	// Output:
	// 4000 true game over
}

// A server with a heartbeat drops a client that stopped answering: here one
// that never reads, so it answers no ping.
func ExampleAcceptOptions_heartbeat() {
	ended := make(chan error, 1)
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{
			// In production: tens of seconds (duplex serve: 25 s and 20 s).
			Heartbeat: &ws.Heartbeat{Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond},
		},
		Handler: ws.HandlerFuncs{Close: func(c *ws.Conn, err error) { ended <- err }},
	})
	defer srv.Close()

	c, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	err = <-ended
	fmt.Println(errors.Is(err, ws.ErrNoPong), ws.CloseStatus(err))
	// Output: true 1006 abnormal closure
}
