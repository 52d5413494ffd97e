package redis

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
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const step = 5 * time.Second // bound on every wait

const redisAddr = "127.0.0.1:6379"

// redisClient returns a client of the Redis at 127.0.0.1:6379. Without
// one, the test is skipped, or fails under CI=true.
func redisClient(t *testing.T) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		msg := fmt.Sprintf("no Redis at %s (%v); start one with: redis-server --port 6379 --save '' --appendonly no", redisAddr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testKey is a key prefix of the test's own, so that tests do not hear
// each other.
func testKey(t *testing.T) string {
	return "duplex-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomID()
}

// node is one Socket.IO server of a test cluster.
type node struct {
	srv *socketio.Server
	url string
}

// newNode starts a server on rdb with the adapter's opts; setup installs
// its handlers before it serves.
func newNode(t *testing.T, rdb goredis.UniversalClient, opts *Options, setup func(srv *socketio.Server)) *node {
	t.Helper()
	return newNodeWith(t, New(rdb, opts), setup)
}

// newNodeWith starts a server with the adapters newAdapter makes.
func newNodeWith(t *testing.T, newAdapter func(ns *socketio.Namespace) socketio.Adapter, setup func(srv *socketio.Server)) *node {
	t.Helper()
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: newAdapter,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
		s.On("leave", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Leave(room)
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
	mu sync.Mutex
	ev []string // "event arg…", one per event
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
		line := strings.Join(parts, " ")
		c.mu.Lock()
		c.ev = append(c.ev, line)
		c.mu.Unlock()
		c.ch <- line
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

func pair(t *testing.T, opts *Options, setup func(srv *socketio.Server)) (*node, *node) {
	rdb := redisClient(t)
	opts = withOpts(opts, func(*Options) {})
	if opts.Key == "" {
		opts.Key = testKey(t)
	}
	if opts.Logger == nil && testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return newNode(t, rdb, opts, setup), newNode(t, rdb, opts, setup)
}

// withOpts returns a copy of base (nil: the defaults) changed by fn.
func withOpts(base *Options, fn func(o *Options)) *Options {
	o := &Options{}
	if base != nil {
		*o = *base
	}
	fn(o)
	return o
}

func ctxStep(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), step)
	t.Cleanup(cancel)
	return ctx
}

func TestServerCount(t *testing.T) { testServerCount(t, nil) }

func testServerCount(t *testing.T, base *Options) {
	a, b := pair(t, base, nil)
	for _, n := range []*node{a, b} {
		got, err := n.srv.Of("/").ServerCount(ctxStep(t))
		if err != nil || got != 2 {
			t.Fatalf("ServerCount = %d, %v; want 2", got, err)
		}
	}
}

func TestBroadcasts(t *testing.T) { testBroadcasts(t, nil) }

func testBroadcasts(t *testing.T, base *Options) {
	a, b := pair(t, base, nil)
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFetchJoinLeaveDisconnect(t *testing.T) { testFetchJoinLeaveDisconnect(t, nil) }

func testFetchJoinLeaveDisconnect(t *testing.T, base *Options) {
	a, b := pair(t, base, nil)
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

func TestServerSideEmit(t *testing.T) { testServerSideEmit(t, nil) }

func testServerSideEmit(t *testing.T, base *Options) {
	got := make(chan string, 10)
	setup := func(srv *socketio.Server) {
		srv.Of("/").OnServerSideEmit("hello", func(ns *socketio.Namespace, e *socketio.Event) {
			var who string
			var bin []byte
			_ = e.Decode(0, &who)
			_ = e.Decode(1, &bin)
			got <- fmt.Sprintf("%s %v %v", who, bin, e.WantsAck())
			_ = e.Ack("hi " + who)
		})
	}
	a, b := pair(t, base, setup)
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
	if len(replies) != 1 || string(replies[0].Raw(0)) != `"hi b"` {
		t.Errorf("replies %v", replies)
	}
	if s := <-got; s != "b [8 9] true" {
		t.Errorf("a got %q", s)
	}
}

func TestServerSideEmitTimeout(t *testing.T) { testServerSideEmitTimeout(t, nil) }

func testServerSideEmitTimeout(t *testing.T, base *Options) {
	setup := func(srv *socketio.Server) {
		srv.Of("/").OnServerSideEmit("mute", func(ns *socketio.Namespace, e *socketio.Event) {})
	}
	a, _ := pair(t, withOpts(base, func(o *Options) { o.RequestsTimeout = 200 * time.Millisecond }), setup)
	start := time.Now()
	_, err := a.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "mute")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v; want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestBroadcastWithAck(t *testing.T) { testBroadcastWithAck(t, nil) }

func testBroadcastWithAck(t *testing.T, base *Options) {
	a, b := pair(t, base, nil)
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
	// Binary acknowledgements cross as MessagePack bin.
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
	rdb := redisClient(t)
	key := testKey(t)
	a, b := pair(t, &Options{Key: key}, nil)
	_ = a
	b1 := dial(t, b)
	ctx := ctxStep(t)
	for _, m := range []struct{ ch, payload string }{
		{key + "#/#", ""},
		{key + "#/#", "\x93"},
		{key + "#/#", "\x93\xa1x\x80\x80"}, // packet without data
		{key + "#/#", "\x93\xa1x\x83\xa4type\x02\xa4data\xc0\xa3nsp\xa1/\x80"}, // data not an array
		{key + "#/#", "\x93\xa1x\x82\xa4type\x02\xa4data\x91\xdd\xff\xff\xff\xff"},
		{key + "#/#", strings.Repeat("\x91", 10000) + "\xc0"},
		{key + "#/#", "\x93\xa1x\x82\xa4type\x02\xa4data\x91\x81\xab_placeholder\xc3\x80"},
		{key + "-request#/#", "{"},
		{key + "-request#/#", `{"type":5,"requestId":"x","opts":{"rooms":[{}]}}`},
		{key + "-request#/#", `{"type":6,"data":"x"}`},
		{key + "-request#/#", `{"type":6,"data":[{"_placeholder":true,"num":3}]}`},
		{key + "-request#/#", `{"type":7,"requestId":"y","packet":{"type":2,"data":[]}}`},
		{key + "-request#/#", "\xde\xff\xff"},
		{key + "-response#/#", `{"requestId":"zz","type":9}`},
		{key + "-response#/#", "\xc1"},
	} {
		must(t, rdb.Publish(ctx, m.ch, m.payload).Err())
	}
	must(t, a.srv.Emit("after"))
	b1.waitFor(t, "after")
}

func TestClose(t *testing.T) {
	rdb := redisClient(t)
	srv, err := socketio.NewServer(&socketio.ServerOptions{NewAdapter: New(rdb, &Options{Key: testKey(t)})})
	must(t, err)
	ad := srv.Of("/").Adapter().(*Adapter)
	must(t, srv.Close())
	if err := ad.Broadcast(&socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", ID: -1, Data: []byte(`["x"]`)}, &socketio.BroadcastOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close: %v", err)
	}
}

// TestRedisRestart kills a Redis of the test's own and starts it again:
// local delivery goes on meanwhile, requests to the other server fail
// with an error, and the cluster heals once Redis is back.
func TestRedisRestart(t *testing.T) { testRedisRestart(t, nil) }

func testRedisRestart(t *testing.T, base *Options) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not in PATH: TestRedisRestart starts its own (apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	addr := "127.0.0.1:" + port
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
		must(t, cmd.Start())
		eventually(t, "redis-server up", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		})
	}
	kill := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	start()
	t.Cleanup(func() { kill() })
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	opts := withOpts(base, func(o *Options) { o.Key, o.RequestsTimeout = testKey(t), 500*time.Millisecond })
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a := newNode(t, rdb, opts, nil)
	b := newNode(t, rdb, opts, nil)
	a1 := dial(t, a)
	b1 := dial(t, b)
	must(t, a.srv.Emit("before"))
	b1.waitFor(t, "before")

	kill()
	must(t, a.srv.Emit("during")) // queued; the publish fails later
	a1.waitFor(t, "before")
	a1.waitFor(t, "during")
	if _, err := a.srv.FetchSockets(ctxStep(t)); err == nil {
		t.Error("FetchSockets without Redis: no error")
	}
	if _, err := a.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "x"); err == nil {
		t.Error("ServerSideEmitWithAck without Redis: no error")
	}

	start()
	eventually(t, "both servers subscribed again", func() bool {
		n, err := a.srv.Of("/").ServerCount(ctxStep(t))
		return err == nil && n == 2
	})
	must(t, a.srv.Emit("after"))
	got := b1.waitFor(t, "after")
	if slices.Contains(got, "during") {
		t.Log("b1 got the event sent while Redis was down (published after the restart)")
	}
	socks, err := b.srv.FetchSockets(ctxStep(t))
	if err != nil || len(socks) != 2 {
		t.Errorf("FetchSockets after the restart: %d sockets, %v", len(socks), err)
	}
}

func TestSpecificResponseChannel(t *testing.T) {
	rdb := redisClient(t)
	key := testKey(t)
	// Watch where the answers go.
	ps := rdb.PSubscribe(ctxStep(t), key+"-response#*")
	defer ps.Close()
	if _, err := ps.Receive(ctxStep(t)); err != nil {
		t.Fatal(err)
	}
	a, b := pair(t, &Options{Key: key, PublishOnSpecificResponseChannel: true}, nil)
	dial(t, a)
	dial(t, b)
	socks, err := a.srv.FetchSockets(ctxStep(t))
	if err != nil || len(socks) != 2 {
		t.Fatalf("FetchSockets: %d sockets, %v", len(socks), err)
	}
	m, err := ps.ReceiveMessage(ctxStep(t))
	must(t, err)
	uid := a.srv.Of("/").Adapter().(*Adapter).UID()
	if want := key + "-response#/#" + uid + "#"; m.Channel != want {
		t.Errorf("answer on %s, want %s", m.Channel, want)
	}
}

// TestAllRooms: a server asks the others for their rooms (the Node
// adapter's allRooms, request type 1) and gets the union of every
// server's rooms, the sockets' own ids among them, each once; a server
// that does not answer ends the request with ErrTimeout and the rooms
// that came.
func TestAllRooms(t *testing.T) {
	rdb := redisClient(t)
	opts := &Options{Key: testKey(t), RequestsTimeout: 500 * time.Millisecond}
	a, b := newNode(t, rdb, opts, nil), newNode(t, rdb, opts, nil)
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

	// A third server that never answers: subscribed to the request
	// channel, so counted.
	mute := rdb.Subscribe(ctxStep(t), opts.Key+"-request#/#")
	t.Cleanup(func() { _ = mute.Close() })
	_, err := mute.Receive(ctxStep(t))
	must(t, err)
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

// TestAllRoomsUnsupported: the sharded and Streams protocols have no
// allRooms request; AllRooms says so, with this server's rooms.
func TestAllRoomsUnsupported(t *testing.T) {
	rdb := redisClient(t)
	for name, mk := range map[string]func(ns *socketio.Namespace) socketio.Adapter{
		"sharded": New(rdb, &Options{Key: testKey(t), Sharded: true}),
		"streams": NewStreams(rdb, &StreamsOptions{StreamName: streamsKey(t), ChannelPrefix: testKey(t), BlockTime: time.Second}),
	} {
		t.Run(name, func(t *testing.T) {
			n := newNodeWith(t, mk, nil)
			c := dial(t, n, "red")
			ad := n.srv.Of("/").Adapter().(interface {
				AllRooms(context.Context) ([]string, error)
			})
			got, err := ad.AllRooms(ctxStep(t))
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("AllRooms: %v; want errors.ErrUnsupported", err)
			}
			if d := cmp.Diff(sorted([]string{c.s.ID(), "red"}), sorted(got)); d != "" {
				t.Errorf("AllRooms (-want +got):\n%s", d)
			}
		})
	}
}
