package thirdparty

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/duplexrt/duplex/ws"
)

// fakeConn is the network under a connection being benchmarked. Its reads
// serve the handshake response (when it plays the server to a client under
// test), then an endless repetition of pre-built frames; its writes are
// counted and dropped once the handshake is through. Both libraries get the
// same fakeConn, so its cost is the same in both columns.
type fakeConn struct {
	client  bool   // the conn under test is a client: answer its handshake
	req     []byte // handshake request bytes so far (client side)
	pending []byte // bytes to serve before frames: the handshake response
	frames  []byte // whole frames, served in a loop; nil: reads see io.EOF
	pos     int

	capture bool   // keep what is written after the handshake in out
	out     []byte // written bytes, if capture
	written int64  // bytes written after the handshake
}

var errNoHandshake = errors.New("fakeConn: read before the handshake request was complete")

func (c *fakeConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.client && c.req != nil {
		return 0, errNoHandshake
	}
	if len(c.frames) == 0 {
		return 0, io.EOF
	}
	// Fill p entirely, as a fast network with data waiting would.
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.frames[c.pos:])
		n += k
		c.pos += k
		if c.pos == len(c.frames) {
			c.pos = 0
		}
	}
	return n, nil
}

func (c *fakeConn) Write(p []byte) (int, error) {
	if c.client && c.req != nil {
		c.req = append(c.req, p...)
		if i := bytes.Index(c.req, []byte("\r\n\r\n")); i >= 0 {
			if err := c.answer(c.req[:i+4]); err != nil {
				return 0, err
			}
			c.req = nil
		}
		return len(p), nil
	}
	c.written += int64(len(p))
	if c.capture {
		c.out = append(c.out, p...)
	}
	return len(p), nil
}

// answer queues the 101 response to a client's handshake request.
func (c *fakeConn) answer(raw []byte) error {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return err
	}
	c.pending = []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	return nil
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return fakeAddr }
func (c *fakeConn) RemoteAddr() net.Addr             { return fakeAddr }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

var fakeAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}

// hijackWriter is the http.ResponseWriter of a server handler: Hijack hands
// over the fakeConn with 4 KiB buffers, as net/http does.
type hijackWriter struct {
	nc *fakeConn
	h  http.Header
}

func (w *hijackWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header)
	}
	return w.h
}
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.nc, bufio.NewReadWriter(bufio.NewReaderSize(w.nc, 4096), bufio.NewWriterSize(w.nc, 4096)), nil
}

const upgradeRequest = "GET /chat HTTP/1.1\r\n" +
	"Host: bench.example\r\n" +
	"Upgrade: websocket\r\n" +
	"Connection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Version: 13\r\n\r\n"

func upgradeReq(tb testing.TB) *http.Request {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(upgradeRequest)))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// The four ways to get a connection over a fakeConn: each library, each
// side. Server connections go through the real upgrade with a hijacked
// ResponseWriter; clients through the real dial with a custom dialer.
// Default options on both: 4 KiB read and write buffers, no compression.

func duplexServer(tb testing.TB, nc *fakeConn) *ws.Conn {
	c, err := ws.Accept(&hijackWriter{nc: nc}, upgradeReq(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	nc.written = 0
	return c
}

func gorillaServer(tb testing.TB, nc *fakeConn) *websocket.Conn {
	var u websocket.Upgrader
	c, err := u.Upgrade(&hijackWriter{nc: nc}, upgradeReq(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	nc.written = 0
	return c
}

func dialFake(nc *fakeConn) func(context.Context, string, string) (net.Conn, error) {
	nc.client = true
	nc.req = []byte{}
	return func(context.Context, string, string) (net.Conn, error) { return nc, nil }
}

func duplexClient(tb testing.TB, nc *fakeConn) *ws.Conn {
	c, _, err := ws.Dial(context.Background(), "ws://bench.example/chat", &ws.DialOptions{
		NetDialContext: dialFake(nc),
		Proxy:          func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	nc.written = 0
	return c
}

func gorillaClient(tb testing.TB, nc *fakeConn) *websocket.Conn {
	d := websocket.Dialer{NetDialContext: dialFake(nc)}
	c, _, err := d.Dial("ws://bench.example/chat", nil)
	if err != nil {
		tb.Fatal(err)
	}
	nc.written = 0
	return c
}

// appendFrame appends one final frame to b, masked with key if masked.
func appendFrame(b []byte, op byte, payload []byte, masked bool, key [4]byte) []byte {
	b = append(b, 0x80|op)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// frameStream repeats one frame until the stream is at least 64 KiB, so
// that the fakeConn serves a buffer-full with few copies.
func frameStream(op byte, payload []byte, masked bool) []byte {
	one := appendFrame(nil, op, payload, masked, [4]byte{0x37, 0xfa, 0x21, 0x3d})
	var s []byte
	for len(s) < 64<<10 {
		s = append(s, one...)
	}
	return s
}

// parseFrames decodes a stream of frames and returns the messages they
// carry, joining fragments and unmasking.
func parseFrames(tb testing.TB, b []byte) (msgs [][]byte, masked []bool) {
	tb.Helper()
	var cur []byte
	for len(b) > 0 {
		fin, m := b[0]&0x80 != 0, b[1]&0x80 != 0
		n, off := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, off = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, off = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		var key []byte
		if m {
			key, off = b[off:off+4], off+4
		}
		p := b[off : off+n]
		for i, c := range p {
			if m {
				c ^= key[i&3]
			}
			cur = append(cur, c)
		}
		b = b[off+n:]
		if fin {
			msgs, masked = append(msgs, cur), append(masked, m)
			cur = nil
		}
	}
	return msgs, masked
}
