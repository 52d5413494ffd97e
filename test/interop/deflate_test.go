package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/duplexrt/duplex/ws"
)

// permessage-deflate (RFC 7692) against ws's perMessageDeflate, both ways:
// a Go server with ws-client.mjs, and ws-server.mjs (a server started per
// test with the case's options, op "listen") with a Go client.

// deflateCase is one configuration of both sides and the negotiation
// RFC 7692 §7.1 leads to.
type deflateCase struct {
	name string
	node any            // ws's perMessageDeflate option: true or an object
	goC  ws.Compression // ours, on the Go side

	// The response each server sends, as a set of parameters (order does
	// not matter): the Go server's to ws's offer, ws's to ours.
	goServerAnswer, nodeServerAnswer string
}

// nodeOpts returns ws's perMessageDeflate options with threshold 0 (ws then
// compresses every message, even with no context takeover) and kv.
func nodeOpts(kv ...any) map[string]any {
	m := map[string]any{"threshold": 0}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// all is our Threshold -1: compress every message.
var all = ws.Compression{Threshold: -1}

func withGo(f func(c *ws.Compression)) ws.Compression {
	c := all
	f(&c)
	return c
}

const pmd = "permessage-deflate"

// deflateCases: ws's offers are "permessage-deflate; client_max_window_bits"
// plus what its options ask; ours "permessage-deflate; client_max_window_bits"
// plus what ours ask (client_max_window_bits=N for WindowBits N).
var deflateCases = []deflateCase{
	// Both sides' defaults: ws compresses every message (its threshold of
	// 1024 only applies without context takeover), we from 128 bytes.
	// client_max_window_bits without a value in an offer is a hint the
	// server may ignore (§7.1.2.2), and both do.
	{"default", true, ws.Compression{}, pmd, pmd},
	{"threshold-0", nodeOpts(), all, pmd, pmd},

	// ws asks for / grants no context takeover. §7.1.1.1: a server
	// accepting an offer with server_no_context_takeover must include it.
	// §7.1.1.2: client_no_context_takeover in an offer is a hint; a server
	// may include it (then the client must comply) whether offered or not.
	{"node-serverNoContextTakeover", nodeOpts("serverNoContextTakeover", true), all,
		pmd + "; server_no_context_takeover", pmd + "; server_no_context_takeover"},
	{"node-clientNoContextTakeover", nodeOpts("clientNoContextTakeover", true), all,
		pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover"},
	{"node-bothNoContextTakeover", nodeOpts("serverNoContextTakeover", true, "clientNoContextTakeover", true), all,
		pmd + "; server_no_context_takeover; client_no_context_takeover",
		pmd + "; server_no_context_takeover; client_no_context_takeover"},

	// server_max_window_bits=N (§7.1.2.1): in an offer, the server must
	// answer with N or less; a server may also state it unasked.
	{"node-serverMaxWindowBits-9", nodeOpts("serverMaxWindowBits", 9), all,
		pmd + "; server_max_window_bits=9", pmd + "; server_max_window_bits=9"},
	{"node-serverMaxWindowBits-10", nodeOpts("serverMaxWindowBits", 10), all,
		pmd + "; server_max_window_bits=10", pmd + "; server_max_window_bits=10"},
	{"node-serverMaxWindowBits-12", nodeOpts("serverMaxWindowBits", 12), all,
		pmd + "; server_max_window_bits=12", pmd + "; server_max_window_bits=12"},
	{"node-serverMaxWindowBits-15", nodeOpts("serverMaxWindowBits", 15), all,
		pmd + "; server_max_window_bits=15", pmd + "; server_max_window_bits=15"},

	// client_max_window_bits=N (§7.1.2.2): in an offer, the client can
	// bound its window to N; the server may answer N or less, or omit it
	// (the client may then use up to N). A server may only bound the
	// client's window if the offer had client_max_window_bits (ours
	// always has it).
	{"node-clientMaxWindowBits-9", nodeOpts("clientMaxWindowBits", 9), all,
		pmd + "; client_max_window_bits=9", pmd + "; client_max_window_bits=9"},
	{"node-clientMaxWindowBits-10", nodeOpts("clientMaxWindowBits", 10), all,
		pmd + "; client_max_window_bits=10", pmd + "; client_max_window_bits=10"},
	{"node-clientMaxWindowBits-12", nodeOpts("clientMaxWindowBits", 12), all,
		pmd + "; client_max_window_bits=12", pmd + "; client_max_window_bits=12"},
	{"node-clientMaxWindowBits-15", nodeOpts("clientMaxWindowBits", 15), all,
		pmd + "; client_max_window_bits=15", pmd + "; client_max_window_bits=15"},
	{"node-clientMaxWindowBits-true", nodeOpts("clientMaxWindowBits", true), all, pmd, pmd},

	// Our options against ws's defaults (threshold 0).
	{"go-NoContextTakeover", nodeOpts(), withGo(func(c *ws.Compression) { c.NoContextTakeover = true }),
		pmd + "; server_no_context_takeover", pmd + "; client_no_context_takeover"},
	{"go-RequestPeerNoContextTakeover", nodeOpts(), withGo(func(c *ws.Compression) { c.RequestPeerNoContextTakeover = true }),
		pmd + "; client_no_context_takeover", pmd + "; server_no_context_takeover"},
	{"go-WindowBits-9", nodeOpts(), withGo(func(c *ws.Compression) { c.WindowBits = 9 }),
		pmd + "; server_max_window_bits=9", pmd + "; client_max_window_bits=9"},
	{"go-PeerWindowBits-10", nodeOpts(), withGo(func(c *ws.Compression) { c.PeerWindowBits = 10 }),
		pmd + "; client_max_window_bits=10", pmd + "; server_max_window_bits=10"},
	{"go-NoContextTakeover-WindowBits-9", nodeOpts(), withGo(func(c *ws.Compression) { c.NoContextTakeover, c.WindowBits = true, 9 }),
		pmd + "; server_no_context_takeover; server_max_window_bits=9",
		pmd + "; client_no_context_takeover; client_max_window_bits=9"},

	{"node-serverMaxWindowBits-8", nodeOpts("serverMaxWindowBits", 8), all,
		pmd + "; server_max_window_bits=8", pmd + "; server_max_window_bits=8"},
	{"node-clientMaxWindowBits-8", nodeOpts("clientMaxWindowBits", 8), all,
		pmd + "; client_max_window_bits=8", pmd + "; client_max_window_bits=8"},
	{"go-WindowBits-8", nodeOpts(), withGo(func(c *ws.Compression) { c.WindowBits = 8 }),
		pmd + "; server_max_window_bits=8", pmd + "; client_max_window_bits=8"},
	{"go-PeerWindowBits-8", nodeOpts(), withGo(func(c *ws.Compression) { c.PeerWindowBits = 8 }),
		pmd + "; client_max_window_bits=8", pmd + "; server_max_window_bits=8"},

	// Both sides ask. The smaller window wins (§7.1.2).
	{"node-serverMaxWindowBits-12/go-WindowBits-9", nodeOpts("serverMaxWindowBits", 12), withGo(func(c *ws.Compression) { c.WindowBits = 9 }),
		pmd + "; server_max_window_bits=9", pmd + "; server_max_window_bits=12; client_max_window_bits=9"},
	{"node-clientMaxWindowBits-12/go-PeerWindowBits-10", nodeOpts("clientMaxWindowBits", 12), withGo(func(c *ws.Compression) { c.PeerWindowBits = 10 }),
		pmd + "; client_max_window_bits=10", pmd + "; server_max_window_bits=10; client_max_window_bits=12"},
	{"node-serverMaxWindowBits-10/go-PeerWindowBits-9", nodeOpts("serverMaxWindowBits", 10), withGo(func(c *ws.Compression) { c.PeerWindowBits = 9 }),
		// As a server, ws refuses the handshake (400) when asked for a
		// window below its serverMaxWindowBits: Go server only.
		pmd + "; server_max_window_bits=10; client_max_window_bits=9", ""},
	// ws offers no client_max_window_bits at all (clientMaxWindowBits:
	// false): the Go server must not bound ws's window (§7.1.2.2), even
	// with PeerWindowBits set. As a server, ws then answers without it.
	{"node-clientMaxWindowBits-false/go-PeerWindowBits-10", nodeOpts("clientMaxWindowBits", false), withGo(func(c *ws.Compression) { c.PeerWindowBits = 10 }),
		pmd, pmd + "; server_max_window_bits=10"},
}

// TestDeflate runs every case in both directions: negotiation, then a long
// sequence of messages echoed by ws, fragmented messages each way, and a
// close.
func TestDeflate(t *testing.T) {
	for _, dc := range deflateCases {
		t.Run(dc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("GoServer-NodeClient", func(t *testing.T) {
				t.Parallel()
				p := connectDeflateGoServer(t, dc, 4<<20)
				checkNegotiation(t, p, dc.goServerAnswer)
				exerciseDeflate(t, p)
			})
			if dc.nodeServerAnswer == "" {
				return
			}
			t.Run("NodeServer-GoClient", func(t *testing.T) {
				t.Parallel()
				p := connectDeflateNodeServer(t, dc, 4<<20)
				checkNegotiation(t, p, dc.nodeServerAnswer)
				exerciseDeflate(t, p)
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Connections

// deflatePair is a Go side and a Node side with compression configured.
type deflatePair struct {
	c      *ws.Conn
	n      *nodeConn
	wire   *countConn // the Go side's TCP connection
	offer  string     // the client's Sec-WebSocket-Extensions
	answer string     // the server's
	server bool       // the Go side is the server
}

// countConn counts the bytes read from the peer and records the frames
// written to it.
type countConn struct {
	*tapConn
	read atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.tapConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

type countListener struct {
	net.Listener
	conns chan *countConn
}

func (l *countListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countConn{tapConn: &tapConn{Conn: nc}}
	select {
	case l.conns <- cc:
	default:
	}
	return cc, nil
}

// connectDeflateGoServer starts a Go server with dc.goC and has
// ws-client.mjs connect to it with dc.node, echoing.
func connectDeflateGoServer(t *testing.T, dc deflateCase, readLimit int64) *deflatePair {
	t.Helper()
	type accepted struct {
		c     *ws.Conn
		offer string
		err   error
	}
	ch := make(chan accepted, 1)
	release := make(chan struct{})
	comp := dc.goC
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, &ws.AcceptOptions{Compression: &comp, ReadLimit: readLimit, CloseTimeout: closeTimeout})
		ch <- accepted{c, r.Header.Get("Sec-WebSocket-Extensions"), err}
		if err == nil {
			<-release
		}
	}))
	conns := make(chan *countConn, 1)
	hs.Listener = &countListener{Listener: hs.Listener, conns: conns}
	hs.Start()
	t.Cleanup(func() {
		close(release)
		hs.Close()
	})

	h := getHub(t, "ws-client.mjs")
	n := h.newConn(t)
	h.command(t, map[string]any{"op": "connect", "conn": n.id, "url": "ws" + strings.TrimPrefix(hs.URL, "http"),
		"deflate": dc.node, "echo": true})
	var a accepted
	select {
	case a = <-ch:
	case <-time.After(opTimeout):
		ev, _ := n.next()
		t.Fatalf("no connection within %v; node's first event: %v", opTimeout, ev)
	}
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { _ = a.c.CloseNow() })
	p := &deflatePair{c: a.c, n: n, wire: <-conns, offer: a.offer, answer: a.c.Extensions(), server: true}
	if ev := n.expect(t, "open"); ev.Extensions != pmd {
		t.Errorf("Node's ws.extensions is %q, want %q", ev.Extensions, pmd)
	}
	return p
}

// connectDeflateNodeServer starts a ws server with dc.node, echoing, and
// dials it with dc.goC.
func connectDeflateNodeServer(t *testing.T, dc deflateCase, readLimit int64) *deflatePair {
	t.Helper()
	h := getHub(t, "ws-server.mjs")
	n := h.newConn(t)
	h.command(t, map[string]any{"op": "listen", "conn": n.id, "deflate": dc.node})
	t.Cleanup(func() {
		h.writeMu.Lock()
		defer h.writeMu.Unlock()
		_, _ = h.stdin.Write(fmt.Appendf(nil, `{"conn":%d,"op":"unlisten"}`+"\n", n.id))
	})
	port := n.expect(t, "listening").Port
	p := &deflatePair{n: n}
	comp := dc.goC
	opts := &ws.DialOptions{
		Compression:  &comp,
		ReadLimit:    readLimit,
		CloseTimeout: closeTimeout,
		Proxy:        func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			p.wire = &countConn{tapConn: &tapConn{Conn: nc}}
			return p.wire, nil
		},
	}
	c, resp, err := dial(t, fmt.Sprintf("ws://127.0.0.1:%d/?conn=%d&echo=1", port, n.id), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	p.c = c
	p.answer = resp.Header.Get("Sec-WebSocket-Extensions")
	ev := n.expect(t, "open")
	p.offer = ev.ReqExtensions
	if ev.Extensions != pmd {
		t.Errorf("Node's ws.extensions is %q, want %q", ev.Extensions, pmd)
	}
	return p
}

// ---------------------------------------------------------------------------
// Negotiation

// extParams returns an extension element's name and its parameters
// sorted, so that elements can be compared whatever their order.
func extParams(s string) string {
	parts := strings.Split(s, ";")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	slices.Sort(parts[1:])
	return strings.Join(parts, "; ")
}

// checkNegotiation checks that the server answered want, and that both
// sides use it: our Conn.Extensions and ws's parameters.
func checkNegotiation(t *testing.T, p *deflatePair, want string) {
	t.Helper()
	t.Logf("offer %q, answer %q", p.offer, p.answer)
	if extParams(p.answer) != extParams(want) {
		t.Errorf("the server answered %q, want %q", p.answer, want)
	}
	if got := p.c.Extensions(); extParams(got) != extParams(want) {
		t.Errorf("Go's Extensions() = %q, want %q", got, want)
	}
	p.n.command(t, map[string]any{"op": "deflate"})
	if got := p.n.expect(t, "deflate").Extensions; extParams(got) != extParams(want) {
		t.Errorf("ws settled on %q, want %q", got, want)
	}
}

// ---------------------------------------------------------------------------
// Messages

type deflateMsg struct {
	name string
	typ  ws.MessageType
	data []byte
	// squeezable: deflate must shrink it to under a quarter whatever the
	// window (checked on the wire each way).
	squeezable bool
}

// deflateMessages is a sequence in which later messages repeat parts of
// earlier ones at various distances, so that compressors taking over
// context refer back into earlier messages, up to the edge of a 32 KiB
// window, and a side that gets its history wrong is found out.
var deflateMessages = sync.OnceValue(func() []deflateMsg {
	phrase := "the quick brown fox jumps over the lazy dog — ünïcødé — 日本語 — 😀 "
	rep := []byte(strings.Repeat(phrase, 10_000/len(phrase)+1))
	r64 := binaryPayload(65536)
	tail := r64[len(r64)-32000:] // 32,000 bytes back from the end of r64
	period := binaryPayload(1000)
	periodic := bytes.Repeat(period, 256<<10/1000+1)[:256<<10]
	// Mostly compressible: random data costs much CPU under -race.
	big := append(textPayload(1<<20-100_000), binaryPayload(100_000)...)
	msgs := []deflateMsg{
		{"short", ws.MessageText, []byte("hi"), false},
		{"empty-text", ws.MessageText, nil, false},
		{"empty-binary", ws.MessageBinary, nil, false},
		{"non-ASCII", ws.MessageText, []byte("héllo wörld — Καλημέρα — 日本語 — 😀🎉"), false},
		{"text-edges", ws.MessageText, []byte("\u0000\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff"), false},
		{"repetitive-10k", ws.MessageText, rep, true},
		{"repetitive-10k-again", ws.MessageText, rep, true},
		{"random-1000", ws.MessageBinary, binaryPayload(1000), false},
		{"random-125", ws.MessageBinary, binaryPayload(125), false},
		{"random-126", ws.MessageBinary, binaryPayload(126), false},
		{"random-127", ws.MessageBinary, binaryPayload(127), false},
		{"random-1000-again", ws.MessageBinary, binaryPayload(1000), false},
		{"random-64k", ws.MessageBinary, r64, false},
		// Each byte of this one is 32,000 bytes back, in the previous message.
		{"tail-of-random-64k", ws.MessageBinary, tail, false},
		// 32,000 back again, at the start of the previous message.
		{"head-of-tail", ws.MessageBinary, tail[:700], false},
		{"text-100k", ws.MessageText, textPayload(100_000), true},
		{"periodic-1000-256k", ws.MessageBinary, periodic, false},
		{"random-256k", ws.MessageBinary, binaryPayload(256 << 10), false},
		{"text-256k", ws.MessageText, textPayload(256 << 10), true},
		{"1MiB", ws.MessageBinary, big, false},
		{"phrase-after-1MiB", ws.MessageText, []byte(phrase + phrase), false},
	}
	for i := range 10 {
		m := deflateMsg{name: fmt.Sprintf("small-%d", i), typ: ws.MessageText,
			data: fmt.Appendf(nil, "message %d: %s", i, strings.Repeat(phrase, i))}
		if i%3 == 2 {
			m.typ, m.data = ws.MessageBinary, binaryPayload(i*97)
		}
		msgs = append(msgs, m)
	}
	return msgs
})

// randomText returns n bytes of valid UTF-8: runes of 1 to 4 bytes in a
// random order, so that deflate shrinks it only a little.
func randomText(n int) []byte {
	b := make([]byte, 0, n)
	for _, r := range binaryPayload(n) {
		c := textRunes[int(r)%len(textRunes)]
		if len(b)+utf8.RuneLen(c) > n {
			break
		}
		b = utf8.AppendRune(b, c)
	}
	for len(b) < n {
		b = append(b, 'z')
	}
	return b
}

// dataFrames returns the data frames the Go side wrote since frame from.
func dataFrames(p *deflatePair, from int) []frameInfo {
	var out []frameInfo
	for _, f := range p.wire.Frames()[from:] {
		if f.op&0x8 == 0 {
			out = append(out, f)
		}
	}
	return out
}

func frameBytes(frames []frameInfo) int64 {
	var n int64
	for _, f := range frames {
		n += f.len
	}
	return n
}

// exerciseDeflate sends deflateMessages from Go, each echoed by ws and
// compared both in ws (length and SHA-256) and in Go; then fragmented
// compressed messages from ws and from Go; then closes.
func exerciseDeflate(t *testing.T, p *deflatePair) {
	msgs := deflateMessages()
	for _, m := range msgs {
		beforeFrames, beforeRead := len(p.wire.Frames()), p.wire.read.Load()
		write(t, p.c, m.typ, m.data)
		p.n.expectMessage(t, m.typ == ws.MessageBinary, m.data)
		typ, got := readMsg(t, p.c)
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Logf("after message %s", m.name)
			checkMessage(t, typ, got, m.typ, m.data)
		}
		if m.squeezable {
			if sent := frameBytes(dataFrames(p, beforeFrames)); sent > int64(len(m.data)/4) {
				t.Errorf("%s: Go sent %d bytes on the wire for %d, want it compressed", m.name, sent, len(m.data))
			}
			if recvd := p.wire.read.Load() - beforeRead; recvd > int64(len(m.data)/4) {
				t.Errorf("%s: Go read %d bytes from the wire for ws's echo of %d, want it compressed", m.name, recvd, len(m.data))
			}
		}
	}

	// ws sends messages in compressed fragments (send with fin: false and
	// compress: true), after one sent uncompressed, which must not enter
	// either side's history (RFC 7692 §7.2.3.1: only compressed messages
	// pass through the compressor).
	plain := binaryPayload(20_000)
	p.n.command(t, map[string]any{"op": "send", "data": plain, "binary": true, "compress": false})
	typ, got := readMsg(t, p.c)
	checkMessage(t, typ, got, ws.MessageBinary, plain)
	// ws's compressor refers this one to the last message it compressed
	// (the echo of the last of deflateMessages), not to plain.
	again := msgs[len(msgs)-1]
	p.n.send(t, again.data, again.typ == ws.MessageBinary, true)
	typ, got = readMsg(t, p.c)
	checkMessage(t, typ, got, again.typ, again.data)
	text := textPayload(50_000) // cuts below fall inside runes
	cuts := []int{0, 1, 7001, 7001, 20_000, 33_333, 49_999, 50_000}
	bin := append(slices.Clone(plain), bytes.Repeat([]byte("fragment "), 20_000)...)
	for _, msg := range []struct {
		typ  ws.MessageType
		data []byte
		cuts []int
	}{
		{ws.MessageText, text, cuts},
		{ws.MessageBinary, bin, []int{0, 60_000, 120_000, len(bin)}},
	} {
		bin := msg.typ == ws.MessageBinary
		for i := 1; i < len(msg.cuts); i++ {
			p.n.command(t, map[string]any{"op": "send", "data": msg.data[msg.cuts[i-1]:msg.cuts[i]],
				"binary": bin, "fin": i == len(msg.cuts)-1, "compress": true})
		}
		typ, got := readMsg(t, p.c)
		checkMessage(t, typ, got, msg.typ, msg.data)
		// Back to ws, which echoes it again.
		write(t, p.c, typ, got)
		p.n.expectMessage(t, bin, msg.data)
		typ, got = readMsg(t, p.c)
		checkMessage(t, typ, got, msg.typ, msg.data)
	}

	// Go streams compressed messages through Writer: text in 1000-byte
	// writes that cut runes, then binary in one large write.
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	for _, msg := range []struct {
		typ    ws.MessageType
		data   []byte
		pieces int
	}{
		{ws.MessageText, randomText(100_000), 1000},
		{ws.MessageBinary, append(binaryPayload(60_000), bytes.Repeat([]byte("streamed "), 10_000)...), 1 << 30},
		{ws.MessageText, nil, 1},
	} {
		before := len(p.wire.Frames())
		w, err := p.c.Writer(ctx, msg.typ)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(msg.data); i += msg.pieces {
			if _, err := w.Write(msg.data[i:min(i+msg.pieces, len(msg.data))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		bin := msg.typ == ws.MessageBinary
		p.n.expectMessage(t, bin, msg.data)
		typ, got := readMsg(t, p.c)
		checkMessage(t, typ, got, msg.typ, msg.data)
		frames := dataFrames(p, before)
		if len(msg.data) > 0 && (len(frames) < 2 || frameBytes(frames) >= int64(len(msg.data))) {
			t.Errorf("Writer sent %d bytes as %v; want several frames, compressed", len(msg.data), frames)
		}
	}

	// Both histories still agree after all that.
	last := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog — ünïcødé — 日本語 — 😀 ", 3))
	write(t, p.c, ws.MessageText, last)
	p.n.expectMessage(t, false, last)
	typ, got = readMsg(t, p.c)
	checkMessage(t, typ, got, ws.MessageText, last)

	if err := p.c.Close(ws.StatusNormalClosure, "done"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if ev, errs := p.n.expectClose(t); ev.Code != 1000 || len(errs) > 0 {
		t.Errorf("Node saw close %d %q, errors %v; want 1000", ev.Code, ev.Reason, errs)
	}
}

// ---------------------------------------------------------------------------
// Compression bomb

// TestDeflateBomb: ws sends a message that inflates to exactly the read
// limit (read), then 50 MiB of zeros, about 50 KB compressed; the Go side
// (ReadLimit 1 MiB) must fail the connection with 1009 as soon as the
// inflated size passes the limit, not after inflating 50 MiB.
func TestDeflateBomb(t *testing.T) {
	dc := deflateCase{node: nodeOpts(), goC: ws.Compression{}}
	for _, d := range []struct {
		name    string
		connect func(*testing.T, deflateCase, int64) *deflatePair
	}{
		{"GoServer-NodeClient", connectDeflateGoServer},
		{"NodeServer-GoClient", connectDeflateNodeServer},
	} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			p := d.connect(t, dc, ws.DefaultReadLimit)
			p.n.command(t, map[string]any{"op": "echo", "on": false})

			p.n.command(t, map[string]any{"op": "sendFill", "len": ws.DefaultReadLimit, "binary": true})
			typ, got := readMsg(t, p.c)
			checkMessage(t, typ, got, ws.MessageBinary, make([]byte, ws.DefaultReadLimit))

			before := p.wire.read.Load()
			start := time.Now()
			p.n.command(t, map[string]any{"op": "sendFill", "len": 50 << 20, "binary": true})
			err := readErr(t, p.c)
			el := time.Since(start)
			if !errors.Is(err, ws.ErrMessageTooBig) {
				t.Errorf("Read: %v, want ErrMessageTooBig", err)
			}
			t.Logf("Read failed after %v (including ws's compressing), %d bytes read from the wire: %v",
				el.Round(time.Millisecond), p.wire.read.Load()-before, err)
			if el > 3*time.Second {
				t.Errorf("the bomb took %v to be refused", el)
			}
			if ev, _ := p.n.expectClose(t); ev.Code != 1009 {
				t.Errorf("Node saw close %d %q, want 1009", ev.Code, ev.Reason)
			}
		})
	}
}
