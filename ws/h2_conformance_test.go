package ws_test

// The RFC 6455 conformance cases of conformance_test.go, run over an
// HTTP/2 stream (RFC 8441): the raw client sends its hand-built frames on
// an extended CONNECT's stream to our Server, with Handle and with a
// Handler.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

func init() {
	directions = append(directions,
		direction{name: "h2server", run: runOverH2(false)},
		direction{name: "h2handler", run: runOverH2(true), handler: true},
	)
}

// runOverH2 runs our Server over TLS and HTTP/2, with an echo Handle or an
// echo Handler, and plays script as a raw client on one stream.
func runOverH2(handler bool) func(t *testing.T, lim limits, useReader bool, script func(p *peer)) error {
	return func(t *testing.T, lim limits, useReader bool, script func(p *peer)) error {
		if useReader {
			// Reader reads the same bytes as Read, and the "server"
			// direction runs it over TCP; over a stream, Read is enough
			// (and halves what the cases cost under -race).
			t.Skip("Reader over HTTP/2: covered by Read over HTTP/2 and Reader over TCP")
		}
		errc := make(chan error, 1)
		s := &ws.Server{Options: &ws.AcceptOptions{ReadLimit: lim.readLimit, MaxFragments: lim.maxFragments, Compression: lim.compression()}}
		if handler {
			s.Handler = ws.HandlerFuncs{
				Message: func(c *ws.Conn, typ ws.MessageType, data []byte) { _ = c.Write(context.Background(), typ, data) },
				Error: func(c *ws.Conn, err error) {
					if !errors.Is(err, ws.ErrProtocol) && !errors.Is(err, ws.ErrMessageTooBig) {
						t.Errorf("OnError(%v): want a protocol violation", err)
					}
				},
				Close: func(c *ws.Conn, err error) { errc <- err },
			}
		} else {
			s.Handle = func(ctx context.Context, c *ws.Conn) {
				if c.Extensions() != "" != lim.deflate {
					t.Errorf("extensions %q (deflate offered: %v)", c.Extensions(), lim.deflate)
				}
				errc <- echo(ctx, c, useReader)
			}
		}
		srv := httptest.NewUnstartedServer(s)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		defer srv.Close()
		nc := h2Connect(t, srv, lim.deflate)
		defer nc.Close()
		p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true, deflate: lim.deflate}
		script(p)
		nc.Close()
		select {
		case err := <-errc:
			return err
		case <-time.After(ioTimeout):
			t.Fatal("the server's echo loop did not end after the raw client closed")
			return nil
		}
	}
}

// h2Connect sends an extended CONNECT to srv and returns its stream.
func h2Connect(t *testing.T, srv *httptest.Server, deflate bool) net.Conn {
	t.Helper()
	rt := h2RoundTripper(t, srv)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodConnect, srv.URL+"/", pr)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	if deflate {
		req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("raw client: extended CONNECT: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("raw client: extended CONNECT answered %s over %s", resp.Status, resp.Proto)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); deflate != strings.HasPrefix(got, "permessage-deflate") {
		t.Fatalf("raw client: Sec-WebSocket-Extensions %q (deflate offered: %v)", got, deflate)
	}
	return ws.NewH2StreamConn(resp.Body, pw, nil, func(bool) { _ = pw.Close() })
}
