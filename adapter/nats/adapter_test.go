package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/google/go-cmp/cmp"
	natsgo "github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const step = 5 * time.Second // bound on every wait

const natsURL = "nats://127.0.0.1:4222"

// natsConn returns a new connection to the NATS at 127.0.0.1:4222.
// Without one, the test is skipped, or fails under CI=true.
func natsConn(t *testing.T) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(natsURL, natsgo.Timeout(time.Second), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		msg := fmt.Sprintf("no NATS at %s (%v); start one with: nats-server -a 127.0.0.1 -p 4222", natsURL, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testPrefix is a subject prefix of the test's own, so that tests do not
// hear each other.
func testPrefix(t *testing.T) string {
	return "duplex-test." + strings.NewReplacer("/", "-", ".", "-", " ", "-").Replace(t.Name()) + "." + randomID()
}

// node is one Socket.IO server of a test cluster.
type node struct {
	srv *socketio.Server
	url string
}

// newNode starts a server on nc with the adapter's opts; setup installs
// its handlers before it serves.
func newNode(t *testing.T, nc *natsgo.Conn, opts *Options, setup func(srv *socketio.Server)) *node {
	t.Helper()
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: New(nc, opts),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
	})
	if setup != nil {
		setup(srv)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &node{srv: srv, url: hs.URL}
}

// client is a Go client that records the events it gets.
type client struct {
	s  *socketio.ClientSocket
	ch chan string
}

func dial(t *testing.T, n *node, rooms ...string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	c := &client{ch: make(chan string, 100)}
	s, err := socketio.Dial(ctx, n.url, nil, &socketio.ClientOptions{
		Engine: &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Manager().Close() })
	c.s = s
	s.OnAny(func(s *socketio.ClientSocket, e *socketio.Event) {
		parts := []string{e.Name}
		for i := range e.Len() {
			var b []byte
			if e.Decode(i, &b) == nil && !strings.HasPrefix(string(e.Raw(i)), `"`) {
				parts = append(parts, fmt.Sprintf("bin%v", b))
				continue
			}
			parts = append(parts, string(e.Raw(i)))
		}
		c.ch <- strings.Join(parts, " ")
	})
	s.On("q", func(s *socketio.ClientSocket, x int, ack func(...any)) { ack(s.ID(), x*2) })
	s.On("qb", func(s *socketio.ClientSocket, ack func(...any)) { ack([]byte(s.ID())) })
	for _, r := range rooms {
		if _, err := s.EmitWithAck(ctx, "join", r); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitFor reads c's events until one equals want, and returns those
// before it.
func (c *client) waitFor(t *testing.T, want string) []string {
	t.Helper()
	var before []string
	timer := time.NewTimer(step)
	defer timer.Stop()
	for {
		select {
		case e := <-c.ch:
			if e == want {
				return before
			}
			before = append(before, e)
		case <-timer.C:
			t.Fatalf("%s: no %q within %v; got %q", c.s.ID(), want, step, before)
		}
	}
}

// pair starts two servers, each with its own NATS connection, and waits
// until each counts the other.
func pair(t *testing.T, opts *Options, setup func(srv *socketio.Server)) (*node, *node) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Prefix == "" {
		opts.Prefix = testPrefix(t)
	}
	if opts.Logger == nil && testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a, b := newNode(t, natsConn(t), opts, setup), newNode(t, natsConn(t), opts, setup)
	for _, n := range []*node{a, b} {
		eventually(t, "each server counts the other", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 2
		})
	}
	return a, b
}

func ctxStep(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), step)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(step)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, step)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerCount(t *testing.T) {
	nc := natsConn(t)
	opts := &Options{Prefix: testPrefix(t), HeartbeatInterval: 100 * time.Millisecond}
	a, b := pair(t, opts, nil)
	// A third server, in the same process: counted at once by the others
	// (hello-new), and it counts them a round trip later.
	c := newNode(t, nc, opts, nil)
	for _, n := range []*node{a, b, c} {
		eventually(t, "three servers", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 3
		})
	}
	// A namespace of its own has its own count.
	eventually(t, "two servers on /other", func() bool {
		_ = c.srv.Of("/other")
		got, err := a.srv.Of("/other").ServerCount(ctxStep(t))
		return err == nil && got == 2
	})
	// Closed: forgotten at once (bye).
	must(t, c.srv.Close())
	for _, n := range []*node{a, b} {
		eventually(t, "two servers after Close", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 2
		})
	}
}

func TestServerCountExpires(t *testing.T) {
	nc := natsConn(t)
	prefix := testPrefix(t)
	a := newNode(t, nc, &Options{Prefix: prefix, HeartbeatInterval: 100 * time.Millisecond}, nil)
	// A server that says hello once and dies without a goodbye.
	subj := prefix + "." + token("/") + ".presence"
	must(t, nc.Publish(subj, []byte(`{"uid":"ghost","type":20}`)))
	eventually(t, "the ghost counted", func() bool {
		n, err := a.srv.Of("/").ServerCount(ctxStep(t))
		return err == nil && n == 2
	})
	eventually(t, "the ghost expired", func() bool {
		n, err := a.srv.Of("/").ServerCount(ctxStep(t))
		return err == nil && n == 1
	})
}

func TestBroadcasts(t *testing.T) {
	a, b := pair(t, nil, nil)
	a1 := dial(t, a, "red")
	a2 := dial(t, a)
	b1 := dial(t, b, "red", "blue")
	b2 := dial(t, b)
	all := []*client{a1, a2, b1, b2}

	for i, from := range []*node{a, b} {
		tag := fmt.Sprint(i)
		must(t, from.srv.Emit("news", "all"+tag, 1.5, map[string]any{"k": []int{1}}))
		must(t, from.srv.To("red").Emit("news", "red"+tag))
		must(t, from.srv.To("red", "blue").Except("blue").Emit("news", "red-not-blue"+tag))
		must(t, from.srv.Except("red").Emit("news", "not-red"+tag))
		must(t, from.srv.To(b1.s.ID()).Emit("news", "to-b1"+tag, []byte{1, 2, 3}))
		must(t, from.srv.Local().Emit("news", "local"+tag))
		must(t, from.srv.Emit("end"))
		local := map[*client]bool{a1: i == 0, a2: i == 0, b1: i == 1, b2: i == 1}
		for c, want := range map[*client][]string{
			a1: {`news "all` + tag + `" 1.5 {"k":[1]}`, `news "red` + tag + `"`, `news "red-not-blue` + tag + `"`},
			a2: {`news "all` + tag + `" 1.5 {"k":[1]}`, `news "not-red` + tag + `"`},
			b1: {`news "all` + tag + `" 1.5 {"k":[1]}`, `news "red` + tag + `"`, `news "to-b1` + tag + `" bin[1 2 3]`},
			b2: {`news "all` + tag + `" 1.5 {"k":[1]}`, `news "not-red` + tag + `"`},
		} {
			if local[c] {
				want = append(want, `news "local`+tag+`"`)
			}
			got := c.waitFor(t, "end")
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("from %d, client %d events (-want +got):\n%s", i, slices.Index(all, c), d)
			}
		}
	}
}

// TestRoomNames sends to rooms whose names are not subject tokens.
func TestRoomNames(t *testing.T) {
	a, b := pair(t, nil, nil)
	long := strings.Repeat("long room ", 100)
	rooms := []string{"", "a.b", "*", ">", "with space", "é/ü", long}
	b1 := dial(t, b, rooms...)
	for _, r := range rooms {
		must(t, a.srv.To(r).Emit("room", len(r)))
	}
	must(t, a.srv.Emit("end"))
	var want []string
	for _, r := range rooms {
		want = append(want, fmt.Sprintf("room %d", len(r)))
	}
	if d := cmp.Diff(want, b1.waitFor(t, "end")); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestFetchJoinLeaveDisconnect(t *testing.T) {
	a, b := pair(t, nil, nil)
	a1 := dial(t, a, "red")
	b1 := dial(t, b, "red")
	b2 := dial(t, b)

	socks, err := a.srv.In("red").FetchSockets(ctxStep(t))
	must(t, err)
	var ids []string
	for _, s := range socks {
		ids = append(ids, s.ID+":"+strings.Join(sorted(s.Rooms), ","))
		if s.Handshake.Time.IsZero() || s.Handshake.Query.Get("EIO") != "4" {
			t.Errorf("socket %s: handshake %+v", s.ID, s.Handshake)
		}
	}
	want := []string{a1.s.ID() + ":" + strings.Join(sorted([]string{a1.s.ID(), "red"}), ","), b1.s.ID() + ":" + strings.Join(sorted([]string{b1.s.ID(), "red"}), ",")}
	if d := cmp.Diff(sorted(want), sorted(ids)); d != "" {
		t.Errorf("FetchSockets (-want +got):\n%s", d)
	}

	// socketsJoin from a reaches b's sockets.
	a.srv.Except("red").SocketsJoin("green")
	bns := b.srv.Of("/").Adapter().(*Adapter)
	eventually(t, "b2 joins green", func() bool { return slices.Contains(bns.SocketRooms(b2.s.ID()), "green") })
	a.srv.In("green").SocketsLeave("green")
	eventually(t, "b2 leaves green", func() bool { return !slices.Contains(bns.SocketRooms(b2.s.ID()), "green") })
	if slices.Contains(bns.SocketRooms(b1.s.ID()), "green") {
		t.Error("b1, in red, joined green")
	}

	// A RemoteSocket of another server.
	for _, s := range socks {
		if s.ID == b1.s.ID() {
			s.Join("violet")
			must(t, s.Emit("direct", "hi"))
		}
	}
	b1.waitFor(t, `direct "hi"`)
	eventually(t, "b1 joins violet", func() bool { return slices.Contains(bns.SocketRooms(b1.s.ID()), "violet") })

	disc := make(chan string, 1)
	b1.s.OnDisconnect(func(s *socketio.ClientSocket, reason string) { disc <- reason })
	a.srv.In("violet").DisconnectSockets(false)
	select {
	case r := <-disc:
		if r != socketio.ReasonIOServerDisconnect {
			t.Errorf("b1 disconnected with %q", r)
		}
	case <-time.After(step):
		t.Fatal("b1 was not disconnected")
	}
	if !b2.s.Connected() || !a1.s.Connected() {
		t.Error("a socket outside violet was disconnected")
	}
}

func TestServerSideEmit(t *testing.T) {
	got := make(chan string, 10)
	setup := func(srv *socketio.Server) {
		srv.Of("/").OnServerSideEmit("hello", func(ns *socketio.Namespace, e *socketio.Event) {
			var who string
			var bin []byte
			_ = e.Decode(0, &who)
			_ = e.Decode(1, &bin)
			got <- fmt.Sprintf("%s %v %v", who, bin, e.WantsAck())
			_ = e.Ack("hi "+who, []byte(who))
		})
	}
	a, b := pair(t, nil, setup)
	must(t, a.srv.ServerSideEmit(ctxStep(t), "hello", "a", []byte{7}))
	select {
	case s := <-got:
		if s != "a [7] false" {
			t.Errorf("b got %q", s)
		}
	case <-time.After(step):
		t.Fatal("no server-side event")
	}
	replies, err := b.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "hello", "b", []byte{8, 9})
	must(t, err)
	// Only the first argument of the acknowledgement travels.
	if len(replies) != 1 || string(replies[0].Raw(0)) != `"hi b"` || replies[0].Len() != 1 {
		t.Errorf("replies %v", replies)
	}
	if s := <-got; s != "b [8 9] true" {
		t.Errorf("a got %q", s)
	}
}

func TestServerSideEmitBinaryAck(t *testing.T) {
	setup := func(srv *socketio.Server) {
		srv.Of("/").OnServerSideEmit("bin", func(ns *socketio.Namespace, e *socketio.Event) {
			_ = e.Ack([]byte{1, 2, 3})
		})
	}
	a, _ := pair(t, nil, setup)
	replies, err := a.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "bin")
	must(t, err)
	if len(replies) != 1 {
		t.Fatalf("replies %v", replies)
	}
	var v []byte
	must(t, replies[0].Decode(0, &v))
	if d := cmp.Diff([]byte{1, 2, 3}, v); d != "" {
		t.Errorf("binary ack (-want +got):\n%s", d)
	}
}

func TestServerSideEmitTimeout(t *testing.T) {
	setup := func(srv *socketio.Server) {
		srv.Of("/").OnServerSideEmit("mute", func(ns *socketio.Namespace, e *socketio.Event) {})
	}
	a, _ := pair(t, &Options{RequestsTimeout: 200 * time.Millisecond}, setup)
	start := time.Now()
	_, err := a.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "mute")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v; want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestBroadcastWithAck(t *testing.T) {
	a, b := pair(t, nil, nil)
	a1 := dial(t, a)
	b1 := dial(t, b)
	b2 := dial(t, b, "red")
	for _, from := range []*node{a, b} {
		replies, err := from.srv.Timeout(step).EmitWithAck(ctxStep(t), "q", 21)
		must(t, err)
		var got []string
		for _, r := range replies {
			got = append(got, string(r.Raw(0)))
		}
		want := []string{`"` + a1.s.ID() + `"`, `"` + b1.s.ID() + `"`, `"` + b2.s.ID() + `"`}
		if d := cmp.Diff(sorted(want), sorted(got)); d != "" {
			t.Errorf("acks (-want +got):\n%s", d)
		}
	}
	replies, err := a.srv.To("red").Timeout(step).EmitWithAck(ctxStep(t), "q", 1)
	must(t, err)
	if len(replies) != 1 || string(replies[0].Raw(0)) != `"`+b2.s.ID()+`"` {
		t.Errorf("acks from red: %v", replies)
	}
	// Binary acknowledgements.
	replies, err = b.srv.Timeout(step).EmitWithAck(ctxStep(t), "qb")
	must(t, err)
	var bins []string
	for _, r := range replies {
		var v []byte
		must(t, r.Decode(0, &v))
		bins = append(bins, string(v))
	}
	if d := cmp.Diff(sorted([]string{a1.s.ID(), b1.s.ID(), b2.s.ID()}), sorted(bins)); d != "" {
		t.Errorf("binary acks (-want +got):\n%s", d)
	}
	// Nobody in the room anywhere: done at once.
	replies, err = a.srv.To("nobody").Timeout(step).EmitWithAck(ctxStep(t), "q", 1)
	if err != nil || len(replies) != 0 {
		t.Errorf("acks from nobody: %v, %v", replies, err)
	}
}

func TestRogueMessages(t *testing.T) {
	nc := natsConn(t)
	prefix := testPrefix(t)
	a, b := pair(t, &Options{Prefix: prefix}, nil)
	b1 := dial(t, b, "r")
	base := prefix + "." + token("/")
	bAdapter := b.srv.Of("/").Adapter().(*Adapter)
	for _, m := range []struct{ subj, payload string }{
		{base + ".broadcast", ""},
		{base + ".broadcast", "{"},
		{base + ".broadcast", "\x93\xa1x"},
		{base + ".broadcast", `{"uid":"x","type":10}`},              // no data
		{base + ".broadcast", `{"uid":"x","type":10,"data":"x"}`},   // data not an array
		{base + ".broadcast", `{"uid":"x","type":10,"data":[1]}`},   // no event name
		{base + ".broadcast", `{"uid":"x","type":10,"data":[]}`},    // no event name
		{base + ".broadcast", `{"uid":"x","type":3,"data":["ev"]}`}, // not a broadcast
		{base + ".broadcast", `{"uid":"x","type":10,"data":["ev",{"_placeholder":true,"num":3}]}`},
		{base + ".broadcast", `{"uid":"x","type":10,"data":["ev"],"att":"x"}`},
		{base + ".broadcast", `{"uid":"x","type":10,"data":["ev",` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `]}`},
		{base + ".room.!!!", `{"uid":"x","type":10,"data":["ev"]}`},
		{base + ".room." + token("r"), `{"uid":"x","type":10,"data":{}}`},
		{base + ".request", "{"},
		{base + ".request", `{"uid":"x","type":5}`},                                 // no rid
		{base + ".request", `{"uid":"x.y","type":5,"rid":"1"}`},                     // uid not a token
		{base + ".request", `{"uid":"x","type":5,"rid":"1","opts":{"rooms":[{}]}}`}, // bad opts
		{base + ".request", `{"uid":"x","type":6,"data":"x"}`},
		{base + ".request", `{"uid":"x","type":6,"data":[{"_placeholder":true,"num":3}]}`},
		{base + ".request", `{"uid":"x","type":7,"rid":"y","data":[]}`},
		{base + ".request", `{"uid":"x","type":99}`},
		{base + ".request", `{"uid":"x","type":2,"rooms":"x"}`},
		{base + ".response." + bAdapter.UID(), `{"uid":"x","rid":"zz","type":9}`},
		{base + ".response." + bAdapter.UID(), `{"uid":"x","type":9}`},
		{base + ".response." + bAdapter.UID(), "\xc1"},
		{base + ".presence", `{"type":20}`},
		{base + ".presence", `{"uid":"` + strings.Repeat("u", 100) + `","type":20}`},
		{base + ".presence", `{"uid":"x","type":77}`},
		{base + ".presence", `[]`},
	} {
		must(t, nc.Publish(m.subj, []byte(m.payload)))
	}
	must(t, nc.Flush())
	must(t, a.srv.Emit("after"))
	if got := b1.waitFor(t, "after"); len(got) != 0 {
		t.Errorf("b1 got %q", got)
	}
	// The cluster still works both ways.
	socks, err := b.srv.FetchSockets(ctxStep(t))
	if err != nil || len(socks) != 1 {
		t.Errorf("FetchSockets: %d sockets, %v", len(socks), err)
	}
	if n, err := a.srv.Of("/").ServerCount(ctxStep(t)); err != nil || n != 2 {
		t.Errorf("ServerCount = %d, %v", n, err)
	}
}

// TestDuplicateAnswers: a server answering twice (or a rogue one
// answering in its name) does not end a request early.
func TestDuplicateAnswers(t *testing.T) {
	nc := natsConn(t)
	prefix := testPrefix(t)
	a := newNode(t, nc, &Options{Prefix: prefix, RequestsTimeout: 300 * time.Millisecond}, nil)
	ad := a.srv.Of("/").Adapter().(*Adapter)
	base := prefix + "." + token("/")
	// Two fake servers: one answers every fetch twice, one never.
	for _, uid := range []string{"f1", "f2"} {
		must(t, nc.Publish(base+".presence", []byte(`{"uid":"`+uid+`","type":20}`)))
	}
	sub, err := nc.Subscribe(base+".request", func(m *natsgo.Msg) {
		var rid string
		if i := strings.Index(string(m.Data), `"rid":"`); i >= 0 {
			rid = string(m.Data[i+7:])
			rid = rid[:strings.IndexByte(rid, '"')]
		}
		for range 2 {
			_ = nc.Publish(base+".response."+ad.UID(), []byte(`{"uid":"f1","type":5,"rid":"`+rid+`","sockets":[{"id":"s1","rooms":["s1"]}]}`))
		}
	})
	must(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	eventually(t, "3 servers", func() bool { n, _ := a.srv.Of("/").ServerCount(ctxStep(t)); return n == 3 })
	socks, err := a.srv.FetchSockets(ctxStep(t))
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v; want ErrTimeout", err)
	}
	if len(socks) != 1 || socks[0].ID != "s1" {
		t.Errorf("sockets %+v", socks)
	}
}

func TestClose(t *testing.T) {
	nc := natsConn(t)
	srv, err := socketio.NewServer(&socketio.ServerOptions{NewAdapter: New(nc, &Options{Prefix: testPrefix(t)})})
	must(t, err)
	ad := srv.Of("/").Adapter().(*Adapter)
	must(t, srv.Close())
	if err := ad.Broadcast(&socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", ID: -1, Data: []byte(`["x"]`)}, &socketio.BroadcastOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close: %v", err)
	}
	if _, err := ad.ServerCount(ctxStep(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("ServerCount after Close: %v", err)
	}
	must(t, ad.Close()) // twice
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"duplex", "a.b.c", "socket-io_1"} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "a\tb", "é"} {
		if err := CheckPrefix(p); err == nil {
			t.Errorf("%q: no error", p)
		}
	}
}

func TestTokens(t *testing.T) {
	for _, name := range []string{"", "/", "/admin", "a.b", "*", ">", " ", "é", "-", "\x00"} {
		tok := token(name)
		if err := CheckPrefix(tok); err != nil {
			t.Errorf("token(%q) = %q: %v", name, tok, err)
		}
		back, err := untoken(tok)
		if err != nil || back != name {
			t.Errorf("untoken(token(%q)) = %q, %v", name, back, err)
		}
	}
	if token("/") != "Lw" {
		t.Errorf(`token("/") = %q`, token("/"))
	}
	for _, tok := range []string{"!", "a.b", "Lw=="} {
		if _, err := untoken(tok); err == nil {
			t.Errorf("untoken(%q): no error", tok)
		}
	}
}

// TestNATSRestart kills a NATS server of the test's own and starts it
// again: local delivery goes on meanwhile, requests to the other server
// fail with ErrNotConnected, and the cluster heals once NATS is back.
func TestNATSRestart(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			msg := "nats-server not in PATH nor /usr/sbin: TestNATSRestart starts its own (apt-get install nats-server)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		bin = "/usr/sbin/nats-server"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	addr := "127.0.0.1:" + port
	var (
		cmdMu sync.Mutex
		cmd   *exec.Cmd
	)
	start := func() {
		cmdMu.Lock()
		cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", port)
		must(t, cmd.Start())
		cmdMu.Unlock()
		eventually(t, "nats-server up", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		})
	}
	kill := func() {
		cmdMu.Lock()
		defer cmdMu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			cmd = nil
		}
	}
	start()
	t.Cleanup(kill)
	connect := func() *natsgo.Conn {
		nc, err := Connect("nats://"+addr, natsgo.ReconnectWait(50*time.Millisecond), natsgo.ReconnectJitter(0, 0))
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	opts := &Options{Prefix: testPrefix(t), RequestsTimeout: 500 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a := newNode(t, connect(), opts, nil)
	b := newNode(t, connect(), opts, nil)
	eventually(t, "2 servers", func() bool { n, _ := a.srv.Of("/").ServerCount(ctxStep(t)); return n == 2 })
	a1 := dial(t, a)
	b1 := dial(t, b)
	must(t, a.srv.Emit("before"))
	b1.waitFor(t, "before")

	kill()
	eventually(t, "a sees the connection down", func() bool {
		_, err := a.srv.Of("/").ServerCount(ctxStep(t))
		return errors.Is(err, ErrNotConnected)
	})
	if a.srv.Of("/").Adapter().(*Adapter).Connected() {
		t.Error("Connected without NATS")
	}
	must(t, a.srv.Emit("during")) // buffered by nats.go
	a1.waitFor(t, "before")
	a1.waitFor(t, "during")
	if _, err := a.srv.FetchSockets(ctxStep(t)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("FetchSockets without NATS: %v; want ErrNotConnected", err)
	}
	if _, err := a.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "x"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("ServerSideEmitWithAck without NATS: %v; want ErrNotConnected", err)
	}
	if _, err := a.srv.Timeout(step).EmitWithAck(ctxStep(t), "q", 1); !errors.Is(err, ErrNotConnected) {
		t.Errorf("EmitWithAck without NATS: %v; want ErrNotConnected", err)
	}

	// A server started while NATS is down: made at once, it joins the
	// cluster once NATS is back.
	began := time.Now()
	c := newNode(t, connect(), opts, nil)
	if d := time.Since(began); d > time.Second {
		t.Errorf("a server made while NATS is down took %v", d)
	}

	start()
	for _, n := range []*node{a, b, c} {
		eventually(t, "3 servers after the restart", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 3
		})
	}
	// Both ways work again once a's request reaches b and b's answer
	// comes back.
	eventually(t, "the cluster heals", func() bool {
		socks, err := a.srv.FetchSockets(ctxStep(t))
		return err == nil && len(socks) == 2
	})
	if !a.srv.Of("/").Adapter().(*Adapter).Connected() {
		t.Error("not Connected after the restart")
	}
	must(t, a.srv.Emit("after"))
	got := b1.waitFor(t, "after")
	if slices.Contains(got, `during`) {
		t.Log("b1 got the event sent while NATS was down (buffered by nats.go)")
	}
	socks, err := b.srv.FetchSockets(ctxStep(t))
	if err != nil || len(socks) != 2 {
		t.Errorf("FetchSockets after the restart: %d sockets, %v", len(socks), err)
	}
}

func TestJSONDepth(t *testing.T) {
	for in, want := range map[string]int{
		`[]`:                 1,
		`["a[[[",{"b":[1]}]`: 3,
		`["\"[[["]`:          1,
		`["\\",[[]]]`:        3,
		`[` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]`: 201,
	} {
		if got := jsonDepth([]byte(in)); got != want {
			t.Errorf("jsonDepth(%s) = %d, want %d", in, got, want)
		}
	}
	if err := checkEventData([]byte(`["ev",`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`]`), nil); err == nil {
		t.Error("checkEventData: 201 deep accepted")
	}
}

// TestTooLarge: a broadcast over NATS's max_payload fails, after the
// local delivery.
func TestTooLarge(t *testing.T) {
	nc := natsConn(t)
	a := newNode(t, nc, &Options{Prefix: testPrefix(t)}, nil)
	ad := a.srv.Of("/").Adapter().(*Adapter)
	big := `["big","` + strings.Repeat("x", int(nc.MaxPayload())) + `"]`
	err := ad.Broadcast(&socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", ID: -1, Data: []byte(big)}, &socketio.BroadcastOptions{})
	if !errors.Is(err, natsgo.ErrMaxPayload) {
		t.Errorf("Broadcast of %d bytes: %v; want ErrMaxPayload", len(big), err)
	}
	// The adapter still works.
	must(t, ad.Broadcast(&socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", ID: -1, Data: []byte(`["small"]`)}, &socketio.BroadcastOptions{}))
}

// TestHelloFlood: a flood of hello-new does not make a server publish as
// many hellos.
func TestHelloFlood(t *testing.T) {
	nc := natsConn(t)
	prefix := testPrefix(t)
	a := newNode(t, nc, &Options{Prefix: prefix}, nil)
	uid := a.srv.Of("/").Adapter().(*Adapter).UID()
	subj := prefix + "." + token("/") + ".presence"
	var mu sync.Mutex
	hellos := 0
	sub, err := nc.Subscribe(subj, func(m *natsgo.Msg) {
		if strings.Contains(string(m.Data), `"uid":"`+uid+`","type":20`) {
			mu.Lock()
			hellos++
			mu.Unlock()
		}
	})
	must(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	for i := range 200 {
		must(t, nc.Publish(subj, []byte(fmt.Sprintf(`{"uid":"flood%d","type":21}`, i))))
	}
	must(t, nc.Flush())
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if hellos < 1 || hellos > maxHelloAnswers+1 {
		t.Errorf("%d hellos for 200 hello-new; want 1 to %d", hellos, maxHelloAnswers+1)
	}
}

// TestAllRooms: a server asks the others for their rooms and gets the
// union of every server's rooms, the sockets' own ids among them, each
// once; a server that does not answer (here, one that only says hello)
// ends the request with ErrTimeout and the rooms that came.
func TestAllRooms(t *testing.T) {
	opts := &Options{Prefix: testPrefix(t), RequestsTimeout: 500 * time.Millisecond}
	a, b := pair(t, opts, nil)
	a1 := dial(t, a, "red", "shared")
	b1 := dial(t, b, "blue", "shared")
	b2 := dial(t, b)
	want := sorted([]string{a1.s.ID(), b1.s.ID(), b2.s.ID(), "red", "blue", "shared"})
	for name, n := range map[string]*node{"a": a, "b": b} {
		got, err := n.srv.Of("/").Adapter().(*Adapter).AllRooms(ctxStep(t))
		must(t, err)
		if d := cmp.Diff(want, sorted(got)); d != "" {
			t.Errorf("%s: AllRooms (-want +got):\n%s", name, d)
		}
	}

	nc := natsConn(t)
	must(t, nc.Publish(opts.Prefix+"."+token("/")+".presence", []byte(`{"uid":"mute","type":20}`)))
	eventually(t, "a counts the mute server", func() bool {
		n, err := a.srv.Of("/").ServerCount(ctxStep(t))
		return err == nil && n == 3
	})
	began := time.Now()
	got, err := a.srv.Of("/").Adapter().(*Adapter).AllRooms(ctxStep(t))
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("AllRooms with a mute server: %v; want ErrTimeout", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("AllRooms with a mute server took %v; want about the requests timeout (500ms)", d)
	}
	if d := cmp.Diff(want, sorted(got)); d != "" {
		t.Errorf("AllRooms with a mute server (-want +got):\n%s", d)
	}
}
