package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// startBroadcast serves newServer's endpoints on an httptest server and
// returns the /ws/broadcast URL and the server, whose hub tells who joined.
func startBroadcast(t *testing.T, log *slog.Logger) (string, *server) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hs, app := startApp(t, serveConfig{maxMessage: 16 << 20, io: "poller"}, log)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws/broadcast", app
}

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBroadcastReachesEveryone(t *testing.T) {
	url, app := startBroadcast(t, nil)
	ctx := context.Background()
	var clients []*ws.Conn
	for i := range 3 {
		var opts *ws.DialOptions
		if i == 2 {
			opts = &ws.DialOptions{Compression: &ws.Compression{}}
		}
		c, _, err := ws.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, c)
	}
	if ext := clients[2].Extensions(); !strings.Contains(ext, "server_no_context_takeover") {
		t.Errorf("extensions %q: want permessage-deflate with server_no_context_takeover", ext)
	}
	waitFor(t, "3 subscribers", func() bool { return app.hub.len() == 3 })

	msgs := []struct {
		from int
		typ  ws.MessageType
		p    []byte
	}{
		{0, ws.MessageText, []byte("hello from 0")},
		{1, ws.MessageBinary, []byte{0, 1, 2, 255}},
		{2, ws.MessageText, []byte(strings.Repeat("compressible ", 100))},
		{0, ws.MessageBinary, bytes.Repeat([]byte{9}, 100_000)},
	}
	for _, m := range msgs {
		if err := clients[m.from].Write(ctx, m.typ, m.p); err != nil {
			t.Fatal(err)
		}
		// Everyone, the sender included, gets it before the next is sent,
		// so the order is known.
		for i, c := range clients {
			typ, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if typ != m.typ || !bytes.Equal(p, m.p) {
				t.Fatalf("client %d got %v of %d bytes, want %v of %d from client %d", i, typ, len(p), m.typ, len(m.p), m.from)
			}
		}
	}
	for _, c := range clients {
		if err := c.Close(ws.StatusNormalClosure, ""); err != nil {
			t.Error(err)
		}
	}
	waitFor(t, "everyone to leave", func() bool { return app.hub.len() == 0 })
}

// TestBroadcastSlowSubscriber checks the full policy: a subscriber that
// does not read is closed with 1013 while the others get every message.
func TestBroadcastSlowSubscriber(t *testing.T) {
	var logs lockedBuffer
	url, app := startBroadcast(t, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	dial := func() *ws.Conn {
		c, _, err := ws.Dial(ctx, url, &ws.DialOptions{ReadLimit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	pub, fast, stalled := dial(), dial(), dial()
	waitFor(t, "3 subscribers", func() bool { return app.hub.len() == 3 })

	// pub and fast read everything; stalled reads nothing for now.
	var got [2]atomic.Int64
	errs := make(chan error, 2)
	for i, c := range []*ws.Conn{pub, fast} {
		go func() {
			var buf []byte
			for {
				_, p, err := c.ReadAppend(ctx, buf[:0])
				if err != nil {
					errs <- err
					return
				}
				if n := got[i].Load(); len(p) != 64<<10 || p[0] != byte(n) {
					errs <- fmt.Errorf("message %d: %d bytes starting %d", n, len(p), p[0])
					return
				}
				buf = p
				got[i].Add(1)
			}
		}()
	}

	// Kernel buffers hold a few MiB for the stalled peer, then its queue
	// fills; send until the hub drops it.
	msg := make([]byte, 64<<10)
	sent := 0
	for app.hub.len() == 3 {
		if sent == 2000 {
			t.Fatalf("sent %d MiB and the stalled subscriber is still there", sent*len(msg)>>20)
		}
		msg[0] = byte(sent)
		if err := pub.Write(ctx, ws.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	t.Logf("stalled subscriber dropped after %d messages of 64 KiB", sent)

	// The stalled peer reads at last: the backlog, then 1013.
	var err error
	for err == nil {
		_, _, err = stalled.Read(ctx)
	}
	if got := ws.CloseStatus(err); got != ws.StatusTryAgainLater {
		t.Fatalf("stalled subscriber: read error %v, want close 1013", err)
	}
	if l := logs.String(); !strings.Contains(l, "too slow") || !strings.Contains(l, stalled.LocalAddr().String()) {
		t.Errorf("the log does not name the slow subscriber:\n%s", l)
	}

	// The others got every message, in order, and are still subscribed.
	waitFor(t, "the stalled subscriber to leave", func() bool { return app.hub.len() == 2 })
	waitFor(t, "the fast subscribers to get every message", func() bool {
		return got[0].Load() == int64(sent) && got[1].Load() == int64(sent)
	})
	_ = pub.Close(ws.StatusNormalClosure, "")
	_ = fast.Close(ws.StatusNormalClosure, "")
	for range 2 {
		if err := <-errs; ws.CloseStatus(err) != ws.StatusNormalClosure {
			t.Errorf("reader ended with %v, want the close 1000 it asked for", err)
		}
	}
}

func TestServeBroadcastShutdown(t *testing.T) {
	addr, stop := startServe(t, serveConfig{})
	ctx := context.Background()
	var clients []*ws.Conn
	for range 2 {
		c, _, err := ws.Dial(ctx, "ws://"+addr+"/ws/broadcast", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, c)
	}
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	for i, c := range clients {
		var err error
		for err == nil {
			_, _, err = c.Read(ctx)
		}
		if got := ws.CloseStatus(err); got != ws.StatusGoingAway {
			t.Errorf("client %d: read error %v, want close 1001", i, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

// lockedBuffer is a bytes.Buffer that many goroutines may write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
