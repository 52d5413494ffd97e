package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// Interop of package engineio with the npm engine.io (server) and
// engine.io-client packages, 6.6.x: Node clients against a Go server
// (eio-client.mjs) and Go clients against a Node server (eio-server.mjs),
// over long-polling, WebSocket, and long-polling upgraded to WebSocket.

// eioLargeSize is a message close to maxPayload (1,000,000 bytes): over
// long-polling its payload, "4" and the data (or "b" and base64 for
// binary, which is then smaller), must fit in one request.
const eioLargeSize = 700_000

// requireEngineIO skips the test, or fails it when CI=true, if node or the
// npm engine.io packages are missing. It returns node's path.
func requireEngineIO(t *testing.T) string {
	t.Helper()
	var msg string
	node, err := exec.LookPath("node")
	if err != nil {
		msg = "node not found in PATH"
	} else {
		for _, p := range []string{"engine.io", "engine.io-client"} {
			if _, err := os.Stat("node_modules/" + p + "/package.json"); err != nil {
				msg = "node_modules/" + p + " is missing"
			}
		}
	}
	if msg != "" {
		msg += ": run npm ci in test/interop"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// eioEvent is one line that eio-client.mjs or eio-server.mjs reports.
type eioEvent struct {
	Ev          string `json:"ev"`
	Port        int    `json:"port"`
	SID         string `json:"sid"`
	Transport   string `json:"transport"`
	Binary      bool   `json:"binary"`
	Len         int    `json:"len"`
	SHA256      string `json:"sha256"`
	Text        string `json:"text"`
	Reason      string `json:"reason"`
	Description string `json:"description"`
	Message     string `json:"message"`
}

// nodeProc is a running eio-*.mjs script.
type nodeProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan eioEvent
	stderr lockedBuffer
}

func startNodeScript(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	node := requireEngineIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	p := &nodeProc{cmd: exec.CommandContext(ctx, node, append([]string{script}, args...)...), events: make(chan eioEvent, 64)}
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = time.Second
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p.stdin = stdin
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev eioEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = eioEvent{Ev: "unparsable", Message: sc.Text()}
			}
			p.events <- ev
		}
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		// Drain, so that the reader ends.
		go func() {
			for range p.events {
			}
		}()
		select {
		case <-readDone:
		case <-time.After(3 * time.Second):
			cancel()
			<-readDone
		}
		_ = p.cmd.Wait()
		cancel()
		if s := p.stderr.String(); s != "" {
			t.Logf("%s stderr:\n%s", script, s)
		}
	})
	return p
}

// expect returns the next event of kind, logging the ones it skips.
func (p *nodeProc) expect(t *testing.T, kind string) eioEvent {
	t.Helper()
	deadline := time.After(opTimeout)
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				t.Fatalf("node ended before a %q event; stderr: %s", kind, p.stderr.String())
			}
			if ev.Ev == kind {
				return ev
			}
			t.Logf("node: %+v (waiting for %q)", ev, kind)
		case <-deadline:
			t.Fatalf("no %q event from node within %v; stderr: %s", kind, opTimeout, p.stderr.String())
		}
	}
}

func (p *nodeProc) command(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("writing to node: %v; stderr: %s", err, p.stderr.String())
	}
}

// fillPayload is eio-client.mjs's sendFill: "x"s, or bytes i & 0xff.
func fillPayload(n int, binary bool) []byte {
	b := make([]byte, n)
	for i := range b {
		if binary {
			b[i] = byte(i)
		} else {
			b[i] = 'x'
		}
	}
	return b
}

type eioMessage struct {
	binary bool
	data   []byte
}

func eioMessages() []eioMessage {
	return []eioMessage{
		{false, []byte("hello")},
		{false, []byte("héllo wörld — 日本語 — 😀")},
		{true, []byte{1, 2, 3, 4}},
		{true, []byte{0xff, 0xfe, 0x00}},
		{false, fillPayload(eioLargeSize, false)},
		{true, fillPayload(eioLargeSize, true)},
	}
}

var eioModes = []struct {
	name       string
	transports []string
	final      string
}{
	{"polling-upgrade", []string{"polling", "websocket"}, "websocket"},
	{"websocket", []string{"websocket"}, "websocket"},
	{"polling", []string{"polling"}, "polling"},
}

// TestEngineIONodeClient connects the npm engine.io-client to a Go
// engineio server.
func TestEngineIONodeClient(t *testing.T) {
	requireEngineIO(t)
	opened := make(chan *engineio.Session, 8)
	closed := make(chan engineio.CloseReason, 8)
	srv, err := engineio.NewServer(&engineio.ServerOptions{
		PingInterval: 200 * time.Millisecond,
		PingTimeout:  1500 * time.Millisecond, // room for a loaded CI machine
		Handler: engineio.HandlerFuncs{
			Open: func(s *engineio.Session) { opened <- s },
			Message: func(s *engineio.Session, typ engineio.MessageType, data []byte) {
				_ = s.Send(typ, data)
			},
			Close: func(s *engineio.Session, reason engineio.CloseReason, err error) { closed <- reason },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		_ = srv.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	for _, m := range eioModes {
		t.Run(m.name, func(t *testing.T) {
			tr, _ := json.Marshal(m.transports)
			p := startNodeScript(t, "eio-client.mjs", hs.URL, string(tr))
			open := p.expect(t, "open")
			if open.Transport != m.transports[0] {
				t.Errorf("opened over %q", open.Transport)
			}
			var s *engineio.Session
			select {
			case s = <-opened:
			case <-time.After(opTimeout):
				t.Fatal("no session")
			}
			if s.ID() != open.SID {
				t.Errorf("node's sid %q, the server's %q", open.SID, s.ID())
			}
			if m.name == "polling-upgrade" {
				if ev := p.expect(t, "upgrade"); ev.Transport != "websocket" {
					t.Errorf("upgraded to %q", ev.Transport)
				}
			}
			for _, msg := range eioMessages() {
				if len(msg.data) > 1000 {
					p.command(t, map[string]any{"op": "sendFill", "len": len(msg.data), "binary": msg.binary})
				} else if msg.binary {
					p.command(t, map[string]any{"op": "send", "data": msg.data})
				} else {
					p.command(t, map[string]any{"op": "send", "text": string(msg.data)})
				}
				ev := p.expect(t, "message")
				if ev.Binary != msg.binary || ev.Len != len(msg.data) || ev.SHA256 != sha(msg.data) {
					t.Errorf("echo: binary=%v %d bytes sha %s; sent binary=%v %d bytes", ev.Binary, ev.Len, ev.SHA256, msg.binary, len(msg.data))
				}
			}
			if got := s.Transport(); got != m.final {
				t.Errorf("session transport %q, want %q", got, m.final)
			}
			// A few heartbeats, answered by node.
			time.Sleep(500 * time.Millisecond)
			_ = s.SendText("still here")
			if ev := p.expect(t, "message"); ev.Text != "still here" {
				t.Errorf("after heartbeats: %+v", ev)
			}
			p.command(t, map[string]any{"op": "close"})
			select {
			case r := <-closed:
				if r != engineio.ReasonTransportClose {
					t.Errorf("server close reason %q", r)
				}
			case <-time.After(opTimeout):
				t.Fatal("the session did not close")
			}
			if ev := p.expect(t, "close"); ev.Reason != "forced close" {
				t.Errorf("node close reason %q", ev.Reason)
			}
		})
		t.Run(m.name+"/server-close", func(t *testing.T) {
			tr, _ := json.Marshal(m.transports)
			p := startNodeScript(t, "eio-client.mjs", hs.URL, string(tr))
			p.expect(t, "open")
			s := <-opened
			_ = s.SendBinary([]byte{9, 8, 7})
			_ = s.Close()
			if ev := p.expect(t, "message"); !ev.Binary || ev.Len != 3 {
				t.Errorf("message before close: %+v", ev)
			}
			if ev := p.expect(t, "close"); ev.Reason != "transport close" {
				t.Errorf("node close reason %q", ev.Reason)
			}
			if r := <-closed; r != engineio.ReasonForcedClose {
				t.Errorf("server close reason %q", r)
			}
		})
	}
}

// TestEngineIONodeServer connects Go engineio clients to the npm engine.io
// server.
func TestEngineIONodeServer(t *testing.T) {
	p := startNodeScript(t, "eio-server.mjs")
	url := fmt.Sprintf("http://127.0.0.1:%d/engine.io/", p.expect(t, "listening").Port)
	for _, m := range eioModes {
		t.Run(m.name, func(t *testing.T) {
			msgs := make(chan eioMessage, 16)
			closes := make(chan engineio.CloseReason, 1)
			upgraded := make(chan struct{})
			ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
			defer cancel()
			c, err := engineio.Dial(ctx, url, &engineio.DialOptions{
				Transports: m.transports,
				OnMessage: func(c *engineio.Client, typ engineio.MessageType, data []byte) {
					msgs <- eioMessage{typ == engineio.MessageBinary, append([]byte(nil), data...)}
				},
				OnUpgrade: func(*engineio.Client) { close(upgraded) },
				OnClose:   func(c *engineio.Client, reason engineio.CloseReason, err error) { closes <- reason },
			})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer func() {
				_ = c.Close()
				<-c.Done()
			}()
			conn := p.expect(t, "connection")
			if conn.SID != c.ID() || conn.Transport != m.transports[0] {
				t.Errorf("node saw sid %q over %q; the client has %q", conn.SID, conn.Transport, c.ID())
			}
			if m.name == "polling-upgrade" {
				select {
				case <-upgraded:
				case <-time.After(opTimeout):
					t.Fatal("no upgrade")
				}
				if ev := p.expect(t, "upgrade"); ev.Transport != "websocket" {
					t.Errorf("node: upgraded to %q", ev.Transport)
				}
			}
			for _, msg := range eioMessages() {
				typ := engineio.MessageText
				if msg.binary {
					typ = engineio.MessageBinary
				}
				if err := c.Send(typ, msg.data); err != nil {
					t.Fatal(err)
				}
				ev := p.expect(t, "message")
				if ev.Binary != msg.binary || ev.Len != len(msg.data) || ev.SHA256 != sha(msg.data) {
					t.Errorf("node got binary=%v %d bytes; sent binary=%v %d bytes", ev.Binary, ev.Len, msg.binary, len(msg.data))
				}
				select {
				case got := <-msgs:
					if got.binary != msg.binary || sha(got.data) != sha(msg.data) {
						t.Errorf("echo: binary=%v %d bytes, sent binary=%v %d bytes", got.binary, len(got.data), msg.binary, len(msg.data))
					}
				case <-time.After(opTimeout):
					t.Fatal("no echo")
				}
			}
			if got := c.Transport(); got != m.final {
				t.Errorf("Transport() = %q, want %q", got, m.final)
			}
			// Heartbeats: node pings every 200 ms and closes after 1.5 s
			// without a pong.
			time.Sleep(700 * time.Millisecond)
			if err := c.SendText("close-me"); err != nil {
				t.Fatalf("after heartbeats: %v", err)
			}
			select {
			case r := <-closes:
				if r != engineio.ReasonTransportClose {
					t.Errorf("client close reason %q", r)
				}
			case <-time.After(opTimeout):
				t.Fatal("the server's close did not reach the client")
			}
			if ev := p.expect(t, "close"); ev.Reason != "forced close" {
				t.Errorf("node close reason %q", ev.Reason)
			}
		})
		t.Run(m.name+"/client-close", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
			defer cancel()
			c, err := engineio.Dial(ctx, url, &engineio.DialOptions{Transports: m.transports})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			p.expect(t, "connection")
			_ = c.SendText("last")
			_ = c.Close()
			<-c.Done()
			if ev := p.expect(t, "message"); ev.Len != 4 {
				t.Errorf("message before close: %+v", ev)
			}
			if ev := p.expect(t, "close"); ev.Reason != "transport close" {
				t.Errorf("node close reason %q", ev.Reason)
			}
		})
	}
}
