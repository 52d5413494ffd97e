package ws

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestPreparedMessage broadcasts one prepared message to connections with
// different compression settings: each receives it intact, and the
// connections that take no context over share one compressed copy.
func TestPreparedMessage(t *testing.T) {
	t.Parallel()
	msg := []byte(strings.Repeat("a broadcast compressed once, sent to many. ", 50))
	pm, err := NewPreparedMessage(MessageText, msg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []*Conn
	joined := make(chan struct{}, 8)
	srv := httptest.NewServer(&Server{
		Options: &AcceptOptions{Compression: &Compression{NoContextTakeover: true}},
		Handle: func(ctx context.Context, c *Conn) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			joined <- struct{}{}
			_, _, _ = c.Read(ctx) // until the client closes
		},
	})
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx := context.Background()
	var clients []*Conn
	for _, opts := range []*DialOptions{
		{Compression: &Compression{}},
		{Compression: &Compression{}},
		{Compression: &Compression{NoContextTakeover: true}},
		{}, // no compression
	} {
		c, _, err := Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, c)
		<-joined
	}
	mu.Lock()
	for _, c := range conns {
		if err := c.WritePrepared(ctx, pm); err != nil {
			t.Fatal(err)
		}
	}
	mu.Unlock()
	for i, c := range clients {
		typ, p, err := c.Read(ctx)
		if err != nil || typ != MessageText || !bytes.Equal(p, msg) {
			t.Fatalf("client %d: %v, %d bytes, err %v", i, typ, len(p), err)
		}
	}
	pm.mu.Lock()
	n := len(pm.compressed)
	pm.mu.Unlock()
	if n != 1 {
		t.Fatalf("compressed %d times for three compressing connections with the same parameters, want once", n)
	}
	for _, c := range clients {
		_ = c.Close(StatusNormalClosure, "")
	}
}

// TestPreparedMessageTakeover sends prepared and ordinary messages mixed on
// a connection with context takeover: the history must stay in step.
func TestPreparedMessageTakeover(t *testing.T) {
	t.Parallel()
	msgs := []string{strings.Repeat("first message, to seed the history. ", 20), strings.Repeat("second, prepared. ", 30), strings.Repeat("third, plain write. ", 30)}
	srv := httptest.NewServer(&Server{
		Options: &AcceptOptions{Compression: &Compression{}},
		Handle: func(ctx context.Context, c *Conn) {
			_ = c.Write(ctx, MessageText, []byte(msgs[0]))
			pm, _ := NewPreparedMessage(MessageText, []byte(msgs[1]))
			_ = c.WritePrepared(ctx, pm)
			_ = c.Write(ctx, MessageText, []byte(msgs[2]))
			_, _, _ = c.Read(ctx)
		},
	})
	defer srv.Close()
	ctx := context.Background()
	c, _, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &DialOptions{Compression: &Compression{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i, want := range msgs {
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != want {
			t.Fatalf("message %d: %d bytes, err %v", i, len(p), err)
		}
	}
	_ = c.Close(StatusNormalClosure, "")
}
