package redis

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/internal/brokertest"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"
)

// streamsNode starts a server with recovery on the Streams adapter.
func streamsNode(t *testing.T, rdb goredis.UniversalClient, key string) *socketio.Server {
	t.Helper()
	rec := &socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second}
	so := &StreamsOptions{StreamName: key, ChannelPrefix: key, SessionKeyPrefix: key + ":session:", Recovery: rec, BlockTime: time.Second}
	if testing.Verbose() {
		so.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: NewStreams(rdb, so),
		Recovery:   rec,
	})
	must(t, err)
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

func streamsKey(t *testing.T) string {
	key := testKey(t)
	rdb := redisClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		keys, _ := rdb.Keys(ctx, key+"*").Result()
		if len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
	})
	return key
}

// TestStreamsRecoveryAcrossServers: a client of server A, in a room,
// loses its connection; events are broadcast from B (and A) meanwhile;
// the client reconnects to B and gets its socket back, same id, with the
// events it missed, in order.
func TestStreamsRecoveryAcrossServers(t *testing.T) {
	rdb := redisClient(t)
	key := streamsKey(t)
	a := streamsNode(t, rdb, key)
	b := streamsNode(t, rdb, key)
	var target atomic.Pointer[socketio.Server]
	target.Store(a)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { target.Load().ServeHTTP(w, r) }))
	defer front.Close()

	ctx := ctxStep(t)
	s, err := socketio.Dial(ctx, front.URL, nil, &socketio.ClientOptions{
		Engine:       &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
		Reconnection: &socketio.Reconnection{MinDelay: time.Second, MaxDelay: time.Second, Jitter: -1},
	})
	must(t, err)
	defer s.Manager().Close()
	var mu sync.Mutex
	var got []string
	events := make(chan string, 100)
	s.OnAny(func(s *socketio.ClientSocket, e *socketio.Event) {
		var parts []string
		for i := range e.Len() {
			parts = append(parts, string(e.Raw(i)))
		}
		line := e.Name + " " + strings.Join(parts, " ")
		mu.Lock()
		got = append(got, line)
		mu.Unlock()
		events <- line
	})
	reconnected := make(chan struct{}, 1)
	disconnected := make(chan string, 1)
	s.OnDisconnect(func(s *socketio.ClientSocket, reason string) { disconnected <- reason })
	if _, err := s.EmitWithAck(ctx, "join", "red"); err != nil {
		t.Fatal(err)
	}
	s.OnConnect(func(s *socketio.ClientSocket) { reconnected <- struct{}{} })
	id := s.ID()

	// An event with an offset before the loss.
	must(t, b.To("red").Emit("ev", 0))
	wait := func(ch <-chan string, what string) string {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-time.After(step):
			t.Fatalf("no %s within %v", what, step)
			return ""
		}
	}
	first := wait(events, "first event")
	if !strings.HasPrefix(first, `ev 0 "`) {
		t.Fatalf("first event %q: no offset", first)
	}
	// The first connection's OnConnect may have run after the handler was
	// added (handlers run in order on the client's executor, and an event
	// came after it): its signal is not a reconnection.
	select {
	case <-reconnected:
	default:
	}

	// The connection drops; the next attempt reaches B.
	target.Store(b)
	sa := a.Of("/").Socket(id)
	if sa == nil {
		t.Fatal("the socket is not on A")
	}
	must(t, sa.Engine().Close())
	wait(disconnected, "disconnection")
	eventually(t, "A keeps the session", func() bool {
		n, _ := rdb.Keys(ctxStep(t), key+":session:*").Result()
		return len(n) == 1
	})
	must(t, b.To("red").Emit("ev", 1))
	must(t, a.To("red").Emit("ev", 2, []byte{1, 2}))
	must(t, b.Except("red").Emit("ev", "not for red"))
	must(t, b.Emit("ev", 3))
	must(t, a.To("blue").Emit("ev", "not for blue"))

	select {
	case <-reconnected:
	case <-time.After(2 * step):
		t.Fatal("no reconnection")
	}
	if !s.Recovered() || s.ID() != id {
		t.Fatalf("Recovered %v, id %s (was %s)", s.Recovered(), s.ID(), id)
	}
	for range 3 {
		wait(events, "a missed event")
	}
	must(t, b.To("red").Emit("ev", 4)) // red kept across the servers
	wait(events, "an event after recovery")

	mu.Lock()
	defer mu.Unlock()
	var names []string
	var offsets []string
	for _, line := range got {
		f := strings.Fields(line)
		names = append(names, strings.Join(f[:len(f)-1], " "))
		var off string
		if err := json.Unmarshal([]byte(f[len(f)-1]), &off); err != nil {
			t.Fatalf("%q: no offset", line)
		}
		offsets = append(offsets, off)
	}
	want := []string{"ev 0", "ev 1", `ev 2 {"_placeholder":true,"num":0}`, "ev 3", "ev 4"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	for i, off := range offsets {
		if !offsetRE.MatchString(off) || i > 0 && !streamIDLess(offsets[i-1], off) {
			t.Errorf("offsets %v: not increasing stream ids", offsets)
		}
	}
	if sb := b.Of("/").Socket(id); sb == nil || !sb.Recovered() || fmt.Sprint(sb.Rooms()) != fmt.Sprint(sorted([]string{id, "red"})) {
		t.Errorf("the socket on B: %v", sb)
	}
}

// TestStreamsOrder: events with offsets that two servers broadcast in
// turn reach a client in the stream's order, its own server's included:
// each is in the stream before the next is sent.
func TestStreamsOrder(t *testing.T) {
	rdb := redisClient(t)
	key := streamsKey(t)
	a, b := streamsNode(t, rdb, key), streamsNode(t, rdb, key)
	srv := httptest.NewServer(a)
	defer srv.Close()
	s, err := socketio.Dial(ctxStep(t), srv.URL, nil, &socketio.ClientOptions{
		Engine: &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
	})
	must(t, err)
	defer s.Manager().Close()
	events := make(chan string, 100)
	s.OnAny(func(s *socketio.ClientSocket, e *socketio.Event) {
		var parts []string
		for i := range e.Len() {
			parts = append(parts, string(e.Raw(i)))
		}
		events <- e.Name + " " + strings.Join(parts, " ")
	})
	if _, err := s.EmitWithAck(ctxStep(t), "join", "red"); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		must(t, []*socketio.Server{b, a}[i%2].To("red").Emit("ev", i))
	}
	var prev string
	for i := range n {
		var line string
		select {
		case line = <-events:
		case <-time.After(step):
			t.Fatalf("no event %d within %v", i, step)
		}
		f := strings.Fields(line)
		var off string
		if len(f) != 3 || json.Unmarshal([]byte(f[2]), &off) != nil || !offsetRE.MatchString(off) {
			t.Fatalf("event %q: not ev <i> <offset>", line)
		}
		if f[1] != fmt.Sprint(i) || prev != "" && !streamIDLess(prev, off) {
			t.Fatalf("event %d: %q after offset %s", i, line, prev)
		}
		prev = off
	}
}

// TestStreamsCluster runs the scenarios of the classic adapter on the
// Streams adapter (without recovery).
func TestStreamsCluster(t *testing.T) {
	rdb := redisClient(t)
	key := streamsKey(t)
	mk := func(setup func(srv *socketio.Server)) *node {
		return newNodeWith(t, NewStreams(rdb, &StreamsOptions{StreamName: key, ChannelPrefix: key, BlockTime: time.Second}), setup)
	}
	a, b := mk(nil), mk(nil)
	a1 := dial(t, a, "red")
	b1 := dial(t, b, "red")
	b2 := dial(t, b)
	must(t, a.srv.To("red").Emit("x", 1))
	b1.waitFor(t, "x 1")
	a1.waitFor(t, "x 1")
	must(t, b.srv.Except("red").Emit("y", []byte{7}))
	b2.waitFor(t, "y bin[7]")
	socks, err := a.srv.FetchSockets(ctxStep(t))
	if err != nil || len(socks) != 3 {
		t.Fatalf("FetchSockets: %d, %v", len(socks), err)
	}
	a.srv.In("red").SocketsJoin("green")
	bns := b.srv.Of("/").Adapter().(*StreamsAdapter)
	eventually(t, "b1 joins green", func() bool { return len(bns.Sockets([]string{"green"})) == 1 })
	replies, err := a.srv.Timeout(step).EmitWithAck(ctxStep(t), "q", 1)
	if err != nil || len(replies) != 3 {
		t.Fatalf("acks: %v, %v", replies, err)
	}
	n, err := a.srv.Of("/").ServerCount(ctxStep(t))
	if err != nil || n != 2 {
		t.Errorf("ServerCount = %d, %v", n, err)
	}
}

// TestStreamsRogueEntries: malformed entries and messages are dropped,
// never a panic; a session with an unknown offset is not restored.
func TestStreamsRogueEntries(t *testing.T) {
	rdb := redisClient(t)
	key := streamsKey(t)
	mk := func() *node {
		return newNodeWith(t, NewStreams(rdb, &StreamsOptions{StreamName: key, ChannelPrefix: key, BlockTime: time.Second, Recovery: &socketio.RecoveryOptions{}}), nil)
	}
	a, b := mk(), mk()
	b1 := dial(t, b, "red")
	ctx := ctxStep(t)
	for _, v := range [][]any{
		{"uid", "x"},
		{"uid", "x", "nsp", "/"},
		{"uid", "x", "nsp", "/", "type", "3"},
		{"uid", "x", "nsp", "/", "type", "3", "data", "{"},
		{"uid", "x", "nsp", "/", "type", "3", "data", "!!!"},
		{"uid", "x", "nsp", "/", "type", "3", "data", "wQ=="},
		{"uid", "x", "nsp", "/", "type", "3", "data", `{"packet":{"type":2,"data":[]},"opts":{"rooms":[],"except":[]}}`},
		{"uid", "x", "nsp", "/", "type", "4", "data", `{"rooms":["y"]}`},
		{"uid", "x", "nsp", "/", "type", "x"},
	} {
		must(t, rdb.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: v}).Err())
	}
	must(t, rdb.Publish(ctx, key+"#/#", "\xc1").Err())
	must(t, rdb.Publish(ctx, key+"#/#", "{}").Err())
	must(t, a.srv.To("red").Emit("after"))
	select {
	case e := <-b1.ch:
		if !strings.HasPrefix(e, `after "`) {
			t.Errorf("b1 got %q", e)
		}
	case <-time.After(step):
		t.Fatal("b1 got nothing")
	}
	sa := a.srv.Of("/").Adapter().(*StreamsAdapter)
	sa.PersistSession(&socketio.SessionState{SID: "s", PID: "p", Rooms: []string{"s"}, Data: map[string]int{"n": 1}})
	for _, off := range []string{"", "x", "1-1", "0-0"} {
		if st, err := sa.RestoreSession("p", off); st != nil || err != nil {
			t.Errorf("RestoreSession(p, %q) = %v, %v", off, st, err)
		}
	}
	es, err := rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	must(t, err)
	sa.PersistSession(&socketio.SessionState{SID: "s", PID: "p", Rooms: []string{"s"}, Data: map[string]int{"n": 1}})
	st, err := sa.RestoreSession("p", es[0].ID)
	if err != nil || st == nil || st.SID != "s" || string(st.Data.(json.RawMessage)) != `{"n":1}` {
		t.Errorf("RestoreSession = %+v, %v", st, err)
	}
	if st, _ := sa.RestoreSession("p", es[0].ID); st != nil {
		t.Error("a session restored twice")
	}
}

// What @socket.io/redis-streams-adapter 0.3 (@msgpack/msgpack 2.8)
// writes: the MessagePack of a pub/sub message, the base64 MessagePack
// data of a stream entry with binary, and a session.
func TestStreamsEncoding(t *testing.T) {
	srv, err := socketio.NewServer(nil)
	must(t, err)
	defer srv.Close()
	a := &Adapter{uid: "u", ns: srv.Of("/"), cluster: true, streams: &StreamsOptions{}}
	// encode({type: 7, data: {opts: {rooms: ["r"], except: [], flags: {}}, requestId: "abc"}, uid: "u", nsp: "/"})
	b, err := a.clusterEncode(cmFetchSockets, []byte(`{"opts":{"rooms":["r"],"except":[],"flags":{}},"requestId":"abc"}`), nil)
	must(t, err)
	if got, want := hex.EncodeToString(b), "84a47479706507a46461746182a46f70747383a5726f6f6d7391a172a665786365707490a5666c61677380a9726571756573744964a3616263a3756964a175a36e7370a12f"; got != want {
		t.Errorf("pub/sub message\n%s\nwant\n%s", got, want)
	}
	// {packet: {type: 2, data: ["ev", 1, -3, 300, 1.5, "é", Buffer.from([1, 2]), {a: null, b: true, c: []}, 70000, -200, 2 ** 40]}, opts: {rooms: [], except: [], flags: {}}}
	entry, err := a.streamEntry(cmBroadcast, []byte(`{"packet":{"type":2,"data":["ev",1,-3,300,1.5,"é",{"_placeholder":true,"num":0},{"a":null,"b":true,"c":[]},70000,-200,1099511627776]},"opts":{"rooms":[],"except":[],"flags":{}}}`), [][]byte{{1, 2}})
	must(t, err)
	want := []any{"uid", "u", "nsp", "/", "type", "3", "data", "gqZwYWNrZXSCpHR5cGUCpGRhdGGbomV2Af3NASzLP/gAAAAAAACiw6nEAgECg6FhwKFiw6FjkM4AARFw0f84zwAAAQAAAAAApG9wdHODpXJvb21zkKZleGNlcHSQpWZsYWdzgA=="}
	if d := cmp.Diff(want, entry); d != "" {
		t.Errorf("entry (-want +got):\n%s", d)
	}
	// encode({sid: "s", pid: "p", rooms: ["s", "r"], data: {n: 1}})
	text := (&jsonObject{}).str("sid", "s").str("pid", "p").value("rooms", []string{"s", "r"}).raw("data", []byte(`{"n":1}`)).bytes()
	b, err = appendMsgpackFromJSON(nil, text, nil)
	must(t, err)
	if got := base64.StdEncoding.EncodeToString(b); got != "hKNzaWShc6NwaWShcKVyb29tc5Khc6FypGRhdGGBoW4B" {
		t.Errorf("session %s", got)
	}
}

func TestStreamsExceptRestored(t *testing.T) {
	for _, c := range []struct {
		x, y string
		less bool
	}{{"1-0", "1-1", true}, {"1-1", "1-1", false}, {"9-5", "10-0", true}, {"10-0", "9-9", false}, {"5-10", "5-9", false}} {
		if got := streamIDLess(c.x, c.y); got != c.less {
			t.Errorf("streamIDLess(%s, %s) = %v", c.x, c.y, got)
		}
	}
	a := &Adapter{}
	a.restoredUpTo("s1", "10-0")
	a.restoredUpTo("s2", "20-0")
	o := a.exceptRestored(&socketio.BroadcastOptions{Except: []string{"x"}}, "10-0")
	if d := cmp.Diff([]string{"s1", "s2", "x"}, sorted(o.Except)); d != "" {
		t.Errorf("except at 10-0 (-want +got):\n%s", d)
	}
	o = a.exceptRestored(&socketio.BroadcastOptions{}, "15-0")
	if d := cmp.Diff([]string{"s2"}, o.Except); d != "" {
		t.Errorf("except at 15-0 (-want +got):\n%s", d)
	}
	o = a.exceptRestored(&socketio.BroadcastOptions{}, "21-0")
	if len(o.Except) != 0 || len(a.streamsRestored.upTo) != 0 {
		t.Errorf("except at 21-0: %v, %v", o.Except, a.streamsRestored.upTo)
	}
}

// TestStreamsOutageNoOffset: with Redis gone, a broadcast reaches this
// server's clients at once and without an offset. With Recovery on the
// server, an offset of the server's memory would otherwise be appended:
// one that no server of the cluster can recover from.
func TestStreamsOutageNoOffset(t *testing.T) {
	br := brokertest.Redis(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: br.Addr(), DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	srv := streamsNode(t, rdb, testKey(t))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c := dial(t, &node{srv: srv, url: hs.URL})
	next := func(what string) string {
		t.Helper()
		select {
		case e := <-c.ch:
			return e
		case <-time.After(step):
			t.Fatalf("no %s within %v", what, step)
			return ""
		}
	}

	must(t, srv.Emit("before"))
	if e := next("event before the outage"); !strings.HasPrefix(e, `before "`) {
		t.Fatalf("before the outage: %q, want the event with its stream offset", e)
	}
	br.Kill()
	if err := srv.Emit("during"); err == nil {
		t.Error("Emit without Redis: no error from the Streams adapter")
	}
	if e := next("event during the outage"); e != "during" {
		t.Errorf("during the outage: %q, want \"during\" without offset", e)
	}
}
