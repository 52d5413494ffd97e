package ws_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/ws"
)

func TestSmoke(t *testing.T) {
	srv := httptest.NewServer(&ws.Server{Handle: func(ctx context.Context, c *ws.Conn) {
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
	defer srv.Close()
	ctx := context.Background()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 100000)} {
		if err := c.Write(ctx, ws.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil || typ != ws.MessageText || string(p) != msg {
			t.Fatalf("%v %v %d", typ, err, len(p))
		}
	}
	if err := c.Close(ws.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
}
