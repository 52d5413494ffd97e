package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// largeSize is the "about 1 MiB" message: over the default read limit, so
// the tests that send it raise ReadLimit.
const largeSize = 1<<20 + 4321

type messageCase struct {
	name string
	typ  ws.MessageType
	data []byte
}

func messageCases() []messageCase {
	var cases []messageCase
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, largeSize} {
		cases = append(cases,
			messageCase{fmt.Sprintf("binary-%d", n), ws.MessageBinary, binaryPayload(n)},
			messageCase{fmt.Sprintf("text-%d", n), ws.MessageText, textPayload(n)},
		)
	}
	cases = append(cases,
		messageCase{"text-nonASCII", ws.MessageText, []byte("héllo wörld — Καλημέρα — 日本語 — 😀🎉")},
		messageCase{"text-edges", ws.MessageText, []byte("\u0000\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff")},
		messageCase{"binary-not-UTF-8", ws.MessageBinary, []byte{0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80}},
	)
	return cases
}

// TestMessages sends text and binary messages of the sizes around the
// frame length encodings (125/126, 65535/65536), empty ones, about 1 MiB
// and non-ASCII text each way. Go→Node: Node reports the length and hash
// of what it got and echoes it, and Go checks the echo. Node→Go: Go
// checks what it reads.
func TestMessages(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{readLimit: 4 << 20, echo: true})
		for _, m := range messageCases() {
			t.Run("GoToNode/"+m.name, func(t *testing.T) {
				write(t, p.c, m.typ, m.data)
				p.n.expectMessage(t, m.typ == ws.MessageBinary, m.data)
				typ, got := readMsg(t, p.c)
				checkMessage(t, typ, got, m.typ, m.data)
			})
		}
		p.n.command(t, map[string]any{"op": "echo", "on": false})
		for _, m := range messageCases() {
			t.Run("NodeToGo/"+m.name, func(t *testing.T) {
				p.n.send(t, m.data, m.typ == ws.MessageBinary, true)
				typ, got := readMsg(t, p.c)
				checkMessage(t, typ, got, m.typ, m.data)
			})
		}
		t.Run("NodeToGo/JS-string", func(t *testing.T) {
			// A JavaScript string, which ws encodes as UTF-8 itself.
			const s = "naïve café — 𝄞 — 中文"
			p.n.command(t, map[string]any{"op": "send", "text": s})
			typ, got := readMsg(t, p.c)
			checkMessage(t, typ, got, ws.MessageText, []byte(s))
		})
		// Node closes: Go closing right after a Read is TestCloseRightAfterRead.
		p.n.command(t, map[string]any{"op": "close", "code": 1000, "reason": "done"})
		if ce := closeError(t, readErr(t, p.c)); ce.Code != ws.StatusNormalClosure || ce.Reason != "done" {
			t.Errorf("Go read %v, want 1000 \"done\"", ce)
		}
		if ev, errs := p.n.expectClose(t); ev.Code != 1000 || len(errs) > 0 {
			t.Errorf("Node saw close %d %q, errors %v; want 1000", ev.Code, ev.Reason, errs)
		}
	})
}

// TestCloseRightAfterRead: Close called as soon as a Read returns whose
// context is cancelled on return (the usual defer cancel()). Node answers
// the close frame at once, so Close must return nil quickly.
func TestCloseRightAfterRead(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{echo: true})
		write(t, p.c, ws.MessageText, []byte("ping-pong"))
		p.n.expectMessage(t, false, []byte("ping-pong"))
		func() {
			ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
			defer cancel()
			if _, _, err := p.c.Read(ctx); err != nil {
				t.Fatal(err)
			}
		}()
		start := time.Now()
		err := p.c.Close(ws.StatusNormalClosure, "bye")
		el := time.Since(start)
		if err != nil || el > time.Second {
			t.Errorf("Close returned %v after %v, want nil at once", err, el.Round(time.Millisecond))
		}
		if ev, _ := p.n.expectClose(t); ev.Code != 1000 || ev.Reason != "bye" {
			t.Errorf("Node saw close %d %q, want 1000 \"bye\"", ev.Code, ev.Reason)
		}
	})
}

// TestReadLimit: with the default read limit, a message of exactly 1 MiB
// from Node is read, and one byte more fails the connection with 1009.
func TestReadLimit(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{})
		ok := binaryPayload(ws.DefaultReadLimit)
		p.n.send(t, ok, true, true)
		typ, got := readMsg(t, p.c)
		checkMessage(t, typ, got, ws.MessageBinary, ok)

		p.n.send(t, binaryPayload(ws.DefaultReadLimit+1), true, true)
		err := readErr(t, p.c)
		if !errors.Is(err, ws.ErrMessageTooBig) {
			t.Errorf("Read: %v, want ErrMessageTooBig", err)
		}
		if ev, _ := p.n.expectClose(t); ev.Code != 1009 {
			t.Errorf("Node saw close %d %q, want 1009", ev.Code, ev.Reason)
		}
	})
}

// TestFragmentedFromNode: Node sends messages in several frames (ws's
// send with fin: false), with a UTF-8 sequence split across frames, an
// empty fragment and a ping between fragments; Go reads them whole.
func TestFragmentedFromNode(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{})

		// "héllo wörld 😀" with "ö" (c3 b6) and "😀" (f0 9f 98 80) cut
		// between frames.
		frags := [][]byte{[]byte("héllo "), []byte("w\xc3"), {}, []byte("\xb6rld \xf0\x9f"), []byte("\x98\x80")}
		for i, f := range frags {
			p.n.send(t, f, false, i == len(frags)-1)
			if i == 1 {
				p.n.command(t, map[string]any{"op": "ping", "data": []byte("between fragments")})
			}
		}
		typ, got := readMsg(t, p.c)
		checkMessage(t, typ, got, ws.MessageText, []byte("héllo wörld 😀"))
		if ev := p.n.expect(t, "pong"); string(ev.Data) != "between fragments" {
			t.Errorf("pong data %q, want the ping's", ev.Data)
		}

		// Binary, three frames of 100 kB (64-bit lengths).
		want := binaryPayload(300_000)
		for i := 0; i < 3; i++ {
			p.n.send(t, want[i*100_000:(i+1)*100_000], true, i == 2)
		}
		typ, got = readMsg(t, p.c)
		checkMessage(t, typ, got, ws.MessageBinary, want)

		// Text in 500 frames of 20 bytes, most cutting a rune.
		want = textPayload(10_000)
		for i := 0; i < 500; i++ {
			p.n.send(t, want[i*20:(i+1)*20], false, i == 499)
		}
		typ, got = readMsg(t, p.c)
		checkMessage(t, typ, got, ws.MessageText, want)
	})
}

// TestFragmentedFromGo: Go streams messages bigger than its write buffer
// through Conn.Writer, which sends them in several frames, with a ping
// between the frames; Node reassembles them (its report and echo are
// checked) and answers the ping.
func TestFragmentedFromGo(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{readLimit: 4 << 20, echo: true})
		reads := readLoop(t, p.c)
		ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
		defer cancel()

		before := len(p.tap.Frames())
		want := textPayload(300_000)
		w, err := p.c.Writer(ctx, ws.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(want); i += 1000 { // 1000-byte writes cut runes
			if i == len(want)/2 {
				if err := p.c.Ping(ctx); err != nil {
					t.Fatalf("Ping in the middle of a message: %v", err)
				}
			}
			if _, err := w.Write(want[i:min(i+1000, len(want))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if ev := p.n.expect(t, "ping"); len(ev.Data) != 8 {
			t.Errorf("Node got a ping with %d bytes of data, want 8", len(ev.Data))
		}
		p.n.expectMessage(t, false, want)
		r := recv(t, reads)
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkMessage(t, r.typ, r.p, ws.MessageText, want)

		frames := p.tap.Frames()[before:]
		t.Logf("text message went out as %d frames", len(frames))
		checkFragments(t, frames, 0x1, len(want))

		// Binary: one Write larger than the buffer.
		before = len(p.tap.Frames())
		want = binaryPayload(100_000)
		w, err = p.c.Writer(ctx, ws.MessageBinary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(want); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p.n.expectMessage(t, true, want)
		r = recv(t, reads)
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkMessage(t, r.typ, r.p, ws.MessageBinary, want)
		checkFragments(t, p.tap.Frames()[before:], 0x2, len(want))
	})
}

// checkFragments checks that frames (control frames aside) are one message
// of opcode op in more than one frame, carrying size bytes.
func checkFragments(t *testing.T, frames []frameInfo, op byte, size int) {
	t.Helper()
	var data []frameInfo
	for _, f := range frames {
		if f.op&0x8 == 0 {
			data = append(data, f)
		}
	}
	if len(data) < 2 {
		t.Fatalf("message went out in %d data frames %v, want several", len(data), data)
	}
	total := int64(0)
	for i, f := range data {
		wantOp, wantFin := byte(0), i == len(data)-1
		if i == 0 {
			wantOp = op
		}
		if f.op != wantOp || f.fin != wantFin {
			t.Errorf("frame %d of %d is %v, want opcode %#x fin %v", i, len(data), f, wantOp, wantFin)
		}
		total += f.len
	}
	if total != int64(size) {
		t.Errorf("frames carry %d bytes, want %d", total, size)
	}
}

// TestPing: Go's Ping returns on Node's automatic pong; Node's ping gets
// a pong from Go with the same data.
func TestPing(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{})
		reads := readLoop(t, p.c)
		ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
		defer cancel()

		start := time.Now()
		if err := p.c.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		t.Logf("ping round trip %v", time.Since(start))
		if ev := p.n.expect(t, "ping"); len(ev.Data) != 8 {
			t.Errorf("Node got a ping with %d bytes of data, want 8", len(ev.Data))
		}

		// Several at once.
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() { errs <- p.c.Ping(ctx) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Ping: %v", err)
			}
		}
		for range 3 {
			p.n.expect(t, "ping")
		}

		for _, data := range [][]byte{nil, []byte("from node ✓"), binaryPayload(125)} {
			p.n.command(t, map[string]any{"op": "ping", "data": data})
			if ev := p.n.expect(t, "pong"); string(ev.Data) != string(data) {
				t.Errorf("pong data %q, want %q", ev.Data, data)
			}
		}
		select {
		case r := <-reads:
			t.Errorf("unexpected read: %v %d bytes %v", r.typ, len(r.p), r.err)
		default:
		}
	})
}

type closeCase struct {
	name   string
	code   ws.StatusCode
	reason string
}

var closeCases = []closeCase{
	{"1000", ws.StatusNormalClosure, ""},
	{"1001", ws.StatusGoingAway, "going away"},
	{"4000-UTF-8", 4000, "ünïcødé ✓ 日本語 😀"},
	{"4999-123-bytes", 4999, strings.Repeat("é", 61) + "x"},
}

// TestCloseFromGo: Go closes with a code and reason; Node's close event
// carries them, Close returns nil once Node answers, and Go's reads then
// report Node's answer (ws echoes code and reason) as a CloseError. Run
// with a read loop beside Close ("reading") and without one ("idle").
func TestCloseFromGo(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		for _, cc := range closeCases {
			for _, reading := range []bool{true, false} {
				name := cc.name + "/idle"
				if reading {
					name = cc.name + "/reading"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					p := d.connect(t, pairOptions{})
					var reads <-chan readResult
					if reading {
						reads = readLoop(t, p.c)
					}
					start := time.Now()
					if err := p.c.Close(cc.code, cc.reason); err != nil {
						t.Errorf("Close: %v", err)
					}
					if el := time.Since(start); el > time.Second {
						t.Errorf("Close took %v", el)
					}
					ev, _ := p.n.expectClose(t)
					if ev.Code != int(cc.code) || ev.Reason != cc.reason {
						t.Errorf("Node saw close %d %q, want %d %q", ev.Code, ev.Reason, cc.code, cc.reason)
					}
					var err error
					if reading {
						err = recv(t, reads).err
					} else {
						err = readErr(t, p.c)
					}
					ce := closeError(t, err)
					if ce.Code != cc.code || ce.Reason != cc.reason {
						t.Errorf("Go read %v, want Node's echo of %d %q", ce, cc.code, cc.reason)
					}
				})
			}
		}
	})
}

// TestCloseFromNode: Node closes with a code and reason (or none); Go's
// read returns a CloseError with them, Go answers with the same code, and
// Node's close event reports it.
func TestCloseFromNode(t *testing.T) {
	cases := append(slices.Clone(closeCases), closeCase{"no-code", 0, ""})
	forEachDirection(t, func(t *testing.T, d direction) {
		for _, cc := range cases {
			t.Run(cc.name, func(t *testing.T) {
				t.Parallel()
				p := d.connect(t, pairOptions{})
				p.n.command(t, map[string]any{"op": "close", "code": int(cc.code), "reason": cc.reason})
				start := time.Now()
				err := readErr(t, p.c)
				if el := time.Since(start); el > time.Second {
					t.Errorf("Read took %v to report the close", el)
				}
				wantCode := cc.code
				if wantCode == 0 {
					wantCode = ws.StatusNoStatusRcvd
				}
				ce := closeError(t, err)
				if ce.Code != wantCode || ce.Reason != cc.reason {
					t.Errorf("Go read %v, want %d %q", ce, wantCode, cc.reason)
				}
				if got := ws.CloseStatus(err); got != wantCode {
					t.Errorf("CloseStatus = %v, want %v", got, wantCode)
				}
				ev, errs := p.n.expectClose(t)
				if ev.Code != int(wantCode) {
					t.Errorf("Node saw close %d %q, want %d", ev.Code, ev.Reason, wantCode)
				}
				// ws reports the reason of the answer: Go echoes the code
				// and may echo the reason (RFC 6455 §5.5.1).
				if ev.Reason != "" && ev.Reason != cc.reason {
					t.Errorf("Node saw reason %q, want %q or none", ev.Reason, cc.reason)
				}
				t.Logf("Node's close event: %d %q", ev.Code, ev.Reason)
				if len(errs) > 0 {
					t.Errorf("Node reported errors: %v", errs)
				}
			})
		}
	})
}

// TestServerShutdown: ws.Server.Shutdown closes a Node client's connection
// with 1001 Going Away.
func TestServerShutdown(t *testing.T) {
	t.Parallel()
	handlerErr := make(chan error, 1)
	s := startGoServer(t, &ws.AcceptOptions{CloseTimeout: closeTimeout}, func(ctx context.Context, c *ws.Conn) {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				handlerErr <- err
				return
			}
		}
	})
	n := nodeClient(t, s.URL, clientOptions{})
	n.expect(t, "open")
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	ev, _ := n.expectClose(t)
	if ev.Code != 1001 {
		t.Errorf("Node saw close %d %q, want 1001", ev.Code, ev.Reason)
	}
	t.Logf("Node's close event: %d %q", ev.Code, ev.Reason)
	select {
	case err := <-handlerErr:
		if got := ws.CloseStatus(err); got != ws.StatusGoingAway {
			t.Errorf("handler's read: %v, want a CloseError with 1001", err)
		}
	case <-time.After(opTimeout):
		t.Error("handler still reading after Shutdown")
	}
}

// TestInvalidUTF8FromNode: Node sends text that is not UTF-8 (a Buffer
// sent with binary: false); Go fails the connection with 1007 Invalid
// Payload Data (RFC 6455 §8.1), which Node's close event reports.
func TestInvalidUTF8FromNode(t *testing.T) {
	cases := []struct {
		name  string
		frags [][]byte
	}{
		{"0xff", [][]byte{[]byte("hi\xff")}},
		{"surrogate", [][]byte{[]byte("a\xed\xa0\x80b")}},
		{"overlong", [][]byte{[]byte("\xc0\xaf")}},
		{"above-U+10FFFF", [][]byte{[]byte("\xf4\x90\x80\x80")}},
		{"truncated-at-end", [][]byte{[]byte("caf\xc3")}},
		{"fragment-invalid", [][]byte{[]byte("héllo "), []byte("\xff wörld")}},
		{"fragments-end-mid-rune", [][]byte{[]byte("ok \xe2"), []byte("\x82")}},
	}
	forEachDirection(t, func(t *testing.T, d direction) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				p := d.connect(t, pairOptions{})
				for i, f := range tc.frags {
					p.n.send(t, f, false, i == len(tc.frags)-1)
				}
				err := readErr(t, p.c)
				if !errors.Is(err, ws.ErrProtocol) {
					t.Errorf("Read: %v, want ErrProtocol", err)
				}
				if got := ws.CloseStatus(err); got != -1 {
					t.Errorf("CloseStatus = %v, want -1 (we failed the connection, the peer sent no close)", got)
				}
				ev, _ := p.n.expectClose(t)
				if ev.Code != 1007 {
					t.Errorf("Node saw close %d %q, want 1007", ev.Code, ev.Reason)
				}
				t.Logf("Go: %v; Node's close event: %d %q", err, ev.Code, ev.Reason)
			})
		}
	})
}

// TestInvalidUTF8FromGo: Write does not check text (documented); ws then
// fails the connection with 1007, which Go reads as a CloseError.
func TestInvalidUTF8FromGo(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{})
		write(t, p.c, ws.MessageText, []byte("bad \xff"))
		err := readErr(t, p.c)
		if got := ws.CloseStatus(err); got != ws.StatusInvalidPayloadData {
			t.Errorf("Read: %v, want a CloseError with 1007", err)
		}
		ev, errs := p.n.expectClose(t)
		if len(errs) == 0 || errs[0].ErrCode != "WS_ERR_INVALID_UTF8" {
			t.Errorf("Node reported %v, want a WS_ERR_INVALID_UTF8 error", errs)
		}
		t.Logf("Node's close event: %d %q", ev.Code, ev.Reason)
	})
}

// TestAbruptClose: Node drops the TCP connection without a close frame.
// The CloseError documentation says a connection lost without a close
// frame yields StatusAbnormalClosure (1006).
func TestAbruptClose(t *testing.T) {
	forEachDirection(t, func(t *testing.T, d direction) {
		p := d.connect(t, pairOptions{})
		p.n.command(t, map[string]any{"op": "terminate"})
		err := readErr(t, p.c)
		p.n.expectClose(t)
		if got := ws.CloseStatus(err); got != ws.StatusAbnormalClosure {
			t.Errorf("Read: %q; CloseStatus = %v, want %v as CloseError documents", err, got, ws.StatusAbnormalClosure)
		}
	})
}

// TestServerSpeaksFirst: a ws server sends a message as soon as the
// connection opens, so that it may arrive together with the handshake
// response; the Go client must not lose it.
func TestServerSpeaksFirst(t *testing.T) {
	t.Parallel()
	const hello = "welcome ✓"
	n, u := nodeServer(t, false, "hello="+url.QueryEscape(hello))
	c, _, err := dial(t, u, dialOptions(pairOptions{}, nil))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	n.expect(t, "open")
	typ, got := readMsg(t, c)
	checkMessage(t, typ, got, ws.MessageText, []byte(hello))
}

// TestSubprotocolGoServer: subprotocol negotiation with a Node client.
func TestSubprotocolGoServer(t *testing.T) {
	cases := []struct {
		name      string
		supported []string // by the Go server
		offered   []string // by Node
		want      string
	}{
		{"server-preference", []string{"chat.v1", "chat.v2"}, []string{"chat.v2", "chat.v1"}, "chat.v1"},
		{"one-common", []string{"a", "chat.v2"}, []string{"chat.v1", "chat.v2"}, "chat.v2"},
		{"none-offered", []string{"chat.v1"}, nil, ""},
		{"none-supported", nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startGoServer(t, &ws.AcceptOptions{Subprotocols: tc.supported, CloseTimeout: closeTimeout}, nil)
			n := nodeClient(t, s.URL, clientOptions{protocols: tc.offered})
			c := s.accept(t, n)
			if got := c.Subprotocol(); got != tc.want {
				t.Errorf("Go chose %q, want %q", got, tc.want)
			}
			if ev := n.expect(t, "open"); ev.Protocol != tc.want {
				t.Errorf("Node's ws.protocol is %q, want %q", ev.Protocol, tc.want)
			}
			if h, want := <-s.headers, strings.Join(tc.offered, ","); h.Get("Sec-WebSocket-Protocol") != want {
				t.Errorf("Node offered %q, want %q", h.Get("Sec-WebSocket-Protocol"), want)
			}
		})
	}
	// The Go server speaks none of what Node offers: the handshake succeeds
	// without a subprotocol (RFC 6455 §4.2.2 allows it), and ws's client
	// fails the connection ("Server sent no subprotocol").
	t.Run("no-common", func(t *testing.T) {
		t.Parallel()
		s := startGoServer(t, &ws.AcceptOptions{Subprotocols: []string{"chat.v1"}, CloseTimeout: closeTimeout}, nil)
		n := nodeClient(t, s.URL, clientOptions{protocols: []string{"other"}})
		c := s.accept(t, n)
		if got := c.Subprotocol(); got != "" {
			t.Errorf("Go chose %q, want none", got)
		}
		ev := n.expect(t, "error")
		if !strings.Contains(ev.Message, "Server sent no subprotocol") {
			t.Errorf("Node's error: %q", ev.Message)
		}
		if ev, _ := n.expectClose(t); ev.Code != 1006 {
			t.Errorf("Node's close event: %d, want 1006", ev.Code)
		}
		err := readErr(t, c)
		t.Logf("Go read: %v", err)
	})
}

// TestSubprotocolGoClient: subprotocol negotiation with a Node server.
func TestSubprotocolGoClient(t *testing.T) {
	cases := []struct {
		name    string
		offered []string // by Go
		query   string   // for the Node server
		want    string
	}{
		{"ws-default-first", []string{"chat.v2", "chat.v1"}, "", "chat.v2"},
		{"server-selects", []string{"chat.v2", "chat.v1"}, "select=chat.v1", "chat.v1"},
		{"server-declines", []string{"chat.v2"}, "select=", ""},
		{"none-offered", nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, u := nodeServer(t, false, tc.query)
			c, resp, err := dial(t, u, dialOptions(pairOptions{protocols: tc.offered}, nil))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := c.Subprotocol(); got != tc.want {
				t.Errorf("Subprotocol() = %q, want %q", got, tc.want)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want {
				t.Errorf("response's Sec-WebSocket-Protocol %q, want %q", got, tc.want)
			}
			ev := n.expect(t, "open")
			if ev.Protocol != tc.want {
				t.Errorf("Node's ws.protocol is %q, want %q", ev.Protocol, tc.want)
			}
			if want := strings.Join(tc.offered, ", "); ev.ReqProtocol != want {
				t.Errorf("Node got Sec-WebSocket-Protocol %q, want %q", ev.ReqProtocol, want)
			}
		})
	}
	// A server that answers a subprotocol we did not offer: Dial must fail
	// (RFC 6455 §4.1, the client's 6th check).
	t.Run("server-picks-unoffered", func(t *testing.T) {
		t.Parallel()
		_, u := nodeServer(t, false, "select=evil")
		c, resp, err := dial(t, u, dialOptions(pairOptions{protocols: []string{"chat.v1"}}, nil))
		var de *ws.DialError
		if !errors.As(err, &de) {
			t.Fatalf("Dial: conn %v, err %v; want a *DialError", c != nil, err)
		}
		if resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("response %v, want the 101", resp)
		}
		t.Logf("Dial: %v", err)
	})
}

// TestNoPermessageDeflate: ws's client offers permessage-deflate by
// default; the Go server must not accept it, and ws must then work
// without it. The Go client never offers it, even when told to through
// DialOptions.Header, to a ws server that has it enabled.
func TestNoPermessageDeflate(t *testing.T) {
	compressible := []byte(strings.Repeat("compress me, compress me ", 4000))
	exchange := func(t *testing.T, c *ws.Conn, n *nodeConn) {
		t.Helper()
		n.command(t, map[string]any{"op": "send", "text": string(compressible)})
		typ, got := readMsg(t, c)
		checkMessage(t, typ, got, ws.MessageText, compressible)
		write(t, c, ws.MessageText, compressible)
		n.expectMessage(t, false, compressible)
		n.command(t, map[string]any{"op": "close", "code": 1000, "reason": "done"})
		if ce := closeError(t, readErr(t, c)); ce.Code != ws.StatusNormalClosure {
			t.Errorf("Go read %v, want 1000", ce)
		}
		if ev, errs := n.expectClose(t); ev.Code != 1000 || len(errs) > 0 {
			t.Errorf("Node saw close %d %q and errors %v", ev.Code, ev.Reason, errs)
		}
	}
	t.Run("GoServer-NodeClient", func(t *testing.T) {
		t.Parallel()
		s := startGoServer(t, &ws.AcceptOptions{CloseTimeout: closeTimeout}, nil)
		n := nodeClient(t, s.URL, clientOptions{})
		c := s.accept(t, n)
		if h := <-s.headers; !strings.Contains(h.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			t.Errorf("ws offered %q, expected permessage-deflate (the test assumes ws's default)", h.Get("Sec-WebSocket-Extensions"))
		}
		if ev := n.expect(t, "open"); ev.Extensions != "" {
			t.Errorf("Node's ws.extensions is %q, want none", ev.Extensions)
		}
		exchange(t, c, n)
	})
	t.Run("NodeServer-GoClient", func(t *testing.T) {
		t.Parallel()
		n, u := nodeServer(t, true, "")
		o := pairOptions{header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}}}
		c, resp, err := dial(t, u, dialOptions(o, nil))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
			t.Errorf("response's Sec-WebSocket-Extensions %q", got)
		}
		ev := n.expect(t, "open")
		if ev.ReqExtensions != "" || ev.Extensions != "" {
			t.Errorf("Node got Sec-WebSocket-Extensions %q and negotiated %q, want none", ev.ReqExtensions, ev.Extensions)
		}
		exchange(t, c, n)
	})
}
