package ws_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/ws"
)

func TestDeflateEcho(t *testing.T) {
	for _, tc := range []struct{ srv, cli ws.Compression }{
		{},
		{srv: ws.Compression{NoContextTakeover: true}},
		{cli: ws.Compression{NoContextTakeover: true, WindowBits: 9}},
		{srv: ws.Compression{WindowBits: 9}, cli: ws.Compression{PeerWindowBits: 10}},
		{srv: ws.Compression{Threshold: -1}, cli: ws.Compression{Threshold: -1, RequestPeerNoContextTakeover: true}},
	} {
		srvOpts := tc.srv
		srv := httptest.NewServer(&ws.Server{Options: &ws.AcceptOptions{Compression: &srvOpts}, Handle: func(ctx context.Context, c *ws.Conn) {
			for {
				typ, p, err := c.Read(ctx)
				if err != nil {
					return
				}
				if err := c.Write(ctx, typ, p); err != nil {
					return
				}
			}
		}})
		ctx := context.Background()
		cliOpts := tc.cli
		c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &ws.DialOptions{Compression: &cliOpts})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("extensions: %s", c.Extensions())
		echoRoundTrip(t, c, "hello", strings.Repeat("hello world ", 1000), "", strings.Repeat("abc", 5), strings.Repeat("hello world ", 1000)+"x")
		c.Close(ws.StatusNormalClosure, "")
		srv.Close()
	}
}

func TestDeflateWriterEcho(t *testing.T) {
	opts := &ws.Compression{}
	srv := httptest.NewServer(&ws.Server{Options: &ws.AcceptOptions{Compression: opts}, Handle: func(ctx context.Context, c *ws.Conn) {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			w, _ := c.Writer(ctx, typ)
			for len(p) > 0 {
				k := min(len(p), 3000)
				w.Write(p[:k])
				p = p[k:]
			}
			if err := w.Close(); err != nil {
				return
			}
		}
	}})
	defer srv.Close()
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &ws.DialOptions{Compression: opts})
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, c, "hello", strings.Repeat("hello world ", 10000), "", strings.Repeat("abc", 5))
	c.Close(ws.StatusNormalClosure, "")
}

// echoRoundTrip sends each message to an echo server and checks the echo.
func echoRoundTrip(t *testing.T, c *ws.Conn, msgs ...string) {
	t.Helper()
	ctx := context.Background()
	for i, msg := range msgs {
		if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(i, err)
		}
		if !bytes.Equal(p, []byte(msg)) {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(p), len(msg))
		}
	}
}
