package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// A Socket is used as the browser's WebSocket: callbacks for the events,
// Send, Close. The callbacks run one at a time, in order, on the socket's
// own goroutine.
func ExampleNewSocket() {
	// An echo server.
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, p) != nil {
				return
			}
		}
	}})
	defer srv.Close()

	s, err := ws.NewSocket(context.Background(), srv.URL, &ws.SocketOptions{
		OnOpen: func(s *ws.Socket, e ws.OpenEvent) {
			fmt.Println("open:", s.ReadyState())
			_ = s.SendText("hello")
		},
		OnMessage: func(s *ws.Socket, e ws.MessageEvent) {
			fmt.Println("message:", e.Text())
			_ = s.Close(4000, "done")
			fmt.Println("after Close:", s.ReadyState())
		},
		OnError: func(s *ws.Socket, e ws.ErrorEvent) {
			fmt.Println("error:", e.Err)
		},
		OnClose: func(s *ws.Socket, e ws.CloseEvent) {
			// The code and reason of the server's answer: this server
			// echoes the code, without a reason.
			fmt.Printf("close: %d %q %v %v\n", e.Code, e.Reason, e.WasClean, s.ReadyState())
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.ReadyState(), strings.HasPrefix(s.URL(), "ws://"))
	<-s.Done()
	// Output:
	// CONNECTING true
	// open: OPEN
	// message: hello
	// after Close: CLOSING
	// close: 4000 "" true CLOSED
}

// Code that prefers a loop to callbacks receives the events from a
// channel, which the socket closes after its last event.
func ExampleSocketOptions_events() {
	// An echo server.
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, p) != nil {
				return
			}
		}
	}})
	defer srv.Close()

	events := make(chan ws.Event)
	s, err := ws.NewSocket(context.Background(), srv.URL, &ws.SocketOptions{Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = s.SendText("queued before the open") // sent once the socket opens
	for ev := range events {
		switch ev := ev.(type) {
		case ws.OpenEvent:
			fmt.Println("open")
		case ws.MessageEvent:
			fmt.Println("message:", ev.Text())
			_ = s.Close(ws.StatusNormalClosure, "")
		case ws.CloseEvent:
			fmt.Println("close:", int(ev.Code), ev.WasClean)
		}
	}
	// Output:
	// open
	// message: queued before the open
	// close: 1000 true
}

// With Reconnect set, a socket whose server goes away dials again with
// backoff, and sends what was queued meanwhile. Here the server closes
// the first connection with 1012 (Service Restart).
func ExampleReconnect() {
	var conns atomic.Int32
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		if conns.Add(1) == 1 {
			_ = c.Close(ws.StatusServiceRestart, "restarting")
			return
		}
		_, p, err := c.Read(ctx)
		if err == nil {
			_ = c.Write(ctx, ws.MessageText, append([]byte("second connection got: "), p...))
		}
		_, _, _ = c.Read(ctx) // until the client closes
	}})
	defer srv.Close()

	s, err := ws.NewSocket(context.Background(), srv.URL, &ws.SocketOptions{
		Reconnect: &ws.Reconnect{MinDelay: 10 * time.Millisecond, MaxAttempts: 5},
		Heartbeat: &ws.Heartbeat{Interval: 10 * time.Second},
		OnOpen:    func(*ws.Socket, ws.OpenEvent) { fmt.Println("open") },
		OnClose: func(_ *ws.Socket, e ws.CloseEvent) {
			fmt.Println("close:", int(e.Code), e.Reason)
		},
		OnReconnecting: func(s *ws.Socket, e ws.ReconnectingEvent) {
			fmt.Println("reconnecting, attempt", e.Attempt, s.ReadyState())
			_ = s.SendText("hello") // queued until the next open
		},
		OnReconnected: func(_ *ws.Socket, e ws.ReconnectedEvent) {
			fmt.Println("reconnected after", e.Attempts, "attempt")
		},
		OnMessage: func(s *ws.Socket, e ws.MessageEvent) {
			fmt.Println(e.Text())
			_ = s.Close(ws.StatusNormalClosure, "")
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-s.Done()
	// Output:
	// open
	// close: 1012 restarting
	// reconnecting, attempt 1 CONNECTING
	// open
	// reconnected after 1 attempt
	// second connection got: hello
	// close: 1000
}

// Close takes the codes and reasons the browser's close() takes, and
// returns an error for the others, leaving the socket as it was.
func ExampleSocket_Close() {
	// An echo server.
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, p) != nil {
				return
			}
		}
	}})
	defer srv.Close()

	opened := make(chan struct{})
	s, err := ws.NewSocket(context.Background(), srv.URL, &ws.SocketOptions{
		OnOpen: func(*ws.Socket, ws.OpenEvent) { close(opened) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-opened
	fmt.Println(errors.Is(s.Close(1001, ""), ws.ErrCloseCode))
	fmt.Println(errors.Is(s.Close(4000, strings.Repeat("x", 124)), ws.ErrCloseReason))
	fmt.Println(s.ReadyState())
	fmt.Println(s.Close(4000, "fine"), s.ReadyState())
	<-s.Done()
	fmt.Println(s.ReadyState(), errors.Is(s.SendText("late"), ws.ErrSocketClosed))
	// Output:
	// true
	// true
	// OPEN
	// <nil> CLOSING
	// CLOSED true
}
