package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const step = 5 * time.Second // bound on every wait

// newTestServer serves a Socket.IO server made with opts (Engine options
// get a fast heartbeat unless set) and returns it with its ws:// base URL.
func newTestServer(t *testing.T, opts *ServerOptions) (*Server, string) {
	t.Helper()
	if opts == nil {
		opts = &ServerOptions{}
	}
	if opts.Engine == nil {
		opts.Engine = &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: time.Second}
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
}

// rawClient speaks Engine.IO over a WebSocket by hand, so that tests see
// exactly the packets the server writes.
type rawClient struct {
	t    *testing.T
	c    *ws.Conn
	sid  string
	msgs chan rawMsg
}

type rawMsg struct {
	binary bool
	data   []byte
}

func dialRaw(t *testing.T, url string) *rawClient { return dialRawWith(t, url, nil) }

func dialRawWith(t *testing.T, url string, opts *ws.DialOptions) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	c, _, err := ws.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, c: c, msgs: make(chan rawMsg, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(rc.msgs)
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if typ == ws.MessageText && string(p) == "2" { // ping
				_ = c.Write(context.Background(), ws.MessageText, []byte("3"))
				continue
			}
			rc.msgs <- rawMsg{typ == ws.MessageBinary, p}
		}
	}()
	t.Cleanup(func() {
		_ = c.CloseNow()
		<-done
	})
	open := rc.next()
	if !bytes.HasPrefix(open.data, []byte("0{")) {
		t.Fatalf("first packet %q, want the Engine.IO open packet", open.data)
	}
	var hs struct {
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(open.data[1:], &hs)
	rc.sid = hs.SID
	return rc
}

// send writes a Socket.IO packet in an Engine.IO message packet.
func (rc *rawClient) send(text string, attachments ...[]byte) {
	rc.t.Helper()
	if err := rc.c.Write(context.Background(), ws.MessageText, []byte("4"+text)); err != nil {
		rc.t.Fatal(err)
	}
	for _, a := range attachments {
		if err := rc.c.Write(context.Background(), ws.MessageBinary, a); err != nil {
			rc.t.Fatal(err)
		}
	}
}

func (rc *rawClient) next() rawMsg {
	rc.t.Helper()
	select {
	case m, ok := <-rc.msgs:
		if !ok {
			rc.t.Fatal("connection closed")
		}
		return m
	case <-time.After(step):
		rc.t.Fatal("no message")
	}
	return rawMsg{}
}

// expect reads the next Socket.IO packet and checks it against want: an
// exact text, or a prefix when want ends in "*".
func (rc *rawClient) expect(want string) string {
	rc.t.Helper()
	m := rc.next()
	if m.binary {
		rc.t.Fatalf("got a binary message %x, want %q", m.data, want)
	}
	got := strings.TrimPrefix(string(m.data), "4")
	if p, ok := strings.CutSuffix(want, "*"); ok {
		if !strings.HasPrefix(got, p) {
			rc.t.Fatalf("got %q, want %q…", got, p)
		}
	} else if got != want {
		rc.t.Fatalf("got %q, want %q", got, want)
	}
	return got
}

func (rc *rawClient) expectBinary(want []byte) {
	rc.t.Helper()
	m := rc.next()
	if !m.binary || !bytes.Equal(m.data, want) {
		rc.t.Fatalf("got %v %q, want binary %q", m.binary, m.data, want)
	}
}

// expectClosed waits for the server to close the connection, skipping
// what comes before.
func (rc *rawClient) expectClosed() {
	rc.t.Helper()
	deadline := time.After(step)
	for {
		select {
		case _, ok := <-rc.msgs:
			if !ok {
				return
			}
		case <-deadline:
			rc.t.Fatal("the connection was not closed")
		}
	}
}

// connect joins nsp and returns the socket id.
func (rc *rawClient) connect(nsp, auth string) string {
	rc.t.Helper()
	prefix := ""
	if nsp != "/" {
		prefix = nsp + ","
	}
	rc.send("0" + prefix + auth)
	got := rc.expect("0" + prefix + `{"sid":"*`)
	var v struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got, "0"+prefix)), &v); err != nil || len(v.SID) != 20 {
		rc.t.Fatalf("CONNECT reply %q: sid %q, %v", got, v.SID, err)
	}
	return v.SID
}

func TestConnectAndAuth(t *testing.T) {
	srv, url := newTestServer(t, nil)
	got := make(chan *Socket, 1)
	srv.OnConnection(func(s *Socket) { got <- s })
	rc := dialRaw(t, url)
	id := rc.connect("/", `{"token":"abc"}`)
	s := <-got
	if s.ID() != id || string(s.Handshake().Auth) != `{"token":"abc"}` || s.EngineID() != rc.sid || s.Transport() != "websocket" {
		t.Fatalf("socket %q auth %s engine %q transport %q; want %q, the auth sent, %q, websocket", s.ID(), s.Handshake().Auth, s.EngineID(), s.Transport(), id, rc.sid)
	}
	if rooms := s.Rooms(); len(rooms) != 1 || rooms[0] != id {
		t.Fatalf("rooms %v, want its own id only", rooms)
	}
	rc2 := dialRaw(t, url)
	rc2.connect("/", "")
	if s := <-got; string(s.Handshake().Auth) != `{}` {
		t.Fatalf("auth %s without a payload, want {}", s.Handshake().Auth)
	}
}

func TestUnknownNamespace(t *testing.T) {
	srv, url := newTestServer(t, nil)
	srv.Of("/custom")
	rc := dialRaw(t, url)
	rc.send("0/nope,")
	rc.expect(`4/nope,{"message":"Invalid namespace"}`)
	rc.connect("/custom", "") // the connection stays usable
}

func TestDynamicNamespaces(t *testing.T) {
	srv, url := newTestServer(t, nil)
	var mu sync.Mutex
	var made []string
	srv.OfFunc(func(name string) bool { return strings.HasPrefix(name, "/room-") }, func(ns *Namespace) {
		mu.Lock()
		made = append(made, ns.Name())
		mu.Unlock()
		ns.OnConnection(func(s *Socket) { _ = s.Emit("hello", ns.Name()) })
	})
	for range 2 {
		rc := dialRaw(t, url)
		rc.connect("/room-1", "")
		rc.expect(`2/room-1,["hello","/room-1"]`)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(made) != 1 {
		t.Fatalf("setup ran for %v, want once", made)
	}
}

func TestTypedHandlersAndAcks(t *testing.T) {
	srv, url := newTestServer(t, nil)
	type point struct {
		X, Y int
	}
	errs := make(chan error, 1)
	srv.OnConnection(func(s *Socket) {
		s.On("sum", func(s *Socket, a, b int, ack func(...any)) { ack(a + b) })
		s.On("point", func(s *Socket, p point, tag string, ack func(...any)) { ack(p.X*p.Y, tag) })
		s.On("bin", func(s *Socket, data []byte, ack func(...any)) { ack(len(data), data) })
		s.On("raw", func(s *Socket, e *Event) { _ = e.Ack(e.Name, e.Len(), e.WantsAck()) })
		s.OnError(func(s *Socket, err error) { errs <- err })
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.send(`21["sum",2,3]`)
	rc.expect(`31[5]`)
	rc.send(`22["point",{"X":3,"Y":4},"t"]`)
	rc.expect(`32[12,"t"]`)
	rc.send(`51-3["bin",{"_placeholder":true,"num":0}]`, []byte{1, 2, 3})
	rc.expect(`61-3[3,{"_placeholder":true,"num":0}]`)
	rc.expectBinary([]byte{1, 2, 3})
	rc.send(`24["raw",1,2]`)
	rc.expect(`34["raw",2,true]`)
	rc.send(`2["sum",2]`) // no ack: nothing comes back
	rc.send(`25["sum","x",1]`)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), `"sum"`) || !strings.Contains(err.Error(), "argument 0") {
			t.Fatalf("error %q does not name the event and the argument", err)
		}
	case <-time.After(step):
		t.Fatal("a mismatched argument was not reported")
	}
	rc.send(`26["sum",40,2]`)
	rc.expect(`36[42]`) // the socket goes on
}

func TestOnPanicsOnBadHandlers(t *testing.T) {
	for _, fn := range []any{nil, 42, func() {}, func(int) {}, func(*Socket, func(...any), int) {}, func(*Socket, ...any) {}, func(*Socket) int { return 0 }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("On accepted %T", fn)
				}
			}()
			(&Socket{handlers: map[string][]*eventHandler{}}).On("x", fn)
		}()
	}
}

func TestEmitFromServer(t *testing.T) {
	srv, url := newTestServer(t, nil)
	srv.OnConnection(func(s *Socket) {
		_ = s.Emit("text", "a", 1, map[string]any{"k": []int{1}})
		_ = s.Emit("bin", []byte("xy"), map[string]any{"b": []byte("z")})
		if err := s.Emit("disconnect"); !errors.Is(err, ErrReservedEvent) {
			t.Errorf("Emit(disconnect) = %v, want ErrReservedEvent", err)
		}
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.expect(`2["text","a",1,{"k":[1]}]`)
	rc.expect(`52-["bin",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]`)
	rc.expectBinary([]byte("xy"))
	rc.expectBinary([]byte("z"))
}

// TestEmitWithAckInsideHandler: a handler may wait for the client's
// acknowledgement: the acknowledgement is read while the handler blocks.
func TestEmitWithAckInsideHandler(t *testing.T) {
	srv, url := newTestServer(t, nil)
	srv.OnConnection(func(s *Socket) {
		s.On("ask", func(s *Socket, ack func(...any)) {
			ctx, cancel := context.WithTimeout(context.Background(), step)
			defer cancel()
			reply, err := s.EmitWithAck(ctx, "question", "why")
			if err != nil {
				ack("error", err.Error())
				return
			}
			var answer string
			_ = reply.Decode(0, &answer)
			ack("answer", answer)
		})
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.send(`27["ask"]`)
	q := rc.expect(`2*`)
	var id int
	if _, err := fmt.Sscanf(q, `2%d["question","why"]`, &id); err != nil {
		t.Fatalf("question %q: %v", q, err)
	}
	rc.send(fmt.Sprintf(`3%d["because"]`, id))
	rc.expect(`37["answer","because"]`)
}

func TestEmitWithAckTimeoutAndDisconnect(t *testing.T) {
	srv, url := newTestServer(t, nil)
	res := make(chan error, 2)
	srv.OnConnection(func(s *Socket) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.EmitWithAck(ctx, "q1")
		res <- err
		go func() {
			_, err := s.EmitWithAck(context.Background(), "q2")
			res <- err
		}()
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.expect(`20["q1"]`)
	if err := <-res; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EmitWithAck without an answer: %v, want DeadlineExceeded", err)
	}
	rc.expect(`21["q2"]`)
	rc.send(`30["late"]`) // an answer after the timeout is ignored
	rc.send(`1`)          // the client leaves
	if err := <-res; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("EmitWithAck when the client leaves: %v, want ErrDisconnected", err)
	}
}

func TestMiddleware(t *testing.T) {
	srv, url := newTestServer(t, nil)
	admin := srv.Of("/admin")
	admin.Use(func(s *Socket) error {
		var a struct{ Token string }
		_ = json.Unmarshal(s.Handshake().Auth, &a)
		switch a.Token {
		case "secret":
			return nil
		case "":
			return errors.New("no token")
		}
		return &ConnectError{Message: "unauthorized", Data: map[string]int{"code": 401}}
	})
	admin.OnConnection(func(s *Socket) { _ = s.Emit("welcome") })
	rc := dialRaw(t, url)
	rc.send(`0/admin,{"Token":"bad"}`)
	rc.expect(`4/admin,{"message":"unauthorized","data":{"code":401}}`)
	rc.send(`0/admin,`)
	rc.expect(`4/admin,{"message":"no token"}`)
	rc.connect("/admin", `{"Token":"secret"}`)
	rc.expect(`2/admin,["welcome"]`)
}

func TestSocketMiddlewareAndAny(t *testing.T) {
	srv, url := newTestServer(t, nil)
	var mu sync.Mutex
	var seen []string
	srv.OnConnection(func(s *Socket) {
		s.Use(func(s *Socket, e *Event) error {
			if e.Name == "forbidden" {
				return errors.New("no")
			}
			return nil
		})
		s.OnAny(func(s *Socket, e *Event) { mu.Lock(); seen = append(seen, e.Name); mu.Unlock() })
		s.On("ok", func(s *Socket, ack func(...any)) { ack("ok") })
		s.On("forbidden", func(s *Socket, ack func(...any)) { ack("should not run") })
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.send(`21["forbidden"]`)
	rc.send(`22["ok"]`)
	rc.expect(`32["ok"]`)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "ok" {
		t.Fatalf("OnAny saw %v, want [ok]", seen)
	}
}

func TestRoomsAndBroadcasts(t *testing.T) {
	srv, url := newTestServer(t, nil)
	sockets := make(chan *Socket, 3)
	srv.OnConnection(func(s *Socket) { sockets <- s })
	var rcs [3]*rawClient
	var ss [3]*Socket
	for i := range rcs {
		rcs[i] = dialRaw(t, url)
		rcs[i].connect("/", "")
		ss[i] = <-sockets
	}
	ss[1].Join("r")
	ss[2].Join("r", "muted")
	_ = srv.To("r").Emit("m", 1)
	rcs[1].expect(`2["m",1]`)
	rcs[2].expect(`2["m",1]`)
	_ = srv.To("r").Except("muted").Emit("m", 2)
	rcs[1].expect(`2["m",2]`)
	_ = ss[1].Broadcast().Emit("m", 3) // everyone but ss[1]
	rcs[0].expect(`2["m",3]`)
	rcs[2].expect(`2["m",3]`)
	_ = ss[0].To(ss[2].ID()).Emit("m", 4) // a socket id is a room
	rcs[2].expect(`2["m",4]`)
	srv.Of("/").In("r").SocketsJoin("s")
	if got := srv.Of("/").Adapter().Sockets([]string{"s"}); len(got) != 2 {
		t.Fatalf("room s has %v, want 2 sockets", got)
	}
	_ = srv.Emit("m", 5)
	for _, rc := range rcs {
		rc.expect(`2["m",5]`)
	}
	srv.Of("/").To("muted").DisconnectSockets(false)
	rcs[2].expect(`1`)
	if got := len(srv.Of("/").Sockets()); got != 2 {
		// the disconnect handlers run on the socket's goroutine: wait
		deadline := time.Now().Add(step)
		for len(srv.Of("/").Sockets()) != 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := len(srv.Of("/").Sockets()); got != 2 {
			t.Fatalf("%d sockets after disconnecting one of 3", got)
		}
	}
}

func TestBroadcastWithAcks(t *testing.T) {
	srv, url := newTestServer(t, nil)
	sockets := make(chan *Socket, 3)
	srv.OnConnection(func(s *Socket) { s.Join("g"); sockets <- s })
	var rcs [3]*rawClient
	for i := range rcs {
		rcs[i] = dialRaw(t, url)
		rcs[i].connect("/", "")
		<-sockets
	}
	type result struct {
		replies []*Args
		err     error
	}
	res := make(chan result, 1)
	go func() {
		r, err := srv.To("g").Timeout(step).EmitWithAck(context.Background(), "vote")
		res <- result{r, err}
	}()
	for i, rc := range rcs {
		got := rc.expect(`2*`)
		var id int
		if _, err := fmt.Sscanf(got, `2%d["vote"]`, &id); err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		rc.send(fmt.Sprintf(`3%d[%d]`, id, i))
	}
	r := <-res
	if r.err != nil || len(r.replies) != 3 {
		t.Fatalf("EmitWithAck: %d replies, %v; want 3", len(r.replies), r.err)
	}
	// One client that never answers: a timeout, with the other replies.
	go func() {
		r, err := srv.To("g").Timeout(200*time.Millisecond).EmitWithAck(context.Background(), "vote2")
		res <- result{r, err}
	}()
	for i, rc := range rcs {
		got := rc.expect(`2*`)
		var id int
		_, _ = fmt.Sscanf(got, `2%d`, &id)
		if i > 0 {
			rc.send(fmt.Sprintf(`3%d[%d]`, id, i))
		}
	}
	r = <-res
	if !errors.Is(r.err, context.DeadlineExceeded) || len(r.replies) != 2 {
		t.Fatalf("EmitWithAck with a silent client: %d replies, %v; want 2 and a timeout", len(r.replies), r.err)
	}
}

func TestDisconnectReasons(t *testing.T) {
	srv, url := newTestServer(t, nil)
	reasons := make(chan string, 4)
	srv.OnConnection(func(s *Socket) {
		s.OnDisconnect(func(s *Socket, reason string) { reasons <- reason })
		s.On("leave-me", func(s *Socket) { s.Disconnect(false) })
		s.On("close-me", func(s *Socket) { s.Disconnect(true) })
	})
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-reasons:
			if got != want {
				t.Fatalf("reason %q, want %q", got, want)
			}
		case <-time.After(step):
			t.Fatalf("no disconnect, want %q", want)
		}
	}
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.send(`1`)
	expect(ReasonClientNamespaceDisconnect)
	rc.connect("/", "")
	rc.send(`2["leave-me"]`)
	rc.expect(`1`)
	expect(ReasonServerNamespaceDisconnect)
	rc.connect("/", "")
	rc.send(`2["close-me"]`)
	rc.expect(`1`) // a DISCONNECT first, then the connection closes
	expect(ReasonServerNamespaceDisconnect)
	rc.expectClosed()
	rc = dialRaw(t, url)
	rc.connect("/", "")
	_ = rc.c.CloseNow()
	expect(ReasonTransportClose)
}

func TestMalformedAndOutOfTurnPacketsClose(t *testing.T) {
	_, url := newTestServer(t, nil)
	for _, bad := range []string{`9`, `2{}`, `2abc["x"]`, `0/x`, `2["x"]` /* no namespace joined */} {
		t.Run(bad, func(t *testing.T) {
			rc := dialRaw(t, url)
			if bad != `0/x` {
				rc.connect("/", "")
			}
			if bad == `0/x` {
				bad = `0` // a second CONNECT to a joined namespace
				rc.connect("/", "")
			} else if bad == `2["x"]` {
				bad = `2/other,["x"]`
			}
			rc.send(bad)
			rc.expectClosed()
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	_, url := newTestServer(t, &ServerOptions{ConnectTimeout: 100 * time.Millisecond})
	rc := dialRaw(t, url)
	rc.expectClosed()
}

func TestPendingEventsLimit(t *testing.T) {
	srv, url := newTestServer(t, &ServerOptions{MaxPendingEvents: 4})
	release := make(chan struct{})
	srv.OnConnection(func(s *Socket) {
		s.On("block", func(s *Socket) { <-release })
	})
	defer close(release)
	rc := dialRaw(t, url)
	rc.connect("/", "")
	for range 10 {
		// The server may close before all are written.
		_ = rc.c.Write(context.Background(), ws.MessageText, []byte(`42["block"]`))
	}
	rc.expectClosed()
}

func TestRecovery(t *testing.T) {
	srv, url := newTestServer(t, &ServerOptions{Recovery: &RecoveryOptions{}})
	sockets := make(chan *Socket, 4)
	srv.OnConnection(func(s *Socket) { sockets <- s })
	rc := dialRaw(t, url)
	rc.send(`0`)
	reply := rc.expect(`0{"sid":"*`)
	var hs struct{ SID, PID string }
	if err := json.Unmarshal([]byte(reply[1:]), &hs); err != nil || hs.PID == "" {
		t.Fatalf("CONNECT reply %q has no pid", reply)
	}
	s := <-sockets
	s.Join("news")
	s.SetData("kept")
	_ = srv.To("news").Emit("n", 1)
	got := rc.expect(`2["n",1,"*`) // the offset comes last
	var args []string
	_ = json.Unmarshal([]byte(got[1:]), &args)
	offset := args[2]
	_ = rc.c.CloseNow()
	deadline := time.Now().Add(step)
	for len(srv.Of("/").Sockets()) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = srv.To("news").Emit("n", 2)
	_ = srv.Emit("all", 3)
	_ = srv.To("elsewhere").Emit("n", 4)
	rc = dialRaw(t, url)
	rc.send(fmt.Sprintf(`0{"pid":%q,"offset":%q}`, hs.PID, offset))
	rc.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, hs.SID, hs.PID))
	rc.expect(`2["n",2,"*`)
	rc.expect(`2["all",3,"*`)
	s = <-sockets
	if !s.Recovered() || s.ID() != hs.SID || s.Data() != "kept" {
		t.Fatalf("recovered %v id %q data %v", s.Recovered(), s.ID(), s.Data())
	}
	if rooms := s.Rooms(); len(rooms) != 2 {
		t.Fatalf("rooms %v, want its id and news", rooms)
	}
	// An unknown offset: a new session.
	rc2 := dialRaw(t, url)
	rc2.send(fmt.Sprintf(`0{"pid":%q,"offset":"nope"}`, hs.PID))
	reply = rc2.expect(`0{"sid":"*`)
	if strings.Contains(reply, hs.SID) {
		t.Fatalf("restored with an unknown offset: %q", reply)
	}
}

// pairAdapter is a MemoryAdapter whose server-side events go to the same
// namespace of another server: the shape of a cluster adapter, in one
// process.
type pairAdapter struct {
	*MemoryAdapter
	peer **Server
}

func (a *pairAdapter) ServerSideEmit(ctx context.Context, p *Packet, serverCount func(int), ack func(*Args)) error {
	other := (*a.peer).Of(p.Namespace)
	var reply func(*Packet) error
	if ack != nil {
		serverCount(1)
		reply = func(r *Packet) error {
			args, err := splitArgs(r.Data)
			if err != nil {
				return err
			}
			ack(&Args{raw: args, att: r.Attachments})
			return nil
		}
	}
	go other.ServeServerSideEmit(p, reply)
	return nil
}

func (a *pairAdapter) ServerCount(context.Context) (int, error) { return 2, nil }

func TestServerSideEmit(t *testing.T) {
	var s1, s2 *Server
	s1, _ = newTestServer(t, &ServerOptions{NewAdapter: func(ns *Namespace) Adapter { return &pairAdapter{NewMemoryAdapter(ns), &s2} }})
	s2, _ = newTestServer(t, &ServerOptions{NewAdapter: func(ns *Namespace) Adapter { return &pairAdapter{NewMemoryAdapter(ns), &s1} }})
	got := make(chan string, 1)
	s2.Of("/").OnServerSideEmit("hello", func(ns *Namespace, e *Event) {
		var who string
		_ = e.Decode(0, &who)
		if e.WantsAck() {
			_ = e.Ack("hi " + who)
			return
		}
		got <- who
	})
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	if err := s1.Of("/").ServerSideEmit(ctx, "hello", "s1"); err != nil {
		t.Fatal(err)
	}
	if who := <-got; who != "s1" {
		t.Fatalf("got %q", who)
	}
	replies, err := s1.Of("/").ServerSideEmitWithAck(ctx, "hello", "s1")
	var r string
	if err != nil || len(replies) != 1 || replies[0].Decode(0, &r) != nil || r != "hi s1" {
		t.Fatalf("ServerSideEmitWithAck: %d replies (%q), %v", len(replies), r, err)
	}
	if n, _ := s1.Of("/").ServerCount(ctx); n != 2 {
		t.Fatalf("ServerCount %d", n)
	}
	// The in-memory adapter alone: no other server, no wait.
	s3, _ := newTestServer(t, nil)
	replies, err = s3.Of("/").ServerSideEmitWithAck(ctx, "hello")
	if err != nil || len(replies) != 0 {
		t.Fatalf("alone: %v %v", replies, err)
	}
}

// countingConn counts the bytes read from the network.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestCompress(t *testing.T) {
	srv, url := newTestServer(t, &ServerOptions{Engine: &engineio.ServerOptions{
		PingInterval: time.Second, PingTimeout: time.Second,
		WebSocket: &ws.AcceptOptions{Compression: &ws.Compression{}},
	}})
	text := strings.Repeat("compress me please ", 500)
	srv.OnConnection(func(s *Socket) {
		s.On("send", func(s *Socket, which string) {
			switch which {
			case "a":
				_ = s.Emit("a", text)
			case "b":
				_ = s.Compress(false).Emit("b", text)
			case "c":
				_ = srv.Of("/").Compress(false).Emit("c", text)
			}
		})
	})
	var read atomic.Int64
	rc := dialRawWith(t, url, &ws.DialOptions{
		Compression: &ws.Compression{},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{nc, &read}, err
		},
	})
	rc.connect("/", "")
	for _, ev := range []string{"a", "b", "c"} {
		before := read.Load()
		rc.send(`2["send","` + ev + `"]`) // one at a time, so that each is counted alone
		rc.expect(`2["` + ev + `","` + text + `"]`)
		n := read.Load() - before
		if ev == "a" && n > int64(len(text))/4 || ev != "a" && n < int64(len(text)) {
			t.Errorf("event %s: %d bytes on the wire for %d of text", ev, n, len(text))
		}
	}
}

func TestFetchSockets(t *testing.T) {
	srv, url := newTestServer(t, nil)
	sockets := make(chan *Socket, 2)
	srv.OnConnection(func(s *Socket) { sockets <- s })
	a, b := dialRaw(t, url), dialRaw(t, url)
	a.connect("/", `{"name":"a"}`)
	sa := <-sockets
	b.connect("/", "")
	<-sockets
	sa.Join("vip")
	sa.SetData(map[string]int{"level": 3})
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	all, err := srv.Of("/").FetchSockets(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("FetchSockets: %d, %v", len(all), err)
	}
	vips, _ := srv.To("vip").FetchSockets(ctx)
	if len(vips) != 1 || vips[0].ID != sa.ID() || string(vips[0].Handshake.Auth) != `{"name":"a"}` || vips[0].Data.(map[string]int)["level"] != 3 {
		t.Fatalf("vip sockets: %+v", vips)
	}
	if len(vips[0].Rooms) != 2 {
		t.Fatalf("rooms %v", vips[0].Rooms)
	}
	_ = vips[0].Emit("hi", 1)
	a.expect(`2["hi",1]`)
	vips[0].Leave("vip")
	if n := len(srv.Of("/").Adapter().Sockets([]string{"vip"})); n != 0 {
		t.Fatalf("vip has %d sockets after Leave", n)
	}
	vips[0].Disconnect(false)
	a.expect(`1`)
}

// TestBroadcastAckTargetsLeave: a broadcast with acknowledgements does not
// wait for a client that disconnected, and a timed-out one leaves no
// pending acknowledgement behind on the sockets.
func TestBroadcastAckTargetsLeave(t *testing.T) {
	srv, url := newTestServer(t, nil)
	sockets := make(chan *Socket, 2)
	srv.OnConnection(func(s *Socket) { s.Join("g"); sockets <- s })
	a, b := dialRaw(t, url), dialRaw(t, url)
	a.connect("/", "")
	sa := <-sockets
	b.connect("/", "")
	sb := <-sockets
	res := make(chan error, 1)
	go func() {
		_, err := srv.To("g").EmitWithAck(context.Background(), "q") // no timeout
		res <- err
	}()
	a.expect(`2*`)
	b.expect(`2*`)
	sa.Disconnect(true)
	sb.Disconnect(true)
	select {
	case err := <-res:
		if !errors.Is(err, ErrDisconnected) {
			t.Fatalf("EmitWithAck: %v, want ErrDisconnected", err)
		}
	case <-time.After(step):
		t.Fatal("EmitWithAck waited for clients that had left")
	}
	// Timeouts: the silent client's table of pending acks stays empty.
	c := dialRaw(t, url)
	c.connect("/", "")
	sc := <-sockets
	for range 20 {
		_, err := srv.To("g").Timeout(time.Millisecond).EmitWithAck(context.Background(), "q")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("EmitWithAck to a silent client: %v", err)
		}
	}
	deadline := time.Now().Add(step)
	for {
		sc.mu.Lock()
		n := len(sc.acks)
		sc.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledgements still pending on a socket after their broadcasts timed out", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaxDynamicNamespaces(t *testing.T) {
	srv, url := newTestServer(t, &ServerOptions{MaxDynamicNamespaces: 2})
	srv.OfFunc(func(string) bool { return true }, func(*Namespace) {})
	rc := dialRaw(t, url)
	rc.connect("/a", "")
	rc.connect("/b", "")
	rc.send("0/c,")
	rc.expect(`4/c,{"message":"Invalid namespace"}`)
	rc.send("0/d,")
	rc.expect(`4/d,{"message":"Invalid namespace"}`)
}

// TestShutdownWaitsForHandlers: Shutdown returns after the disconnect
// handlers have run, and a handler that does not return in time makes it
// return ctx's error.
func TestShutdownWaitsForHandlers(t *testing.T) {
	srv, url := newTestServer(t, nil)
	var ran atomic.Bool
	connected := make(chan struct{}, 2)
	release := make(chan struct{})
	srv.OnConnection(func(s *Socket) {
		s.OnDisconnect(func(*Socket, string) {
			time.Sleep(100 * time.Millisecond) // a handler that saves state
			ran.Store(true)
		})
		connected <- struct{}{}
	})
	rc := dialRaw(t, url)
	rc.connect("/", "")
	<-connected

	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !ran.Load() {
		t.Fatal("Shutdown returned before the disconnect handler did")
	}

	srv2, url2 := newTestServer(t, nil)
	entered := make(chan struct{})
	srv2.OnConnection(func(s *Socket) {
		s.On("block", func(*Socket, *Event) { close(entered); <-release })
		connected <- struct{}{}
	})
	rc2 := dialRaw(t, url2)
	rc2.connect("/", "")
	<-connected
	rc2.send(`2["block"]`)
	<-entered
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	err := srv2.Shutdown(short)
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a handler still blocked: %v, want context.DeadlineExceeded", err)
	}
}
