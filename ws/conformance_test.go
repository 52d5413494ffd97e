package ws_test

// RFC 6455 conformance, in both directions: our Server against a raw TCP
// client that sends hand-built masked frames, and our Dial client against a
// raw TCP server that answers the handshake by hand and sends hand-built
// unmasked frames. Each case is a script the raw peer plays; the Conn under
// test runs an echo loop. The cases follow what Autobahn|Testsuite chapters
// 1–7, 9 and 10 probe; the comment on each group names the chapter.

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
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/duplexrt/duplex/ws"
)

// Opcodes (RFC 6455 §5.2).
const (
	opCont  byte = 0x0
	opText  byte = 0x1
	opBin   byte = 0x2
	opClose byte = 0x8
	opPing  byte = 0x9
	opPong  byte = 0xA

	finBit  byte = 0x80
	rsv1Bit byte = 0x40
	rsv2Bit byte = 0x20
	rsv3Bit byte = 0x10
)

// ioTimeout bounds every wait of the raw peer, so a missing answer fails
// the test instead of hanging it.
const ioTimeout = 5 * time.Second

// frame is a frame as the raw peer sends or receives it.
type frame struct {
	b0      byte // FIN, RSV1-3 and opcode
	payload []byte

	// Sending only.
	lenField  []byte // the length field as sent: b1's 7 bits, then any extended bytes; nil means minimal
	wrongMask bool   // masked when the sender must not mask, or not when it must
}

func fin(op byte, payload string) frame   { return frame{b0: finBit | op, payload: []byte(payload)} }
func nofin(op byte, payload string) frame { return frame{b0: op, payload: []byte(payload)} }
func text(s string) frame                 { return fin(opText, s) }

func closeFrame(code uint16, reason string) frame {
	return fin(opClose, string(binary.BigEndian.AppendUint16(nil, code))+reason)
}

// len16 and len64 encode a length in the 16- or 64-bit extended field,
// whatever its size.
func len16(n uint16) []byte { return binary.BigEndian.AppendUint16([]byte{126}, n) }
func len64(n uint64) []byte { return binary.BigEndian.AppendUint64([]byte{127}, n) }

// peer is the raw side of a test connection.
type peer struct {
	t      *testing.T
	nc     net.Conn
	br     *bufio.Reader
	client bool // the raw peer is the client: it masks, and expects no mask

	deflate   bool  // permessage-deflate was negotiated
	sentClose bool  // a close frame went out
	writeErr  error // the first failed write
}

// encode builds f's bytes as this peer sends them.
func (p *peer) encode(f frame) []byte {
	if f.b0&0x0f == opClose {
		p.sentClose = true
	}
	masked := p.client != f.wrongMask
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	b := []byte{f.b0}
	n := len(f.payload)
	switch {
	case f.lenField != nil:
		b = append(b, maskBit|f.lenField[0])
		b = append(b, f.lenField[1:]...)
	case n > 0xffff:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, maskBit|byte(n))
	}
	if !masked {
		return append(b, f.payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, f.payload...)
	for i := range f.payload {
		b[start+i] ^= key[i%4]
	}
	return b
}

// send writes frames in one write.
func (p *peer) send(frames ...frame) {
	p.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, p.encode(f)...)
	}
	p.write(b)
}

// sendChopped writes frames in writes of n bytes, so that headers and
// payloads arrive split.
func (p *peer) sendChopped(n int, frames ...frame) {
	p.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, p.encode(f)...)
	}
	for len(b) > 0 {
		k := min(n, len(b))
		p.write(b[:k])
		b = b[k:]
	}
}

// write sends b. A write that fails is remembered, not fatal: after a
// violation the other side may close before the script stops sending, and
// the script's next expectation says whether that was right.
func (p *peer) write(b []byte) {
	p.t.Helper()
	if p.writeErr != nil {
		return
	}
	_ = p.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := p.nc.Write(b); err != nil {
		p.writeErr = err
	}
}

// read reads one frame. It checks what RFC 6455 asks of the sender: the
// mask bit set by a client only, and a minimal length encoding.
func (p *peer) read() (frame, error) {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(p.br, hdr[:]); err != nil {
		return frame{}, err
	}
	masked := hdr[1]&0x80 != 0
	if masked == p.client {
		p.t.Errorf("frame from the Conn under test has mask bit %v; a client masks, a server does not (RFC 6455 §5.1)", masked)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(p.br, ext[:]); err != nil {
			return frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
		if n < 126 {
			p.t.Errorf("length %d sent in the 16-bit field; the encoding must be minimal", n)
		}
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(p.br, ext[:]); err != nil {
			return frame{}, err
		}
		n = binary.BigEndian.Uint64(ext[:])
		if n <= 0xffff || n>>63 != 0 {
			p.t.Errorf("length %d sent in the 64-bit field; the encoding must be minimal", n)
		}
	}
	if n > 64<<20 {
		p.t.Fatalf("frame of %d bytes: more than any test sends", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(p.br, key[:]); err != nil {
			return frame{}, err
		}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		return frame{}, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return frame{b0: hdr[0], payload: payload}, nil
}

func (p *peer) mustRead(what string) frame {
	p.t.Helper()
	f, err := p.read()
	if err != nil {
		p.t.Fatalf("raw peer: reading %s: %v", what, err)
	}
	return f
}

// expectFrame reads one frame and compares it with want.
func (p *peer) expectFrame(want frame) {
	p.t.Helper()
	got := p.mustRead(describe(want))
	if got.b0 != want.b0 || !bytes.Equal(got.payload, want.payload) {
		p.t.Fatalf("got %s, want %s", describe(got), describe(want))
	}
}

// expectMessage reads a data message, in as many frames as it comes, and
// compares it with the one sent.
func (p *peer) expectMessage(op byte, payload []byte) {
	p.t.Helper()
	f := p.mustRead("a message")
	compressed := p.deflate && f.b0&rsv1Bit != 0
	if f.b0&0x70 != 0 && !compressed || f.b0&0x0f != op {
		p.t.Fatalf("got %s, want a message with opcode %d", describe(f), op)
	}
	got := f.payload
	for f.b0&finBit == 0 {
		f = p.mustRead("a continuation frame")
		if f.b0&0x7f != opCont {
			p.t.Fatalf("got %s inside a message, want a continuation", describe(f))
		}
		got = append(got, f.payload...)
	}
	if compressed {
		got = inflateForTest(p.t, got)
	}
	if !bytes.Equal(got, payload) {
		p.t.Fatalf("echo differs: %s", payloadDiff(payload, got))
	}
}

// expectClose reads the next frame, which must be a close frame with code
// (StatusNoStatusRcvd for an empty payload).
func (p *peer) expectClose(code ws.StatusCode) {
	p.t.Helper()
	f, err := p.read()
	if err != nil {
		p.t.Fatalf("raw peer: want a close frame with %v, got %v", code, err)
	}
	if f.b0 != finBit|opClose {
		p.t.Fatalf("got %s, want a close frame with %v", describe(f), code)
	}
	got := ws.StatusNoStatusRcvd
	if len(f.payload) >= 2 {
		got = ws.StatusCode(binary.BigEndian.Uint16(f.payload))
	}
	if len(f.payload) == 1 || !utf8.Valid(f.payload[min(2, len(f.payload)):]) {
		p.t.Errorf("malformed close payload %q", f.payload)
	}
	if got != code {
		p.t.Fatalf("close frame carries %v (%q), want %v", got, f.payload[min(2, len(f.payload)):], code)
	}
}

// expectTCPClose checks that the connection is closed by the other side
// and nothing more arrives.
//
// A raw server that sent a close frame closes its side first, as
// RFC 6455 §7.1.1 asks of servers, and the client must then close too;
// otherwise the Conn under test must close on its own.
func (p *peer) expectTCPClose() {
	p.t.Helper()
	if !p.client && p.sentClose {
		_ = p.nc.(*net.TCPConn).CloseWrite()
	}
	_ = p.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	n, err := p.br.Read(b[:])
	switch {
	case n > 0:
		rest, _ := p.br.Peek(p.br.Buffered())
		p.t.Fatalf("got %q after the close frame, want the TCP connection closed", append(b[:n], rest...))
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		p.t.Fatalf("want the TCP connection closed, got %v", err)
	}
}

// expectFail reads the close frame that fails the connection with code,
// then sees the connection closed.
func (p *peer) expectFail(code ws.StatusCode) {
	p.t.Helper()
	p.expectClose(code)
	p.expectTCPClose()
}

// closeHandshake closes with code and expects it echoed and the TCP
// connection closed.
func (p *peer) closeHandshake(code uint16) {
	p.t.Helper()
	p.send(closeFrame(code, ""))
	p.expectClose(ws.StatusCode(code))
	p.expectTCPClose()
}

func describe(f frame) string {
	op := f.b0 & 0x0f
	name := map[byte]string{opCont: "continuation", opText: "text", opBin: "binary", opClose: "close", opPing: "ping", opPong: "pong"}[op]
	if name == "" {
		name = fmt.Sprintf("opcode 0x%x", op)
	}
	s := name
	if f.b0&finBit == 0 {
		s += " (not FIN)"
	}
	if f.b0&0x70 != 0 {
		s += fmt.Sprintf(" (RSV 0x%x)", f.b0&0x70)
	}
	if len(f.payload) <= 64 {
		return fmt.Sprintf("%s %q", s, f.payload)
	}
	return fmt.Sprintf("%s of %d bytes", s, len(f.payload))
}

// payloadDiff describes how got differs from want, briefly for large ones.
func payloadDiff(want, got []byte) string {
	if len(want) <= 256 && len(got) <= 256 {
		return "(-want +got)\n" + cmp.Diff(want, got)
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	return fmt.Sprintf("%d bytes, want %d; first difference at byte %d", len(got), len(want), i)
}

// limits configures the Conn under test.
type limits struct {
	readLimit    int64
	maxFragments int
	deflate      bool // negotiate permessage-deflate, no context takeover either way
}

// echo reads messages and writes them back until a read fails, and
// returns that error. useReader selects Reader over Read.
func echo(ctx context.Context, c *ws.Conn, useReader bool) error {
	for {
		var typ ws.MessageType
		var p []byte
		var err error
		if useReader {
			var r io.Reader
			typ, r, err = c.Reader(ctx)
			if err == nil {
				p, err = io.ReadAll(r)
			}
		} else {
			typ, p, err = c.Read(ctx)
		}
		if err != nil {
			return err
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return err
		}
	}
}

// direction runs a script against one side of ours and returns the error
// that ended the echo loop.
type direction struct {
	name    string
	run     func(t *testing.T, lim limits, useReader bool, script func(p *peer)) error
	handler bool // a Server with a Handler: it reads, so useReader does not apply
}

var directions = []direction{
	{name: "server", run: runAgainstServer},
	{name: "client", run: runAgainstClient},
	{name: "handler", run: runAgainstHandler(false), handler: true},
	{name: "poller", run: runAgainstHandler(true), handler: true},
}

// runAgainstHandler runs our Server with an echo Handler, in the portable
// mode or held by a Poller, and plays script as a raw client.
func runAgainstHandler(poll bool) func(t *testing.T, lim limits, useReader bool, script func(p *peer)) error {
	return func(t *testing.T, lim limits, _ bool, script func(p *peer)) error {
		var poller *ws.Poller
		if poll {
			var err error
			if poller, err = ws.NewPoller(nil); err != nil {
				t.Skipf("no poller here: %v", err)
			}
			defer poller.Close()
		}
		errc := make(chan error, 1)
		opened := false
		srv := httptest.NewServer(&ws.Server{
			Options: &ws.AcceptOptions{ReadLimit: lim.readLimit, MaxFragments: lim.maxFragments, Compression: lim.compression()},
			Poller:  poller,
			Handler: ws.HandlerFuncs{
				Open: func(c *ws.Conn) { opened = true },
				Message: func(c *ws.Conn, typ ws.MessageType, data []byte) {
					if !opened {
						t.Error("OnMessage before OnOpen")
					}
					_ = c.Write(context.Background(), typ, data)
				},
				Error: func(c *ws.Conn, err error) {
					if !errors.Is(err, ws.ErrProtocol) && !errors.Is(err, ws.ErrMessageTooBig) {
						t.Errorf("OnError(%v): want a protocol violation", err)
					}
				},
				Close: func(c *ws.Conn, err error) { errc <- err },
			},
		})
		defer srv.Close()
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true, deflate: lim.deflate}
		p.clientHandshake(srv.Listener.Addr().String())
		script(p)
		nc.Close()
		select {
		case err := <-errc:
			if poller != nil && poller.Len() != 0 {
				t.Errorf("the poller still holds %d connections after OnClose", poller.Len())
			}
			return err
		case <-time.After(ioTimeout):
			t.Fatal("OnClose not called after the raw client closed")
			return nil
		}
	}
}

// runAgainstServer runs our Server with an echo handler and plays script
// as a raw client.
func runAgainstServer(t *testing.T, lim limits, useReader bool, script func(p *peer)) error {
	errc := make(chan error, 1)
	srv := httptest.NewServer(&ws.Server{
		Options: &ws.AcceptOptions{ReadLimit: lim.readLimit, MaxFragments: lim.maxFragments, Compression: lim.compression()},
		Handle: func(ctx context.Context, c *ws.Conn) {
			errc <- echo(ctx, c, useReader)
		},
	})
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: true, deflate: lim.deflate}
	p.clientHandshake(srv.Listener.Addr().String())
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

// runAgainstClient runs our Dial client with an echo loop against a raw
// server that plays script.
func runAgainstClient(t *testing.T, lim limits, useReader bool, script func(p *peer)) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		c, _, err := ws.Dial(ctx, "ws://"+ln.Addr().String(), &ws.DialOptions{
			ReadLimit:    lim.readLimit,
			MaxFragments: lim.maxFragments,
			Compression:  lim.compression(),
			// The client waits this long for the server to close the TCP
			// connection after the close handshake (RFC 6455 §7.1.1); the
			// raw server does so at once, so this only slows a failure.
			CloseTimeout: 2 * time.Second,
		})
		if err != nil {
			errc <- fmt.Errorf("dial: %w", err)
			return
		}
		defer c.CloseNow()
		errc <- echo(ctx, c, useReader)
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), client: false, deflate: lim.deflate}
	p.serverHandshake()
	script(p)
	nc.Close()
	select {
	case err := <-errc:
		return err
	case <-time.After(ioTimeout):
		t.Fatal("the client's echo loop did not end after the raw server closed")
		return nil
	}
}

func (p *peer) clientHandshake(host string) {
	p.t.Helper()
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	ext := ""
	if p.deflate {
		ext = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	p.write([]byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + ext + "\r\n"))
	_ = p.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.t.Fatalf("raw client: reading the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		p.t.Fatalf("raw client: handshake answered %s", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), referenceAccept(key); got != want {
		p.t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); p.deflate != strings.HasPrefix(got, "permessage-deflate") {
		p.t.Fatalf("raw client: Sec-WebSocket-Extensions %q (deflate offered: %v)", got, p.deflate)
	}
}

func (p *peer) serverHandshake() {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	req, err := http.ReadRequest(p.br)
	if err != nil {
		p.t.Fatalf("raw server: reading the handshake request: %v", err)
	}
	ext := ""
	if p.deflate {
		if !strings.HasPrefix(req.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			p.t.Fatalf("raw server: the client offered %q, want permessage-deflate", req.Header.Get("Sec-WebSocket-Extensions"))
		}
		ext = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	}
	p.write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + referenceAccept(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" + ext + "\r\n"))
}

// referenceAccept is RFC 6455 §4.2.2's Sec-WebSocket-Accept, computed here
// independently of the package.
func referenceAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// conformanceCase is one script. fail is the close code the Conn under
// test must fail the connection with (0: none), which also decides what
// its read must have returned.
type conformanceCase struct {
	name   string
	lim    limits
	fail   ws.StatusCode
	script func(p *peer)
}

// runCases runs every case in both directions and with both read APIs.
func runCases(t *testing.T, cases []conformanceCase) {
	for _, d := range directions {
		for _, api := range []string{"Read", "Reader"} {
			if d.handler && api == "Reader" {
				continue
			}
			for _, tc := range cases {
				t.Run(d.name+"/"+api+"/"+tc.name, func(t *testing.T) {
					t.Parallel()
					err := d.run(t, tc.lim, api == "Reader", tc.script)
					if t.Failed() {
						t.Logf("echo loop ended with: %v", err)
						return
					}
					checkLoopError(t, tc.fail, err)
				})
			}
		}
	}
}

// checkLoopError checks what the read that met the violation returned.
func checkLoopError(t *testing.T, fail ws.StatusCode, err error) {
	t.Helper()
	switch fail {
	case 0:
		return
	case ws.StatusMessageTooBig:
		if !errors.Is(err, ws.ErrMessageTooBig) {
			t.Fatalf("read returned %v, want an error wrapping ErrMessageTooBig", err)
		}
	default:
		if !errors.Is(err, ws.ErrProtocol) {
			t.Fatalf("read returned %v, want an error wrapping ErrProtocol", err)
		}
	}
	if ws.CloseStatus(err) != -1 {
		t.Errorf("CloseStatus(%v) = %v; the peer sent no close frame", err, ws.CloseStatus(err))
	}
}

// echoCase sends frames and expects the message echoed, then closes.
func echoCase(name string, op byte, payload []byte, chop int) conformanceCase {
	return conformanceCase{name: name, script: func(p *peer) {
		f := frame{b0: finBit | op, payload: payload}
		if chop > 0 {
			p.sendChopped(chop, f)
		} else {
			p.send(f)
		}
		p.expectMessage(op, payload)
		p.closeHandshake(1000)
	}}
}

// Chapter 1: framing, text and binary at every length encoding.
func TestConformanceFraming(t *testing.T) {
	var cases []conformanceCase
	for _, n := range []int{0, 125, 126, 127, 128, 65535, 65536, 300000} {
		cases = append(cases,
			echoCase(fmt.Sprintf("text/%d", n), opText, bytes.Repeat([]byte("*"), n), 0),
			echoCase(fmt.Sprintf("binary/%d", n), opBin, bytes.Repeat([]byte{0xfe}, n), 0))
	}
	cases = append(cases,
		echoCase("text/65536/chopped997", opText, bytes.Repeat([]byte("*"), 65536), 997),
		echoCase("binary/65536/chopped997", opBin, bytes.Repeat([]byte{0xfe}, 65536), 997),
		echoCase("binary/200/chopped1", opBin, bytes.Repeat([]byte{0xfe}, 200), 1),
	)
	// Non-minimal and impossible length encodings (RFC 6455 §5.2).
	bad := []struct {
		name     string
		lenField []byte
		n        int
	}{
		{"16bit-for-0", len16(0), 0},
		{"16bit-for-5", len16(5), 5},
		{"16bit-for-125", len16(125), 125},
		{"64bit-for-5", len64(5), 5},
		{"64bit-for-126", len64(126), 126},
		{"64bit-for-65535", len64(65535), 65535},
		{"64bit-msb-set", len64(1<<63 | 5), 5},
		{"64bit-all-ones", len64(^uint64(0)), 5},
	}
	for _, b := range bad {
		cases = append(cases, conformanceCase{name: "length/" + b.name, fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(frame{b0: finBit | opBin, payload: make([]byte, b.n), lenField: b.lenField})
			p.expectFail(ws.StatusProtocolError)
		}})
	}
	// Minimal encodings at the edges are fine.
	for _, n := range []int{125, 126, 65535, 65536} {
		cases = append(cases, conformanceCase{name: fmt.Sprintf("length/minimal-%d", n), script: func(p *peer) {
			p.send(frame{b0: finBit | opBin, payload: make([]byte, n)})
			p.expectMessage(opBin, make([]byte, n))
			p.closeHandshake(1000)
		}})
	}
	cases = append(cases, conformanceCase{name: "mask/wrong", fail: ws.StatusProtocolError, script: func(p *peer) {
		// A client's frame without a mask, or a server's with one
		// (RFC 6455 §5.1).
		p.send(frame{b0: finBit | opText, payload: []byte("hello"), wrongMask: true})
		p.expectFail(ws.StatusProtocolError)
	}})
	cases = append(cases, conformanceCase{name: "mask/wrong-on-ping", fail: ws.StatusProtocolError, script: func(p *peer) {
		p.send(frame{b0: finBit | opPing, payload: []byte("hello"), wrongMask: true})
		p.expectFail(ws.StatusProtocolError)
	}})
	runCases(t, cases)
}

// Chapter 2: pings and pongs.
func TestConformancePingPong(t *testing.T) {
	bin125 := string(bytes.Repeat([]byte{0xfe, 0x00, 0xff}, 42)[:125])
	cases := []conformanceCase{
		{name: "ping/empty", script: func(p *peer) {
			p.send(fin(opPing, ""))
			p.expectFrame(fin(opPong, ""))
			p.closeHandshake(1000)
		}},
		{name: "ping/text", script: func(p *peer) {
			p.send(fin(opPing, "Hello, world!"))
			p.expectFrame(fin(opPong, "Hello, world!"))
			p.closeHandshake(1000)
		}},
		{name: "ping/binary-125", script: func(p *peer) {
			p.send(fin(opPing, bin125))
			p.expectFrame(fin(opPong, bin125))
			p.closeHandshake(1000)
		}},
		{name: "ping/125-chopped1", script: func(p *peer) {
			p.sendChopped(1, fin(opPing, bin125))
			p.expectFrame(fin(opPong, bin125))
			p.closeHandshake(1000)
		}},
		{name: "ping/126", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(fin(opPing, strings.Repeat("x", 126)))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "ping/fragmented", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opPing, "frag1"), fin(opCont, "frag2"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "pong/fragmented", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opPong, "frag1"), fin(opCont, "frag2"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "close/fragmented", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opClose, "\x03\xe8"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "pong/unsolicited-empty", script: func(p *peer) {
			p.send(fin(opPong, ""), text("after"))
			p.expectMessage(opText, []byte("after"))
			p.closeHandshake(1000)
		}},
		{name: "pong/unsolicited-payload", script: func(p *peer) {
			p.send(fin(opPong, "unsolicited pong payload"), fin(opPong, "12345678"), text("after"))
			p.expectMessage(opText, []byte("after"))
			p.closeHandshake(1000)
		}},
		{name: "pong/unsolicited-then-ping", script: func(p *peer) {
			p.send(fin(opPong, "unsolicited"), fin(opPing, "ping payload"))
			p.expectFrame(fin(opPong, "ping payload"))
			p.closeHandshake(1000)
		}},
		{name: "ping/10-in-a-row", script: func(p *peer) {
			var fs []frame
			for i := range 10 {
				fs = append(fs, fin(opPing, fmt.Sprint("payload-", i)))
			}
			p.send(fs...)
			for i := range 10 {
				p.expectFrame(fin(opPong, fmt.Sprint("payload-", i)))
			}
			p.closeHandshake(1000)
		}},
		{name: "ping/10-chopped1", script: func(p *peer) {
			var fs []frame
			for i := range 10 {
				fs = append(fs, fin(opPing, fmt.Sprint("payload-", i)))
			}
			p.sendChopped(1, fs...)
			for i := range 10 {
				p.expectFrame(fin(opPong, fmt.Sprint("payload-", i)))
			}
			p.closeHandshake(1000)
		}},
	}
	runCases(t, cases)
}

// Chapter 3: reserved bits, with no extension negotiated.
func TestConformanceReservedBits(t *testing.T) {
	var cases []conformanceCase
	for _, rsv := range []struct {
		name string
		bits byte
	}{{"rsv1", rsv1Bit}, {"rsv2", rsv2Bit}, {"rsv3", rsv3Bit}, {"rsv1+rsv3", rsv1Bit | rsv3Bit}, {"all", rsv1Bit | rsv2Bit | rsv3Bit}} {
		for _, op := range []byte{opText, opBin, opPing, opPong, opClose} {
			payload := "hello"
			if op == opClose {
				payload = "\x03\xe8"
			}
			cases = append(cases, conformanceCase{name: fmt.Sprintf("%s/op%d", rsv.name, op), fail: ws.StatusProtocolError, script: func(p *peer) {
				// A good message first, which is echoed; after the bad
				// frame, a ping that must not be answered.
				p.send(text("before"), frame{b0: finBit | rsv.bits | op, payload: []byte(payload)}, fin(opPing, "after"))
				p.expectMessage(opText, []byte("before"))
				p.expectFail(ws.StatusProtocolError)
			}})
		}
	}
	cases = append(cases, conformanceCase{name: "rsv2/continuation", fail: ws.StatusProtocolError, script: func(p *peer) {
		p.send(nofin(opText, "frag1"), frame{b0: finBit | rsv2Bit | opCont, payload: []byte("frag2")})
		p.expectFail(ws.StatusProtocolError)
	}})
	runCases(t, cases)
}

// Chapter 4: reserved opcodes.
func TestConformanceReservedOpcodes(t *testing.T) {
	var cases []conformanceCase
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases,
			conformanceCase{name: fmt.Sprintf("0x%X/alone", op), fail: ws.StatusProtocolError, script: func(p *peer) {
				p.send(fin(op, ""))
				p.expectFail(ws.StatusProtocolError)
			}},
			conformanceCase{name: fmt.Sprintf("0x%X/between", op), fail: ws.StatusProtocolError, script: func(p *peer) {
				p.send(text("before"), fin(op, "reserved payload"), fin(opPing, "after"))
				p.expectMessage(opText, []byte("before"))
				p.expectFail(ws.StatusProtocolError)
			}},
			conformanceCase{name: fmt.Sprintf("0x%X/in-fragmented-message", op), fail: ws.StatusProtocolError, script: func(p *peer) {
				p.send(nofin(opText, "frag1"), fin(op, ""), fin(opCont, "frag2"))
				p.expectFail(ws.StatusProtocolError)
			}},
		)
	}
	runCases(t, cases)
}

// Chapter 5: fragmentation.
func TestConformanceFragmentation(t *testing.T) {
	cases := []conformanceCase{
		{name: "text/2-fragments", script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), fin(opCont, "fragment2"))
			p.expectMessage(opText, []byte("fragment1fragment2"))
			p.closeHandshake(1000)
		}},
		{name: "binary/3-fragments-chopped1", script: func(p *peer) {
			p.sendChopped(1, nofin(opBin, "\x00\x01"), nofin(opCont, "\x02"), fin(opCont, "\x03\xff"))
			p.expectMessage(opBin, []byte("\x00\x01\x02\x03\xff"))
			p.closeHandshake(1000)
		}},
		{name: "text/empty-fragments", script: func(p *peer) {
			p.send(nofin(opText, ""), nofin(opCont, ""), fin(opCont, ""))
			p.expectMessage(opText, nil)
			p.closeHandshake(1000)
		}},
		{name: "text/empty-fragments-around", script: func(p *peer) {
			p.send(nofin(opText, ""), nofin(opCont, "middle"), fin(opCont, ""))
			p.expectMessage(opText, []byte("middle"))
			p.closeHandshake(1000)
		}},
		{name: "ping-between-fragments", script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), fin(opPing, "ping"), fin(opCont, "fragment2"))
			p.expectFrame(fin(opPong, "ping"))
			p.expectMessage(opText, []byte("fragment1fragment2"))
			p.closeHandshake(1000)
		}},
		{name: "ping-between-fragments-chopped1", script: func(p *peer) {
			p.sendChopped(1, nofin(opText, "fragment1"), fin(opPing, "ping"), fin(opCont, "fragment2"))
			p.expectFrame(fin(opPong, "ping"))
			p.expectMessage(opText, []byte("fragment1fragment2"))
			p.closeHandshake(1000)
		}},
		{name: "pong-between-fragments", script: func(p *peer) {
			p.send(nofin(opBin, "fragment1"), fin(opPong, "pong"), fin(opCont, "fragment2"))
			p.expectMessage(opBin, []byte("fragment1fragment2"))
			p.closeHandshake(1000)
		}},
		{name: "pings-and-pongs-between-many-fragments", script: func(p *peer) {
			p.send(nofin(opText, "f1"), fin(opPing, "p1"), nofin(opCont, "f2"), fin(opPong, "x"), nofin(opCont, "f3"), fin(opPing, "p2"), fin(opCont, "f4"))
			p.expectFrame(fin(opPong, "p1"))
			p.expectFrame(fin(opPong, "p2"))
			p.expectMessage(opText, []byte("f1f2f3f4"))
			p.closeHandshake(1000)
		}},
		{name: "fragmented-message-while-waiting", script: func(p *peer) {
			// Fragments arriving one by one, with pauses: the reader waits
			// for the next fragment rather than returning part of a message.
			p.send(nofin(opText, "f1"))
			time.Sleep(20 * time.Millisecond)
			p.send(fin(opPing, "p"))
			p.expectFrame(fin(opPong, "p"))
			p.send(fin(opCont, "f2"))
			p.expectMessage(opText, []byte("f1f2"))
			p.closeHandshake(1000)
		}},
		{name: "continuation-without-start/fin", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(fin(opCont, "non-continuation payload"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "continuation-without-start/nofin", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opCont, "fragment1"), fin(opCont, "fragment2"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "continuation-without-start/after-message", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), fin(opCont, "fragment2"), fin(opCont, "fragment3"))
			p.expectMessage(opText, []byte("fragment1fragment2"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "continuation-without-start/then-text", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opCont, "fragment1"), nofin(opText, "fragment2"), fin(opCont, "fragment3"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "text-while-fragmented", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), fin(opText, "fragment2"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "binary-while-fragmented", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), nofin(opBin, "fragment2"), fin(opCont, "fragment3"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "text-while-fragmented/after-ping", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), fin(opPing, "p"), fin(opText, "fragment2"))
			p.expectFrame(fin(opPong, "p"))
			p.expectFail(ws.StatusProtocolError)
		}},
	}
	runCases(t, cases)
}

// Chapter 6: UTF-8 in text messages (RFC 6455 §8.1, RFC 3629).
var (
	validUTF8 = []struct{ name, s string }{
		{"ascii", "Hello-µ@ßöäüàá-UTF-8!!"},
		{"kosme", "κόσμε"},
		{"U+0000", "\x00"},
		{"U+007F", "\x7f"},
		{"U+0080", "\xc2\x80"},
		{"U+07FF", "\xdf\xbf"},
		{"U+0800", "\xe0\xa0\x80"},
		{"U+D7FF", "\xed\x9f\xbf"},
		{"U+E000", "\xee\x80\x80"},
		{"U+FFFD", "\xef\xbf\xbd"},
		{"U+FFFE", "\xef\xbf\xbe"},
		{"U+FFFF", "\xef\xbf\xbf"},
		{"U+10000", "\xf0\x90\x80\x80"},
		{"U+1F600", "\xf0\x9f\x98\x80"},
		{"U+10FFFF", "\xf4\x8f\xbf\xbf"},
		{"mixed-4-byte", "a\xf0\x9f\x98\x80b\xf4\x8f\xbf\xbfc\xc2\x80"},
	}
	invalidUTF8 = []struct{ name, s string }{
		{"overlong/2-byte-slash", "\xc0\xaf"},
		{"overlong/2-byte-max", "\xc1\xbf"},
		{"overlong/3-byte-slash", "\xe0\x80\xaf"},
		{"overlong/3-byte-max", "\xe0\x9f\xbf"},
		{"overlong/4-byte-slash", "\xf0\x80\x80\xaf"},
		{"overlong/4-byte-max", "\xf0\x8f\xbf\xbf"},
		{"overlong/nul", "\xc0\x80"},
		{"surrogate/high-first", "\xed\xa0\x80"},
		{"surrogate/high-last", "\xed\xaf\xbf"},
		{"surrogate/low-first", "\xed\xb0\x80"},
		{"surrogate/low-last", "\xed\xbf\xbf"},
		{"surrogate/pair", "\xed\xa0\x80\xed\xb0\x80"},
		{"above-max/U+110000", "\xf4\x90\x80\x80"},
		{"above-max/f5", "\xf5\x80\x80\x80"},
		{"above-max/f7", "\xf7\xbf\xbf\xbf"},
		{"above-max/5-byte", "\xf8\x88\x80\x80\x80"},
		{"above-max/6-byte", "\xfc\x84\x80\x80\x80\x80"},
		{"byte-fe", "\xfe"},
		{"byte-ff", "\xff"},
		{"lone-continuation/80", "\x80"},
		{"lone-continuation/bf", "\xbf"},
		{"lone-continuation/after-ascii", "ab\x80cd"},
		{"continuations", "\x80\xbf\x80\xbf"},
		{"truncated/2-byte", "\xce"},
		{"truncated/3-byte", "\xe0\xa0"},
		{"truncated/4-byte", "\xf0\x90\x80"},
		{"truncated/at-end", "κόσμ\xce"},
		{"truncated/before-ascii", "\xce a"},
		{"truncated/3-byte-before-ascii", "\xe0\xa0a"},
		{"lead-then-lead", "\xc2\xc2\x80"},
		{"kosme-edited", "κόσμε\xed\xa0\x80edited"},
	}
)

func TestConformanceUTF8(t *testing.T) {
	var cases []conformanceCase
	// sends delivers a text message as one frame, as one frame in 1-byte
	// writes, and as 1-byte fragments.
	sends := []struct {
		name string
		send func(p *peer, s string)
	}{
		{"frame", func(p *peer, s string) { p.send(text(s)) }},
		{"chopped", func(p *peer, s string) { p.sendChopped(1, text(s)) }},
		{"fragments", func(p *peer, s string) {
			if len(s) == 0 {
				p.send(text(""))
				return
			}
			var fs []frame
			for i := range len(s) {
				op := opCont
				if i == 0 {
					op = opText
				}
				f := nofin(op, s[i:i+1])
				if i == len(s)-1 {
					f.b0 |= finBit
				}
				fs = append(fs, f)
			}
			p.send(fs...)
		}},
	}
	for _, v := range validUTF8 {
		for _, how := range sends {
			cases = append(cases, conformanceCase{name: "valid/" + v.name + "/" + how.name, script: func(p *peer) {
				how.send(p, v.s)
				p.expectMessage(opText, []byte(v.s))
				p.closeHandshake(1000)
			}})
		}
	}
	for _, v := range invalidUTF8 {
		for _, how := range sends {
			cases = append(cases, conformanceCase{name: "invalid/" + v.name + "/" + how.name, fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
				how.send(p, v.s)
				p.expectFail(ws.StatusInvalidPayloadData)
			}})
		}
		// Binary messages carry any bytes.
		cases = append(cases, echoCase("binary-ok/"+v.name, opBin, []byte(v.s), 0))
	}
	// Fail fast (Autobahn 6.4): the connection fails on the fragment or
	// the read that makes the text invalid, before the rest arrives. Each
	// script sends the first parts and expects the close frame without
	// sending the last one.
	cases = append(cases,
		conformanceCase{name: "fail-fast/fragment-2-of-3", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(nofin(opText, "κόσμε"))
			p.send(nofin(opCont, "\xf4\x90\x80\x80"))
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		conformanceCase{name: "fail-fast/fragment-2-of-3-split-sequence", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(nofin(opText, "κόσμε\xf4"))
			p.send(nofin(opCont, "\x90"))
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		conformanceCase{name: "fail-fast/one-frame-in-writes", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			whole := p.encode(text("κόσμε\xf4\x90\x80\x80edited"))
			cut := len(whole) - len("\xf4\x90\x80\x80edited")
			p.write(whole[:cut])
			time.Sleep(10 * time.Millisecond)
			p.write(whole[cut : cut+4])
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		conformanceCase{name: "fail-fast/one-frame-in-writes-split-sequence", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			whole := p.encode(text("κόσμε\xf4\x90\x80\x80edited"))
			cut := len(whole) - len("\x90\x80\x80edited")
			p.write(whole[:cut])
			time.Sleep(10 * time.Millisecond)
			p.write(whole[cut : cut+1])
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		conformanceCase{name: "fail-fast/large-frame-bad-start", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			// A 64 KiB frame whose first bytes are already invalid: refused
			// after the first write, not after the whole frame.
			whole := p.encode(text("\xc0\xaf" + strings.Repeat("x", 65534)))
			p.write(whole[:100])
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
	)
	runCases(t, cases)
}

// Chapter 7: the close handshake.
func TestConformanceClose(t *testing.T) {
	cases := []conformanceCase{
		{name: "after-message", script: func(p *peer) {
			p.send(text("Hello World!"))
			p.expectMessage(opText, []byte("Hello World!"))
			p.closeHandshake(1000)
		}},
		{name: "twice", script: func(p *peer) {
			p.send(closeFrame(1000, ""), closeFrame(1000, ""))
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "ping-after-close", script: func(p *peer) {
			p.send(closeFrame(1000, ""), fin(opPing, "after close"))
			p.expectFail(ws.StatusNormalClosure) // and no pong
		}},
		{name: "text-after-close", script: func(p *peer) {
			p.send(closeFrame(1000, ""), text("after close"))
			p.expectFail(ws.StatusNormalClosure) // and no echo
		}},
		{name: "close-between-fragments", script: func(p *peer) {
			p.send(nofin(opText, "fragment1"), closeFrame(1000, ""), fin(opCont, "fragment2"))
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "after-large-message", script: func(p *peer) {
			big := bytes.Repeat([]byte("*"), 256<<10)
			p.send(frame{b0: finBit | opText, payload: big}, closeFrame(1000, ""))
			p.expectMessage(opText, big)
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "payload/empty", script: func(p *peer) {
			p.send(fin(opClose, ""))
			p.expectFail(ws.StatusNoStatusRcvd)
		}},
		{name: "payload/1-byte", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(fin(opClose, "\x03"))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "payload/code-and-reason", script: func(p *peer) {
			p.send(closeFrame(1000, "Hello World!"))
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "payload/reason-123", script: func(p *peer) {
			p.send(closeFrame(1000, strings.Repeat("*", 123)))
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "payload/reason-124", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(closeFrame(1000, strings.Repeat("*", 124)))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "payload/reason-utf8", script: func(p *peer) {
			p.send(closeFrame(1000, "κόσμε \xf0\x9f\x98\x80"))
			p.expectFail(ws.StatusNormalClosure)
		}},
		{name: "payload/reason-invalid-utf8", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(closeFrame(1000, "κόσμε\xed\xa0\x80edited"))
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		{name: "payload/reason-truncated-utf8", fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(closeFrame(1000, "κόσμ\xce"))
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, conformanceCase{name: fmt.Sprintf("code/valid-%d", code), script: func(p *peer) {
			p.send(closeFrame(code, "reason"))
			p.expectFail(ws.StatusCode(code)) // echoed
		}})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, conformanceCase{name: fmt.Sprintf("code/invalid-%d", code), fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(closeFrame(code, ""))
			p.expectFail(ws.StatusProtocolError)
		}})
	}
	runCases(t, cases)
}

// The error a read returns once the peer closed carries its code and reason.
func TestConformanceCloseErrorSeen(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			err := d.run(t, limits{}, false, func(p *peer) {
				p.send(closeFrame(4321, "see you"))
				p.expectClose(4321)
				p.expectTCPClose()
			})
			var ce ws.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read returned %v, want a CloseError", err)
			}
			if diff := cmp.Diff(ws.CloseError{Code: 4321, Reason: "see you"}, ce); diff != "" {
				t.Fatalf("CloseError (-want +got):\n%s", diff)
			}
		})
	}
}

// Limits: messages over the read limit and the fragment cap fail with 1009
// before their payload is read (chapter 9 with a small limit).
func TestConformanceLimits(t *testing.T) {
	cases := []conformanceCase{
		{name: "read-limit/at-limit", lim: limits{readLimit: 1000}, script: func(p *peer) {
			p.send(frame{b0: finBit | opBin, payload: make([]byte, 1000)})
			p.expectMessage(opBin, make([]byte, 1000))
			p.closeHandshake(1000)
		}},
		{name: "read-limit/one-frame", lim: limits{readLimit: 1000}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			// Only the header: the verdict needs no payload.
			p.write(p.encode(frame{b0: finBit | opBin, payload: make([]byte, 1001)})[:8])
			p.expectFail(ws.StatusMessageTooBig)
		}},
		{name: "read-limit/huge-declared-length", lim: limits{readLimit: 1000}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			p.send(frame{b0: finBit | opBin, lenField: len64(1 << 62)})
			p.expectFail(ws.StatusMessageTooBig)
		}},
		{name: "read-limit/fragments", lim: limits{readLimit: 1000}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			p.send(nofin(opText, strings.Repeat("a", 400)), nofin(opCont, strings.Repeat("b", 400)))
			p.send(frame{b0: finBit | opCont, payload: []byte(strings.Repeat("c", 400))})
			p.expectFail(ws.StatusMessageTooBig)
		}},
		{name: "read-limit/fragment-overflowing-int64", lim: limits{readLimit: 1000}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			// A second fragment whose length would wrap the running total
			// around to a negative number.
			p.send(nofin(opBin, strings.Repeat("a", 100)), frame{b0: finBit | opCont, lenField: len64(1<<63 - 1)})
			p.expectFail(ws.StatusMessageTooBig)
		}},
		{name: "max-fragments/at-limit", lim: limits{maxFragments: 4}, script: func(p *peer) {
			p.send(nofin(opText, "1"), nofin(opCont, "2"), nofin(opCont, "3"), fin(opCont, "4"))
			p.expectMessage(opText, []byte("1234"))
			p.closeHandshake(1000)
		}},
		{name: "max-fragments/over", lim: limits{maxFragments: 4}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			p.send(nofin(opText, "1"), nofin(opCont, "2"), nofin(opCont, "3"), nofin(opCont, "4"), fin(opCont, "5"))
			p.expectFail(ws.StatusMessageTooBig)
		}},
		{name: "max-fragments/empty-fragments", lim: limits{maxFragments: 4}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			var fs []frame
			for range 10 {
				fs = append(fs, nofin(opCont, ""))
			}
			p.send(append([]frame{nofin(opBin, "")}, fs...)...)
			p.expectFail(ws.StatusMessageTooBig)
		}},
	}
	runCases(t, cases)
}

// The error names the option that raises the limit, on each side.
func TestConformanceLimitErrorNamesOption(t *testing.T) {
	for _, tc := range []struct {
		d     direction
		field string
	}{{directions[0], "AcceptOptions.ReadLimit"}, {directions[1], "DialOptions.ReadLimit"}} {
		t.Run(tc.d.name, func(t *testing.T) {
			t.Parallel()
			err := tc.d.run(t, limits{readLimit: 10}, false, func(p *peer) {
				p.send(text(strings.Repeat("x", 11)))
				p.expectFail(ws.StatusMessageTooBig)
			})
			if !errors.Is(err, ws.ErrMessageTooBig) || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "11") {
				t.Fatalf("got %v, want ErrMessageTooBig with the size and %s", err, tc.field)
			}
		})
	}
}

// Chapters 9 and 10: large messages, whole and in many small fragments,
// with the read limit raised.
func TestConformanceLargeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("large messages: skipped in -short mode")
	}
	fragmented := func(op byte, payload []byte, size int) []frame {
		var fs []frame
		for i := 0; i < len(payload); i += size {
			o := opCont
			if i == 0 {
				o = op
			}
			f := frame{b0: o, payload: payload[i:min(i+size, len(payload))]}
			if i+size >= len(payload) {
				f.b0 |= finBit
			}
			fs = append(fs, f)
		}
		return fs
	}
	lim := limits{readLimit: 8 << 20}
	mib := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	cases := []conformanceCase{
		{name: "text/1MiB-one-frame", lim: lim, script: func(p *peer) {
			p.send(frame{b0: finBit | opText, payload: mib})
			p.expectMessage(opText, mib)
			p.closeHandshake(1000)
		}},
		{name: "binary/4MiB-one-frame", lim: lim, script: func(p *peer) {
			big := bytes.Repeat(mib, 4)
			p.send(frame{b0: finBit | opBin, payload: big})
			p.expectMessage(opBin, big)
			p.closeHandshake(1000)
		}},
		{name: "text/1MiB-64B-fragments", lim: lim, script: func(p *peer) {
			p.send(fragmented(opText, mib, 64)...)
			p.expectMessage(opText, mib)
			p.closeHandshake(1000)
		}},
		{name: "binary/4MiB-64B-fragments", lim: lim, script: func(p *peer) {
			big := bytes.Repeat(mib, 4)
			p.send(fragmented(opBin, big, 64)...)
			p.expectMessage(opBin, big)
			p.closeHandshake(1000)
		}},
		{name: "text/64KiB-1300B-fragments-chopped", script: func(p *peer) {
			// Autobahn 10.1.1: a message auto-fragmented by the sender.
			msg := bytes.Repeat([]byte("*"), 65536)
			p.sendChopped(1000, fragmented(opText, msg, 1300)...)
			p.expectMessage(opText, msg)
			p.closeHandshake(1000)
		}},
		{name: "1000-small-messages", script: func(p *peer) {
			// Autobahn 9.7 and 9.8: many small messages back to back.
			var fs []frame
			for i := range 1000 {
				fs = append(fs, frame{b0: finBit | opBin, payload: fmt.Appendf(nil, "message %04d....", i)})
			}
			p.send(fs...)
			for i := range 1000 {
				p.expectMessage(opBin, fmt.Appendf(nil, "message %04d....", i))
			}
			p.closeHandshake(1000)
		}},
		{name: "binary/1MiB-over-default-limit", fail: ws.StatusMessageTooBig, script: func(p *peer) {
			p.write(p.encode(frame{b0: finBit | opBin, payload: append(mib, 0)})[:14])
			p.expectFail(ws.StatusMessageTooBig)
		}},
	}
	for _, d := range directions {
		for _, tc := range cases {
			t.Run(d.name+"/"+tc.name, func(t *testing.T) {
				// Not parallel: each holds several MiB, and they are
				// quicker one at a time on a small machine.
				err := d.run(t, tc.lim, false, tc.script)
				if !t.Failed() {
					checkLoopError(t, tc.fail, err)
				}
			})
		}
	}
}
