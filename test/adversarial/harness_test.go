package adversarial

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// step bounds each wait for the server to act on an attack.
const step = 5 * time.Second

// idleTimeout stands for duplex serve's http.Server.IdleTimeout (2
// minutes there), short here as startHTTP's callers do for
// ReadHeaderTimeout.
const idleTimeout = 300 * time.Millisecond

// startHTTP serves h on 127.0.0.1 with the net/http limits duplex serve
// sets (MaxHeaderBytes 16 KiB, a ReadHeaderTimeout, the timeout given
// here; duplex serve's is 10 s).
func startHTTP(t *testing.T, h http.Handler, readHeaderTimeout time.Duration) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadHeaderTimeout = readHeaderTimeout
	ts.Config.MaxHeaderBytes = 16 << 10
	ts.Config.IdleTimeout = idleTimeout
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// startWS serves a ws.Server (portable mode, or held by a Poller) that
// echoes with Send, as duplex serve's /ws/echo does.
func startWS(t *testing.T, opts *ws.AcceptOptions, poll bool) (*httptest.Server, *ws.Server) {
	t.Helper()
	srv := &ws.Server{
		Handler: ws.HandlerFuncs{Message: func(c *ws.Conn, typ ws.MessageType, data []byte) { _ = c.Send(typ, data) }},
		Options: opts,
	}
	if poll {
		p, err := ws.NewPoller(nil)
		if err != nil {
			t.Skipf("no poller: %v", err)
		}
		srv.Poller = p
		t.Cleanup(func() { _ = p.Close() })
	}
	ts := startHTTP(t, srv, 2*time.Second)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ts, srv
}

// pollModes are the two ways a ws.Server serves a Handler.
var pollModes = []struct {
	name string
	poll bool
}{{"goroutine", false}, {"poller", true}}

// rawConn is a WebSocket client that writes hand-built frames.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialRaw opens a TCP connection to ts and sends the request line and
// header, returning the connection before reading the answer.
func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, step)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// wsHandshake upgrades path on addr with the extra header lines (each
// "Name: value") and returns the connection and the response status.
func wsHandshake(t *testing.T, addr, path string, extra ...string) (*rawConn, int) {
	t.Helper()
	nc := dialTCP(t, addr)
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, addr, k)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	_ = nc.SetDeadline(time.Now().Add(step))
	if _, err := io.WriteString(nc, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	_ = nc.SetDeadline(time.Time{})
	if resp.StatusCode == http.StatusSwitchingProtocols {
		h := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(h[:]) {
			t.Fatalf("bad Sec-WebSocket-Accept %q", got)
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return &rawConn{t: t, nc: nc, br: br}, resp.StatusCode
}

// dialWSRaw upgrades or fails the test.
func dialWSRaw(t *testing.T, addr, path string, extra ...string) *rawConn {
	t.Helper()
	c, status := wsHandshake(t, addr, path, extra...)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d", status)
	}
	return c
}

const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa
)

// appendFrame appends a masked client frame. length, if not negative,
// replaces the payload's length in the header (a lie, for length attacks).
func appendFrame(dst []byte, fin, rsv1 bool, op byte, payload []byte, length int64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	if length < 0 {
		length = int64(len(payload))
	}
	dst = append(dst, b0)
	switch {
	case length < 126:
		dst = append(dst, 0x80|byte(length))
	case length <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(length))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(length))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	dst = append(dst, mask[:]...)
	for i, c := range payload {
		dst = append(dst, c^mask[i&3])
	}
	return dst
}

// appendFrame64 appends a masked header whose 64-bit length field is
// exactly n (the MSB may be set), without payload.
func appendHeader64(dst []byte, op byte, n uint64) []byte {
	dst = append(dst, 0x80|op, 0x80|127)
	dst = binary.BigEndian.AppendUint64(dst, n)
	return append(dst, 1, 2, 3, 4)
}

// write sends b in the background: a server that closes first may make
// the write fail, which is not an error of the test.
func (c *rawConn) writeAsync(b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.nc.Write(b)
		done <- err
	}()
	return done
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(step))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame is a frame the server sent.
type frame struct {
	fin     bool
	op      byte
	payload []byte
}

// readFrame reads one server frame, keeping at most keep bytes of its
// payload (the rest is discarded).
func (c *rawConn) readFrame(keep int) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f}
	n := int64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return f, err
		}
		n = int64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return f, err
		}
		n = int64(binary.BigEndian.Uint64(e[:]))
	}
	if h[1]&0x80 != 0 {
		return f, errors.New("masked frame from the server")
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, c.br, min(n, int64(keep))); err != nil {
		return f, err
	}
	if n > int64(keep) {
		if _, err := io.CopyN(io.Discard, c.br, n-int64(keep)); err != nil {
			return f, err
		}
	}
	f.payload = buf.Bytes()
	return f, nil
}

// expectClose reads frames, skipping data, until the server's close frame,
// and checks its code; then it checks that the server ends the TCP
// connection. It returns the close reason.
func (c *rawConn) expectClose(want ws.StatusCode, within time.Duration) string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(within))
	for {
		f, err := c.readFrame(125)
		if err != nil {
			c.t.Fatalf("waiting for close %d: %v", want, err)
		}
		if f.op != opClose {
			continue
		}
		if len(f.payload) < 2 {
			c.t.Fatalf("close frame without code, want %d", want)
		}
		got := ws.StatusCode(binary.BigEndian.Uint16(f.payload))
		if got != want {
			c.t.Fatalf("close code %d (%q), want %d", got, f.payload[2:], want)
		}
		// Answer as a client would; a server that failed the connection
		// has stopped reading and the write may fail.
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(appendFrame(nil, true, false, opClose, f.payload[:2], -1))
		c.expectEOF(within)
		return string(f.payload[2:])
	}
}

// expectEOF checks that the server closes the TCP connection within d,
// discarding what comes before.
func (c *rawConn) expectEOF(d time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("the server kept the TCP connection open for %v", d)
	}
}

// measure runs f and returns the bytes the process allocated meanwhile
// (TotalAlloc) and the growth of the heap in use, after a GC, from
// before to after. Tests that measure do not run in parallel.
func measure(f func()) (allocated uint64, grown int64) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.GC()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc, int64(b.HeapInuse) - int64(a.HeapInuse)
}

// waitGoroutines waits for the goroutine count to come back to at most
// base+slack.
func waitGoroutines(t *testing.T, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(step)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, want at most %d+%d:\n%s", runtime.NumGoroutine(), base, slack, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond until it holds, or fails the test after step.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(step)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// needBroker skips a test whose broker is missing, or fails it under CI.
func needBroker(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := fmt.Sprintf("no %s at %s: %v", name, addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wsAddr returns host:port of ts.
func addrOf(ts *httptest.Server) string { return strings.TrimPrefix(ts.URL, "http://") }

// expectClosed reads until the server's close frame or the end of the
// connection, within d, and returns the close code (0 for none).
func (c *rawConn) expectClosed(d time.Duration) ws.StatusCode {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := c.readFrame(125)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("the server did not close the connection within %v", d)
			}
			return 0
		}
		if f.op == opClose {
			code := ws.StatusCode(0)
			if len(f.payload) >= 2 {
				code = ws.StatusCode(binary.BigEndian.Uint16(f.payload))
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write(appendFrame(nil, true, false, opClose, f.payload[:min(2, len(f.payload))], -1))
			c.expectEOF(d)
			return code
		}
	}
}

// readText reads the next text frame, answering Engine.IO pings.
func (c *rawConn) readText(d time.Duration) string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := c.readFrame(1 << 20)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch {
		case f.op == opText && string(f.payload) == "2":
			c.write(appendFrame(nil, true, false, opText, []byte("3"), -1))
		case f.op == opText:
			return string(f.payload)
		case f.op == opClose:
			c.t.Fatalf("closed: %q", f.payload)
		}
	}
}
