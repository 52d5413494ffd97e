package thirdparty

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	cws "github.com/coder/websocket"
	gobwas "github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/duplexrt/duplex/ws"
)

// BenchmarkAccept is the server side of one handshake per op, from the
// parsed request to the open connection, closed at once: the library's
// share of what duplex bench connect measures (net/http's reading of the
// request and TCP are the same for all, and left out). Each library
// upgrades with its default options, no compression, over a fakeConn;
// the hijacked connection's buffers are made once, as net/http has them
// before the handler runs (coder/websocket writes its answer through
// the ResponseWriter, which formats it as net/http would). nbio upgrades on its own engine only, and is
// not here.
//
//	go test -run '^$' -bench Accept -benchmem -count 10 . | benchstat -col /impl -
func BenchmarkAccept(b *testing.B) {
	r := upgradeReq(b)
	impls := []struct {
		name    string
		upgrade func(w http.ResponseWriter) error
	}{
		{"duplex", func(w http.ResponseWriter) error {
			c, err := ws.Accept(w, r, nil)
			if err == nil {
				err = c.CloseNow()
			}
			return err
		}},
		{"gorilla", func(w http.ResponseWriter) error {
			var u websocket.Upgrader
			c, err := u.Upgrade(w, r, nil)
			if err == nil {
				err = c.Close()
			}
			return err
		}},
		{"gws", func(w http.ResponseWriter) error {
			c, err := gwsUpgrader.Upgrade(w, r)
			if err == nil {
				err = c.NetConn().Close()
			}
			return err
		}},
		{"gobwas", func(w http.ResponseWriter) error {
			c, _, _, err := gobwas.HTTPUpgrader{}.Upgrade(r, w)
			if err == nil {
				err = c.Close()
			}
			return err
		}},
		{"coder", func(w http.ResponseWriter) error {
			c, err := cws.Accept(w, r, nil)
			if err == nil {
				err = c.CloseNow()
			}
			return err
		}},
	}
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			w := newReusedHijacker()
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				if err := impl.upgrade(w); err != nil {
					b.Fatal(err)
				}
			}
			if w.nc.written == 0 {
				b.Fatal("no handshake response written")
			}
		})
	}
}

var gwsUpgrader = gws.NewUpgrader(&gws.BuiltinEventHandler{}, nil)

// reusedHijacker is hijackWriter with buffers made once: Hijack hands
// over a fresh fakeConn behind them, and the header map is cleared
// between handshakes, as net/http's per-connection state is.
type reusedHijacker struct {
	nc *fakeConn
	h  http.Header
	rw *bufio.ReadWriter
}

func newReusedHijacker() *reusedHijacker {
	w := &reusedHijacker{nc: &fakeConn{}, h: make(http.Header)}
	w.rw = bufio.NewReadWriter(bufio.NewReaderSize(w.nc, 4096), bufio.NewWriterSize(w.nc, 4096))
	return w
}

func (w *reusedHijacker) reset() {
	*w.nc = fakeConn{written: w.nc.written}
	clear(w.h)
	w.rw.Reader.Reset(w.nc)
	w.rw.Writer.Reset(w.nc)
}

func (w *reusedHijacker) Header() http.Header         { return w.h }
func (w *reusedHijacker) Write(p []byte) (int, error) { return w.nc.Write(p) }

// WriteHeader writes the status line and the headers, as net/http does
// at once for a 1xx status: coder/websocket answers through it, and its
// figures include this formatting (net/http's work in a real server).
func (w *reusedHijacker) WriteHeader(code int) {
	_, _ = fmt.Fprintf(w.nc, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = w.h.Write(w.nc)
	_, _ = w.nc.Write([]byte("\r\n"))
}
func (w *reusedHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.nc, w.rw, nil
}

// TestAcceptHarness checks BenchmarkAccept's set-up: each library
// answers the request with a 101 and the right Sec-WebSocket-Accept.
func TestAcceptHarness(t *testing.T) {
	r := upgradeReq(t)
	want := "Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key"))
	for _, impl := range []struct {
		name    string
		upgrade func(w http.ResponseWriter) error
	}{
		{"duplex", func(w http.ResponseWriter) error {
			c, err := ws.Accept(w, r, nil)
			if err == nil {
				err = c.CloseNow()
			}
			return err
		}},
		{"gorilla", func(w http.ResponseWriter) error {
			var u websocket.Upgrader
			c, err := u.Upgrade(w, r, nil)
			if err == nil {
				err = c.Close()
			}
			return err
		}},
		{"gws", func(w http.ResponseWriter) error {
			c, err := gwsUpgrader.Upgrade(w, r)
			if err == nil {
				err = c.NetConn().Close()
			}
			return err
		}},
		{"gobwas", func(w http.ResponseWriter) error {
			c, _, _, err := gobwas.HTTPUpgrader{}.Upgrade(r, w)
			if err == nil {
				err = c.Close()
			}
			return err
		}},
		{"coder", func(w http.ResponseWriter) error {
			c, err := cws.Accept(w, r, nil)
			if err == nil {
				err = c.CloseNow()
			}
			return err
		}},
	} {
		w := newReusedHijacker()
		w.nc.capture = true
		if err := impl.upgrade(w); err != nil {
			t.Errorf("%s: %v", impl.name, err)
			continue
		}
		_ = w.rw.Flush()
		out := string(w.nc.out)
		if !strings.HasPrefix(out, "HTTP/1.1 101 ") || !strings.Contains(strings.ToLower(out), strings.ToLower("\r\n"+want+"\r\n")) {
			t.Errorf("%s answered %q, want a 101 with %q", impl.name, out, want)
		}
	}
}
