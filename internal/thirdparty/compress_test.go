package thirdparty

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	cws "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/duplexrt/duplex/ws"
)

// permessage-deflate benchmarks: Duplex against gorilla/websocket and
// coder/websocket, each pair of connections set up by the library's own
// Accept (in an httptest server) and its own dialer, over loopback TCP, so
// that compression is negotiated by the real handshake. See BENCH.md,
// section "permessage-deflate".
//
// Both directions are measured on the server end, which is where
// compression costs add up:
//   - op=write: the server compresses and writes one message per op; the
//     client library is idle and its TCP socket is drained by a goroutine
//     that reads and drops the bytes, so only the writer's work (and a
//     cheap read(2) on the other core) is measured.
//   - op=read: the client library writes the messages once into memory
//     (its frames, compressed and masked, with context taken over where
//     negotiated); a goroutine then writes that recording to the client's
//     TCP socket in a loop and the server reads and inflates one message
//     per op into a reused buffer. A recording that starts on a fresh
//     connection stays valid when replayed after itself: the first message
//     refers to nothing earlier, and every later one refers only to bytes
//     at the same distance in the replay.
//
// ctx=takeover rows: both sides keep context (15-bit windows): Duplex and
// coder CompressionContextTakeover. ctx=none rows: no context takeover
// either way: Duplex with NoContextTakeover and RequestPeerNoContextTakeover,
// gorilla with EnableCompression (the only mode it has) and coder
// CompressionNoContextTakeover. All at deflate level 1 (the default of all
// three) and default buffers.

// wsEnd is one end of a connection, whatever the library. The interface
// call costs nothing next to deflate.
type wsEnd interface {
	write(p []byte) error
	// read reads one whole message into buf[:0], growing it if needed.
	read(buf []byte) ([]byte, error)
	// discard reads one message and drops it, through the library's
	// streaming reader, so that nothing of it stays with the caller.
	discard() error
	close() error
}

var bg = context.Background()

type duplexEnd struct{ c *ws.Conn }

func (e duplexEnd) write(p []byte) error { return e.c.Write(bg, ws.MessageText, p) }
func (e duplexEnd) read(buf []byte) ([]byte, error) {
	_, b, err := e.c.ReadAppend(bg, buf[:0])
	return b, err
}
func (e duplexEnd) discard() error {
	_, r, err := e.c.Reader(bg)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}
func (e duplexEnd) close() error { return e.c.CloseNow() }

type gorillaEnd struct{ c *websocket.Conn }

func (e gorillaEnd) write(p []byte) error { return e.c.WriteMessage(websocket.TextMessage, p) }
func (e gorillaEnd) read(buf []byte) ([]byte, error) {
	_, r, err := e.c.NextReader()
	if err != nil {
		return buf[:0], err
	}
	return readInto(r, buf)
}
func (e gorillaEnd) discard() error {
	_, r, err := e.c.NextReader()
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}
func (e gorillaEnd) close() error { return e.c.Close() }

type coderEnd struct{ c *cws.Conn }

func (e coderEnd) write(p []byte) error { return e.c.Write(bg, cws.MessageText, p) }
func (e coderEnd) read(buf []byte) ([]byte, error) {
	_, r, err := e.c.Reader(bg)
	if err != nil {
		return buf[:0], err
	}
	return readInto(r, buf)
}
func (e coderEnd) discard() error {
	_, r, err := e.c.Reader(bg)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}
func (e coderEnd) close() error { return e.c.CloseNow() }

// readInto reads r to io.EOF into buf[:0]. Reading to the end matters:
// gorilla returns a message's decompressor to its pool only at io.EOF.
func readInto(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

type netDialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// compressImpl is one library in one compression mode.
type compressImpl struct {
	impl string // duplex, gorilla, coder
	ctx  string // takeover, none
	// accept upgrades a request in the server's handler.
	accept func(w http.ResponseWriter, r *http.Request) (wsEnd, error)
	// dial connects through the library's dialer; netDial may be nil (a
	// plain net.Dialer). h holds extra request headers.
	dial func(url string, h http.Header, netDial netDialFunc) (wsEnd, *http.Response, error)
}

func duplexImpl(ctxName string, comp func() *ws.Compression) compressImpl {
	return compressImpl{
		impl: "duplex", ctx: ctxName,
		accept: func(w http.ResponseWriter, r *http.Request) (wsEnd, error) {
			c, err := ws.Accept(w, r, &ws.AcceptOptions{Compression: comp(), ReadLimit: -1})
			return duplexEnd{c}, err
		},
		dial: func(u string, h http.Header, nd netDialFunc) (wsEnd, *http.Response, error) {
			c, resp, err := ws.Dial(bg, u, &ws.DialOptions{
				Header:         h,
				Compression:    comp(),
				NetDialContext: nd,
				Proxy:          func(*http.Request) (*url.URL, error) { return nil, nil },
				ReadLimit:      -1,
			})
			return duplexEnd{c}, resp, err
		},
	}
}

func coderImpl(ctxName string, mode cws.CompressionMode) compressImpl {
	return compressImpl{
		impl: "coder", ctx: ctxName,
		accept: func(w http.ResponseWriter, r *http.Request) (wsEnd, error) {
			c, err := cws.Accept(w, r, &cws.AcceptOptions{CompressionMode: mode})
			if err != nil {
				return nil, err
			}
			c.SetReadLimit(-1)
			return coderEnd{c}, nil
		},
		dial: func(u string, h http.Header, nd netDialFunc) (wsEnd, *http.Response, error) {
			client := http.DefaultClient
			if nd != nil {
				client = &http.Client{Transport: &http.Transport{DialContext: nd, Proxy: nil}}
			}
			c, resp, err := cws.Dial(bg, u, &cws.DialOptions{HTTPClient: client, HTTPHeader: h, CompressionMode: mode})
			if err != nil {
				return nil, resp, err
			}
			c.SetReadLimit(-1)
			return coderEnd{c}, resp, nil
		},
	}
}

var gorillaDeflate = compressImpl{
	impl: "gorilla", ctx: "none",
	accept: func(w http.ResponseWriter, r *http.Request) (wsEnd, error) {
		u := websocket.Upgrader{EnableCompression: true}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return nil, err
		}
		return gorillaEnd{c}, nil
	},
	dial: func(u string, h http.Header, nd netDialFunc) (wsEnd, *http.Response, error) {
		d := websocket.Dialer{EnableCompression: true, NetDialContext: nd}
		c, resp, err := d.Dial(u, h)
		if err != nil {
			return nil, resp, err
		}
		return gorillaEnd{c}, resp, nil
	},
}

var compressImpls = []compressImpl{
	duplexImpl("takeover", func() *ws.Compression { return &ws.Compression{} }),
	coderImpl("takeover", cws.CompressionContextTakeover),
	duplexImpl("none", func() *ws.Compression {
		return &ws.Compression{NoContextTakeover: true, RequestPeerNoContextTakeover: true}
	}),
	gorillaDeflate,
	coderImpl("none", cws.CompressionNoContextTakeover),
}

// wsServer is an httptest server whose handler upgrades with one library
// and hands each server end to the dialer that asked for it (by the
// X-Pair request header), so that concurrent dials pair up correctly.
type wsServer struct {
	srv  *httptest.Server
	im   compressImpl
	next atomic.Int64
	mu   sync.Mutex
	ends map[string]chan wsEnd
}

func newWSServer(tb testing.TB, im compressImpl) *wsServer {
	s := &wsServer{im: im, ends: make(map[string]chan wsEnd)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := im.accept(w, r)
		if err != nil {
			tb.Errorf("%s accept: %v", im.impl, err)
			return
		}
		s.slot(r.Header.Get("X-Pair")) <- e
	}))
	return s
}

func (s *wsServer) slot(id string) chan wsEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.ends[id]
	if !ok {
		ch = make(chan wsEnd, 1)
		s.ends[id] = ch
	}
	return ch
}

// pair dials one connection and returns its client and server ends, and
// the response's Sec-WebSocket-Extensions.
func (s *wsServer) pair(nd netDialFunc) (client, server wsEnd, ext string, err error) {
	id := fmt.Sprint(s.next.Add(1))
	client, resp, err := s.im.dial("ws"+strings.TrimPrefix(s.srv.URL, "http")+"/", http.Header{"X-Pair": {id}}, nd)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s dial: %w", s.im.impl, err)
	}
	ch := s.slot(id)
	server = <-ch
	s.mu.Lock()
	delete(s.ends, id)
	s.mu.Unlock()
	return client, server, resp.Header.Get("Sec-WebSocket-Extensions"), nil
}

// checkExt checks that the handshake agreed on compression in im's mode.
func checkExt(im compressImpl, ext string) error {
	if !strings.Contains(ext, "permessage-deflate") {
		return fmt.Errorf("%s/%s: compression not negotiated (extensions %q)", im.impl, im.ctx, ext)
	}
	nct := strings.Count(ext, "no_context_takeover")
	if (im.ctx == "takeover" && nct != 0) || (im.ctx == "none" && nct != 2) {
		return fmt.Errorf("%s/%s: negotiated %q", im.impl, im.ctx, ext)
	}
	return nil
}

// tapConn is the client's TCP connection: while capturing, what the
// client library writes is kept in rec instead of being sent.
type tapConn struct {
	net.Conn
	capturing atomic.Bool
	rec       []byte
}

func (c *tapConn) Write(p []byte) (int, error) {
	if c.capturing.Load() {
		c.rec = append(c.rec, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// tapPair is one benchmark connection: a server of its own, the two ends,
// and the client's TCP connection under its library.
type tapPair struct {
	client, server wsEnd
	tap            *tapConn
}

func newTapPair(tb testing.TB, im compressImpl) *tapPair {
	s := newWSServer(tb, im)
	p := &tapPair{}
	nd := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		p.tap = &tapConn{Conn: c}
		return p.tap, nil
	}
	var ext string
	var err error
	p.client, p.server, ext, err = s.pair(nd)
	if err != nil {
		tb.Fatal(err)
	}
	if err := checkExt(im, ext); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.tap.Conn.Close()
		p.client.close()
		p.server.close()
		s.srv.Close()
	})
	return p
}

// record returns the client library's frames for msgs, in order, as sent
// on a fresh connection.
func (p *tapPair) record(tb testing.TB, msgs [][]byte) []byte {
	p.tap.capturing.Store(true)
	for _, m := range msgs {
		if err := p.client.write(m); err != nil {
			tb.Fatal(err)
		}
	}
	p.tap.capturing.Store(false)
	rec := p.tap.rec
	p.tap.rec = nil
	return rec
}

// The message sizes of the compression benchmarks.
var compressSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"64KiB", 64 << 10}}

// variedText returns count messages of n bytes of valid UTF-8: each a cut
// of the endless repetition of sampleJSON that starts at an event, the
// starts spread over the feed so that consecutive messages differ as
// consecutive events in a real feed do (same keys, other values), and
// repeat only far beyond a 32 KiB window.
func variedText(n, count int) [][]byte {
	var starts []int
	for i := 0; ; {
		j := bytes.Index(sampleJSON[i:], []byte(`{"id":"evt_`))
		if j < 0 {
			break
		}
		starts = append(starts, i+j)
		i += j + 1
	}
	msgs := make([][]byte, count)
	for k := range msgs {
		start := starts[(k*131)%len(starts)]
		p := make([]byte, 0, n+len(sampleJSON))
		p = append(p, sampleJSON[start:]...)
		for len(p) < n {
			p = append(p, sampleJSON...)
		}
		msgs[k] = validCut(p[:n])
	}
	return msgs
}

// validCut pads p with spaces where a multi-byte character is cut at its
// end.
func validCut(p []byte) []byte {
	cut := len(p)
	for cut > 0 && !utf8.Valid(p[:cut]) {
		cut--
	}
	for i := cut; i < len(p); i++ {
		p[i] = ' '
	}
	return p
}

// compressCount is how many distinct messages a benchmark cycles through:
// 1 MiB of text, at least 16 messages.
func compressCount(n int) int { return max(16, (1<<20)/n) }

// BenchmarkCompress measures compress+write (op=write) and read+inflate
// (op=read) of one text message per op on the server end of a compressed
// connection. Metrics besides time: msgs/s, and for op=read wireB/msg,
// the size of a message on the wire (frame header and mask included).
func BenchmarkCompress(b *testing.B) {
	for _, op := range []string{"write", "read"} {
		for _, sz := range compressSizes {
			msgs := variedText(sz.n, compressCount(sz.n))
			for _, im := range compressImpls {
				name := fmt.Sprintf("op=%s/size=%s/ctx=%s/impl=%s", op, sz.name, im.ctx, im.impl)
				b.Run(name, func(b *testing.B) {
					if op == "write" {
						benchCompressWrite(b, im, msgs)
					} else {
						benchCompressRead(b, im, msgs)
					}
				})
			}
		}
	}
}

func benchCompressWrite(b *testing.B, im compressImpl, msgs [][]byte) {
	p := newTapPair(b, im)
	go func() { // the client's socket, drained
		buf := make([]byte, 64<<10)
		for {
			if _, err := p.tap.Conn.Read(buf); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	i := 0
	for b.Loop() {
		if err := p.server.write(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "msgs/s")
}

func benchCompressRead(b *testing.B, im compressImpl, msgs [][]byte) {
	p := newTapPair(b, im)
	rec := p.record(b, msgs)
	go func() { // the recording, sent again and again
		for {
			if _, err := p.tap.Conn.Write(rec); err != nil {
				return
			}
		}
	}()
	n := len(msgs[0])
	buf := make([]byte, 0, n)
	b.ReportAllocs()
	b.SetBytes(int64(n))
	i := 0
	for b.Loop() {
		var err error
		if buf, err = p.server.read(buf); err != nil {
			b.Fatal(err)
		}
		if len(buf) != n {
			b.Fatalf("read %d bytes, want %d", len(buf), n)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(len(rec))/float64(len(msgs)), "wireB/msg")
}

// TestCompressHarness checks the benchmark set-up for every library and
// mode: the handshake agrees on the mode, messages arrive intact both
// ways, they are compressed on the wire, and a recording replayed after
// itself reads back as the same messages.
func TestCompressHarness(t *testing.T) {
	for _, im := range compressImpls {
		t.Run(im.impl+"/"+im.ctx, func(t *testing.T) {
			t.Parallel()
			msgs := variedText(16<<10, 8)
			p := newTapPair(t, im)
			// Both directions, live.
			for _, m := range msgs {
				if err := p.client.write(m); err != nil {
					t.Fatal(err)
				}
				got, err := p.server.read(nil)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("client→server: %d bytes, %v", len(got), err)
				}
				if err := p.server.write(m); err != nil {
					t.Fatal(err)
				}
				if got, err = p.client.read(nil); err != nil || !bytes.Equal(got, m) {
					t.Fatalf("server→client: %d bytes, %v", len(got), err)
				}
			}
			// A recording, compressed, replayed twice after the live
			// messages above: with context takeover that is history the
			// recording never saw.
			q := newTapPair(t, im)
			rec := q.record(t, msgs)
			if raw := len(msgs) * len(msgs[0]); len(rec) > raw/2 {
				t.Fatalf("recording of %d bytes for %d bytes of text: not compressed", len(rec), raw)
			}
			go func() {
				for range 2 {
					if _, err := p.tap.Conn.Write(rec); err != nil {
						return
					}
				}
			}()
			for i := range 2 * len(msgs) {
				got, err := p.server.read(nil)
				if err != nil || !bytes.Equal(got, msgs[i%len(msgs)]) {
					t.Fatalf("replayed message %d: %d bytes, %v", i, len(got), err)
				}
			}
		})
	}
}
