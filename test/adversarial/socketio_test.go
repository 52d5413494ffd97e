package adversarial

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// sioServer is a Socket.IO server at /socket.io/ as duplex serve makes
// it: MaxPayload 1,000,000, an "echo" event acknowledged with its
// arguments.
type sioServer struct {
	*socketio.Server
	addr string
	eio  *eioServer // for its HTTP helpers
}

func startSIO(t *testing.T, o socketio.ServerOptions) *sioServer {
	t.Helper()
	if o.Engine == nil {
		o.Engine = &engineio.ServerOptions{}
	}
	o.Engine.MaxPayload = 1_000_000
	o.Engine.WebSocket = &ws.AcceptOptions{CloseTimeout: 500 * time.Millisecond}
	srv, err := socketio.NewServer(&o)
	must(t, err)
	srv.Of("/").OnConnection(func(s *socketio.Socket) {
		s.On("echo", func(s *socketio.Socket, e *socketio.Event) {
			if e.WantsAck() {
				_ = e.Ack(e.Values()...)
			}
		})
	})
	ts := startHTTP(t, srv, 2*time.Second)
	t.Cleanup(func() { _ = srv.Close() })
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &sioServer{Server: srv, addr: addrOf(ts), eio: &eioServer{addr: addrOf(ts), base: ts.URL + "/socket.io/", client: &http.Client{Transport: tr, Timeout: step}}}
}

// connect opens a WebSocket session and joins namespace "/".
func (ss *sioServer) connect(t *testing.T) *rawConn {
	t.Helper()
	c := dialWSRaw(t, ss.addr, "/socket.io/?EIO=4&transport=websocket")
	if open := c.readText(step); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	c.write(appendFrame(nil, true, false, opText, []byte("40"), -1))
	if got := c.readText(step); !strings.HasPrefix(got, `40{"sid":`) {
		t.Fatalf("CONNECT answered %q", got)
	}
	return c
}

// echoWorks checks that the server still answers: a new client's echo
// comes back.
func (ss *sioServer) echoWorks(t *testing.T) {
	t.Helper()
	c := ss.connect(t)
	c.write(appendFrame(nil, true, false, opText, []byte(`421["echo","still here"]`), -1))
	if got := c.readText(step); got != `431["still here"]` {
		t.Fatalf("echo answered %q", got)
	}
	_ = c.nc.Close()
}

// TestSIODeepNesting: event arguments nested 100,000 deep, balanced or
// not, arrays or objects, over WebSocket and long-polling: the server
// refuses them (JSON depth limit, 32) and closes the connection without a
// stack overflow or a hang, and goes on serving.
func TestSIODeepNesting(t *testing.T) {
	const depth = 100_000
	ss := startSIO(t, socketio.ServerOptions{})
	for _, tc := range []struct{ name, packet string }{
		{"arrays-open", `42["echo",` + strings.Repeat("[", depth)},
		{"arrays-balanced", `421["echo",` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `]`},
		{"objects", `42["echo",` + strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + `]`},
		{"event-name", `42[` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `]`},
		{"connect-auth", `40/x,` + strings.Repeat("[", depth)},
	} {
		t.Run("websocket/"+tc.name, func(t *testing.T) {
			c := ss.connect(t)
			start := time.Now()
			c.write(appendFrame(nil, true, false, opText, []byte(tc.packet), -1))
			c.expectClosed(step)
			t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("polling", func(t *testing.T) {
		sid := ss.eio.handshake(t)
		q := "EIO=4&transport=polling&sid=" + sid
		if status, body, _ := ss.eio.do(t, "POST", q, "40"); status != 200 {
			t.Fatalf("CONNECT: %d %q", status, body)
		}
		if status, body, _ := ss.eio.do(t, "POST", q, "4"+`42["echo",`+strings.Repeat("[", depth)); status != 200 {
			t.Fatalf("POST: %d %q", status, body)
		}
		// The session is closing: its next poll gets the close packet
		// (a client that never polls again is let go after PingTimeout).
		if status, body, _ := ss.eio.do(t, "GET", q, ""); status != 200 || !strings.HasSuffix(body, "1") {
			t.Errorf("poll: %d %q, want the close packet", status, body)
		}
		eventually(t, "the session closed", func() bool { return ss.Engine().Session(sid) == nil })
	})
	ss.echoWorks(t)
}

// TestSIOAttachmentFlood: binary packets that announce absurd numbers of
// attachments (socket.io-parser CVE-2026-33151: 1e9 announced, nothing
// reserved for them), more than MaxAttachments, or attachments that no
// packet announced: the server closes the connection at once, allocating
// nothing for the announced count.
func TestSIOAttachmentFlood(t *testing.T) {
	ss := startSIO(t, socketio.ServerOptions{})
	ph := `{"_placeholder":true,"num":0}`
	bin := appendFrame(nil, true, false, opBin, []byte("data"), -1)
	for _, tc := range []struct {
		name  string
		send  []byte
		after int // binary frames sent after the packet
	}{
		{"1e9-announced", appendFrame(nil, true, false, opText, []byte(`451000000000-["echo",`+ph+`]`), -1), 0},
		{"2^63-announced", appendFrame(nil, true, false, opText, []byte(`459223372036854775808-["echo",`+ph+`]`), -1), 0},
		{"11-announced", appendFrame(nil, true, false, opText, []byte(`4511-["echo",`+ph+`]`), -1), 0},
		{"10-then-a-flood", appendFrame(nil, true, false, opText, []byte(`4510-["echo",`+ph+`]`), -1), 1000},
		{"unannounced", nil, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ss.connect(t)
			msg := tc.send
			for range tc.after {
				msg = append(msg, bin...)
			}
			allocated, _ := measure(func() {
				c.writeAsync(msg)
				c.expectClosed(step)
			})
			t.Logf("%d KiB allocated", allocated>>10)
			if allocated > 1<<20 {
				t.Errorf("%d KiB allocated for a refused packet", allocated>>10)
			}
		})
	}
	ss.echoWorks(t)
}

// TestSIONamespaceFlood: one connection sends CONNECTs to 100,000
// namespace names that a dynamic matcher accepts. With the defaults, it
// joins MaxNamespacesPerConnection (100, "/" included); the other CONNECTs
// are refused with "Too many namespaces on this connection (at most
// 100)" and make no namespace. With that limit lifted, only
// MaxDynamicNamespaces (here 1,000) namespaces are made, and the other
// CONNECTs are refused with "Invalid namespace". Either way the server's
// heap stays bounded.
func TestSIONamespaceFlood(t *testing.T) {
	const names = 100_000
	for _, tc := range []struct {
		name    string
		opts    socketio.ServerOptions
		joined  int    // besides "/"
		refusal string // the CONNECT_ERROR's payload
	}{
		{"per-connection", socketio.ServerOptions{MaxDynamicNamespaces: 1_000},
			socketio.DefaultMaxNamespacesPerConnection - 1, `{"message":"Too many namespaces on this connection (at most 100)"}`},
		{"dynamic", socketio.ServerOptions{MaxDynamicNamespaces: 1_000, MaxNamespacesPerConnection: -1},
			1_000, `{"message":"Invalid namespace"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := startSIO(t, tc.opts)
			var made atomic.Int64
			ss.OfFunc(func(name string) bool { return strings.HasPrefix(name, "/flood-") }, func(*socketio.Namespace) { made.Add(1) })
			c := ss.connect(t)
			var flood []byte
			for i := range names {
				flood = appendFrame(flood, true, false, opText, fmt.Appendf(nil, "40/flood-%d,", i), -1)
			}
			var joined, refused int
			_, grown := measure(func() {
				c.writeAsync(flood)
				for joined+refused < names {
					m := c.readText(step)
					switch {
					case strings.HasPrefix(m, "40/flood-"):
						joined++
					case strings.HasPrefix(m, "44/flood-") && strings.HasSuffix(m, ","+tc.refusal):
						refused++
					default:
						t.Fatalf("unexpected %q", m)
					}
				}
			})
			t.Logf("%d joined, %d refused; heap in use grew %d KiB", joined, refused, grown>>10)
			if made.Load() != int64(tc.joined) || joined != tc.joined {
				t.Errorf("%d namespaces made, %d joined, want %d", made.Load(), joined, tc.joined)
			}
			// A namespace and a socket cost some KiB: 1,000 of them, not
			// 100,000.
			if grown > 32<<20 {
				t.Errorf("heap in use grew by %d MiB", grown>>20)
			}
			_ = c.nc.Close()
			ss.echoWorks(t)
		})
	}
}

// TestSIOInvalidUTF8: event names and arguments that are not UTF-8 never
// reach a handler: over WebSocket package ws fails the connection with
// 1007, over long-polling Engine.IO refuses the payload with 400 and
// closes the session.
func TestSIOInvalidUTF8(t *testing.T) {
	ss := startSIO(t, socketio.ServerOptions{})
	for _, p := range []string{"42[\"\xff\"]", "42[\"echo\",\"\xc0\xaf\"]", "421[\"ech\xed\xa0\x80o\"]"} {
		t.Run(fmt.Sprintf("websocket/%q", p), func(t *testing.T) {
			c := ss.connect(t)
			c.write(appendFrame(nil, true, false, opText, []byte(p), -1))
			if code := c.expectClosed(step); code != ws.StatusInvalidPayloadData {
				t.Errorf("close code %d, want 1007", code)
			}
		})
		t.Run(fmt.Sprintf("polling/%q", p), func(t *testing.T) {
			sid := ss.eio.handshake(t)
			q := "EIO=4&transport=polling&sid=" + sid
			if status, _, _ := ss.eio.do(t, "POST", q, "40"); status != 200 {
				t.Fatalf("CONNECT: %d", status)
			}
			if status, body, _ := ss.eio.do(t, "POST", q, "4"+p); status != 400 {
				t.Errorf("POST: %d %q, want 400", status, body)
			}
			eventually(t, "the session closed", func() bool { return ss.Engine().Session(sid) == nil })
		})
	}
	ss.echoWorks(t)
}
