package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// memConn is a net.Conn that serves fixed bytes, at most chunk per Read, and
// discards what is written: a peer that sends a script and never answers.
type memConn struct {
	in      []byte
	chunk   int
	out     bytes.Buffer
	closed  bool
	discard bool // drop writes rather than keep them
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.closed {
		return 0, net.ErrClosed
	}
	if len(m.in) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if m.chunk > 0 {
		n = min(n, m.chunk)
	}
	n = copy(p[:n], m.in)
	m.in = m.in[n:]
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	if m.closed {
		return 0, net.ErrClosed
	}
	if !m.discard {
		m.out.Write(p)
	}
	return len(p), nil
}

func (m *memConn) Close() error                     { m.closed = true; return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzFrame builds one frame, masked with key when masked is set.
func fuzzFrame(fin bool, op opcode, masked bool, key uint32, payload string) []byte {
	h := header{fin: fin, opcode: op, masked: masked, key: key, length: int64(len(payload))}
	b := appendHeader(nil, h)
	p := []byte(payload)
	if masked {
		mask(p, key)
	}
	return append(b, p...)
}

func FuzzReadFrames(f *testing.F) {
	const key = 0x12345678
	seeds := [][][]byte{
		{fuzzFrame(true, opText, true, key, "hello")},
		{fuzzFrame(false, opText, true, key, "hel"), fuzzFrame(true, opPing, true, key, "p"), fuzzFrame(true, opContinuation, true, key, "lo")},
		{fuzzFrame(true, opBinary, true, key, strings.Repeat("x", 300))},
		{fuzzFrame(true, opText, true, key, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")},
		{fuzzFrame(false, opText, true, key, "\xce"), fuzzFrame(true, opContinuation, true, key, "\xba")},
		{fuzzFrame(true, opText, true, key, "\xed\xa0\x80")},
		{fuzzFrame(true, opClose, true, key, "\x03\xe8bye")},
		{fuzzFrame(true, opClose, true, key, "\x03")},
		{fuzzFrame(true, opPong, true, key, "12345678"), fuzzFrame(true, opText, true, key, "")},
		{fuzzFrame(true, opContinuation, true, key, "x")},
		{{0x81, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'}},
		{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
		{{0xc1, 0x80, 1, 2, 3, 4}},
		{fuzzFrame(true, opText, false, 0, "unmasked")},
	}
	for _, s := range seeds {
		in := bytes.Join(s, nil)
		f.Add(in, false, uint8(0), uint8(0))
		f.Add(in, true, uint8(1), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, client bool, chunk, mode uint8) {
		if client {
			// The same script as the server would see, unmasked, plus
			// whatever the fuzzer made of it.
			in = bytes.Clone(in)
			if len(in) >= 2 {
				in[1] ^= 0x80
			}
		}
		nc := &memConn{in: in, chunk: int(chunk % 17), discard: true}
		const limit = 1 << 12
		cfg := newConnConfig(limit, 16, time.Second, 0, 0)
		c := newConn(nc, nil, client, "", cfg)
		ctx := context.Background()
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			var typ MessageType
			var p []byte
			if mode&1 == 0 {
				typ, p, err = c.Read(ctx)
			} else {
				var r io.Reader
				typ, r, err = c.Reader(ctx)
				if err == nil {
					p, err = io.ReadAll(r)
				}
			}
			if err != nil {
				break
			}
			if len(p) > limit {
				t.Fatalf("read a message of %d bytes past the limit of %d", len(p), limit)
			}
			if typ == MessageText && !utf8.Valid(p) {
				t.Fatalf("read a text message that is not UTF-8: %q", p)
			}
		}
		if err == nil {
			return
		}
		var ce CloseError
		switch {
		case errors.Is(err, ErrProtocol), errors.Is(err, ErrMessageTooBig),
			errors.As(err, &ce), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		default:
			t.Fatalf("read failed with an unclassified error: %v", err)
		}
		if !nc.closed {
			t.Fatalf("connection left open after %v", err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00})
	f.Add([]byte{0x82, 0xfe, 0x00, 0x7d})
	f.Add([]byte{0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x02, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x89, 0x85, 1, 2, 3, 4})
	f.Add([]byte{0xf8, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 || len(b) < headerLen(b[1]) {
			return
		}
		b = b[:headerLen(b[1])]
		h, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseHeader error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if h.length < 0 {
			t.Fatalf("negative length %d", h.length)
		}
		// Only minimal encodings are accepted, so encoding again gives
		// the same bytes.
		if diff := cmp.Diff(b, appendHeader(nil, h)); diff != "" {
			t.Fatalf("appendHeader(parseHeader(b)) != b (-parsed +encoded):\n%s", diff)
		}
	})
}

func FuzzParseClosePayload(f *testing.F) {
	for _, s := range []string{"", "\x03", "\x03\xe8", "\x03\xe8bye", "\x03\xed", "\x0f\xa0x", "\x13\x87", "\x03\xe8\xff", "\x03\xe8\xce\xba", "\xff\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ce, err := parseClosePayload(p)
		if err != nil {
			var pe *protocolError
			if !errors.As(err, &pe) || (pe.code != StatusProtocolError && pe.code != StatusInvalidPayloadData) {
				t.Fatalf("error %v carries no 1002 or 1007", err)
			}
			return
		}
		if len(p) == 0 {
			if ce.Code != StatusNoStatusRcvd || ce.Reason != "" {
				t.Fatalf("empty payload gave %+v", ce)
			}
			return
		}
		if !validWireCode(ce.Code) {
			t.Fatalf("accepted code %d, which may not be sent", ce.Code)
		}
		if !utf8.ValidString(ce.Reason) {
			t.Fatalf("accepted a reason that is not UTF-8: %q", ce.Reason)
		}
		if len(p) <= maxControlPayload {
			if diff := cmp.Diff(p, appendClosePayload(nil, ce.Code, ce.Reason)); diff != "" {
				t.Fatalf("round trip (-in +out):\n%s", diff)
			}
		}
	})
}

// splitAt cuts b into pieces at the positions that seed picks.
func splitAt(b []byte, seed []byte) [][]byte {
	var parts [][]byte
	for _, s := range seed {
		if len(b) == 0 {
			break
		}
		n := int(s) % (len(b) + 1)
		parts = append(parts, b[:n])
		b = b[n:]
	}
	return append(parts, b)
}

// validPrefix reports whether some bytes appended to b make it valid UTF-8,
// by trying every way to complete its last sequence.
func validPrefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	conts := []byte{0x80, 0x90, 0xa0}
	var try func(b []byte, depth int) bool
	try = func(b []byte, depth int) bool {
		if utf8.Valid(b) {
			return true
		}
		if depth == 0 {
			return false
		}
		for _, c := range conts {
			if try(append(b[:len(b):len(b)], c), depth-1) {
				return true
			}
		}
		return false
	}
	return try(b, 3)
}

// firstInvalid returns the index of the first byte after which b can no
// longer become valid UTF-8, or -1.
func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		// An error or an incomplete sequence: find the first byte that
		// breaks it, looking at the sequence alone.
		for j := i; j < len(b) && j < i+4; j++ {
			if !validPrefix(b[i : j+1]) {
				return j
			}
		}
		return -1 // an incomplete sequence at the end
	}
	return -1
}

func FuzzUTF8Validator(f *testing.F) {
	for _, s := range []string{
		"", "hello", "κόσμε", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80",
		"\xed\xa0\x80", "\xc0\xaf", "\xe0\x80\xaf", "\x80", "\xce", "a\xf0\x9f\x98", "\xef\xbf\xbf",
		"κόσμε\xed\xa0\x80edited",
	} {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, data, seed []byte) {
		bad := firstInvalid(data)
		var v utf8Validator
		off := 0
		for i, part := range splitAt(data, seed) {
			ok := v.valid(part)
			inPart := bad >= off && bad < off+len(part)
			if ok == inPart {
				t.Fatalf("%q split %q: part %d (%q at %d) valid=%v, but the first invalid byte is at %d",
					data, splitAt(data, seed), i, part, off, ok, bad)
			}
			if !ok {
				return
			}
			off += len(part)
		}
		if got, want := v.complete(), utf8.Valid(data); got != want {
			t.Fatalf("%q: complete()=%v, utf8.Valid=%v", data, got, want)
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add([]byte("hello, world"), uint32(0x01020304), []byte{3})
	f.Add(bytes.Repeat([]byte{0xaa}, 200), uint32(0xdeadbeef), []byte{1, 7, 64, 9})
	f.Fuzz(func(t *testing.T, data []byte, key uint32, seed []byte) {
		want := bytes.Clone(data)
		var kb [4]byte
		binary.LittleEndian.PutUint32(kb[:], key)
		for i := range want {
			want[i] ^= kb[i%4]
		}
		got := bytes.Clone(data)
		k := key
		rest := got
		for _, part := range splitAt(rest, seed) {
			k = mask(part, k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("mask in pieces differs from the naive loop (-want +got):\n%s", diff)
		}
		if wantKey := binary.LittleEndian.Uint32([]byte{kb[len(data)%4], kb[(len(data)+1)%4], kb[(len(data)+2)%4], kb[(len(data)+3)%4]}); k != wantKey {
			t.Fatalf("rotated key %08x, want %08x", k, wantKey)
		}
	})
}

// hijackRecorder is an http.ResponseWriter that can be hijacked, with the
// connection's output kept.
type hijackRecorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
	nc     *memConn
}

func (r *hijackRecorder) Header() http.Header {
	if r.h == nil {
		r.h = make(http.Header)
	}
	return r.h
}
func (r *hijackRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *hijackRecorder) WriteHeader(code int) { r.status = code }
func (r *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.nc = &memConn{}
	return r.nc, bufio.NewReadWriter(bufio.NewReader(r.nc), bufio.NewWriter(r.nc)), nil
}

func FuzzAcceptRequest(f *testing.F) {
	for _, s := range []string{
		"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://b\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Key: y\r\nSec-WebSocket-Version: 8\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		rec := &hijackRecorder{}
		opts := &AcceptOptions{Subprotocols: []string{"superchat", "chat"}, OriginPatterns: []string{"*.example.com"}}
		c, err := Accept(rec, req, opts)
		if err != nil {
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Accept failed with %T %v, not a *HandshakeError", err, err)
			}
			switch he.Status {
			case 400, 403, 405, 426:
			default:
				t.Fatalf("refused with status %d", he.Status)
			}
			if rec.status != he.Status {
				t.Fatalf("wrote %d, error says %d", rec.status, he.Status)
			}
			if rec.nc != nil {
				t.Fatal("refused the handshake after hijacking")
			}
			return
		}
		defer c.CloseNow()
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(rec.nc.out.Bytes())), req)
		if err != nil {
			t.Fatalf("Accept wrote a response that does not parse: %v\n%s", err, rec.nc.out.Bytes())
		}
		if _, derr := checkResponse(resp, req.Header.Get("Sec-WebSocket-Key"), headerTokens(req.Header, "Sec-WebSocket-Protocol"), nil); derr != nil {
			t.Fatalf("our own client refuses our answer: %v\n%s", derr, rec.nc.out.Bytes())
		}
	})
}

func FuzzCheckResponse(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, s := range []string{
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	offered := []string{"chat", "superchat"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: http.MethodGet})
		if err != nil {
			return
		}
		_, derr := checkResponse(resp, key, offered, nil)
		if derr != nil {
			if derr.StatusCode != resp.StatusCode || derr.Reason == "" {
				t.Fatalf("DialError %+v for status %d", derr, resp.StatusCode)
			}
			return
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("accepted status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(key) {
			t.Fatalf("accepted Sec-WebSocket-Accept %q", got)
		}
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && p != "chat" && p != "superchat" {
			t.Fatalf("accepted subprotocol %q, not offered", p)
		}
		if len(resp.Header.Values("Sec-WebSocket-Extensions")) != 0 {
			t.Fatal("accepted an extension that was not offered")
		}
	})
}
